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
  tokens are masked from the loss and the count is logged (`filtered_groups`): the cheap variant of
* `grpo.dynamic_sampling` (DAPO): such groups are replaced by fresh prompts, for a bounded number of extra
  generation rounds (`grpo_batch`); logged per step as `dynamic_sampling/dropped_groups` and `.../rounds`.
* `grpo.tito_check` (on by default): the ids each trajectory trains on are compared with its re-tokenised
  conversation and with TRL's batch (`tito`); mismatches are logged per step (`tito/...`).
* Curriculum (`recipe.curriculum.enabled` and a schedule from `task_difficulty`): the prompts are laid out
  stage by stage (high improvement potential first) and not shuffled; `curriculum_stage` is logged per step.
  `curriculum.online` draws each step's prompts by family with weight 4p(1-p) of pass rates re-estimated from
  the groups as training goes (`online_mix/<family>` per step).
* A killed run resumes from the newest `checkpoint-N` in the work folder (optimizer, scheduler, step, RNG).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .chat import prompt_messages
from .config import DynamicSamplingConfig, Recipe, RecipeError
from .grpo_batch import StepBatch, reward_totals, uniform_groups
from .models import load_tokenizer
from .rewards import RewardSet, recipe_rewards
from .tasks import Item, resolve_families
from .tito import retokenize_mismatches, trainer_mismatches
from .training import fingerprint_work_dir, load_policy, mlflow_callback, train_resumable, training_args

log = logging.getLogger(__name__)

GRPO_DEFAULTS: dict[str, Any] = {  # over training.TRAINER_DEFAULTS
    "save_steps": 10,
    "logging_steps": 1,
    "num_generations": 5,
    "beta": 0.001,
    "learning_rate": 1e-6,
    "temperature": 1.0,
}


def make_rollout_func(recipe: Recipe, items: list[Item], tokenizer: Any, sandbox: Any,
                      families: dict[str, Any] | None = None, tito_check: bool = True) -> Any:
    """A TRL `rollout_func`: runs the multi-turn engine for the given prompts on the trainer's live model, or on
    TRL's vLLM engine when the trainer has one (`rollout_backend`).

    `rollout_func.generate(items, trainer)` is the engine call itself (one trajectory per item), which the
    step's prompt choice (`grpo_batch.StepBatch`) also uses; trajectories it leaves in `rollout_func.prepared`
    are returned for those prompts instead of new ones. With `tito_check`, every trajectory is compared with
    its re-tokenised conversation (`tito.retokenize_mismatches`; `rollout_func.last_tito`)."""
    from .rollout import run_rollouts

    by_question = {it.question: it for it in items}
    families = families if families is not None else resolve_families(recipe.tasks)
    stats: dict[str, float] = {"rollouts": 0, "infra_errors": 0, "calls": 0, "rollout_s": 0.0, "step_s": 0.0,
                               "tito_mismatches": 0}

    def generate(batch: list[Item], trainer: Any) -> list[Any]:
        backend = rollout_backend(trainer, tokenizer, prefill_dtype=recipe.rollout.prefill_dtype)
        limits = recipe.rollout.model_copy(update={"temperature": trainer.args.temperature,
                                                   "top_p": getattr(trainer.args, "top_p", 1.0) or 1.0})
        seed = recipe.seed * 100_003 + int(trainer.state.global_step) * 7 + int(stats["calls"])
        t0 = time.perf_counter()
        with _vllm_awake(trainer):
            trajs = run_rollouts(backend, batch, limits=limits, sandbox=sandbox, samples_per_item=1,
                                 seed=seed, progress=False, families=families)
        stats["step_s"] += time.perf_counter() - t0
        stats["calls"] += 1
        stats["rollouts"] += len(trajs)
        stats["infra_errors"] += sum(t.infra_error for t in trajs)
        return trajs

    def rollout_func(prompts: list[Any], trainer: Any) -> dict[str, Any]:
        questions = [p[-1]["content"] if isinstance(p, list) else p for p in prompts]
        batch = [by_question[q] for q in questions]
        trajs, rollout_func.prepared = rollout_func.prepared, None  # type: ignore[attr-defined]
        if trajs is None or [t.item_id for t in trajs] != [it.id for it in batch]:
            trajs = generate(batch, trainer)
        rollout_func.last_s, stats["step_s"] = stats["step_s"], 0.0  # type: ignore[attr-defined]
        stats["rollout_s"] += rollout_func.last_s  # type: ignore[attr-defined]
        rollout_func.last = trajs  # type: ignore[attr-defined]
        if tito_check:
            rollout_func.last_tito = retokenize_mismatches(trajs, tokenizer)  # type: ignore[attr-defined]
            stats["tito_mismatches"] += rollout_func.last_tito  # type: ignore[attr-defined]
        out = trl_rollout(trajs, trainer, tokenizer)
        rollout_func.sent = list(zip(out["prompt_ids"], out["completion_ids"], out["env_mask"], strict=True))  # type: ignore[attr-defined]
        return out

    rollout_func.stats = stats  # type: ignore[attr-defined]
    rollout_func.last = []  # type: ignore[attr-defined]
    rollout_func.prepared = None  # type: ignore[attr-defined]
    rollout_func.sent = []  # type: ignore[attr-defined]
    rollout_func.last_tito = None  # type: ignore[attr-defined]
    rollout_func.generate = generate  # type: ignore[attr-defined]
    return rollout_func


def trl_rollout(trajs: list[Any], trainer: Any, tokenizer: Any) -> dict[str, Any]:
    """What `rollout_func` returns to TRL for these trajectories: ids, mask, logprobs, reward inputs."""
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


def _uses_vllm(trainer: Any) -> bool:
    return bool(getattr(trainer, "use_vllm", False))


def rollout_backend(trainer: Any, tokenizer: Any, prefill_dtype: str = "model") -> Any:
    """The backend GRPO's rollouts run on: TRL's vLLM engine when the trainer has one (its weights synced by
    TRL), else the transformers backend on the live model."""
    from .rollout import get_backend

    if not _uses_vllm(trainer):
        return get_backend("transformers", model=trainer.accelerator.unwrap_model(trainer.model), tokenizer=tokenizer,
                           prefill_dtype=prefill_dtype)
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


def _sync_vllm_weights(trainer: Any) -> None:
    """Push the policy's weights into TRL's vLLM engine once per step, as TRL's `_generate` does (it then skips)."""
    if _uses_vllm(trainer) and trainer.state.global_step != trainer._last_loaded_step:
        trainer.vllm_generation.sync_weights()
        trainer._last_loaded_step = trainer.state.global_step


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
    """`GRPOTrainer` plus r1ci's step batch (dynamic sampling, online mix), uniform-group filter and
    token-in-token-out check (the class is built lazily: TRL imports are slow)."""
    import torch
    from trl import GRPOTrainer

    class R1CIGRPOTrainer(GRPOTrainer):
        """Chooses each step's prompts (`r1ci_batch`), masks groups whose rewards all agree when
        `filter_uniform_groups` (or left uniform by dynamic sampling), logs the counts and checks the ids."""

        r1ci_filter_uniform = False
        r1ci_rewards: tuple[list[Any], list[float]] = ([], [])
        r1ci_rollout_func: Any = None
        r1ci_batch: StepBatch | None = None
        r1ci_tito = True
        r1ci_filtered_total = 0
        r1ci_baseline: dict[str, float] = {}

        def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
            training = self.model.training
            batch = self.r1ci_batch if training and self.r1ci_batch is not None and self.r1ci_batch.active else None
            prepared = None
            if batch is not None:
                _sync_vllm_weights(self)  # the step's rollouts start here, before TRL's own sync in `_generate`
                inputs, prepared = batch.prepare(inputs, self)
                self.r1ci_rollout_func.prepared = prepared
            out = super()._generate_and_score_completions(inputs)
            trajs = getattr(self.r1ci_rollout_func, "last", None) or []
            if not training or not trajs:
                return out
            g = self.num_generations
            if batch is not None:
                if prepared is None:  # TRL's rollout generated them: the online mix still learns from them
                    batch.observe(trajs, g)
                for name, value in batch.metrics().items():
                    self._metrics["train"][name].append(value)
            self._log_step_figures(trajs, out)
            uniform = uniform_groups(reward_totals(*self.r1ci_rewards, trajs, inputs), g)
            self._metrics["train"]["uniform_groups"].append(float(len(uniform)))
            dynamic = batch is not None and batch.dynamic.enabled
            masked = uniform if self.r1ci_filter_uniform or dynamic else []
            if masked:
                mask = out.get("tool_mask")
                if mask is None:
                    mask = out["tool_mask"] = torch.ones_like(out["completion_mask"])
                for start in masked:
                    mask[start:start + g] = 0
                loss_mask = out["completion_mask"] * mask
                out["num_items_in_batch"] = self.accelerator.gather(loss_mask.sum()).sum()
                self.r1ci_filtered_total += len(masked)
            self._metrics["train"]["filtered_groups"].append(float(len(masked)))
            return out

        def _log_step_figures(self, trajs: list[Any], out: dict[str, Any]) -> None:
            """Rollout time, code calls, correctness gain and the token-in-token-out counts of this step."""
            metrics = self._metrics["train"]
            metrics["rollout_time"].append(float(getattr(self.r1ci_rollout_func, "last_s", 0.0)))
            metrics["code_calls"].append(sum(t.n_code_calls for t in trajs) / len(trajs))
            gains = [t.score - self.r1ci_baseline[t.family] for t in trajs
                     if t.score is not None and t.family in self.r1ci_baseline]
            if gains:  # correctness minus the SFT model's pass rate on the same families (task_difficulty)
                metrics["correctness_gain"].append(sum(gains) / len(gains))
            if self.r1ci_tito:
                metrics["tito/retokenize_mismatches"].append(float(self.r1ci_rollout_func.last_tito or 0))
                metrics["tito/trainer_mismatches"].append(float(trainer_mismatches(out, self.r1ci_rollout_func.sent)))

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
    families, a learning signal that the curriculum's changing family mix does not move; it is also where the
    online difficulty estimate (`curriculum.online`) starts. `families` (the verifiers) and `rewards` are the
    run's (`StageContext`); by default built from `recipe`.
    """
    import os

    from datasets import Dataset

    if not items:
        raise ValueError("the GRPO question pool is empty: raise tasks.n_grpo in the recipe")
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    rewards = rewards or recipe_rewards(recipe)
    opts = GrpoOptions.from_recipe(recipe, work_dir, rewards, stages)
    prompts_per_step = max(1, opts.args.per_device_train_batch_size * opts.args.gradient_accumulation_steps
                           // opts.args.num_generations)
    rows = grpo_rows(items, stages, prompts_per_step, recipe.seed)
    from .digest import checkpoint_fingerprint

    fingerprint_work_dir(work_dir, {"grpo": recipe.grpo.written(), "rollout": recipe.rollout.model_dump(),
                                    "sft": checkpoint_fingerprint(sft_path), "rows": [r["item_id"] for r in rows],
                                    "seed": recipe.seed,  # the online mix changes the prompts trained on
                                    **({"online": recipe.curriculum.online.model_dump()}
                                       if recipe.curriculum.online.enabled else {})})
    tokenizer = load_tokenizer(sft_path, recipe.model.local_files_only)
    rollout_func = make_rollout_func(recipe, items, tokenizer, sandbox, families, tito_check=opts.tito_check)
    # the trainer: TRL's, with r1ci's rollouts, step batch and per-step figures
    funcs = rewards.funcs
    callbacks = [mlflow_callback()] + ([_stage_callback(stages)] if stages else [])
    trainer = make_trainer_class()(model=load_policy(recipe, sft_path), reward_funcs=funcs, args=opts.args,
                                   train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                                   rollout_func=rollout_func, callbacks=callbacks)
    trainer.r1ci_filter_uniform = opts.filter_uniform
    trainer.r1ci_rewards = (funcs, opts.reward_weights)
    trainer.r1ci_rollout_func = rollout_func
    trainer.r1ci_baseline = dict(baseline or {})
    trainer.r1ci_tito = opts.tito_check
    trainer.r1ci_batch = step_batch(recipe, items, rows, rollout_func, (funcs, opts.reward_weights), opts.dynamic,
                                    baseline)
    _, resumed = train_resumable(trainer, tokenizer, work_dir, out_dir, "GRPO")
    return {**grpo_figures(trainer.state.log_history, stages, math.ceil(len(items) / prompts_per_step)),
            "steps": int(trainer.state.global_step),
            "resumed_from_step": resumed,
            "n_rollouts": int(rollout_func.stats["rollouts"]),
            "n_infra_errors": int(rollout_func.stats["infra_errors"]),
            "rollout_s": round(float(rollout_func.stats["rollout_s"]), 1),
            "filtered_groups": int(trainer.r1ci_filtered_total),
            "tito_mismatches": int(rollout_func.stats["tito_mismatches"]),
            "reward_names": opts.reward_names,
            "reward_weights": opts.reward_weights}


@dataclass(frozen=True)
class GrpoOptions:
    """The recipe's `grpo` section read once: the `GRPOConfig` and r1ci's own keys (`config.GrpoSection`)."""

    args: Any
    reward_names: list[str]
    reward_weights: list[float]
    filter_uniform: bool
    dynamic: DynamicSamplingConfig
    tito_check: bool

    @classmethod
    def from_recipe(cls, recipe: Recipe, work_dir: Path, rewards: RewardSet,
                    stages: list[Any] | None = None) -> GrpoOptions:
        from trl import GRPOConfig

        section = recipe.grpo.trl
        resolve_vllm(section, recipe.rollout.backend)
        if stages:
            section["max_steps"] = sum(s.steps for s in stages)
            section["shuffle_dataset"] = False
            if recipe.curriculum.prompts_per_family:
                section["gradient_accumulation_steps"] = _accumulation_for(section, stages,
                                                                           recipe.curriculum.prompts_per_family)
        args = training_args(GRPOConfig, section, "grpo", work_dir, GRPO_DEFAULTS, seed=recipe.seed,
                             max_completion_length=recipe.rollout.max_new_tokens, reward_weights=rewards.weights)
        return cls(args, list(rewards.names), list(rewards.weights), recipe.grpo.filter_uniform_groups,
                   recipe.grpo.dynamic_sampling, recipe.grpo.tito_check)


def _accumulation_for(section: dict[str, Any], stages: list[Any], per_family: int) -> int:
    """gradient_accumulation_steps that make a step `per_family` prompts x num_generations completions for each
    family the stages train on."""
    from trl import GRPOConfig

    def value(name: str) -> int:  # the recipe's, else GRPOConfig's own default
        return int(section.get(name, GRPOConfig.__dataclass_fields__[name].default))

    n_families = len({f for st in stages for f in st.pool})
    generations, batch = value("num_generations"), value("per_device_train_batch_size")
    completions = per_family * n_families * generations
    if completions % batch:
        raise RecipeError(f"curriculum.prompts_per_family {per_family} x {n_families} families x num_generations "
                          f"{generations} = {completions} completions a step, not a multiple "
                          f"of grpo.per_device_train_batch_size {batch}")
    log.info("GRPO: %d prompt(s) per step for each of %d families, %d completions: gradient_accumulation_steps %d",
             per_family, n_families, completions, completions // batch)
    return completions // batch


def step_batch(recipe: Recipe, items: list[Item], rows: list[dict[str, Any]], rollout_func: Any,
               rewards: tuple[list[Any], list[float]], dynamic: DynamicSamplingConfig,
               baseline: dict[str, float] | None) -> StepBatch | None:
    """The step's prompt choice when dynamic sampling or the online mix is on (else None: TRL's own order)."""
    online_cfg = recipe.curriculum.online
    if not dynamic.enabled and not online_cfg.enabled:
        return None
    online = None
    if online_cfg.enabled:
        from .curriculum import OnlineDifficulty

        online = OnlineDifficulty(sorted({it.family for it in items}), baseline, ema=online_cfg.ema,
                                  floor=online_cfg.floor)
    return StepBatch(rows, {it.id: it for it in items}, rollout_func.generate, rewards, dynamic, online,
                     seed=recipe.seed)


def grpo_figures(history: list[dict[str, Any]], stages: list[Any] | None, steps_per_pass: int) -> dict[str, Any]:
    """The reward curves and trends of a GRPO run from its trainer log history."""
    logged = [e for e in history if "reward" in e]
    rewards = [e["reward"] for e in logged]
    steps = [int(e["step"]) for e in logged]
    bounds = []
    end = 0
    for st in stages or []:
        end += st.steps
        bounds.append((end, st.index))
    stage_of_step = [next((i for e, i in bounds if step <= e), 0) for step in steps]
    passes = pass_means(rewards, steps_per_pass)
    return {
        "steps_per_pass": steps_per_pass,
        "reward_pass_means": passes,
        "reward_first_pass": passes[0] if passes else float("nan"),
        "reward_last_pass": passes[-1] if passes else float("nan"),
        "reward_trend": reward_trend(rewards),
        "reward_within_stage_trend": within_stage_trend(rewards, stage_of_step),
        "reward_first_half": _mean(rewards[: len(rewards) // 2]),
        "reward_second_half": _mean(rewards[len(rewards) // 2:]),
        "reward_first": float(rewards[0]) if rewards else float("nan"),
        "reward_last": float(rewards[-1]) if rewards else float("nan"),
        "reward_curve": rewards,
        "reward_steps": steps,
        "correctness_curve": [e.get("rewards/correctness/mean", float("nan")) for e in logged],
        "correctness_gain_curve": [e.get("correctness_gain", float("nan")) for e in logged],
        "dynamic_sampling_dropped": int(sum(e.get("dynamic_sampling/dropped_groups", 0) for e in logged)),
        "dynamic_sampling_rounds": int(sum(e.get("dynamic_sampling/rounds", 0) for e in logged)),
    }


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def _stage_callback(stages: list[Any]) -> Any:
    """Logs `curriculum_stage` (1-based) at every step to the active MLflow run."""
    from transformers import TrainerCallback

    from .lineage import log_step_metrics

    bounds = []
    total = 0
    for s in stages:
        total += s.steps
        bounds.append((total, s.index))

    class _Stage(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
            stage = next((i for end, i in bounds if state.global_step <= end), bounds[-1][1])
            log_step_metrics({"curriculum_stage": stage}, state.global_step)

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
