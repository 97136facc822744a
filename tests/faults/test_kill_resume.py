"""SIGKILL each long asset mid-way, materialise it again, and compare with the uninterrupted run.

One module-scoped chain is materialised first (the uninterrupted baseline). Then, for teacher_trajectories,
eval_report, sft_checkpoint and grpo_checkpoint in turn, its resumable state is removed ($R1CI_FORCE names it,
or its finished artifact would be reused as it is), a real `dagster asset materialize` (default multiprocess executor: each step is a child process) is started in
its own process group and SIGKILLed at a random point after its first unit of work reached the disk (a
shard, a DuckDB run, a trainer checkpoint); the kill point's seed is printed. Checked after the kill: the
previous artifact is intact and every file under a final name is valid. Checked after the next
materialisation: the result equals the baseline (training: resumed from a checkpoint, same number of
steps), nothing is doubled, no temporary leftovers, and in MLflow the dead attempt's run is KILLED while
the new run names it in its `r1ci.replaces` tag.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import kill_midway, latest_metadata, make_env, materialize, mlflow_runs

ARTIFACTS = ("task_corpus", "base_model", "teacher_trajectories", "sft_dataset", "sft_checkpoint",
             "grpo_checkpoint", "eval_report")


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The whole chain materialised once, uninterrupted; a copy of its artifacts is kept as the baseline."""
    root = tmp_path_factory.mktemp("faults")
    env = make_env(root)
    materialize(env, "*")
    art = Path(env["R1CI_DATA_DIR"]) / "faults"
    baseline = root / "baseline"
    for name in ARTIFACTS:
        shutil.copytree(art / name, baseline / name)
    shutil.copy2(Path(env["R1CI_DATA_DIR"]) / "r1ci.duckdb", baseline / "r1ci.duckdb")
    return {"env": env, "root": root, "art": art, "baseline": baseline}


def _forced(env: dict, asset: str) -> dict:
    """`env` with $R1CI_FORCE naming `asset`: run it although its finished artifact could be reused."""
    return {**env, "R1CI_FORCE": asset}


def _rng(seed: int, name: str) -> random.Random:
    return random.Random(f"{seed}:{name}")


def _leftovers(folder: Path, name: str) -> list[str]:
    return sorted(p.name for p in folder.glob(f".{name}.*"))


def _check_mlflow_replaced(env: dict, asset: str, killed: list[str]) -> None:
    """The dead attempt's run(s) are KILLED; the newest run FINISHED and names them in r1ci.replaces."""
    runs = {r.info.run_id: r for r in mlflow_runs(env, asset)}
    assert killed, f"{asset}: the killed attempt left no RUNNING MLflow run"
    for run_id in killed:
        assert runs[run_id].info.status == "KILLED", (asset, run_id, runs[run_id].info.status)
    newest = max(runs.values(), key=lambda r: r.info.start_time)
    assert newest.info.status == "FINISHED"
    assert set(newest.data.tags["r1ci.replaces"].split(",")) == set(killed)


def _running(env: dict, asset: str) -> list[str]:
    return [r.info.run_id for r in mlflow_runs(env, asset) if r.info.status == "RUNNING"]


# ------------------------------------------------------------------------------------------- teacher
def _teacher_rows(path: Path) -> list[dict]:
    from datasets import load_from_disk

    rows = []
    for row in load_from_disk(str(path)):
        row = dict(row)
        row.pop("gen_time_s", None)
        row.pop("exec_time_s", None)
        execs = json.loads(row["executions"])
        for e in execs:
            e.pop("duration_s", None)
        row["executions"] = execs
        rows.append(row)
    return rows


def test_teacher_trajectories_killed_midway_resumes_to_the_same_dataset(chain: dict, seed: int) -> None:
    from r1ci_core.shards import read_shard_meta

    env, art, baseline = chain["env"], chain["art"], chain["baseline"]
    shards = art / "teacher_trajectories.shards"
    shutil.rmtree(shards)  # from scratch: the baseline's shards would make the run a no-op
    env = _forced(env, "teacher_trajectories")  # its finished artifact would be reused as it is
    # the kill aims at the first half of the shards: aimed at 8 of 10, the last shards and the dataset were
    # written before the SIGKILL landed (seed 844075)
    kill_midway(env, "teacher_trajectories", lambda: len(list(shards.glob("shard-*.parquet"))), total=10,
                margin=5, rng=_rng(seed, "teacher"), log=chain["root"] / "teacher_kill.log")

    # after the kill: the old dataset is intact, every shard under a final name is complete
    assert _teacher_rows(art / "teacher_trajectories") == _teacher_rows(baseline / "teacher_trajectories")
    kept = sorted(shards.glob("shard-*.parquet"))
    done = [k for p in kept for k in read_shard_meta(p)["keys"]]
    assert len(done) == len(set(done))
    killed = _running(env, "teacher_trajectories")
    assert len(killed) == 1

    materialize(env, "teacher_trajectories")
    rows = _teacher_rows(art / "teacher_trajectories")
    assert rows == _teacher_rows(baseline / "teacher_trajectories")
    keys = [(r["item_id"], r["provenance"]) for r in rows]
    assert len(keys) == len(set(keys)), "a trajectory was written twice"
    meta = latest_metadata(env, "teacher_trajectories")
    assert meta["n_resumed_questions"] == len(set(done)), "the finished shards were not reused"
    assert not list(shards.glob(".shard-*")), "a temporary shard was left behind"
    assert _leftovers(art, "teacher_trajectories") == []
    _check_mlflow_replaced(env, "teacher_trajectories", killed)


def test_ctrl_c_during_r1ci_run_stops_cleanly_and_resumes(chain: dict, seed: int) -> None:
    """SIGINT to `r1ci run`'s process group (what Ctrl-C does): exit 130 with one line, the MLflow run ends
    KILLED by the process itself, finished shards are kept and the next run resumes from them."""
    env, art, baseline = chain["env"], chain["art"], chain["baseline"]
    shards = art / "teacher_trajectories.shards"
    shutil.rmtree(shards)
    env = _forced(env, "teacher_trajectories")
    rng = _rng(seed, "ctrl-c")
    target = rng.randint(1, 8)
    exe = Path(sys.executable).with_name("r1ci")
    with open(chain["root"] / "ctrl_c.log", "w") as log:
        proc = subprocess.Popen([str(exe), "run", "--select", "teacher_trajectories"], env=env, stdout=log,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        deadline = time.monotonic() + 300
        while len(list(shards.glob("shard-*.parquet"))) < target:
            assert proc.poll() is None and time.monotonic() < deadline, (chain["root"] / "ctrl_c.log").read_text()
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    print(f"[faults] r1ci run: SIGINT after shard {target}")
    assert proc.returncode == 130 and err.strip() == "r1ci: interrupted", err[-3000:]
    interrupted = mlflow_runs(env, "teacher_trajectories")[-1]
    # The step process closes its run as KILLED when it gets to handle the interrupt; when the executor ends
    # it first, the run is left RUNNING and the next attempt must close it as KILLED and link it.
    assert interrupted.info.status in ("KILLED", "RUNNING")
    assert _teacher_rows(art / "teacher_trajectories") == _teacher_rows(baseline / "teacher_trajectories")

    materialize(env, "teacher_trajectories")
    assert _teacher_rows(art / "teacher_trajectories") == _teacher_rows(baseline / "teacher_trajectories")
    assert latest_metadata(env, "teacher_trajectories")["n_resumed_questions"] >= 2 * target
    runs = {r.info.run_id: r for r in mlflow_runs(env, "teacher_trajectories")}
    assert runs[interrupted.info.run_id].info.status == "KILLED", "the interrupted run was never closed"
    resumed = mlflow_runs(env, "teacher_trajectories")[-1]
    assert resumed.info.status == "FINISHED"
    if interrupted.info.status == "RUNNING":
        assert interrupted.info.run_id in resumed.data.tags.get("r1ci.replaces", "")


# ------------------------------------------------------------------------------------------- eval
def _eval_rows(db: Path) -> tuple[list[tuple], list[tuple]]:
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        runs = con.execute("SELECT run_id, checkpoint, checkpoint_fingerprint, mode, n_samples, accuracy "
                           "FROM eval_runs ORDER BY checkpoint").fetchall()
        samples = con.execute("SELECT r.checkpoint, s.question_id, s.sample_idx, s.answer, s.score "
                              "FROM eval_samples s JOIN eval_runs r USING (run_id) "
                              "ORDER BY 1, 2, 3").fetchall()
    finally:
        con.close()
    return runs, samples


def _stored_runs(db: Path) -> int:
    import duckdb

    if not db.exists():
        return 0
    try:
        con = duckdb.connect(str(db), read_only=True)
    except duckdb.Error:
        return 0  # the writer holds the file just now
    try:
        return con.execute("SELECT count(*) FROM eval_runs").fetchone()[0]
    except duckdb.Error:
        return 0
    finally:
        con.close()


def test_eval_report_killed_midway_keeps_whole_runs_and_finishes_the_rest(chain: dict, seed: int) -> None:
    env, art, baseline = chain["env"], chain["art"], chain["baseline"]
    db = Path(env["R1CI_DATA_DIR"]) / "r1ci.duckdb"
    db.unlink()  # from scratch: the baseline's stored runs would be reused as they are
    kill_midway(env, "eval_report", lambda: _stored_runs(db), total=3, rng=_rng(seed, "eval"),
                log=chain["root"] / "eval_kill.log")

    # after the kill: whole runs only (each with all its samples), the old report intact
    runs, samples = _eval_rows(db)
    assert 1 <= len(runs) <= 3
    for run_id, ckpt, _, _, n, _ in runs:
        assert sum(1 for s in samples if s[0] == ckpt) == n, f"run {run_id} ({ckpt}) was stored partly"
    assert (art / "eval_report" / "report.md").read_text() == (baseline / "eval_report" / "report.md").read_text()
    killed = _running(env, "eval_report")
    assert len(killed) == 1

    materialize(env, "eval_report")
    runs, samples = _eval_rows(db)
    base_runs, base_samples = _eval_rows(baseline / "r1ci.duckdb")
    assert [r[1:] for r in runs] == [r[1:] for r in base_runs], "not the uninterrupted run's accuracies"
    assert samples == base_samples
    assert len(samples) == len(set((s[0], s[1], s[2]) for s in samples)), "a sample was stored twice"
    meta = latest_metadata(env, "eval_report")
    assert len(meta["reused_run_ids"]) == len(set(meta["reused_run_ids"])) >= 1, "stored runs were not reused"
    assert _leftovers(art, "eval_report") == []
    _check_mlflow_replaced(env, "eval_report", killed)


# ------------------------------------------------------------------------------------------- training
def _weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def _last_step(work: Path) -> int:
    """The step of the newest complete trainer checkpoint in `work` (0: none yet)."""
    steps = [int(p.name.split("-")[1]) for p in work.glob("checkpoint-*") if (p / "trainer_state.json").is_file()]
    return max(steps, default=0)


def _check_checkpoint_loads(folder: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    AutoModelForCausalLM.from_pretrained(str(folder))
    assert AutoTokenizer.from_pretrained(str(folder)).chat_template


@pytest.mark.parametrize("asset,registered,steps", [("sft_checkpoint", "r1ci-faults-sft", 10),
                                                    ("grpo_checkpoint", "r1ci-faults-grpo", 5)])
def test_training_killed_midway_resumes_from_its_last_checkpoint(chain: dict, seed: int, asset: str,
                                                                 registered: str, steps: int) -> None:
    import torch
    from mlflow.tracking import MlflowClient

    env, art, baseline = chain["env"], chain["art"], chain["baseline"]
    work = art / f"{asset}.work"
    shutil.rmtree(work)  # from scratch: the baseline's last checkpoint would make the run a no-op
    env = _forced(env, asset)  # its finished checkpoint would be reused as it is
    before = latest_metadata(env, asset)
    kill_midway(env, asset, lambda: _last_step(work), total=steps, margin=steps // 2, rng=_rng(seed, asset),
                log=chain["root"] / f"{asset}_kill.log")

    # after the kill: the previous checkpoint is intact and loads
    _check_checkpoint_loads(art / asset)
    for name, tensor in _weights(baseline / asset).items():
        assert torch.equal(tensor, _weights(art / asset)[name])
    killed = _running(env, asset)
    assert len(killed) == 1

    materialize(env, asset)
    meta = latest_metadata(env, asset)
    assert meta["resumed_from_step"] >= 1, "training started over instead of resuming"
    assert meta["steps"] == before["steps"] == steps, "the resumed run did not finish the recipe's steps"
    _check_checkpoint_loads(art / asset)
    # toward the uninterrupted run: same shapes, and (CPU, seeded, RNG state restored) the same weights
    new, old = _weights(art / asset), _weights(baseline / asset)
    assert new.keys() == old.keys()
    for name in old:
        assert torch.allclose(new[name], old[name], atol=1e-4), f"{asset}: {name} differs from the baseline"
    assert _leftovers(art, asset) == []
    client = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    assert len(client.search_model_versions(f"name='{registered}'")) == 2, "baseline + resumed run, no more"
    _check_mlflow_replaced(env, asset, killed)
