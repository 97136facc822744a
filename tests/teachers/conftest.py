"""Teacher/filter fixtures: a sandbox, a fresh MLflow store + data folder per test, a small task corpus."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from teacher_helpers import small_recipe

from r1ci_core.sandbox import Sandbox


@pytest.fixture(scope="session")
def sandbox():
    with Sandbox() as sb:
        yield sb


@pytest.fixture
def stage_env(tmp_path, monkeypatch):
    """R1CI_DATA_DIR and a sqlite MLflow store under this test's tmp folder; yields the data folder."""
    import mlflow

    monkeypatch.setenv("R1CI_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    yield tmp_path / "data"
    while mlflow.active_run():
        mlflow.end_run()


@pytest.fixture
def corpus_stage(stage_env):
    """(StageContext, StageResult) of a real `task_corpus` stage run on a small recipe."""
    from r1ci_core.stages import StageContext, task_corpus

    ctx = StageContext(recipe=small_recipe(), root=Path(stage_env))
    return ctx, task_corpus(ctx)
