"""Figures in MLflow runs: trainer steps, per-step curves, an evaluation's metrics, and reading a history back."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def active_run_id() -> str | None:
    """The id of this process's active MLflow run, None when no run is active."""
    import mlflow

    run = mlflow.active_run()
    return run.info.run_id if run is not None else None


def log_step_metrics(logs: Mapping[str, Any], step: int) -> None:
    """Log the numeric entries of a trainer log entry at `step` to the active run (no active run: nothing).

    MLflow metric names cannot hold ``/``: TRL's ``rewards/correctness/mean`` becomes
    ``rewards.correctness.mean``.
    """
    import mlflow

    if mlflow.active_run() is None or not logs:
        return
    mlflow.log_metrics({k.replace("/", "."): float(v) for k, v in logs.items() if isinstance(v, int | float)},
                       step=step)


def log_curves(curves: dict[str, tuple[list[int], list[float]]], name: str) -> None:
    """Log per-step curves {label: (steps, values)} to the active MLflow run as `<name>.json` and `<name>.png`."""
    import mlflow

    curves = {k: v for k, v in curves.items() if v and v[1]}
    if mlflow.active_run() is None or not curves:
        return
    mlflow.log_dict({k: {"step": list(s), "value": list(v)} for k, (s, v) in curves.items()}, f"{name}.json")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.5))
        for label, (steps, values) in curves.items():
            ax.plot(steps, values, marker=".", label=label)
        ax.set_xlabel("step")
        ax.set_title(name)
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        mlflow.log_figure(fig, f"{name}.png")
        plt.close(fig)
    except Exception as err:  # noqa: BLE001 - a plot must not fail the stage
        log.warning("could not plot %s: %s", name, err)


def log_to_run(run_id: str, metrics: Mapping[str, float], tags: Mapping[str, str],
               artifacts: Path | None = None, artifact_path: str | None = None) -> None:
    """Log `metrics` (step 0, one batch), `tags` and the folder `artifacts` (under `artifact_path`) to the run
    `run_id`, active or not."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(k, v, now, 0) for k, v in metrics.items()])
    for key, value in tags.items():
        client.set_tag(run_id, key, value)
    if artifacts is not None:
        client.log_artifacts(run_id, str(artifacts), artifact_path=artifact_path)


def metric_history(run_id: str, key: str) -> list[float]:
    """The values of metric `key` of run `run_id` in step order (ties: in logging order); empty when the run
    has no such metric."""
    from mlflow.tracking import MlflowClient

    history = sorted(MlflowClient().get_metric_history(run_id, key), key=lambda m: (m.step, m.timestamp))
    return [float(m.value) for m in history]
