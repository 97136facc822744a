"""Writers killed at the worst moment: the old version or the new one stays, never half of one."""

from __future__ import annotations

import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from r1ci_core.io import atomic_dir, atomic_write_text, recover


def _run_killed(code: str) -> int:
    """Run `code` in a fresh interpreter that SIGKILLs itself where the code says; return its pid."""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    return int(proc.stdout.strip())


def test_atomic_dir_killed_while_writing_keeps_the_old_version_and_cleans_up_next_time(tmp_path: Path) -> None:
    target = tmp_path / "artifact"
    with atomic_dir(target) as tmp:
        (tmp / "data.txt").write_text("old")
    pid = _run_killed(f"""
        import os, signal
        from r1ci_core.io import atomic_dir
        print(os.getpid(), flush=True)
        with atomic_dir({str(target)!r}) as tmp:
            (tmp / "data.txt").write_text("half of the ne")
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    assert (target / "data.txt").read_text() == "old"
    assert [p.name.startswith(f".artifact.tmp-{pid}-") for p in tmp_path.iterdir() if p.name != "artifact"] == [True]
    with atomic_dir(target) as tmp:
        (tmp / "data.txt").write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["artifact"]
    assert (target / "data.txt").read_text() == "new"


def test_a_kill_between_the_two_renames_is_undone(tmp_path: Path) -> None:
    """Without RENAME_EXCHANGE the swap is two renames; a kill between them leaves only `.X.old-<pid>`."""
    target = tmp_path / "artifact"
    old = tmp_path / ".artifact.old-999999999"  # a pid that cannot be alive
    old.mkdir()
    (old / "data.txt").write_text("old")
    recover(target)
    assert (target / "data.txt").read_text() == "old" and not old.exists()


def test_atomic_write_text_killed_leaves_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    atomic_write_text(path, json.dumps({"v": 1}))
    _run_killed(f"""
        import os, signal, tempfile
        from pathlib import Path
        print(os.getpid(), flush=True)
        fd, tmp = tempfile.mkstemp(prefix=".summary.json.tmp-" + str(os.getpid()) + "-", dir={str(tmp_path)!r})
        os.write(fd, b'{{"v": 2, "trunc')
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    assert json.loads(path.read_text()) == {"v": 1}
    atomic_write_text(path, json.dumps({"v": 3}))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]


def test_resume_skips_a_checkpoint_cut_short_by_a_kill(tmp_path: Path) -> None:
    from r1ci_core.training import last_checkpoint

    work = tmp_path / "work"
    good = work / "checkpoint-4"
    good.mkdir(parents=True)
    (good / "model.safetensors").write_bytes(b"x")
    (good / "trainer_state.json").write_text(json.dumps({"global_step": 4}))
    half = work / "checkpoint-5"  # killed while writing the weights: no trainer_state.json yet
    half.mkdir()
    (half / "model.safetensors").write_bytes(b"partial")
    torn = work / "checkpoint-6"  # killed while writing trainer_state.json itself
    torn.mkdir()
    (torn / "trainer_state.json").write_text('{"global_st')
    assert last_checkpoint(work) == str(good)
    assert not half.exists() and not torn.exists()
    assert last_checkpoint(tmp_path / "none") is None


class _Unpicklable:
    def __reduce__(self):
        raise pickle.PicklingError("cannot pickle this half-way")


def test_dagster_outputs_are_pickled_atomically(tmp_path: Path) -> None:
    """Dagster's own IO manager opens the file for writing first: a failure (or kill) mid-pickle truncates the
    previous output; ours leaves it whole."""
    import dagster as dg
    from upath import UPath

    from r1ci_pipeline.defs.io_manager import AtomicPickleIOManager

    manager = AtomicPickleIOManager(base_dir=str(tmp_path))
    path = UPath(tmp_path / "task_corpus")
    context = dg.build_output_context(asset_key=dg.AssetKey("task_corpus"))
    manager.dump_to_path(context, {"path": "/data/v1"}, path)
    with pytest.raises(pickle.PicklingError):
        manager.dump_to_path(context, {"path": "/data/v2", "bad": _Unpicklable()}, path)
    assert pickle.loads(path.read_bytes()) == {"path": "/data/v1"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["task_corpus"]


def test_stale_mlflow_runs_are_closed_only_for_dead_processes_of_this_host(tmp_path: Path, monkeypatch) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    from r1ci_core import lineage
    from r1ci_core.config import MlflowConfig

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("R1CI_DATA_DIR", str(tmp_path))
    cfg = MlflowConfig(experiment="stale")
    experiment = lineage.setup(cfg)
    client = MlflowClient()
    dead_pid = str(2**22 + 12345)  # above pid_max's default: never alive
    here = client.create_run(experiment, tags={"dagster.asset_key": "a", "r1ci.pid": dead_pid,
                                               "r1ci.host": socket.gethostname()}).info.run_id
    elsewhere = client.create_run(experiment, tags={"dagster.asset_key": "a", "r1ci.pid": dead_pid,
                                                    "r1ci.host": "another-machine"}).info.run_id
    alive = client.create_run(experiment, tags={"dagster.asset_key": "a", "r1ci.pid": str(os.getppid()),
                                                "r1ci.host": socket.gethostname()}).info.run_id
    with lineage.asset_run(cfg, "a") as run:
        new = run.info.run_id
    assert client.get_run(here).info.status == "KILLED"
    assert client.get_run(elsewhere).info.status == "RUNNING"
    assert client.get_run(alive).info.status == "RUNNING"
    assert client.get_run(new).data.tags["r1ci.replaces"] == here
    mlflow.set_tracking_uri("")
