"""The whole chain, materialised for real by Dagster on a reduced recipe (the session's run, conftest.py), then one
asset alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import materialize

ASSETS = ["task_corpus", "base_model", "teacher_trajectories", "sft_dataset", "sft_checkpoint",
          "grpo_checkpoint", "eval_report"]
UPSTREAM = {"teacher_trajectories": ["task_corpus"], "sft_dataset": ["teacher_trajectories", "base_model"],
            "sft_checkpoint": ["sft_dataset", "base_model"], "grpo_checkpoint": ["sft_checkpoint", "task_corpus"],
            "eval_report": ["task_corpus", "base_model", "sft_checkpoint", "grpo_checkpoint"]}


@pytest.fixture(scope="module")
def full_run(whole_chain: dict) -> dict[str, str]:
    """The environment of the session's whole-chain run (conftest.py)."""
    return whole_chain["env"]


def _mlflow(env: dict[str, str]):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])


def test_every_asset_materialised_in_dagster(full_run: dict[str, str]) -> None:
    import dagster as dg

    instance = dg.DagsterInstance.from_config(full_run["DAGSTER_HOME"])
    for name in ASSETS:
        event = instance.get_latest_materialization_event(dg.AssetKey(name))
        assert event is not None, f"{name} was not materialised"
        metadata = event.asset_materialization.metadata
        assert metadata["mlflow_run_id"].value
    corpus = instance.get_latest_materialization_event(dg.AssetKey("task_corpus")).asset_materialization.metadata
    counts = corpus["counts"].value
    assert counts["number_multiply"] == {"sft": 8, "grpo": 2, "test_seen": 3}
    assert counts["bbh_multistep_arithmetic_two"] == {"test_unseen": 3}


def test_one_mlflow_run_per_asset_with_lineage(full_run: dict[str, str]) -> None:
    client = _mlflow(full_run)
    experiment = client.get_experiment_by_name("r1ci")
    runs = client.search_runs([experiment.experiment_id])
    by_asset: dict[str, list] = {}
    for run in runs:
        by_asset.setdefault(run.data.tags["dagster.asset_key"], []).append(run)
    for name in ASSETS:
        assert len(by_asset[name]) == 1, name
        run = by_asset[name][0]
        assert run.info.status == "FINISHED"
        assert run.data.tags["dagster.run_id"]
        assert run.data.params, f"{name} logged no params"
    run_ids = {name: by_asset[name][0].info.run_id for name in ASSETS}
    for name, parents in UPSTREAM.items():
        tags = by_asset[name][0].data.tags
        for parent in parents:
            assert tags.get(f"r1ci.upstream.{parent}") == run_ids[parent], f"{name} -> {parent}"
    # inputs logged with digest and source
    for name in ("teacher_trajectories", "sft_dataset", "sft_checkpoint", "grpo_checkpoint"):
        inputs = by_asset[name][0].inputs.dataset_inputs
        assert inputs, f"{name} logged no input dataset"
        assert all(i.dataset.digest and i.dataset.source for i in inputs)
    # checkpoints registered
    for model in ("r1ci-reduced-sft", "r1ci-reduced-grpo"):
        versions = client.search_model_versions(f"name='{model}'")
        assert len(versions) == 1
    assert "loss" in client.get_run(run_ids["sft_checkpoint"]).data.metrics


def test_duckdb_rows_for_every_checkpoint_and_question(full_run: dict[str, str]) -> None:
    import duckdb

    db = Path(full_run["R1CI_DATA_DIR"]) / "r1ci.duckdb"
    con = duckdb.connect(str(db), read_only=True)
    rows = con.execute("""
        SELECT r.checkpoint, count(*), count(DISTINCT s.question_id)
        FROM eval_samples s JOIN eval_runs r USING (run_id) GROUP BY r.checkpoint ORDER BY 1""").fetchall()
    assert [r[0] for r in rows] == ["base", "grpo", "sft"]
    n_test = 3 * 2 + 3  # two training families' held-out questions + one unseen family
    assert all(r[1] == n_test and r[2] == n_test for r in rows)
    pools = dict(con.execute("SELECT pool, count(*) FROM eval_samples GROUP BY pool").fetchall())
    assert pools == {"seen_family": 18, "unseen_family": 9}


def test_report_names_each_checkpoint_accuracy(full_run: dict[str, str]) -> None:
    import re

    report = next((Path(full_run["R1CI_DATA_DIR"]) / "reduced" / "eval_report").glob("*.md")).read_text()
    for ckpt in ("base", "sft", "grpo"):
        assert re.search(rf"\| {ckpt} \| autonomous \|.*\d+\.\d", report), ckpt


def test_whole_chain_evaluates_and_tags_each_new_version(full_run: dict[str, str]) -> None:
    """'*' includes model_version_eval: each new candidate version is tagged with its figures, reusing the
    evaluations eval_report stored for the same weights (no new rollouts), and becomes the champion."""
    import dagster as dg

    instance = dg.DagsterInstance.from_config(full_run["DAGSTER_HOME"])
    meta = instance.get_latest_materialization_event(dg.AssetKey("model_version_eval")).asset_materialization.metadata
    assert sorted(meta["model_versions"].value) == ["r1ci-reduced-grpo/1", "r1ci-reduced-sft/1"]
    assert meta["new_run_ids"].value == [] and len(meta["reused_run_ids"].value) == 2
    client = _mlflow(full_run)
    for name in ("r1ci-reduced-sft", "r1ci-reduced-grpo"):
        tags = client.get_model_version(name, "1").tags
        assert int(tags["r1ci.eval.autonomous.n"]) == 9
        assert str(client.get_registered_model(name).aliases["champion"]) == "1"


def test_grpo_checkpoint_rematerialises_alone(full_run: dict[str, str]) -> None:
    """Alone with nothing changed it reuses the finished run; forced ($R1CI_FORCE) it trains a new one
    on the same SFT run.

    Last in this module: it adds a Dagster run, an MLflow run and a model version to the shared chain's stores,
    which the tests above count (test_dagster_ui.py reads the chain's own Dagster run only)."""
    client = _mlflow(full_run)
    experiment = client.get_experiment_by_name("r1ci")

    def grpo_runs() -> list:
        return client.search_runs([experiment.experiment_id],
                                  filter_string="tags.`dagster.asset_key` = 'grpo_checkpoint'")

    out = materialize(full_run, "grpo_checkpoint")
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    assert len(grpo_runs()) == 1
    assert len(client.search_model_versions("name='r1ci-reduced-grpo'")) == 1
    out = materialize({**full_run, "R1CI_FORCE": "grpo_checkpoint"}, "grpo_checkpoint")
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    grpo = grpo_runs()
    assert len(grpo) == 2 and all(r.info.status == "FINISHED" for r in grpo)
    sft_run = client.search_runs([experiment.experiment_id],
                                 filter_string="tags.`dagster.asset_key` = 'sft_checkpoint'")[0].info.run_id
    assert all(r.data.tags["r1ci.upstream.sft_checkpoint"] == sft_run for r in grpo)
    assert len(client.search_model_versions("name='r1ci-reduced-grpo'")) == 2
