"""Multi-turn SFT with TRL's `SFTTrainer`: interpreter-output tokens carry no loss.

Rows are pre-tokenised by `chat.tokenize_conversation` (any chat template): `input_ids` plus
`assistant_masks`, 1 only on tokens the assistant wrote; TRL turns the mask into `labels` (-100 elsewhere),
so system, user and interpreter turns and the template's role headers carry no loss. The recipe's `sft`
section holds `trl.SFTConfig` fields (`packing`, `padding_free`, ...) plus r1ci's `config.SftSection` keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .chat import tokenize_conversation
from .config import Recipe
from .models import load_tokenizer
from .training import fingerprint_work_dir, load_policy, mlflow_callback, train_resumable, training_args
from .trajectory import Trajectory

SFT_DEFAULTS: dict[str, Any] = {"save_steps": 50, "logging_steps": 5}  # over training.TRAINER_DEFAULTS


def sft_rows(trajectories: list[Trajectory], tokenizer: Any) -> list[dict[str, list[int]]]:
    """Pre-tokenised SFT rows: `input_ids` and `assistant_masks` (1 only on assistant-written tokens)."""
    rows = []
    for traj in trajectories:
        ids, mask = tokenize_conversation(tokenizer, traj.messages)
        rows.append({"input_ids": ids, "assistant_masks": mask})
    return rows


def train_sft(recipe: Recipe, trajectories: list[Trajectory], base_path: str, out_dir: Path, work_dir: Path) -> dict[str, Any]:
    """Fine-tune `base_path` on `trajectories`; save the checkpoint to `out_dir`. Resumes from `work_dir`.

    Full fine-tuning, or LoRA when the recipe's `sft.lora` holds `peft.LoraConfig` fields (the adapter is
    merged into the saved checkpoint). A run killed after saving `checkpoint-N` in `work_dir` continues from
    step N with its optimizer, scheduler and RNG state when called again with the same inputs.
    """
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    if not trajectories:
        raise ValueError("the SFT dataset is empty: the filter kept no trajectory (check teacher scores and filter limits)")
    lora = recipe.sft.lora
    args = training_args(SFTConfig, recipe.sft.trl, "sft", work_dir, SFT_DEFAULTS, seed=recipe.seed)
    tokenizer = load_tokenizer(base_path, recipe.model.local_files_only)
    rows = sft_rows(trajectories, tokenizer)
    from .digest import checkpoint_fingerprint

    fingerprint_work_dir(work_dir, {"sft": recipe.sft.written(), "seed": recipe.seed, "base": checkpoint_fingerprint(base_path),
                                    "data": _rows_digest(rows)})
    dataset = Dataset.from_list(rows)
    peft_config = _peft_config(lora)
    trainer = SFTTrainer(model=load_policy(recipe, base_path), args=args, train_dataset=dataset,
                         processing_class=tokenizer, callbacks=[mlflow_callback()], peft_config=peft_config)
    result, resumed = train_resumable(trainer, tokenizer, work_dir, out_dir, "SFT",
                                     before_save=_merge_adapter if peft_config is not None else None)
    history = trainer.state.log_history
    losses = [e["loss"] for e in history if "loss" in e]
    return {
        "train_loss": float(result.training_loss),
        "final_loss": float(losses[-1]) if losses else float("nan"),
        "steps": int(trainer.state.global_step),
        "resumed_from_step": resumed,
        "n_examples": len(dataset),
        "n_tokens": int(sum(len(r["input_ids"]) for r in rows)),
        "n_loss_tokens": int(sum(sum(r["assistant_masks"]) for r in rows)),
        "loss_curve": losses,
        "loss_steps": [int(e["step"]) for e in history if "loss" in e],
        "train_runtime_s": float(result.metrics.get("train_runtime", float("nan"))),
    }


def _rows_digest(rows: list[dict[str, list[int]]]) -> str:
    import hashlib

    h = hashlib.sha256()
    for r in rows:
        h.update(bytes(str(r["input_ids"]), "ascii"))
        h.update(bytes(str(r["assistant_masks"]), "ascii"))
    return h.hexdigest()[:16]


def _merge_adapter(trainer: Any) -> None:
    trainer.model = trainer.model.merge_and_unload()


def _peft_config(lora: dict[str, Any] | None) -> Any:
    if not lora:
        return None
    from peft import LoraConfig

    return LoraConfig(task_type="CAUSAL_LM", **lora)
