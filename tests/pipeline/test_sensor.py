"""The new-model-version sensor fires on a version newly registered in a real MLflow store, once."""

from __future__ import annotations

import dagster as dg


def test_sensor_fires_on_new_registered_version(tmp_path, monkeypatch) -> None:
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
            return new_model_version_sensor(ctx), ctx

    skipped, _ = evaluate(None)
    assert isinstance(skipped, dg.SkipReason)

    mlflow.set_tracking_uri(uri)
    client = MlflowClient()
    experiment = client.create_experiment("r1ci-sensor-test")
    run = client.create_run(experiment)
    client.create_registered_model("r1ci-sft")
    client.create_model_version("r1ci-sft", source=f"{run.info.artifact_uri}/checkpoint", run_id=run.info.run_id,
                                tags={"checkpoint_path": str(tmp_path / "ckpt")})

    fired, _ = evaluate(None)
    assert isinstance(fired, dg.SensorResult)
    assert [r.run_key for r in fired.run_requests] == ["r1ci-sft:1"]
    cursor = fired.cursor

    again, _ = evaluate(cursor)  # nothing new since the cursor
    assert isinstance(again, dg.SkipReason)

    client.create_model_version("r1ci-sft", source=f"{run.info.artifact_uri}/checkpoint", run_id=run.info.run_id)
    newer, _ = evaluate(cursor)
    assert [r.run_key for r in newer.run_requests] == ["r1ci-sft:2"]
