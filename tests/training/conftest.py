"""Shared fixtures: one thread, a sandbox, a tiny policy that writes code blocks, a small recipe."""

from __future__ import annotations

import pytest

from r1ci_core.config import load_recipe
from r1ci_core.rollout.tiny import make_tiny_policy, sample_items
from r1ci_core.sandbox import Sandbox


@pytest.fixture(autouse=True)
def _isolated_mlflow(tmp_path, monkeypatch):
    """No test writes to the project's MLflow store (training only logs when a run is active)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("R1CI_DATA_DIR", str(tmp_path / "data"))


@pytest.fixture(scope="session")
def sandbox():
    with Sandbox(timeout_s=5.0) as sb:
        yield sb


@pytest.fixture(scope="session")
def items():
    return sample_items(6)


@pytest.fixture(scope="session")
def tiny_policy(tmp_path_factory, items):
    """Checkpoint dir of the tiny model taught R1-CI conversations on the first 3 items (writes code)."""
    out = tmp_path_factory.mktemp("training") / "tiny"
    make_tiny_policy(out, items, n_teach=3, steps=100)
    return out


@pytest.fixture
def small_recipe():
    """The tiny recipe cut down to seconds: a short rollout and a 1-step GRPO on 2 prompts x 2 samples."""
    return load_recipe("tiny", {
        "rollout.max_new_tokens": 200, "rollout.max_turns": 3, "rollout.max_code_calls": 2, "rollout.batch_size": 8,
        "grpo": {"max_steps": 1, "per_device_train_batch_size": 4, "num_generations": 2, "learning_rate": 1e-4,
                 "temperature": 0.7, "save_strategy": "no", "logging_steps": 1, "disable_tqdm": True},
        "curriculum.enabled": False,
    })
