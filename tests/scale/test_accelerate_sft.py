"""SFT through `accelerate launch --num_processes 2` on CPU (gloo), against the same SFT in one process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from r1ci_core.launch import train_sft


def _load(path: Path):
    from r1ci_core.models import load_model, load_tokenizer

    return load_model(str(path)), load_tokenizer(str(path))


def _config(path: Path) -> dict:
    cfg = json.loads((path / "config.json").read_text())
    cfg.pop("transformers_version", None)
    return cfg


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


def test_two_processes_match_one(recipe, trajectories, base_model, tmp_path: Path, mlflow_uri: str,
                                 caplog: pytest.LogCaptureFixture) -> None:
    import logging

    import mlflow

    recipe = recipe.with_overrides({"sft.packing": True, "sft.max_length": 1024})  # packed + sdpa_varlen under DDP
    one = train_sft(recipe, trajectories, base_model, tmp_path / "one", tmp_path / "one.work")

    mlflow.set_tracking_uri(mlflow_uri)
    caplog.set_level(logging.INFO, logger="r1ci_core.launch")
    with mlflow.start_run() as run:
        two = train_sft(recipe.with_overrides({"sft.num_processes": 2, "sft.accelerate_config": "ddp"}),
                        trajectories, base_model, tmp_path / "two", tmp_path / "two.work")
    assert two["num_processes"] == 2
    assert one["steps"] == two["steps"] == 3
    assert two["n_examples"] == one["n_examples"] == len(trajectories)
    assert torch.isfinite(torch.tensor([one["train_loss"], two["train_loss"]])).all()

    # the checkpoint loads and has the single-process result's config, tokenizer and tensor shapes
    assert _config(tmp_path / "two") == _config(tmp_path / "one")
    (m1, t1), (m2, t2), (m0, _) = _load(tmp_path / "one"), _load(tmp_path / "two"), _load(Path(base_model))
    assert t2.get_vocab() == t1.get_vocab() and t2.chat_template == t1.chat_template
    s0, s1, s2 = m0.state_dict(), m1.state_dict(), m2.state_dict()
    assert {k: v.shape for k, v in s2.items()} == {k: v.shape for k, v in s1.items()}
    assert all(torch.isfinite(v).all() for v in s2.values())
    assert any(not torch.equal(s2[k], s0[k]) for k in s0), "the 2-process run did not train"
    # only rank 0 wrote the artifact; the other rank's throw-away save is gone
    assert not list((tmp_path / "two.work" / "launch").glob("rank*-discard"))
    # rank 0 logged its per-step losses into the stage's MLflow run
    history = mlflow.tracking.MlflowClient(mlflow_uri).get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in history] == [1, 2, 3]
    # the subprocess's output is re-logged at INFO (the Dagster run page shows INFO), rank 0's progress included
    relayed = [r.getMessage() for r in caplog.records
               if r.name == "r1ci_core.launch" and r.levelno == logging.INFO and r.getMessage().startswith("[accelerate] ")]
    assert any("r1ci_core.training: step 3/3: loss" in m for m in relayed), relayed[-20:]
    assert not any("\r" in m for m in relayed)


def test_failure_names_the_command(recipe, trajectories, base_model, tmp_path: Path) -> None:
    bad = recipe.with_overrides({"sft.num_processes": 2, "sft.learning_rate": "fast"})
    with pytest.raises(RuntimeError, match="accelerate launch --num_processes 2"):
        train_sft(bad, trajectories, base_model, tmp_path / "out", tmp_path / "work")
