"""Shared training plumbing: TRL config from a recipe section, resume, MLflow metrics, final save."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from .config import RecipeError
from .io import atomic_dir

log = logging.getLogger(__name__)


def trl_config(config_cls: type, section: dict[str, Any], section_name: str, output_dir: Path, **defaults: Any) -> Any:
    """Build a TRL config (`SFTConfig` / `GRPOConfig`) from a recipe section; unknown keys are errors."""
    known = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(section) - known)
    if unknown:
        raise RecipeError(f"recipe section {section_name!r} has unknown keys {unknown} (they must be {config_cls.__name__} fields)")
    kwargs = {**defaults, **section, "output_dir": str(output_dir)}
    try:
        return config_cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise RecipeError(f"recipe section {section_name!r}: {str(err).splitlines()[0]}") from None


def last_checkpoint(work_dir: Path) -> str | None:
    """The newest complete `checkpoint-N` folder in a trainer's output dir, for resuming.

    The trainer writes `trainer_state.json` last: a folder without a readable one was cut short by a
    kill mid-save; it is removed (its step is trained again) instead of being resumed from.
    """
    import json
    import re
    import shutil

    if not work_dir.is_dir():
        return None
    found = sorted((int(m.group(1)), p) for p in work_dir.iterdir()
                   if p.is_dir() and (m := re.fullmatch(r"checkpoint-(\d+)", p.name)))
    for _, path in reversed(found):
        try:
            json.loads((path / "trainer_state.json").read_text())
            return str(path)
        except (OSError, ValueError):
            log.warning("removing incomplete checkpoint %s (a run was killed while saving it)", path)
            shutil.rmtree(path, ignore_errors=True)
    return None


def mlflow_callback() -> Any:
    """A `TrainerCallback` that logs every trainer log entry to the active MLflow run."""
    import mlflow
    from transformers import TrainerCallback

    class _MlflowMetrics(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001
            if mlflow.active_run() is None or not logs:
                return
            metrics = {k.replace("/", "."): float(v) for k, v in logs.items() if isinstance(v, int | float)}
            mlflow.log_metrics(metrics, step=state.global_step)

    return _MlflowMetrics()


def save_final(trainer: Any, tokenizer: Any, out_dir: Path) -> Path:
    """Save weights, tokenizer (with chat template) and generation config into `out_dir` atomically."""
    with atomic_dir(out_dir) as tmp:
        trainer.save_model(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        model = trainer.model
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.save_pretrained(str(tmp))
    return out_dir
