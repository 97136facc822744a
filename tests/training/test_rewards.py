"""GRPO rewards take their limits from the recipe (issue 21, defect 2: `turn_penalty` was fixed at 6 turns
while the engine caps turns at `rollout.max_turns`, so it never fired)."""

from __future__ import annotations

import pytest

from r1ci_core.config import load_recipe
from r1ci_core.rewards import recipe_rewards, total_rewards


def _kw(n_turns: list[int]) -> dict:
    n = len(n_turns)
    return {"completions": [None] * n, "score": [1.0] * n, "parseable": [True] * n, "infra_error": [False] * n,
            "n_turns": n_turns}


@pytest.mark.parametrize("max_turns", [4, 6])
def test_turn_penalty_fires_at_the_recipes_turn_cap(max_turns: int) -> None:
    rewards = recipe_rewards(load_recipe("tiny").with_overrides({"rollout.max_turns": max_turns}))
    assert rewards.names == ["correctness", "format", "turn_penalty"]
    penalty = rewards.funcs[rewards.names.index("turn_penalty")]
    assert penalty.__name__ == "turn_penalty"
    # the engine stops at max_turns: a trajectory that used every turn is the one penalised
    assert penalty(**_kw([1, max_turns - 1, max_turns])) == [0.0, 0.0, -0.1]
    totals = total_rewards(rewards.funcs, rewards.weights, **_kw([2, max_turns]))
    assert totals == pytest.approx([1.1, 1.0])


def test_reward_weights_and_unknown_names_come_from_the_recipe() -> None:
    rewards = recipe_rewards(load_recipe("tiny").with_overrides({"grpo.rewards": {"correctness": 1.0, "format": 0.5}}))
    assert (rewards.names, rewards.weights) == (["correctness", "format"], [1.0, 0.5])
    with pytest.raises(ValueError, match=r"unknown rewards \['nope'\]; choose from"):
        recipe_rewards(load_recipe("tiny").with_overrides({"grpo.rewards": ["nope"]}))
