"""GRPO with TRL's `GRPOTrainer`, its rollouts produced by r1ci's multi-turn engine (code runs between turns).

The engine is plugged in through TRL's `rollout_func` (it receives each prompt already repeated
`num_generations` times). It returns the policy's own token ids and a mask; the mask goes to TRL as
`env_mask`, so interpreter and template tokens carry no loss (TRL's loss mask is `completion_mask *
env_mask`). The other fields it returns (verifier score, parseable, turns, infra error) reach the reward
functions of `rewards.py` as keyword arguments.

* Generation: r1ci's transformers decode loop on the live model, or, with `grpo.use_vllm: true` (the default
  when `rollout.backend` is `vllm`), the engine's `vllm` backend over TRL's own vLLM engine
  (`vllm_mode: colocate`: the trainer's `LLM`; `server`: its `VLLMClient` of `trl vllm-serve`). TRL pushes
  the policy's weights into that engine before each step's rollouts; the sampled tokens' logprobs go back
  to TRL for its importance-sampling correction (None on interpreter and template tokens).

* A trajectory whose sandbox failed (infra error) gets None from every reward, so TRL leaves it out of its
  group's baseline and gives it a zero advantage; its `env_mask` is all zeros, so it adds nothing to the loss.
* `grpo.filter_uniform_groups` (r1ci key): groups whose rewards all agree carry no learning signal; their
  tokens are masked from the loss and the count is logged (`filtered_groups`).
* Curriculum (`recipe.curriculum.enabled` and a schedule from `task_difficulty`): the prompts are laid out
  stage by stage (high improvement potential first) and not shuffled; `curriculum_stage` is logged per step.
* A killed run resumes from the newest `checkpoint-N` in the work folder (optimizer, scheduler, step, RNG).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .chat import prompt_messages
from .config import Recipe, RecipeError
from .models import load_model, load_tokenizer
from .rewards import RewardSet, recipe_rewards, total_rewards
from .tasks import Item, resolve_families
from .training import (
    fingerprint_work_dir,
    last_checkpoint,
    mlflow_callback,
    resumed_step,
    save_final,
    trl_config,
)

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
CPU_DEFAULTS: dict[str, Any] = {"bf16": False, "gradient_checkpointing": False}


def make_rollout_func(recipe: Recipe, items: list[Item], tokenizer: Any, sandbox: Any,
                      families: dict[str, Any] | None = None) -> Any:
    """A TRL `rollout_func`: runs the multi-turn engine for the given prompts on the trainer's live model, or on
    TRL's vLLM engine when the trainer has one (`rollout_backend`)."""
    from .rollout import run_rollouts

    by_question = {it.question: it for it in items}
    families = families if families is not None else resolve_families(recipe.tasks)
    stats: dict[str, float] = {"rollouts": 0, "infra_errors": 0, "calls": 0, "rollout_s": 0.0}

    def rollout_func(prompts: list[Any], trainer: Any) -> dict[str, Any]:
        questions = [p[-1]["content"] if isinstance(p, list) else p for p in prompts]
        batch = [by_question[q] for q in questions]
        backend = rollout_backend(trainer, tokenizer)
        limits = recipe.rollout.model_copy(update={"temperature": trainer.args.temperature,
                                                   "top_p": getattr(trainer.args, "top_p", 1.0) or 1.0})
        seed = recipe.seed * 100_003 + int(trainer.state.global_step) * 7 + int(stats["calls"])
        t0 = time.perf_counter()
        with _vllm_awake(trainer):
            trajs = run_rollouts(backend, batch, limits=limits, sandbox=sandbox, samples_per_item=1,
                                 seed=seed, progress=False, families=families)
        rollout_func.last_s = time.perf_counter() - t0  # type: ignore[attr-defined]
        stats["rollout_s"] += rollout_func.last_s  # type: ignore[attr-defined]
        stats["calls"] += 1
        stats["rollouts"] += len(trajs)
        stats["infra_errors"] += sum(t.infra_error for t in trajs)
        rollout_func.last = trajs  # type: ignore[attr-defined]
        eos = set(getattr(trainer, "eos_token_ids", None) or [tokenizer.eos_token_id])
        completions = [trl_completion(t, eos) for t in trajs]
        return {
            "prompt_ids": [t.token_ids[: t.prompt_len] for t in trajs],
            "completion_ids": [ids for ids, _ in completions],
            # vLLM's sampling logprobs of the completion tokens (TRL's importance-sampling correction)
            "logprobs": [completion_logprobs(t, len(ids)) for t, (ids, _) in zip(trajs, completions, strict=True)]
            if _uses_vllm(trainer) else None,
            # 1 = the policy's own tokens; 0 = interpreter output and template; all 0 after an infra error
            "env_mask": [[0] * len(mask) if t.infra_error else mask for t, (_, mask) in zip(trajs, completions,
                                                                                          strict=True)],
            "score": [t.score for t in trajs],
            "parseable": [t.parseable for t in trajs],
            "infra_error": [t.infra_error for t in trajs],
            "n_turns": [t.n_turns for t in trajs],
            "n_code_calls": [t.n_code_calls for t in trajs],
        }

    rollout_func.stats = stats  # type: ignore[attr-defined]
    rollout_func.last = []  # type: ignore[attr-defined]
    return rollout_func


def _uses_vllm(trainer: Any) -> bool:
    return bool(getattr(trainer, "use_vllm", False))


def rollout_backend(trainer: Any, tokenizer: Any) -> Any:
    """The backend GRPO's rollouts run on: TRL's vLLM engine when the trainer has one (its weights synced by
    TRL), else the transformers backend on the live model."""
    from .rollout import get_backend

    if not _uses_vllm(trainer):
        return get_backend("transformers", model=trainer.accelerator.unwrap_model(trainer.model), tokenizer=tokenizer)
    gen = trainer.vllm_generation
    if gen.mode == "colocate":
        return get_backend("vllm", llm=gen.llm, tokenizer=tokenizer, logprobs=True)
    client = getattr(gen, "vllm_client", None)  # TRL gives the client (and the weight sync) to the main process
    if client is None:
        client = getattr(gen, "r1ci_http_client", None)
        if client is None:  # the other processes only generate: HTTP, no weight-update group
            from trl.generation.vllm_client import VLLMClient

            base_url = gen.server_base_url or f"http://{gen.server_host}:{gen.server_port}"
            client = gen.r1ci_http_client = VLLMClient(base_url=base_url, connection_timeout=gen.server_timeout)
    if trainer.accelerator.num_processes > 1:
        trainer.accelerator.wait_for_everyone()  # the main process has pushed this step's weights
    return get_backend("vllm", client=client, tokenizer=tokenizer, logprobs=True)


@contextmanager
def _vllm_awake(trainer: Any) -> Iterator[None]:
    """With `vllm_enable_sleep_mode` (colocate), wake TRL's engine for the rollouts and put it back to sleep
    after, as TRL's own generation does (level 2 drops the weights: they are pushed again when needed)."""
    gen = getattr(trainer, "vllm_generation", None) if _uses_vllm(trainer) else None
    if gen is None or gen.mode != "colocate" or not gen.enable_sleep_mode:
        yield
        return
    if gen._llm_weights_sleeping:
        gen.sync_weights()
    gen.llm.wake_up(tags=["kv_cache"])
    try:
        yield
    finally:
        gen.llm.sleep(level=2)
        gen._llm_weights_sleeping = True


def completion_logprobs(traj: Any, n: int) -> list[float | None]:
    """The sampling logprobs of a trajectory's first `n` completion tokens (None where it has none)."""
    lps = traj.logprobs or [None] * len(traj.token_ids)
    return list(lps[traj.prompt_len: traj.prompt_len + n])


def resolve_vllm(section: dict[str, Any], rollout_backend_name: str) -> None:
    """Set `use_vllm` in a GRPO section (default: on when `rollout.backend` is `vllm`) and check it can run."""
    use = bool(section.get("use_vllm", rollout_backend_name == "vllm"))
    section["use_vllm"] = use
    if not use:
        return
    try:
        import vllm  # noqa: F401
    except ImportError:
        raise RecipeError("grpo.use_vllm needs vLLM (GPU): pip install 'r1ci[vllm]', "
                          "or set grpo.use_vllm: false") from None
    mode = section.get("vllm_mode", "colocate")
    if mode == "colocate" and int(section.get("vllm_tensor_parallel_size", 1)) > 1:
        raise RecipeError("grpo.vllm_tensor_parallel_size > 1 needs vllm_mode: server with r1ci's multi-turn "
                          "rollouts (each process's conversations differ); serve with trl vllm-serve "
                          "--tensor_parallel_size N")


TRUNCATED = ("max_tokens", "max_turns")  # finish reasons of trajectories cut short by a limit


def trl_completion(traj: Any, eos_ids: set[int]) -> tuple[list[int], list[int]]:
    """A trajectory's completion ids and mask as TRL should see them: ending with an end-of-turn token when
    it finished (TRL counts it terminated), with its last policy token when a limit cut it short (TRL counts
    it truncated: `completions/clipped_ratio`, `mask_truncated_completions`). Only template text after that
    point is left out (no loss on it either way)."""
    ids, mask = traj.token_ids[traj.prompt_len:], traj.mask[traj.prompt_len:]
    if traj.finish_reason in TRUNCATED:
        end = max((i for i, m in enumerate(mask) if m), default=len(ids) - 1) + 1
    else:
        end = max((i for i, t in enumerate(ids) if t in eos_ids), default=len(ids) - 1) + 1
    return ids[:end], mask[:end]


def make_trainer_class() -> type:
    """`GRPOTrainer` plus r1ci's uniform-group filter (the class is built lazily: TRL imports are slow)."""
    import torch
    from trl import GRPOTrainer

    class R1CIGRPOTrainer(GRPOTrainer):
        """Masks groups whose rewards all agree when `filter_uniform_groups`, logging how many."""

        r1ci_filter_uniform = False
        r1ci_rewards: tuple[list[Any], list[float]] = ([], [])
        r1ci_rollout_func: Any = None
        r1ci_filtered_total = 0
        r1ci_baseline: dict[str, float] = {}

        def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
            out = super()._generate_and_score_completions(inputs)
            trajs = getattr(self.r1ci_rollout_func, "last", None) or []
            if not self.model.training or not trajs:
                return out
            funcs, weights = self.r1ci_rewards
            kwargs = {"completions": [None] * len(trajs), "score": [t.score for t in trajs],
                      "parseable": [t.parseable for t in trajs], "infra_error": [t.infra_error for t in trajs],
                      "n_turns": [t.n_turns for t in trajs]}
            totals = total_rewards(funcs, weights, **kwargs)
            g = self.num_generations
            uniform = []
            for start in range(0, len(totals) - g + 1, g):
                vals = [v for v in totals[start:start + g] if v is not None]
                if len(vals) < 2 or max(vals) - min(vals) < 1e-9:
                    uniform.append(start)
            self._metrics["train"]["uniform_groups"].append(float(len(uniform)))
            self._metrics["train"]["rollout_time"].append(float(getattr(self.r1ci_rollout_func, "last_s", 0.0)))
            self._metrics["train"]["code_calls"].append(sum(t.n_code_calls for t in trajs) / len(trajs))
            gains = [t.score - self.r1ci_baseline[t.family] for t in trajs
                     if t.score is not None and t.family in self.r1ci_baseline]
            if gains:  # correctness minus the SFT model's pass rate on the same families (task_difficulty)
                self._metrics["train"]["correctness_gain"].append(sum(gains) / len(gains))
            if self.r1ci_filter_uniform and uniform:
                mask = out.get("tool_mask")
                if mask is None:
                    mask = out["tool_mask"] = torch.ones_like(out["completion_mask"])
                for start in uniform:
                    mask[start:start + g] = 0
                loss_mask = out["completion_mask"] * mask
                out["num_items_in_batch"] = self.accelerator.gather(loss_mask.sum()).sum()
                self.r1ci_filtered_total += len(uniform)
            self._metrics["train"]["filtered_groups"].append(float(len(uniform) if self.r1ci_filter_uniform else 0))
            return out

    return R1CIGRPOTrainer


def grpo_rows(items: list[Item], stages: list[Any] | None, prompts_per_step: int, seed: int) -> list[dict[str, Any]]:
    """Dataset rows (prompt, item id, curriculum stage) in training order."""
    if stages:
        from .curriculum import curriculum_items

        ordered = curriculum_items(items, stages, prompts_per_step, seed=seed)
    else:
        ordered = [(0, it) for it in items]
    return [{"prompt": prompt_messages(it.question), "item_id": it.id, "stage": stage} for stage, it in ordered]


def train_grpo(recipe: Recipe, items: list[Item], sft_path: str, out_dir: Path, work_dir: Path,
               sandbox: Any, stages: list[Any] | None = None,
               baseline: dict[str, float] | None = None, families: dict[str, Any] | None = None,
               rewards: RewardSet | None = None) -> dict[str, Any]:
    """GRPO from the SFT checkpoint on the GRPO question pool; save to `out_dir`, resume from `work_dir`.

    `stages` (from `curriculum.stage_schedule`) orders the prompts stage by stage; then `max_steps` is the
    sum of the stages' steps. `baseline` (family -> the SFT model's pass rate at the GRPO temperature, from
    `task_difficulty`) adds the per-step `correctness_gain`: correctness minus the baseline of the same
    families, a learning signal that the curriculum's changing family mix does not move. `families` (the
    verifiers) and `rewards` are the run's (`StageContext`); by default built from `recipe`.
    """
    import os

    import torch
    from datasets import Dataset
    from trl import GRPOConfig

    if not items:
        raise ValueError("the GRPO question pool is empty: raise tasks.n_grpo in the recipe")
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    section = recipe.grpo.trl
    rewards = rewards or recipe_rewards(recipe)
    names, weights = rewards.names, rewards.weights
    filter_uniform = recipe.grpo.filter_uniform_groups
    resolve_vllm(section, recipe.rollout.backend)
    cpu = not torch.cuda.is_available()
    defaults = {**GRPO_DEFAULTS, **(CPU_DEFAULTS if cpu else {}), "seed": recipe.seed, "use_cpu": cpu,
                "max_completion_length": recipe.rollout.max_new_tokens, "reward_weights": weights}
    if stages:
        section["max_steps"] = sum(s.steps for s in stages)
        section["shuffle_dataset"] = False
    args = trl_config(GRPOConfig, section, "grpo", work_dir, **defaults)
    prompts_per_step = max(1, args.per_device_train_batch_size * args.gradient_accumulation_steps
                           // args.num_generations)
    rows = grpo_rows(items, stages, prompts_per_step, recipe.seed)
    from .digest import checkpoint_fingerprint

    fingerprint_work_dir(work_dir, {"grpo": recipe.grpo.written(), "rollout": recipe.rollout.model_dump(),
                                    "sft": checkpoint_fingerprint(sft_path), "rows": [r["item_id"] for r in rows],
                                    "seed": recipe.seed})
    tokenizer = load_tokenizer(sft_path, recipe.model.local_files_only)
    model = load_model(sft_path, recipe.model.dtype, recipe.model.local_files_only,
                       attn_implementation=recipe.model.attn_implementation)
    dataset = Dataset.from_list(rows)
    rollout_func = make_rollout_func(recipe, items, tokenizer, sandbox, families)
    funcs = rewards.funcs
    trainer_cls = make_trainer_class()
    callbacks = [mlflow_callback()]
    if stages:
        callbacks.append(_stage_callback(stages))
    trainer = trainer_cls(model=model, reward_funcs=funcs, args=args, train_dataset=dataset,
                          processing_class=tokenizer, rollout_func=rollout_func, callbacks=callbacks)
    trainer.r1ci_filter_uniform = filter_uniform
    trainer.r1ci_rewards = (funcs, weights)
    trainer.r1ci_rollout_func = rollout_func
    trainer.r1ci_baseline = dict(baseline or {})
    resume = last_checkpoint(work_dir)
    if resume:
        log.info("resuming GRPO from %s", resume)
    trainer.train(resume_from_checkpoint=resume)
    save_final(trainer, tokenizer, out_dir)
    history = trainer.state.log_history
    rewards = [e["reward"] for e in history if "reward" in e]
    steps = [int(e["step"]) for e in history if "reward" in e]
    correct = [e.get("rewards/correctness/mean", float("nan")) for e in history if "reward" in e]
    gain = [e.get("correctness_gain", float("nan")) for e in history if "reward" in e]
    stage_of_step = []
    for step in steps:
        end = 0
        stage_of_step.append(0)
        for st in stages or []:
            end += st.steps
            if step <= end:
                stage_of_step[-1] = st.index
                break
    steps_per_pass = math.ceil(len(items) / prompts_per_step)
    passes = pass_means(rewards, steps_per_pass)
    return {
        "steps": int(trainer.state.global_step),
        "steps_per_pass": steps_per_pass,
        "reward_pass_means": passes,
        "reward_first_pass": passes[0] if passes else float("nan"),
        "reward_last_pass": passes[-1] if passes else float("nan"),
        "resumed_from_step": resumed_step(resume),
        "reward_trend": reward_trend(rewards),
        "reward_within_stage_trend": within_stage_trend(rewards, stage_of_step),
        "reward_first_half": _mean(rewards[: len(rewards) // 2]),
        "reward_second_half": _mean(rewards[len(rewards) // 2:]),
        "reward_first": float(rewards[0]) if rewards else float("nan"),
        "reward_last": float(rewards[-1]) if rewards else float("nan"),
        "reward_curve": rewards,
        "reward_steps": steps,
        "correctness_curve": correct,
        "correctness_gain_curve": gain,
        "n_rollouts": int(rollout_func.stats["rollouts"]),
        "n_infra_errors": int(rollout_func.stats["infra_errors"]),
        "rollout_s": round(float(rollout_func.stats["rollout_s"]), 1),
        "filtered_groups": int(trainer.r1ci_filtered_total),
        "reward_names": names,
        "reward_weights": weights,
    }


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def _stage_callback(stages: list[Any]) -> Any:
    """Logs `curriculum_stage` (1-based) at every step to the active MLflow run."""
    import mlflow
    from transformers import TrainerCallback

    bounds = []
    total = 0
    for s in stages:
        total += s.steps
        bounds.append((total, s.index))

    class _Stage(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
            stage = next((i for end, i in bounds if state.global_step <= end), bounds[-1][1])
            if mlflow.active_run() is not None:
                mlflow.log_metric("curriculum_stage", stage, step=state.global_step)

    return _Stage()


def within_stage_trend(rewards: list[float], stage_of_step: list[int]) -> float:
    """Least-squares slope of the reward per step with one intercept per curriculum stage (pooled within-stage
    slope): the learning trend once the stages' different family mixes are taken out."""
    groups: dict[int, list[tuple[int, float]]] = {}
    for i, (r, st) in enumerate(zip(rewards, stage_of_step, strict=True)):
        if r == r:  # not NaN
            groups.setdefault(st, []).append((i, r))
    num = den = 0.0
    for pts in groups.values():
        if len(pts) < 2:
            continue
        mx = sum(i for i, _ in pts) / len(pts)
        my = sum(r for _, r in pts) / len(pts)
        num += sum((i - mx) * (r - my) for i, r in pts)
        den += sum((i - mx) ** 2 for i, _ in pts)
    return num / den if den else float("nan")


def pass_means(rewards: list[float], steps_per_pass: int) -> list[float]:
    """Mean reward of each complete pass over the GRPO questions (`steps_per_pass` steps). Without curriculum
    stages (or with one) every pass has the same questions, so passes are comparable where single steps are
    not (a step's reward mostly says which questions it drew)."""
    n = len(rewards) // steps_per_pass if steps_per_pass > 0 else 0
    return [_mean(rewards[i * steps_per_pass:(i + 1) * steps_per_pass]) for i in range(n)]


def reward_trend(rewards: list[float]) -> float:
    """Least-squares slope of the reward per step (positive: rising)."""
    n = len(rewards)
    if n < 2:
        return float("nan")
    xs = range(n)
    mx, my = (n - 1) / 2, sum(rewards) / n
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, rewards, strict=True)) / den if den else math.nan
