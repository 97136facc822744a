"""A reduced recipe, and the whole chain materialised on it once per session in an isolated environment (data
root, DAGSTER_HOME, MLflow store): test_pipeline_e2e.py and test_dagster_ui.py both read that one run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REDUCED_RECIPE = """
name: reduced
seed: 0
model:
  name_or_path: tiny
  tiny: {vocab_size: 512, hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 2,
         num_key_value_heads: 1, intermediate_size: 128}
tasks:
  families: [number_multiply, bbh_boolean_expressions, bbh_multistep_arithmetic_two]
  n_sft: 8
  n_grpo: 2
  n_test_seen: 3
  n_test_unseen: 3
sandbox: {timeout_s: 5.0}
rollout: {max_code_calls: 2, max_turns: 3, max_new_tokens: 48, output_chars: 200, output_tokens: 48, batch_size: 16}
sft: {max_steps: 4, per_device_train_batch_size: 4, learning_rate: 1.0e-3, save_steps: 2, logging_steps: 1}
grpo: {max_steps: 2, per_device_train_batch_size: 4, num_generations: 2, learning_rate: 1.0e-4, save_steps: 1}
eval: {checkpoints: [base, sft, grpo], modes: [autonomous], pools: [test_seen, test_unseen]}
"""


# GRPO on a curriculum (task_difficulty measured, stages scheduled): the UI tests read its figures; the rest of
# the chain (corpus, evaluations) is the same as without it.
CURRICULUM = "curriculum: {enabled: true, samples_per_family: 2, questions_per_family: 2, n_stages: 2}\n"


@pytest.fixture(scope="session")
def whole_chain(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """`dagster asset materialize --select '*'` run once for real on REDUCED_RECIPE + CURRICULUM.

    Gives the environment and the id of that Dagster run (recorded before any test adds runs of its own).
    Tests that add runs to the stores (a forced re-materialisation, an extra MLflow run) must not change what
    the others read: they run last in their module, or work on a copy.
    """
    import dagster as dg

    root = tmp_path_factory.mktemp("chain")
    recipe = root / "reduced.yaml"
    recipe.write_text(REDUCED_RECIPE + CURRICULUM)
    for sub in ("data", "dagster_home"):
        (root / sub).mkdir()
    env = {**os.environ, "R1CI_RECIPE": str(recipe), "R1CI_DATA_DIR": str(root / "data"),
           "DAGSTER_HOME": str(root / "dagster_home"),
           "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'data' / 'mlflow.db'}",
           "R1CI_MLFLOW_UI_URL": "http://mlflow.test"}
    out = materialize(env, "*")
    assert out.returncode == 0, (out.stdout + out.stderr)[-5000:]
    (run,) = dg.DagsterInstance.from_config(env["DAGSTER_HOME"]).get_runs()
    return {"env": env, "run_id": run.run_id, "root": root}


def materialize(env: dict[str, str], select: str, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run `dagster asset materialize` for real in a subprocess."""
    cmd = [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "r1ci_pipeline", "--select", select]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=Path(__file__).parents[2])
