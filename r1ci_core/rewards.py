"""GRPO rewards (TRL signature): named, weighted, each calling the family's verifier result.

Every reward returns None for a trajectory with a sandbox infra error, so TRL gives it no advantage
(all-None rewards are unscorable) instead of a wrong-answer zero.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

RewardFunc = Callable[..., list[float | None]]


def correctness_reward(completions: list[Any], score: list[float | None], infra_error: list[bool],
                       **kwargs: Any) -> list[float | None]:
    """+1 times the verifier's score in [0, 1]."""
    return [None if bad else float(s or 0.0) for s, bad in zip(score, infra_error)]


def format_reward(completions: list[Any], parseable: list[bool | None], infra_error: list[bool],
                  **kwargs: Any) -> list[float | None]:
    """+0.1 for a parseable `<<<answer>>>`, -0.1 otherwise."""
    return [None if bad else (0.1 if ok else -0.1) for ok, bad in zip(parseable, infra_error)]


def get_turn_penalty_reward(max_turns: int = 6, penalty: float = 0.1) -> RewardFunc:
    """-`penalty` for a trajectory with more than `max_turns` assistant turns."""

    def turn_penalty_reward(completions: list[Any], n_turns: list[int], infra_error: list[bool],
                            **kwargs: Any) -> list[float | None]:
        return [None if bad else (-penalty if n > max_turns else 0.0) for n, bad in zip(n_turns, infra_error)]

    return turn_penalty_reward


REWARDS: dict[str, RewardFunc] = {
    "correctness": correctness_reward,
    "format": format_reward,
    "turn_penalty": get_turn_penalty_reward(),
}
DEFAULT_REWARDS = ("correctness", "format", "turn_penalty")


def get_reward_funcs(names: list[str] | tuple[str, ...]) -> list[RewardFunc]:
    """The reward functions called `names`; an unknown name is a ValueError listing the valid ones."""
    unknown = [n for n in names if n not in REWARDS]
    if unknown:
        raise ValueError(f"unknown rewards {unknown}; choose from {sorted(REWARDS)}")
    return [REWARDS[n] for n in names]
