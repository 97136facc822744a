"""Multi-turn SFT with TRL's `SFTTrainer`: interpreter-output tokens carry no loss."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from .chat import tokenize_conversation
from .config import Recipe
from .models import load_model, load_tokenizer
from .trajectory import Trajectory
from .training import last_checkpoint, mlflow_callback, save_final, trl_config

log = logging.getLogger(__name__)

SFT_DEFAULTS: dict[str, Any] = {
    "report_to": "none",
    "save_strategy": "steps",
    "save_steps": 50,
    "save_total_limit": 2,
    "logging_steps": 5,
}


def sft_rows(trajectories: list[Trajectory], tokenizer: Any) -> list[dict[str, list[int]]]:
    """Pre-tokenised SFT rows: `input_ids` and `assistant_masks` (1 only on assistant-written tokens)."""
    rows = []
    for traj in trajectories:
        ids, mask = tokenize_conversation(tokenizer, traj.messages)
        rows.append({"input_ids": ids, "assistant_masks": mask})
    return rows


def train_sft(recipe: Recipe, trajectories: list[Trajectory], base_path: str, out_dir: Path, work_dir: Path) -> dict[str, Any]:
    """Fine-tune `base_path` on `trajectories`; save the checkpoint to `out_dir`. Resumes from `work_dir`."""
    import torch
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    if not trajectories:
        raise ValueError("the SFT dataset is empty: the filter kept no trajectory (check teacher scores and filter limits)")
    section = dict(recipe.sft)
    lora = section.pop("lora", None)
    args = trl_config(SFTConfig, section, "sft", work_dir, seed=recipe.seed, **SFT_DEFAULTS,
                      use_cpu=not torch.cuda.is_available())
    tokenizer = load_tokenizer(base_path, recipe.model.local_files_only)
    model = load_model(base_path, recipe.model.dtype, recipe.model.local_files_only,
                       attn_implementation=recipe.model.attn_implementation)
    dataset = Dataset.from_list(sft_rows(trajectories, tokenizer))
    peft_config = _peft_config(lora)
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                         callbacks=[mlflow_callback()], peft_config=peft_config)
    resume = last_checkpoint(work_dir)
    if resume:
        log.info("resuming SFT from %s", resume)
    result = trainer.train(resume_from_checkpoint=resume)
    if peft_config is not None:
        trainer.model = trainer.model.merge_and_unload()
    save_final(trainer, tokenizer, out_dir)
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    return {
        "train_loss": float(result.training_loss),
        "final_loss": float(losses[-1]) if losses else float("nan"),
        "steps": int(trainer.state.global_step),
        "resumed_from_step": int(resume.rsplit("-", 1)[-1]) if resume else 0,
        "n_examples": len(dataset),
        "n_tokens": int(sum(len(r) for r in dataset["input_ids"])),
    }


def _peft_config(lora: dict[str, Any] | None) -> Any:
    if not lora:
        return None
    from peft import LoraConfig

    return LoraConfig(task_type="CAUSAL_LM", **lora)
