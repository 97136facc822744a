"""Evaluation fixtures: two real tiny checkpoints (an untrained base, a policy taught to write code),
a real MLflow sqlite store and a real DuckDB file, all under pytest's tmp folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from r1ci_core.models import build_tiny_model
from r1ci_core.rollout.tiny import TINY_SHAPE, make_tiny_policy, sample_items, tokenizer_texts
from r1ci_core.sandbox import Sandbox

SEEN, UNSEEN = "number_multiply", "bbh_boolean_expressions"


@pytest.fixture(scope="session")
def eval_items():
    """6 questions: 3 of a 'training' family (held-out questions) and 3 of a held-out test family."""
    items = sample_items(6, families=(SEEN, UNSEEN))
    for it in items:
        it.pool = "test_seen" if it.family == SEEN else "test_unseen"
        it.split = "train" if it.family == SEEN else "test"
    return items


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory, eval_items) -> dict[str, str]:
    """{'base': untrained tiny model, 'sft': the same shape taught to write a code block} (folders)."""
    root = tmp_path_factory.mktemp("ckpt")
    build_tiny_model(root / "base", tokenizer_texts(eval_items), TINY_SHAPE)
    make_tiny_policy(root / "sft", eval_items, n_teach=3, steps=100)
    return {"base": str(root / "base"), "sft": str(root / "sft")}


@pytest.fixture(scope="session")
def sandbox():
    with Sandbox() as sb:
        yield sb


@pytest.fixture(scope="module")
def eval_env(tmp_path_factory):
    """R1CI_DATA_DIR and MLFLOW_TRACKING_URI (sqlite) under a fresh tmp folder, for one test module."""
    import mlflow

    root = tmp_path_factory.mktemp("evalenv")
    mp = pytest.MonkeyPatch()
    mp.setenv("R1CI_DATA_DIR", str(root / "data"))
    mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    mp.delenv("R1CI_EVAL_FORCE", raising=False)
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    yield Path(root)
    while mlflow.active_run():
        mlflow.end_run()
    mp.undo()
