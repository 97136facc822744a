"""GRPO rewards (TRL signature): named, weighted, each computed from the rollout's verifier result.

The rollout function (`grpo.make_rollout_func`) hands every reward the trajectory's `score` (the family's
verifier, in [0, 1]), `parseable`, `n_turns` and `infra_error`. Every reward returns None for a trajectory
with a sandbox infra error, so TRL leaves it out of its group's baseline and gives it no advantage (and the
rollout function masks its tokens from the loss) instead of a wrong-answer zero.

The recipe names the rewards and their weights in `grpo.rewards`: a list of names (weight 1 each) or a
mapping name -> weight. TRL logs each one separately (``rewards/<name>/mean``) and their weighted sum
(``reward``). `recipe_rewards(recipe)` builds them once per run; a reward with a limit takes it from the
recipe (`turn_penalty`: `rollout.max_turns`, the engine's own cap).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import Recipe, RolloutConfig

RewardFunc = Callable[..., list[float | None]]


def correctness(completions: list[Any], score: list[float | None], infra_error: list[bool],
                **kwargs: Any) -> list[float | None]:
    """+1 times the verifier's score in [0, 1]."""
    return [None if bad else float(s or 0.0) for s, bad in zip(score, infra_error, strict=True)]


def answer_format(completions: list[Any], parseable: list[bool | None], infra_error: list[bool],
                  **kwargs: Any) -> list[float | None]:
    """+0.1 for an answer the family's verifier can parse (a `<<<answer>>>` in its format), -0.1 otherwise."""
    return [None if bad else (0.1 if ok else -0.1) for ok, bad in zip(parseable, infra_error, strict=True)]


def get_turn_penalty_reward(max_turns: int, penalty: float = 0.1) -> RewardFunc:
    """-`penalty` for a trajectory that used all `max_turns` assistant turns (the engine's cap: it stops there)."""

    def turn_penalty(completions: list[Any], n_turns: list[int], infra_error: list[bool],
                     **kwargs: Any) -> list[float | None]:
        return [None if bad else (-penalty if n >= max_turns else 0.0) for n, bad in zip(n_turns, infra_error, strict=True)]

    return turn_penalty


# Back-compatible names
correctness_reward = correctness
format_reward = answer_format

# name -> the reward built for the recipe's rollout limits
REWARDS: dict[str, Callable[[RolloutConfig], RewardFunc]] = {
    "correctness": lambda limits: correctness,
    "format": lambda limits: answer_format,
    "turn_penalty": lambda limits: get_turn_penalty_reward(limits.max_turns),
}
DEFAULT_REWARDS = ("correctness", "format", "turn_penalty")


@dataclass(frozen=True)
class RewardSet:
    """A run's GRPO rewards: names, functions (named as the recipe names them) and weights."""

    names: list[str]
    funcs: list[RewardFunc]
    weights: list[float]


def recipe_rewards(recipe: Recipe) -> RewardSet:
    """The rewards of `recipe.grpo.rewards` with `recipe.rollout`'s limits; unknown names are a ValueError."""
    names, weights = reward_spec(recipe.grpo.rewards)
    return RewardSet(names, get_reward_funcs(names, recipe.rollout), weights)


def _named(name: str, func: RewardFunc) -> RewardFunc:
    """`func` under the recipe's name (TRL logs a reward by its function's __name__)."""

    def reward(*args: Any, **kwargs: Any) -> list[float | None]:
        return func(*args, **kwargs)

    reward.__name__ = reward.__qualname__ = name
    reward.__doc__ = func.__doc__
    return reward


def reward_spec(spec: Sequence[str] | Mapping[str, float] | None) -> tuple[list[str], list[float]]:
    """Names and weights from a recipe's `grpo.rewards` (list of names, or mapping name -> weight)."""
    if spec is None:
        spec = list(DEFAULT_REWARDS)
    if isinstance(spec, Mapping):
        names, weights = list(spec), [float(w) for w in spec.values()]
    elif isinstance(spec, str):
        names, weights = [spec], [1.0]
    else:
        names, weights = list(spec), [1.0] * len(spec)
    if not names:
        raise ValueError("grpo.rewards names no reward: give at least one of " + ", ".join(sorted(REWARDS)))
    return names, weights


def get_reward_funcs(names: Sequence[str], limits: RolloutConfig) -> list[RewardFunc]:
    """The reward functions called `names` for the rollout `limits`; an unknown name is a ValueError listing the
    valid ones."""
    unknown = [n for n in names if n not in REWARDS]
    if unknown:
        raise ValueError(f"unknown rewards {unknown}; choose from {sorted(REWARDS)}")
    return [_named(n, REWARDS[n](limits)) for n in names]


def total_rewards(funcs: Sequence[RewardFunc], weights: Sequence[float], **kwargs: Any) -> list[float | None]:
    """The weighted sum of `funcs` per completion (None where every function returned None)."""
    columns = [f(**kwargs) for f in funcs]
    out: list[float | None] = []
    for values in zip(*columns, strict=True):
        scored = [(v, w) for v, w in zip(values, weights, strict=True) if v is not None]
        out.append(sum(v * w for v, w in scored) if scored else None)
    return out
