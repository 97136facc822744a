"""The new-model-version sensor fires once per version newly registered (under this recipe's names) in a real
MLflow store; the model_version_eval run it requests names exactly that version."""

from __future__ import annotations

import dagster as dg


def test_sensor_fires_once_per_new_version_of_this_recipe(tmp_path, monkeypatch) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    from r1ci_pipeline.defs.resources import RecipeResource
    from r1ci_pipeline.defs.sensors import new_model_version_sensor

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("R1CI_DATA_DIR", str(tmp_path))
    recipe = RecipeResource(recipe="tiny", data_dir=str(tmp_path))

    def evaluate(cursor: str | None):
        with dg.build_sensor_context(cursor=cursor, resources={"recipe": recipe}) as ctx:
            return new_model_version_sensor(ctx)

    assert isinstance(evaluate(None), dg.SkipReason)

    mlflow.set_tracking_uri(uri)
    client = MlflowClient()
    run = client.create_run(client.create_experiment("r1ci-sensor-test"))

    def register(name: str) -> None:
        if not client.search_registered_models(f"name='{name}'"):
            client.create_registered_model(name)
        client.create_model_version(name, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id)

    register("r1ci-tiny-sft")
    register("r1ci-other-sft")  # another recipe's history: not this sensor's
    fired = evaluate(None)
    assert isinstance(fired, dg.SensorResult)
    assert [r.run_key for r in fired.run_requests] == ["r1ci-tiny-sft/1"]
    assert fired.run_requests[0].run_config == {"ops": {"model_version_eval": {"config": {
        "version": "models:/r1ci-tiny-sft/1", "questions": "held_out", "fresh_seed": 0}}}}
    assert fired.run_requests[0].tags["r1ci.model_version"] == "r1ci-tiny-sft/1"

    assert isinstance(evaluate(fired.cursor), dg.SkipReason)  # nothing new since the cursor

    register("r1ci-tiny-sft")
    register("r1ci-tiny-grpo")
    newer = evaluate(fired.cursor)
    assert [r.run_key for r in newer.run_requests] == ["r1ci-tiny-sft/2", "r1ci-tiny-grpo/1"]
