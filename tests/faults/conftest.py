"""Helpers of the fault suite: a very small recipe, an isolated environment, real Dagster materialisations
started as subprocesses (in their own process group, so SIGKILL reaches every step process)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Small enough to run the whole chain in about a minute on 2 cores; every stage still has several units
# of work (shards of 2 questions, a checkpoint per step, three checkpoints to evaluate) to be killed in.
FAULT_RECIPE = """
name: faults
seed: 0
model:
  name_or_path: tiny
  tiny: {vocab_size: 384, hidden_size: 32, num_hidden_layers: 1, num_attention_heads: 2,
         num_key_value_heads: 1, intermediate_size: 64}
tasks:
  families: [number_multiply, bbh_boolean_expressions, bbh_multistep_arithmetic_two]
  n_sft: 10
  n_grpo: 2
  n_test_seen: 2
  n_test_unseen: 2
sandbox: {timeout_s: 5.0, workers: 1}
teacher: {shard_size: 2}
rollout: {max_code_calls: 1, max_turns: 2, max_new_tokens: 32, output_chars: 100, output_tokens: 24, batch_size: 8}
sft: {max_steps: 10, per_device_train_batch_size: 2, learning_rate: 1.0e-3, save_steps: 1, logging_steps: 1,
      save_total_limit: 2}
grpo: {max_steps: 5, per_device_train_batch_size: 2, num_generations: 2, learning_rate: 1.0e-4, save_steps: 1,
       save_total_limit: 2}
eval: {checkpoints: [base, sft, grpo], modes: [autonomous], pools: [test_seen, test_unseen]}
"""

IN_PROCESS = '{"execution": {"config": {"in_process": {}}}}'


def fault_seed() -> int:
    """The seed of the random kill points: $R1CI_FAULT_SEED, else drawn (and printed) per session."""
    raw = os.environ.get("R1CI_FAULT_SEED")
    return int(raw) if raw else _SESSION_SEED


_SESSION_SEED = random.SystemRandom().randrange(10**6)


def make_env(root: Path, recipe_text: str = FAULT_RECIPE) -> dict[str, str]:
    recipe = root / "recipe.yaml"
    recipe.write_text(recipe_text)
    for sub in ("data", "dagster_home"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.pop("R1CI_SANDBOX_FAIL_RATE", None)
    env.update({
        "R1CI_RECIPE": str(recipe),
        "R1CI_DATA_DIR": str(root / "data"),
        "DAGSTER_HOME": str(root / "dagster_home"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'data' / 'mlflow.db'}",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONUNBUFFERED": "1",
    })
    return env


def _cmd(select: str, in_process: bool) -> list[str]:
    cmd = [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "r1ci_pipeline.definitions",
           "--select", select]
    return [*cmd, "--config-json", IN_PROCESS] if in_process else cmd


def materialize(env: dict[str, str], select: str, *, in_process: bool = True,
                timeout: int = 600) -> subprocess.CompletedProcess:
    """Materialise `select` to completion (in-process executor: one process, fastest)."""
    out = subprocess.run(_cmd(select, in_process), env=env, capture_output=True, text=True, timeout=timeout,
                         cwd=REPO)
    assert out.returncode == 0, f"materialising {select} failed:\n{(out.stdout + out.stderr)[-6000:]}"
    return out


def kill_midway(env: dict[str, str], select: str, progress: Callable[[], int], *, total: int, rng: random.Random,
                log: Path, margin: int = 1, timeout: float = 300) -> int:
    """Start a real materialisation with Dagster's default multiprocess executor, wait until `progress()`
    (units of work on disk: shards, checkpoints, stored runs) reaches a random point in [1, total - margin], wait a
    random fraction of a second more, and SIGKILL the whole process group.

    Returns the progress seen at the kill. Fails when the run ends before it could be killed; that the
    stage itself had not finished is checked by the callers (its MLflow run is left RUNNING).
    """
    target = rng.randint(1, max(1, total - margin))
    delay = rng.uniform(0.0, 0.1)
    with open(log, "w") as fh:
        proc = subprocess.Popen(_cmd(select, in_process=False), env=env, stdout=fh, stderr=subprocess.STDOUT,
                                cwd=REPO, start_new_session=True)
        deadline = time.monotonic() + timeout
        try:
            while progress() < target:
                if proc.poll() is not None:
                    pytest.fail(f"{select} ended (rc {proc.returncode}) before {target} units of work:\n"
                                f"{log.read_text()[-4000:]}")
                if time.monotonic() > deadline:
                    pytest.fail(f"{select}: {target} units of work did not appear within {timeout}s")
                time.sleep(0.01)
            time.sleep(delay)
            assert proc.poll() is None, f"{select} finished before the kill:\n{log.read_text()[-2000:]}"
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=60)
    _wait_group_gone(proc.pid)
    seen = progress()
    print(f"[faults] {select}: SIGKILL to process group {proc.pid} at unit {target}/{total} + {delay:.3f}s "
          f"({seen} on disk)")
    return seen  # may equal `total` (killed after the last unit, before the artifact): still mid-way


def _wait_group_gone(pgid: int, timeout: float = 20) -> None:
    """Wait until no process of the killed group is left (step processes die with it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [p for p in os.listdir("/proc") if p.isdigit() and _pgid(int(p)) == pgid]
        if not alive:
            return
        time.sleep(0.1)


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except (ProcessLookupError, PermissionError):
        return None


def mlflow_runs(env: dict[str, str], asset: str) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("r1ci")
    return client.search_runs([experiment.experiment_id], filter_string=f"tags.`dagster.asset_key` = '{asset}'",
                              order_by=["attributes.start_time ASC"])


def latest_metadata(env: dict[str, str], asset: str) -> dict:
    import dagster as dg

    instance = dg.DagsterInstance.from_config(env["DAGSTER_HOME"])
    event = instance.get_latest_materialization_event(dg.AssetKey(asset))
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


@pytest.fixture(scope="session")
def seed() -> int:
    s = fault_seed()
    print(f"[faults] kill-point seed {s} (set R1CI_FAULT_SEED={s} to replay)")
    return s
