"""Whole-chain re-runs through the real Dagster CLI, as a user runs them: `dagster asset materialize --select '*'`
SIGKILLed while SFT writes its checkpoints, the whole chain run again to the end, then once more with nothing
changed.

Checked after the re-run: every stage finished before the kill is reused (no new MLflow run, same artifact
files with the same mtimes), SFT resumes from its checkpoint-N, GRPO and the evaluations run, and one model
version is registered per trained checkpoint. Checked after the no-change re-run: it starts no MLflow run,
registers no model version, rewrites no artifact file, stores no evaluation and reports every asset reused.

Kills in the other stages are covered one asset at a time in test_kill_resume.py (so this chain is run three
times, not five): the teacher killed while writing its shards, resuming from them (finished shards counted in
``n_resumed_questions``), by `test_teacher_trajectories_killed_midway_resumes_to_the_same_dataset`; GRPO killed
mid-training, resuming from its checkpoint-N, by `test_training_killed_midway_resumes_from_its_last_checkpoint`
(``grpo_checkpoint``).
"""

from __future__ import annotations

import random
import time
from pathlib import Path

from .conftest import kill_midway, latest_metadata, make_env, materialize, mlflow_runs

ASSETS = ("task_corpus", "base_model", "teacher_trajectories", "sft_dataset", "sft_checkpoint",
          "grpo_checkpoint", "eval_report", "model_version_eval")


def _finished(env: dict, asset: str) -> list[str]:
    return [r.info.run_id for r in mlflow_runs(env, asset) if r.info.status == "FINISHED"]


def _all_finished(env: dict) -> dict[str, list[str]]:
    return {a: _finished(env, a) for a in ASSETS}


def _last_finished(env: dict, asset: str):
    runs = [r for r in mlflow_runs(env, asset) if r.info.status == "FINISHED"]
    assert runs, f"{asset} has no finished MLflow run"
    return runs[-1]


def _mtimes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.name.startswith(".")}  # not locks


def _last_step(work: Path) -> int:
    steps = [int(p.name.split("-")[1]) for p in work.glob("checkpoint-*") if (p / "trainer_state.json").is_file()]
    return max(steps, default=0)


def _versions(env: dict) -> list[tuple[str, str]]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    return sorted((v.name, v.version) for v in client.search_model_versions())


def _eval_runs(db: Path) -> int:
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute("SELECT count(*) FROM eval_runs").fetchone()[0]
    finally:
        con.close()


def _check_reused(env: dict, art: Path, before: dict[str, list[str]], mtimes: dict[str, dict], assets: tuple) -> None:
    """`assets` started no new MLflow run and their artifact files were not rewritten."""
    now = _all_finished(env)
    for asset in assets:
        assert now[asset] == before[asset], f"{asset} ran again instead of being reused"
        assert _mtimes(art / asset) == mtimes[asset], f"{asset}'s artifact was rewritten"


def test_killed_chain_resumes_every_stage_and_a_rerun_with_nothing_changed_does_nothing(
        tmp_path: Path, seed: int) -> None:
    root = tmp_path
    env = make_env(root)
    # the chain runs as README's command does, on the default store under the data folder (the same file
    # env's MLFLOW_TRACKING_URI names for reading it here): nothing may depend on the variable being set
    user_env = {k: v for k, v in env.items() if k != "MLFLOW_TRACKING_URI"}
    art = Path(env["R1CI_DATA_DIR"]) / "faults"
    rng = random.Random(f"{seed}:chain")

    # 1. killed while SFT writes its checkpoints (the corpus, base model, teacher and SFT dataset are done)
    sft_work = art / "sft_checkpoint.work"
    # a tiny SFT step and its checkpoint take ~60 ms: the kill aims at the first half, so that the last steps and
    # the published artifact cannot slip in between the poll and the SIGKILL on a loaded machine
    kill_midway(user_env, "*", lambda: _last_step(sft_work), total=10, margin=5, rng=rng,
                log=root / "kill_sft.log", timeout=600)
    assert len(_finished(env, "task_corpus")) == 1
    sft_step = _last_step(sft_work)
    assert 1 <= sft_step and not (art / "sft_checkpoint").exists()
    assert not _finished(env, "sft_checkpoint") and not (art / "grpo_checkpoint").exists()

    # 2. the whole chain again, to the end: everything before SFT is reused, SFT resumes from checkpoint-N,
    # GRPO and the evaluations run
    before = _all_finished(env)
    mtimes = {a: _mtimes(art / a) for a in ("task_corpus", "base_model", "teacher_trajectories", "sft_dataset")}
    materialize(user_env, "*", in_process=False)
    _check_reused(env, art, before, mtimes, tuple(mtimes))
    sft = _last_finished(env, "sft_checkpoint")
    assert sft.data.metrics["resumed_from_step"] >= 1, "SFT started over instead of resuming"
    assert sft.data.metrics["steps"] == 10
    grpo = _last_finished(env, "grpo_checkpoint")
    assert grpo.data.metrics["steps"] == 5
    for asset in ("grpo_checkpoint", "eval_report", "model_version_eval"):
        assert len(_finished(env, asset)) == 1, f"{asset} did not run once"
    versions = _versions(env)
    assert len(versions) == 2, f"one version per trained checkpoint expected, got {versions}"

    # 3. nothing changed: nothing runs, nothing is registered, rewritten or stored
    before, mtimes = _all_finished(env), {a: _mtimes(art / a) for a in ASSETS}
    db = Path(env["R1CI_DATA_DIR"]) / "r1ci.duckdb"
    n_eval = _eval_runs(db)
    t0 = time.perf_counter()
    materialize(user_env, "*", in_process=False)
    wall = time.perf_counter() - t0
    print(f"[faults] whole-chain re-run with nothing changed: {wall:.1f}s")
    _check_reused(env, art, before, mtimes, ASSETS)
    assert _versions(env) == versions, "a re-run with nothing changed registered a model version"
    assert _eval_runs(db) == n_eval
    for asset in ASSETS:
        assert latest_metadata(env, asset)["cached"] is True, f"{asset} was not reported as reused"
    assert wall < 300, f"a re-run with nothing changed took {wall:.0f}s"

