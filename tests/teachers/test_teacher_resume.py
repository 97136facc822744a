"""Generation resumes after a SIGKILL mid-way: the same trajectories, none lost, none doubled."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from r1ci_core.shards import read_shard_meta, run_sharded

SCRIPT = Path(__file__).with_name("_slow_generation.py")


def _start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(SCRIPT), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _kill_after_shards(proc: subprocess.Popen, folder: Path, n: int, timeout: float = 120) -> list[Path]:
    """SIGKILL `proc` once at least `n` shards are in `folder` (fails if it ends first)."""
    deadline = time.monotonic() + timeout
    while len(list(folder.glob("shard-*.parquet"))) < n:
        assert proc.poll() is None, f"the generator ended before it was killed: {proc.communicate()}"
        assert time.monotonic() < deadline, "no shard was written in time"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    return sorted(folder.glob("shard-*.parquet"))


def _rows(folder: Path) -> list[dict]:
    import pyarrow.parquet as pq

    return [r for p in sorted(folder.glob("shard-*.parquet")) for r in pq.read_table(p).to_pylist()]


def test_run_sharded_resumes_after_sigkill(tmp_path):
    n, shard = 40, 4
    killed_dir, clean_dir = tmp_path / "killed", tmp_path / "clean"
    proc = _start("shards", str(killed_dir), str(n), str(shard), "0.4")
    written = _kill_after_shards(proc, killed_dir, 2)
    finished = {k for p in written for k in read_shard_meta(p)["keys"]}
    assert 2 * shard <= len(finished) < n  # killed mid-way

    # what a kill during a write could leave: a partial temp file; and a damaged shard
    (killed_dir / ".shard-00099.parquet.tmp-12345").write_bytes(b"PAR1 partial")
    (killed_dir / "shard-00098.parquet").write_bytes(b"not parquet")
    done = _start("shards", str(killed_dir), str(n), str(shard), "0")
    out, err = done.communicate(timeout=120)
    assert done.returncode == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    assert report["resumed"] >= len(finished) and report["resumed"] + report["generated"] == n
    assert report["stats"] == {"inputs": n}  # stats of resumed shards are kept, none counted twice
    assert not list(killed_dir.glob(".shard-*"))  # the killed shard's temp file is gone

    clean = _start("shards", str(clean_dir), str(n), str(shard), "0")
    assert clean.wait(timeout=120) == 0
    resumed_rows, clean_rows = _rows(killed_dir), _rows(clean_dir)
    keyed = [(r["key"], r["sample"]) for r in resumed_rows]
    assert len(keyed) == len(set(keyed)), "a row was written twice"
    assert sorted(resumed_rows, key=lambda r: (r["key"], r["sample"])) == \
        sorted(clean_rows, key=lambda r: (r["key"], r["sample"]))
    all_keys = [k for p in killed_dir.glob("shard-*.parquet") for k in read_shard_meta(p)["keys"]]
    assert sorted(all_keys) == [f"q{i:03d}" for i in range(n)]  # every input finished exactly once


def test_teacher_stage_resumes_after_sigkill(corpus_stage, sandbox):
    """The real `teacher_trajectories` stage in a subprocess, killed after a few shards, then run again."""
    import mlflow
    from datasets import load_from_disk
    from teacher_helpers import small_recipe

    from r1ci_core.stages import StageContext, teacher_trajectories

    ctx, corpus = corpus_stage
    corpus_json = json.dumps({"path": corpus.path, "mlflow_run_id": corpus.mlflow_run_id})
    proc = _start("teacher", str(ctx.root), corpus_json, "0.5")
    shard_dir = ctx.root / ctx.recipe.name / "teacher_trajectories.shards"
    written = _kill_after_shards(proc, shard_dir, 2)
    assert len(written) < 9  # 36 questions in shards of 4: killed before the end

    # resume in this process (same recipe, same corpus run), without the slow-down
    ctx2 = StageContext(recipe=small_recipe(**{"teacher.shard_size": 4}), root=ctx.root)
    resumed = teacher_trajectories(ctx2, corpus, sandbox)
    assert resumed.metadata["n_resumed_questions"] >= 4 * len(written)
    assert resumed.metadata["n_trajectories"] == resumed.metadata["n_questions"] == 36
    rows = list(load_from_disk(resumed.path))
    assert len({r["item_id"] for r in rows}) == len(rows)  # no question twice
    run = mlflow.get_run(resumed.mlflow_run_id)
    assert run.data.metrics["n_resumed_questions"] == resumed.metadata["n_resumed_questions"]
    statuses = mlflow.search_runs(filter_string="tags.`dagster.asset_key` = 'teacher_trajectories'",
                                  search_all_experiments=True)["status"].tolist()
    assert sorted(statuses) == ["FINISHED", "KILLED"]  # the killed process' run is closed, not left RUNNING

    # a clean, uninterrupted run of the same settings gives the same trajectories
    clean_root = ctx.root.parent / "clean"
    clean = teacher_trajectories(StageContext(recipe=ctx2.recipe, root=clean_root), corpus, sandbox)
    assert clean.metadata["n_resumed_questions"] == 0
    strip = lambda r: (r["item_id"], r["messages"], r["final_answer"], r["score"], r["provenance"])  # noqa: E731
    assert [strip(r) for r in rows] == [strip(r) for r in load_from_disk(clean.path)]


def test_second_generator_on_the_same_folder_is_refused(tmp_path):
    import fcntl

    tmp_path.mkdir(exist_ok=True)
    with open(tmp_path / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running generator holds it
        proc = _start("shards", str(tmp_path), "4", "2", "0")
        _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "ShardLockedError" in err
    assert not list(tmp_path.glob("shard-*.parquet"))


def test_other_fingerprint_starts_afresh_and_keys_must_be_unique(tmp_path):
    calls = []

    def fn(chunk):
        calls.append(len(chunk))
        return [{"id": x["id"]} for x in chunk]

    inputs = [{"id": f"a{i}"} for i in range(5)]
    run_sharded(inputs, tmp_path, fn, shard_size=2, fingerprint="one", progress=False)
    again = run_sharded(inputs, tmp_path, fn, shard_size=2, fingerprint="one", progress=False)
    assert calls == [2, 2, 1] and again.n_resumed == 5 and again.n_generated == 0
    other = run_sharded(inputs, tmp_path, fn, shard_size=5, fingerprint="two", progress=False)
    assert other.n_resumed == 0 and calls[-1] == 5 and len(other.paths) == 1
    with pytest.raises(ValueError, match="more than once"):
        run_sharded(inputs + inputs[:1], tmp_path, fn, shard_size=2, fingerprint="two", progress=False)
