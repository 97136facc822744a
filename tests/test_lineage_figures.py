"""What the trainers' callbacks, the curves and the evaluation log through `r1ci_core.lineage`, read back from a
real MLflow sqlite store with stock MLflow."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from r1ci_core import lineage
from r1ci_core.config import MlflowConfig


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A fresh tracking store for this module (sqlite, artifacts under the data folder)."""
    import mlflow

    root = tmp_path_factory.mktemp("lineage")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        mp.setenv("R1CI_DATA_DIR", str(root / "data"))
        cfg = MlflowConfig(experiment="unit")
        lineage.setup(cfg)
        yield cfg, mlflow.tracking.MlflowClient()


def _state(step: int) -> object:
    from transformers import TrainerState

    return TrainerState(global_step=step, max_steps=5)


def test_trainer_callbacks_log_each_step_to_the_active_run(store):
    import mlflow

    from r1ci_core.grpo import _stage_callback
    from r1ci_core.training import mlflow_callback

    cfg, client = store
    metrics, stage = mlflow_callback(), _stage_callback([SimpleNamespace(steps=2, index=1),
                                                         SimpleNamespace(steps=2, index=2)])
    metrics.on_log(None, _state(1), None, logs={"loss": 9.0})  # no active run: nothing is logged, no run made
    assert mlflow.active_run() is None and lineage.active_run_id() is None
    with lineage.asset_run(cfg, "grpo_checkpoint") as run:
        assert lineage.active_run_id() == run.info.run_id
        for step in range(1, 6):
            metrics.on_log(None, _state(step), None, logs={"loss": 1.0 / step, "rewards/correctness/mean": 0.25,
                                                            "note": "not a figure"})
            stage.on_step_end(None, _state(step), None)
    run_id = run.info.run_id
    assert lineage.metric_history(run_id, "curriculum_stage") == [1.0, 1.0, 2.0, 2.0, 2.0]  # past the end: last
    assert lineage.metric_history(run_id, "loss") == pytest.approx([1.0, 0.5, 1 / 3, 0.25, 0.2])
    assert [m.step for m in client.get_metric_history(run_id, "loss")] == [1, 2, 3, 4, 5]
    assert lineage.metric_history(run_id, "rewards.correctness.mean") == [0.25] * 5
    assert set(client.get_run(run_id).data.metrics) == {"loss", "rewards.correctness.mean", "curriculum_stage"}
    assert lineage.metric_history(run_id, "reward") == [] and lineage.metric_history("0" * 32, "loss") == []


def test_curves_and_an_evaluation_reach_their_run(store, tmp_path):
    import mlflow

    cfg, client = store
    with lineage.asset_run(cfg, "grpo_checkpoint") as run:
        lineage.log_curves({"reward": ([1, 2], [0.1, 0.3]), "empty": ([], [])}, "reward_curve")
    run_id = run.info.run_id
    names = sorted(Path(f.path).name for f in client.list_artifacts(run_id))
    assert names == ["reward_curve.json", "reward_curve.png"]
    curve = json.loads(mlflow.artifacts.load_text(f"{run.info.artifact_uri}/reward_curve.json"))
    assert curve == {"reward": {"step": [1, 2], "value": [0.1, 0.3]}}

    report = tmp_path / "report"
    report.mkdir()
    (report / "report.md").write_text("# figures\n")
    lineage.log_to_run(run_id, {"accuracy.sft.autonomous": 0.5}, {"r1ci.eval_run_ids": "a,b"},
                       artifacts=report, artifact_path="eval_report")  # the run has ended: logged by id
    ended = client.get_run(run_id)
    assert ended.data.metrics["accuracy.sft.autonomous"] == 0.5 and ended.data.tags["r1ci.eval_run_ids"] == "a,b"
    assert [Path(f.path).name for f in client.list_artifacts(run_id, "eval_report")] == ["report.md"]
