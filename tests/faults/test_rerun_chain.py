"""Whole-chain re-runs through the real Dagster CLI: `dagster asset materialize --select '*'` SIGKILLed mid-teacher,
mid-SFT and mid-GRPO, each time re-run as the user would (the whole chain again), then re-run with nothing
changed.

Checked after each re-run: every stage finished before the kill is reused (no new MLflow run, same artifact
files with the same mtimes), the killed stage resumes from what it finished (teacher shards untouched and
counted as resumed, trainer resumed from its checkpoint-N); and the final no-change re-run starts no MLflow
run, registers no model version, rewrites no artifact file and stores no evaluation.
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

    # 1. killed while the teacher writes its shards
    shards = art / "teacher_trajectories.shards"
    kill_midway(user_env, "*", lambda: len(list(shards.glob("shard-*.parquet"))), total=10, margin=2, rng=rng,
                log=root / "kill_teacher.log", timeout=600)
    from r1ci_core.shards import read_shard_meta

    shard_mtimes = _mtimes(shards)
    done = {k for p in shards.glob("shard-*.parquet") for k in read_shard_meta(p)["keys"]}
    assert done and not (art / "teacher_trajectories").exists()
    corpus_runs = _finished(env, "task_corpus")
    assert len(corpus_runs) == 1

    # 2. the whole chain again, killed mid-SFT: the corpus is reused, the teacher resumes from its shards
    before, mtimes = _all_finished(env), {"task_corpus": _mtimes(art / "task_corpus")}
    sft_work = art / "sft_checkpoint.work"
    kill_midway(user_env, "*", lambda: _last_step(sft_work), total=10, rng=rng, log=root / "kill_sft.log", timeout=600)
    _check_reused(env, art, before, mtimes, ("task_corpus",))
    teacher = _last_finished(env, "teacher_trajectories")
    assert teacher.data.metrics["n_resumed_questions"] == len(done), "the finished shards were not reused"
    finished = {k: v for k, v in shard_mtimes.items() if k.startswith("shard-")}  # (the manifest is rewritten)
    assert {k: v for k, v in _mtimes(shards).items() if k in finished} == finished, "a shard was rewritten"
    sft_step = _last_step(sft_work)
    assert 1 <= sft_step and not (art / "sft_checkpoint").exists()

    # 3. again, killed mid-GRPO: everything up to the SFT dataset is reused, SFT resumes from checkpoint-N
    before = _all_finished(env)
    mtimes = {a: _mtimes(art / a) for a in ("task_corpus", "base_model", "teacher_trajectories", "sft_dataset")}
    grpo_work = art / "grpo_checkpoint.work"
    kill_midway(user_env, "*", lambda: _last_step(grpo_work), total=5, rng=rng, log=root / "kill_grpo.log", timeout=600)
    _check_reused(env, art, before, mtimes, tuple(mtimes))
    sft = _last_finished(env, "sft_checkpoint")
    assert sft.data.metrics["resumed_from_step"] >= 1, "SFT started over instead of resuming"
    assert sft.data.metrics["steps"] == 10
    assert not (art / "grpo_checkpoint").exists()

    # 4. again, to the end: GRPO resumes, SFT is reused (and registered once)
    before = _all_finished(env)
    mtimes = {a: _mtimes(art / a) for a in ASSETS[:5]}
    materialize(user_env, "*", in_process=False)
    _check_reused(env, art, before, mtimes, ASSETS[:5])
    grpo = _last_finished(env, "grpo_checkpoint")
    assert grpo.data.metrics["resumed_from_step"] >= 1, "GRPO started over instead of resuming"
    assert grpo.data.metrics["steps"] == 5
    versions = _versions(env)
    assert len(versions) == 2, f"one version per trained checkpoint expected, got {versions}"

    # 5. nothing changed: nothing runs, nothing is registered, rewritten or stored
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

