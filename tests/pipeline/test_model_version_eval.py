"""Evaluation follows new model versions, through real Dagster evaluation and materialisation: the sensor
requests one `model_version_eval` run per version newly registered in a real MLflow sqlite store, each run
tags its version with its figures and moves `@champion`, the report aggregates every evaluated version, and
the daily schedule re-checks the champion on fresh questions."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import dagster as dg
import pytest

from .conftest import REDUCED_RECIPE

SFT = "r1ci-reduced-sft"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    import mlflow

    root = tmp_path_factory.mktemp("mveval")
    recipe = root / "reduced.yaml"
    recipe.write_text(REDUCED_RECIPE)
    mp = pytest.MonkeyPatch()
    mp.setenv("R1CI_DATA_DIR", str(root / "data"))
    mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    mp.delenv("R1CI_EVAL_FORCE", raising=False)
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    from r1ci_pipeline.defs.io_manager import AtomicFilesystemIOManager
    from r1ci_pipeline.defs.resources import RecipeResource, SandboxResource

    res = RecipeResource(recipe=str(recipe), data_dir=str(root / "data"))
    resources = {"recipe": res, "sandbox": SandboxResource(recipe=res),
                 "io_manager": AtomicFilesystemIOManager(base_dir=str(root / "storage"))}
    yield {"root": root, "resources": resources, "instance": dg.DagsterInstance.ephemeral()}
    while mlflow.active_run():
        mlflow.end_run()
    mp.undo()


def _materialize(env, selection: str, **kwargs) -> dg.ExecuteInProcessResult:
    from r1ci_pipeline.defs.assets import data, evaluation, training

    assets = dg.load_assets_from_modules([data, training, evaluation])
    result = dg.materialize(assets, selection=[selection], resources=env["resources"], instance=env["instance"],
                            **kwargs)
    assert result.success
    return result


def _register(env, corpus_path: str, seed: int) -> str:
    """Train the tiny policy into one work folder (as sft_checkpoint does) and register it."""
    from r1ci_core import lineage
    from r1ci_core.corpus import load_corpus
    from r1ci_core.rollout.tiny import make_tiny_policy

    items = load_corpus(Path(corpus_path))
    make_tiny_policy(env["root"] / "sft_work", items, n_teach=2, steps=10 + 20 * seed, seed=seed)
    with lineage.asset_run(env["resources"]["recipe"].load().mlflow, "sft_checkpoint"):
        return lineage.register_checkpoint(env["root"] / "sft_work", SFT)


def _sensor(env, cursor: str | None):
    from r1ci_pipeline.defs.sensors import new_model_version_sensor

    with dg.build_sensor_context(cursor=cursor, instance=env["instance"],
                                 resources={"recipe": env["resources"]["recipe"]}) as ctx:
        return new_model_version_sensor(ctx)


@pytest.fixture(scope="module")
def evaluated(env):
    """Two registered versions, the sensor's two run requests materialised in turn."""
    corpus = _materialize(env, "task_corpus").output_for_node("task_corpus")
    assert isinstance(_sensor(env, None), dg.SkipReason)  # nothing registered yet
    numbers = [_register(env, corpus.path, seed) for seed in (0, 1)]
    fired = _sensor(env, None)
    results = [_materialize(env, "model_version_eval", run_config=r.run_config, tags=r.tags)
               for r in fired.run_requests]
    return {"corpus": corpus, "numbers": numbers, "fired": fired,
            "outputs": [r.output_for_node("model_version_eval") for r in results]}


def test_sensor_requests_one_run_per_new_version(env, evaluated):
    fired = evaluated["fired"]
    assert evaluated["numbers"] == ["1", "2"]
    assert [r.run_key for r in fired.run_requests] == [f"{SFT}/1", f"{SFT}/2"]
    assert [r.run_config["ops"]["model_version_eval"]["config"]["version"] for r in fired.run_requests] == [
        f"models:/{SFT}/1", f"models:/{SFT}/2"]
    assert isinstance(_sensor(env, fired.cursor), dg.SkipReason)  # nothing new since the cursor
    third = _register(env, evaluated["corpus"].path, 2)
    newer = _sensor(env, fired.cursor)
    assert [r.run_key for r in newer.run_requests] == [f"{SFT}/{third}"]


def test_each_run_evaluates_its_version_and_tags_it(env, evaluated):
    import duckdb
    from mlflow.tracking import MlflowClient

    from r1ci_core import versions

    client = MlflowClient()
    for number, out in zip(("1", "2"), evaluated["outputs"], strict=True):
        assert out.metadata["model_versions"] == [f"{SFT}/{number}"]
        tags = client.get_model_version(SFT, number).tags
        assert 0.0 <= float(tags["r1ci.eval.autonomous.accuracy"]) <= 1.0
        assert int(tags["r1ci.eval.autonomous.n"]) == 9  # 3 questions of each of the 3 families
        assert tags["r1ci.eval.run_ids"]
    con = duckdb.connect(str(env["root"] / "data" / "r1ci.duckdb"), read_only=True)
    stored = dict(con.execute("SELECT model_version, count(*) FROM eval_runs GROUP BY 1").fetchall())
    assert stored == {f"{SFT}/1": 1, f"{SFT}/2": 1}
    # champion: the better of the two held-out figures (ties: the older version)
    acc = {n: float(client.get_model_version(SFT, n).tags["r1ci.eval.autonomous.accuracy"]) for n in ("1", "2")}
    best = "2" if acc["2"] > acc["1"] else "1"
    assert versions.alias_version(SFT, versions.CHAMPION) == best
    assert evaluated["outputs"][1].metadata["champions"] == {SFT: best}


def test_report_aggregates_every_evaluated_version(env, evaluated):
    first, second = evaluated["outputs"]
    assert set(first.metadata["accuracy"]) == {f"{SFT}/1"}
    assert set(second.metadata["accuracy"]) == {f"{SFT}/1", f"{SFT}/2"}  # version 1's stored run too
    report = Path(second.path).read_text()
    assert f"{SFT}/1" in report and f"{SFT}/2" in report


def test_schedule_rechecks_the_champion_on_fresh_questions(env, evaluated):
    import duckdb
    from mlflow.tracking import MlflowClient

    from r1ci_core import versions
    from r1ci_core.corpus import load_corpus
    from r1ci_pipeline.defs.schedules import eval_schedule

    champion = versions.alias_version(SFT, versions.CHAMPION)
    when = dt.datetime(2031, 5, 6, 3, tzinfo=dt.UTC)
    with dg.build_schedule_context(scheduled_execution_time=when, instance=env["instance"],
                                   resources={"recipe": env["resources"]["recipe"]}) as ctx:
        requests = eval_schedule(ctx)
    assert [r.run_key for r in requests] == [f"{SFT}/{champion}@fresh-20310506"]
    config = requests[0].run_config["ops"]["model_version_eval"]["config"]
    assert config == {"version": f"models:/{SFT}/{champion}", "questions": "fresh", "fresh_seed": 20310506}

    out = _materialize(env, "model_version_eval", run_config=requests[0].run_config).output_for_node(
        "model_version_eval")
    assert out.metadata["questions"] == "fresh" and out.metadata["n_questions"] > 0
    tags = MlflowClient().get_model_version(SFT, champion).tags
    assert tags["r1ci.recheck.seed"] == "20310506" and "r1ci.recheck.autonomous.accuracy" in tags
    assert "r1ci.eval.autonomous.accuracy" in tags  # the held-out figures stay
    corpus_ids = {it.id for it in load_corpus(Path(evaluated["corpus"].path))}
    con = duckdb.connect(str(env["root"] / "data" / "r1ci.duckdb"), read_only=True)
    fresh_ids = {q for (q,) in con.execute(
        "SELECT DISTINCT s.question_id FROM eval_samples s JOIN eval_runs r USING (run_id) "
        "WHERE r.checkpoint LIKE '%@fresh-%'").fetchall()}
    assert fresh_ids and not fresh_ids & corpus_ids


def test_schedule_skips_without_a_champion(tmp_path, monkeypatch):
    from r1ci_pipeline.defs.resources import RecipeResource
    from r1ci_pipeline.defs.schedules import eval_schedule

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    with dg.build_schedule_context(scheduled_execution_time=dt.datetime(2031, 1, 1, tzinfo=dt.UTC),
                                   resources={"recipe": RecipeResource(recipe="tiny", data_dir=str(tmp_path))}) as ctx:
        skipped = eval_schedule(ctx)
    assert isinstance(skipped, dg.SkipReason) and "no champion version of r1ci-tiny-sft" in skipped.skip_message
