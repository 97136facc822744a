"""Helpers of the bad-input suite: run the real `r1ci` CLI in an isolated environment, check its one-line
error, and make small file systems (full, read-only) with tmpfs mounts."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]

BASE_RECIPE = {
    "name": "bad",
    "model": {"name_or_path": "tiny", "tiny": {"vocab_size": 384, "hidden_size": 32, "num_hidden_layers": 1,
                                               "num_attention_heads": 2, "num_key_value_heads": 1,
                                               "intermediate_size": 64}},
    "tasks": {"families": ["number_multiply", "bbh_boolean_expressions"], "n_sft": 4, "n_grpo": 2,
              "n_test_seen": 2, "n_test_unseen": 2},
    "sft": {"max_steps": 2, "per_device_train_batch_size": 2},
    "grpo": {"max_steps": 1, "per_device_train_batch_size": 2, "num_generations": 2},
}


def r1ci_exe() -> list[str]:
    exe = Path(sys.executable).with_name("r1ci")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "r1ci_core.cli"]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """An isolated environment: its own data folder, Dagster home and MLflow store."""
    (tmp_path / "dagster_home").mkdir()
    e = dict(os.environ)
    for key in ("R1CI_RECIPE", "R1CI_SANDBOX_FAIL_RATE", "R1CI_BBH_DIR", "R1CI_CUSTOM_TASKS", "R1CI_OVERRIDES"):
        e.pop(key, None)
    e.update({
        "R1CI_DATA_DIR": str(tmp_path / "data"),
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "HF_HUB_OFFLINE": "1",
    })
    return e


def write_recipe(folder: Path, patch: dict | None = None, *, text: str | None = None) -> Path:
    """A recipe file: BASE_RECIPE with `patch` merged in (section by section), or `text` as is."""
    path = folder / "recipe.yaml"
    if text is not None:
        path.write_bytes(text.encode() if isinstance(text, str) else text)
        return path
    data = {k: dict(v) if isinstance(v, dict) else v for k, v in BASE_RECIPE.items()}
    for key, value in (patch or {}).items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key].update(value)
        else:
            data[key] = value
    path.write_text(yaml.safe_dump(data))
    return path


def r1ci(env: dict[str, str], *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*r1ci_exe(), *args], env=env, capture_output=True, text=True, timeout=timeout,
                          cwd=str(Path(env["R1CI_DATA_DIR"]).parent))  # as a user would: outside the repo


def assert_one_line_error(out: subprocess.CompletedProcess, *needles: str) -> str:
    """Non-zero exit and exactly one stderr line, `r1ci: error: ...`, containing every needle
    (case-insensitive): the problem and the fix."""
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert out.returncode != 0, f"exit 0 for a bad input:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}"
    assert len(lines) == 1, f"expected one error line, got {len(lines)}:\n" + "\n".join(lines[-30:])
    line = lines[0]
    assert line.startswith("r1ci: error: "), line
    for needle in needles:
        assert needle.lower() in line.lower(), f"{needle!r} not in: {line}"
    print(f"[bad input] exit {out.returncode}: {line}")
    return line


def assert_no_artifacts(data_dir: Path, recipe: str = "bad") -> None:
    """Nothing of the recipe's artifacts was written, not even a temporary folder."""
    folder = Path(data_dir) / recipe
    leftovers = sorted(str(p.relative_to(data_dir)) for p in folder.rglob("*")) if folder.exists() else []
    assert leftovers == [], f"partial artifacts left: {leftovers}"
    stray = sorted(p.name for p in Path(data_dir).glob(".*")) if Path(data_dir).exists() else []
    assert stray == [], f"temporary files left: {stray}"


def closed_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def tmpfs(folder: Path, size: str = "2m") -> Iterator[Path]:
    """A small tmpfs mounted at `folder` (root only); unmounted afterwards."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("needs root to mount a tmpfs")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield folder
    finally:
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def fill(folder: Path, leave_kib: int) -> None:
    """Fill the file system of `folder` until about `leave_kib` KiB are free."""
    st = os.statvfs(folder)
    free = st.f_bavail * st.f_frsize
    with open(folder / "filler", "wb") as fh:
        fh.write(b"\0" * max(0, free - leave_kib * 1024))
