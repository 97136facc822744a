"""GRPO with TRL's `GRPOTrainer`, its rollouts produced by r1ci's multi-turn engine (code runs between turns).

The engine returns the policy's own token ids and a mask; the mask goes to TRL as `env_mask`, so
interpreter and template tokens carry no loss. Rewards come from `rewards.py`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from .chat import prompt_messages
from .config import Recipe
from .models import load_model, load_tokenizer
from .rewards import DEFAULT_REWARDS, get_reward_funcs
from .tasks import Item, registry
from .training import last_checkpoint, mlflow_callback, save_final, trl_config

log = logging.getLogger(__name__)

GRPO_DEFAULTS: dict[str, Any] = {
    "report_to": "none",
    "save_strategy": "steps",
    "save_steps": 10,
    "save_total_limit": 2,
    "logging_steps": 1,
    "num_generations": 5,
    "beta": 0.001,
    "learning_rate": 1e-6,
    "temperature": 1.0,
}


def make_rollout_func(recipe: Recipe, items: list[Item], tokenizer: Any, sandbox: Any) -> Any:
    """A TRL `rollout_func`: runs the multi-turn engine on the trainer's live model for the given prompts."""
    from .rollout import get_backend, run_rollouts

    by_question = {it.question: it for it in items}
    families = registry()
    stats: dict[str, float] = {"rollouts": 0, "infra_errors": 0}

    def rollout_func(prompts: list[Any], trainer: Any) -> dict[str, Any]:
        questions = [p[-1]["content"] if isinstance(p, list) else p for p in prompts]
        batch = [by_question[q] for q in questions]
        model = trainer.accelerator.unwrap_model(trainer.model)
        backend = get_backend("transformers", model=model, tokenizer=tokenizer)
        limits = recipe.rollout.model_copy(update={"temperature": trainer.args.temperature})
        trajs = run_rollouts(backend, batch, limits=limits, sandbox=sandbox, samples_per_item=1,
                             seed=int(trainer.state.global_step), progress=False, families=families)
        stats["rollouts"] += len(trajs)
        stats["infra_errors"] += sum(t.infra_error for t in trajs)
        return {
            "prompt_ids": [t.token_ids[: t.prompt_len] for t in trajs],
            "completion_ids": [t.token_ids[t.prompt_len :] for t in trajs],
            "logprobs": None,
            "env_mask": [t.mask[t.prompt_len :] for t in trajs],
            "score": [t.score for t in trajs],
            "parseable": [bool(t.parseable) for t in trajs],
            "infra_error": [t.infra_error for t in trajs],
            "n_turns": [t.n_turns for t in trajs],
            "n_code_calls": [t.n_code_calls for t in trajs],
        }

    rollout_func.stats = stats  # type: ignore[attr-defined]
    return rollout_func


def train_grpo(recipe: Recipe, items: list[Item], sft_path: str, out_dir: Path, work_dir: Path,
               sandbox: Any) -> dict[str, Any]:
    """GRPO from the SFT checkpoint on the GRPO question pool; save to `out_dir`, resume from `work_dir`."""
    import os

    import torch
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    if not items:
        raise ValueError("the GRPO question pool is empty: raise tasks.n_grpo in the recipe")
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    section = dict(recipe.grpo)
    reward_names = section.pop("rewards", list(DEFAULT_REWARDS))
    defaults = {**GRPO_DEFAULTS, "seed": recipe.seed, "use_cpu": not torch.cuda.is_available(),
                "max_completion_length": recipe.rollout.max_new_tokens}
    args = trl_config(GRPOConfig, section, "grpo", work_dir, **defaults)
    tokenizer = load_tokenizer(sft_path, recipe.model.local_files_only)
    model = load_model(sft_path, recipe.model.dtype, recipe.model.local_files_only,
                       attn_implementation=recipe.model.attn_implementation)
    dataset = Dataset.from_list([{"prompt": prompt_messages(it.question), "item_id": it.id} for it in items])
    rollout_func = make_rollout_func(recipe, items, tokenizer, sandbox)
    trainer = GRPOTrainer(model=model, reward_funcs=get_reward_funcs(reward_names), args=args,
                          train_dataset=dataset, processing_class=tokenizer, rollout_func=rollout_func,
                          callbacks=[mlflow_callback()])
    resume = last_checkpoint(work_dir)
    if resume:
        log.info("resuming GRPO from %s", resume)
    trainer.train(resume_from_checkpoint=resume)
    save_final(trainer, tokenizer, out_dir)
    rewards = [e["reward"] for e in trainer.state.log_history if "reward" in e]
    return {
        "steps": int(trainer.state.global_step),
        "resumed_from_step": int(resume.rsplit("-", 1)[-1]) if resume else 0,
        "reward_first": float(rewards[0]) if rewards else float("nan"),
        "reward_last": float(rewards[-1]) if rewards else float("nan"),
        "reward_curve": rewards,
        "n_rollouts": int(rollout_func.stats["rollouts"]),
        "n_infra_errors": int(rollout_func.stats["infra_errors"]),
    }
