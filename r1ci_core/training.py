"""Shared training plumbing (SFT and GRPO): TRL config from a recipe section, resume, MLflow metrics, final save."""

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
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    section = dict(section)
    for key, value in section.items():  # YAML reads 5e-4 (no dot) as a string: take it as the number it is
        if isinstance(value, str) and isinstance(fields[key].default, float):
            try:
                section[key] = float(value)
            except ValueError:
                raise RecipeError(f"recipe section {section_name!r}: {key} must be a number, got {value!r}") from None
    kwargs = {**defaults, **section, "output_dir": str(output_dir)}
    try:
        return config_cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise RecipeError(f"recipe section {section_name!r}: {str(err).splitlines()[0]}") from None


# Under every training stage's own defaults: r1ci logs to MLflow itself, and keeps two checkpoints to resume from.
TRAINER_DEFAULTS: dict[str, Any] = {"report_to": "none", "save_strategy": "steps", "save_total_limit": 2}
# On CPU, bf16 autocast and gradient checkpointing (TRL's defaults) make a small model ~10x slower.
CPU_DEFAULTS: dict[str, Any] = {"bf16": False, "gradient_checkpointing": False}


def training_args(config_cls: type, section: dict[str, Any], section_name: str, work_dir: Path,
                  defaults: dict[str, Any], **fixed: Any) -> Any:
    """The TRL config of a training stage: `TRAINER_DEFAULTS`, the stage's `defaults`, `CPU_DEFAULTS` without a
    GPU, then `fixed`, under the recipe `section` (which wins), writing to `work_dir`."""
    import torch

    cpu = not torch.cuda.is_available()
    return trl_config(config_cls, section, section_name, work_dir,
                      **{**TRAINER_DEFAULTS, **defaults, **(CPU_DEFAULTS if cpu else {}), **fixed, "use_cpu": cpu})


def load_policy(recipe: Any, path: str) -> Any:
    """The model a stage trains, from a checkpoint folder, with the recipe's dtype and attention."""
    from .models import load_model

    return load_model(path, recipe.model.dtype, recipe.model.local_files_only,
                      attn_implementation=recipe.model.attn_implementation)


def train_resumable(trainer: Any, tokenizer: Any, work_dir: Path, out_dir: Path, what: str,
                    before_save: Any = None) -> tuple[Any, int]:
    """Train from the newest checkpoint in `work_dir` (if any), then save to `out_dir` atomically
    (`before_save(trainer)` first, e.g. merging a LoRA adapter). Returns TRL's result and the step it resumed
    from (0: from the start)."""
    resume = last_checkpoint(work_dir)
    if resume:
        log.info("resuming %s from %s", what, resume)
    if resume and _finished(trainer, resume):
        # killed after its last step: the trainer would run one step more on resuming, so load it instead
        result = _load_finished(trainer, resume)
    else:
        result = trainer.train(resume_from_checkpoint=resume)
    if before_save is not None:
        before_save(trainer)
    save_final(trainer, tokenizer, out_dir)
    return result, resumed_step(resume)


def _finished(trainer: Any, checkpoint: str) -> bool:
    """Whether `checkpoint` is at (or past) the trainer's `max_steps`."""
    import json

    state = json.loads((Path(checkpoint) / "trainer_state.json").read_text())
    return 0 < trainer.args.max_steps <= int(state.get("global_step", 0))


def _load_finished(trainer: Any, checkpoint: str) -> Any:
    """The weights and state of a finished run's last checkpoint, as `trainer.train` would have returned them."""
    from transformers.trainer_callback import TrainerState
    from transformers.trainer_utils import TrainOutput

    log.info("%s is the last step (max_steps %d): loaded, not trained further", checkpoint, trainer.args.max_steps)
    trainer._load_from_checkpoint(checkpoint)  # noqa: SLF001 - the trainer's own loader (full weights or adapter)
    trainer.state = TrainerState.load_from_json(str(Path(checkpoint) / "trainer_state.json"))
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    return TrainOutput(trainer.state.global_step, sum(losses) / len(losses) if losses else float("nan"), {})


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


PROGRESS_KEYS = ("loss", "reward", "rewards/correctness/mean", "grad_norm", "learning_rate", "train_loss",
                 "train_runtime")


def progress_line(step: int, max_steps: int, logs: dict[str, Any]) -> str:
    """'step 3/36: loss 1.234, learning_rate 0.0005' from a trainer log entry (its headline figures only)."""
    shown = [k for k in PROGRESS_KEYS if isinstance(logs.get(k), int | float)]
    figures = ", ".join(f"{k} {float(logs[k]):.4g}" for k in shown)
    return f"step {step}/{max_steps}" + (f": {figures}" if figures else "")


def mlflow_callback() -> Any:
    """A `TrainerCallback` that logs every trainer log entry to the active MLflow run
    (`lineage.log_step_metrics`), and its headline figures as one INFO line (main process only), which the
    Dagster run page shows."""
    from transformers import TrainerCallback

    from .lineage import log_step_metrics

    class _MlflowMetrics(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001
            if logs and state.is_world_process_zero:
                log.info("%s", progress_line(state.global_step, state.max_steps, logs))
            log_step_metrics(logs or {}, state.global_step)

    return _MlflowMetrics()


def resumed_step(checkpoint: str | None) -> int:
    """The global step of a `checkpoint-N` folder (0 for None)."""
    return int(str(checkpoint).rsplit("-", 1)[-1]) if checkpoint else 0


SMALL_MODEL_PARAMS = 20_000_000


def release_memory() -> None:
    """Collect a finished trainer's reference cycles (model, optimizer state) and hand the freed heap back to the
    OS (glibc `malloc_trim`), so the next model a stage loads does not stack on top of the last one's RSS."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the collected memory is still reused by the process
        pass


_MALLOPT = {"MALLOC_ARENA_MAX": (-8, 2), "MALLOC_MMAP_THRESHOLD_": (-3, 1 << 20), "MALLOC_TRIM_THRESHOLD_": (-1, 4 << 20)}


def steady_heap() -> bool:
    """Fix glibc's heap thresholds for CPU training: tensors over 1 MB get their own mapping, returned to the
    OS when freed; at most 2 malloc arenas. Returns whether glibc took the settings.

    glibc's default raises its mmap threshold (up to 32 MB) each time a large block is freed, so the
    variable-shaped activations of packed batches end up on the heap, fragment it, and RSS only grows:
    SmolLM2-135M's SFT stage rose steadily from 3.7 to 6.8 GB over one epoch; with these settings it stayed
    at 4-5 GB (peak 5.6 GB). Settings a user gave as `MALLOC_*` environment variables are left as they are.
    """
    import ctypes
    import os

    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc
        return False
    return all(libc.mallopt(param, value) == 1 for env, (param, value) in _MALLOPT.items() if env not in os.environ)


def cpu_threads(n_params: int | None = None) -> int:
    """Set torch's intra-op threads for CPU work on a model of `n_params` parameters and return them:
    `$R1CI_TORCH_THREADS`, else every core for a real model, half of them (1 on 2 cores) for a small one.
    The process' heap is steadied for training too (`steady_heap`).

    A real model's matmuls keep every core busy: SmolLM2-135M's SFT step runs ~1.5x faster on 2 threads than
    on 1 (benchmarks/train_bench.py). A small model gains little from a second thread, and on a shared
    machine OpenMP threads that wait for each other make its step up to 10x slower (measured: 5 s vs 0.3 s
    per tiny SFT step with 2 threads vs 1 under load).
    """
    import os

    import torch

    if torch.cuda.is_available():
        return torch.get_num_threads()
    wanted = os.environ.get("R1CI_TORCH_THREADS")
    cores = os.cpu_count() or 2
    if wanted and wanted.isdigit() and int(wanted) > 0:
        n = int(wanted)
    elif n_params is not None and n_params >= SMALL_MODEL_PARAMS:
        n = cores
    else:
        n = max(1, cores // 2)
    torch.set_num_threads(n)
    steady_heap()
    return n


FINGERPRINT_FILE = "r1ci_fingerprint.txt"


def fingerprint_work_dir(work_dir: Path, spec: Any) -> str:
    """Tie a trainer's work folder to what it trains (recipe section, data, start checkpoint).

    A kill and re-run with the same inputs resumes from the folder's newest checkpoint; checkpoints left by a
    run with other inputs (a changed recipe or dataset) are removed instead of being resumed from.
    """
    import hashlib
    import json
    import shutil

    fp = hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]
    work_dir = Path(work_dir)
    marker = work_dir / FINGERPRINT_FILE
    if work_dir.is_dir():
        old = marker.read_text().strip() if marker.is_file() else None
        if old != fp:
            stale = [p for p in work_dir.iterdir() if p.is_dir() and p.name.startswith("checkpoint-")]
            if stale:
                log.warning("%s holds checkpoints of other inputs (fingerprint %s, now %s): starting over",
                            work_dir, old, fp)
            for path in stale:
                shutil.rmtree(path, ignore_errors=True)
    work_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text(fp + "\n")
    return fp


def save_final(trainer: Any, tokenizer: Any, out_dir: Path) -> Path:
    """Save weights, tokenizer (with chat template) and generation config into `out_dir` atomically."""
    with atomic_dir(out_dir) as tmp:
        trainer.save_model(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        model = trainer.model
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.save_pretrained(str(tmp))
    return out_dir
