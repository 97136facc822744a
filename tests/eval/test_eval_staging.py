"""A second process holding the DuckDB store: the evaluation's rollouts are staged to a parquet file, the
insert waits (and says for what), and when the lock is never released the next run inserts the staged rows
without rolling out again."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pytest

from r1ci_core import store
from r1ci_core.evaluation import STAGING_NAME, run_evaluation
from r1ci_core.stages import StageContext

HOLDER = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])  # read-write: an exclusive lock on the file, as a duckdb CLI takes
con.execute("SELECT 1")
print("held", flush=True)
sys.stdin.read()  # until the test closes our stdin
con.close()
"""


class Holder:
    """A real second process with the DuckDB file open read-write until `release()`."""

    def __init__(self, db: Path):
        self.proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(db)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "held"

    def release(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)


def _ctx(root: Path, name: str) -> StageContext:
    from r1ci_core.config import load_recipe

    recipe = load_recipe("tiny", {"name": name, "rollout.max_new_tokens": 64, "rollout.max_turns": 2,
                                  "eval.modes": ["autonomous"], "eval.checkpoints": ["sft"]})
    return StageContext(recipe=recipe, root=root / "data")


def _stored(db: Path) -> tuple[list[tuple], int]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        runs = con.execute("SELECT run_id, checkpoint, n_samples FROM eval_runs ORDER BY started_at").fetchall()
        n = con.execute("SELECT count(*) FROM eval_samples").fetchone()[0]
    finally:
        con.close()
    return runs, n


@pytest.fixture
def held_store(eval_env):
    """A way to lock a context's store from another process (released at the end of the test)."""
    holders: list[Holder] = []

    def hold(ctx: StageContext) -> Holder:
        h = Holder(store.db_path(ctx.root))
        holders.append(h)
        return h

    yield hold
    for h in holders:
        h.release()


def test_held_lock_delays_the_insert_and_keeps_the_rollouts(eval_env, tmp_path, eval_items, tiny_checkpoints, sandbox,
                                                            held_store, caplog):
    ctx = _ctx(tmp_path, "staging-wait")
    db = store.init_db(store.db_path(ctx.root))
    staging = ctx.artifact(STAGING_NAME)
    holder = held_store(ctx)
    seen: dict = {}

    def release_once_staged() -> None:  # the rollouts are on disk before the lock is let go
        deadline = time.monotonic() + 300
        while not list(staging.glob("*.parquet")) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.5)  # the insert is now waiting for the lock
        seen["staged"] = sorted(p.name for p in staging.glob("*.parquet"))
        holder.release()

    t = threading.Thread(target=release_once_staged)
    t.start()
    with caplog.at_level(logging.INFO, logger="r1ci_core"):
        result = run_evaluation(ctx, eval_items, {"sft": tiny_checkpoints["sft"]}, sandbox)
    t.join()

    assert len(seen["staged"]) == 1 and seen["staged"][0].endswith(f"-{result['new_run_ids'][0]}.parquet")
    waiting = [r.getMessage() for r in caplog.records if "locked by another process" in r.getMessage()]
    assert any("waiting for it" in m and str(db) in m and "PID" in m for m in waiting), waiting
    runs, n = _stored(db)
    assert [r[0] for r in runs] == result["new_run_ids"] and runs[0][2] == len(eval_items) == n
    assert not list(staging.glob("*.parquet")), "the staged file was left after its insert"


def test_lock_never_released_fails_clearly_and_the_next_run_inserts_the_staged_rows(
        eval_env, tmp_path, eval_items, tiny_checkpoints, sandbox, held_store, monkeypatch):
    import r1ci_core.rollout as rollout

    ctx = _ctx(tmp_path, "staging-fail")
    db = store.init_db(store.db_path(ctx.root))
    staging = ctx.artifact(STAGING_NAME)
    holder = held_store(ctx)
    monkeypatch.setenv(store.LOCK_WAIT_ENV, "3")
    with pytest.raises(store.StoreLocked, match="next run inserts them without rolling out again") as err:
        run_evaluation(ctx, eval_items, {"sft": tiny_checkpoints["sft"]}, sandbox)
    staged = list(staging.glob("*.parquet"))
    assert len(staged) == 1 and str(staged[0]) in str(err.value)
    assert "is still locked by another process" in str(err.value) and store.LOCK_WAIT_ENV in str(err.value)
    holder.release()
    assert _stored(db) == ([], 0), "nothing may be inserted while the lock was held"

    def no_rollouts(*args, **kwargs):
        raise AssertionError("the staged rollouts were rolled out again")

    monkeypatch.setattr(rollout, "run_rollouts", no_rollouts)
    result = run_evaluation(ctx, eval_items, {"sft": tiny_checkpoints["sft"]}, sandbox)
    staged_id = staged[0].stem.rsplit("-", 1)[1]
    assert result["staged_inserted_run_ids"] == result["new_run_ids"] == result["run_ids"] == [staged_id]
    runs, n = _stored(db)
    assert [r[0] for r in runs] == [staged_id] and n == len(eval_items) == runs[0][2]
    assert not list(staging.glob("*.parquet"))
    # and once stored, the evaluation is reused as any stored one
    again = run_evaluation(ctx, eval_items, {"sft": tiny_checkpoints["sft"]}, sandbox)
    assert again["reused_run_ids"] == [staged_id] and again["new_run_ids"] == []
