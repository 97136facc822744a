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


def test_a_recipe_custom_family_is_scored_in_grpo_rewards(tmp_path, monkeypatch, tiny_policy, sandbox,
                                                          small_recipe) -> None:
    """Defect 3: GRPO's verifiers came from a bare `registry()`, so a recipe's custom family went unscored
    (and `correctness` turned the missing score into a silent zero)."""
    import json

    import r1ci_core.rollout as rollout_pkg
    from r1ci_core import grpo
    from r1ci_core.tasks import registry, resolve_families

    monkeypatch.delenv("R1CI_CUSTOM_TASKS", raising=False)
    path = tmp_path / "h8_quiz.jsonl"
    path.write_text("".join(json.dumps({"family": "h8_quiz", "question": f"What is {a} * {b}?",
                                        "answer": str(a * b), "scorer": "numeric"}) + "\n"
                            for a, b in ((6, 7), (3, 9), (12, 4))))
    recipe = small_recipe.with_overrides({"tasks.custom_tasks": [str(path)], "tasks.families": ["h8_quiz"]})
    assert "h8_quiz" not in registry()
    items = resolve_families(recipe.tasks)["h8_quiz"].generate(3, seed=0)
    rollouts: list = []
    real = rollout_pkg.run_rollouts

    def recording(*args, **kwargs):
        rollouts.extend(out := real(*args, **kwargs))
        return out

    monkeypatch.setattr(rollout_pkg, "run_rollouts", recording)
    figures = grpo.train_grpo(recipe, items, str(tiny_policy), tmp_path / "out", tmp_path / "work", sandbox)
    assert figures["n_rollouts"] == len(rollouts) == 4 and figures["n_infra_errors"] == 0
    assert all(t.family == "h8_quiz" and t.score is not None and t.parseable is not None for t in rollouts), \
        [(t.family, t.score) for t in rollouts]
