"""Curriculum: potentials, stage ordering from known pass rates, the staged prompt layout; reward functions."""

from __future__ import annotations

import pytest

from r1ci_core.config import RolloutConfig
from r1ci_core.curriculum import (
    FamilyDifficulty,
    curriculum_items,
    difficulty_items,
    improvement_potential,
    pass_rates,
    stage_schedule,
)
from r1ci_core.rewards import get_reward_funcs, reward_spec, total_rewards
from r1ci_core.tasks import Item
from r1ci_core.trajectory import Execution, Trajectory


def test_improvement_potential():
    assert improvement_potential(0.5) == 1.0
    assert improvement_potential(0.0) == improvement_potential(1.0) == 0.0
    assert improvement_potential(0.25) == pytest.approx(0.75)


def test_stage_order_from_known_pass_rates():
    rates = {"a": 1.0, "b": 0.5, "c": 0.1, "d": 0.7, "e": 0.0, "f": 0.35, "g": 0.95, "h": 0.6}
    # potentials: b 1.0, h .96, f .91, d .84, c .36, g .19, a 0, e 0
    stages = stage_schedule(rates, n_stages=4, total_steps=10)
    assert [s.families for s in stages] == [["b", "h"], ["f", "d"], ["c", "g"], ["a", "e"]]
    # paper: start with high potential, gradually add lower-potential families
    assert [s.pool for s in stages] == [["b", "h"], ["b", "h", "f", "d"], ["b", "h", "f", "d", "c", "g"],
                                        ["b", "h", "f", "d", "c", "g", "a", "e"]]
    assert [s.pool for s in stage_schedule(rates, 4, 10, cumulative=False)] == [s.families for s in stages]
    assert [s.steps for s in stages] == [3, 3, 2, 2]
    pots = [p for s in stages for p in s.potentials.values()]
    assert pots == sorted(pots, reverse=True)
    # explicit steps per stage; fewer families than stages gives fewer stages
    assert [s.steps for s in stage_schedule(rates, 4, 0, [5, 4, 3, 2])] == [5, 4, 3, 2]
    assert [s.families for s in stage_schedule({"x": 0.2, "y": 0.5}, 4, 6)] == [["y"], ["x"]]
    with pytest.raises(ValueError, match="stage_steps"):
        stage_schedule(rates, 4, 0, [1, 2])
    with pytest.raises(ValueError, match="max_steps"):
        stage_schedule(rates, 4, 2)


def _items(family: str, n: int) -> list[Item]:
    return [Item(family=family, source="test", question=f"{family} q{i}", answer="1", id=f"{family}-{i}") for i in range(n)]


def test_curriculum_items_follow_the_stages():
    items = _items("b", 3) + _items("h", 2) + _items("a", 4)
    stages = stage_schedule({"a": 1.0, "b": 0.5, "h": 0.6}, n_stages=2, total_steps=5,
                            cumulative=False)  # [b, h] x3, [a] x2
    order = curriculum_items(items, stages, prompts_per_step=2, seed=0)
    assert len(order) == 10
    assert [s for s, _ in order] == [1] * 6 + [2] * 4
    assert {it.family for s, it in order if s == 1} == {"b", "h"}
    assert {it.family for s, it in order if s == 2} == {"a"}
    fams = [it.family for s, it in order if s == 1]
    assert fams == ["b", "h"] * 3  # round-robin over the stage's families
    assert curriculum_items(items, stages, 2, seed=0) == order  # deterministic
    cumulative = stage_schedule({"a": 1.0, "b": 0.5, "h": 0.6}, n_stages=2, total_steps=5)
    later = [it.family for s, it in curriculum_items(items, cumulative, 3, seed=0) if s == 2]
    assert later[0] == "a" and set(later) == {"a", "b", "h"}  # the newest family first, then the earlier ones


def test_exclude_settled_leaves_out_families_always_or_never_solved():
    rates = {"solved": 1.0, "hopeless": 0.0, "half": 0.5, "some": 0.25}
    stages = stage_schedule(rates, n_stages=1, total_steps=4, exclude_settled=True)
    assert stages[0].pool == ["half", "some"]
    assert stage_schedule(rates, 1, 4)[0].pool == ["half", "some", "solved", "hopeless"]  # off: every family
    # every family settled: GRPO still has prompts (all of them), not an empty schedule
    assert stage_schedule({"a": 1.0, "b": 0.0}, 1, 4, exclude_settled=True)[0].pool == ["a", "b"]


@pytest.mark.parametrize("open_families", [2, 3, 5])
def test_prompts_per_family_gives_every_step_the_same_family_mix(tmp_path, open_families):
    from r1ci_core.config import RecipeError, load_recipe
    from r1ci_core.grpo import GrpoOptions, grpo_rows
    from r1ci_core.rewards import recipe_rewards

    rates = {f"f{i}": 0.5 for i in range(open_families)} | {"solved": 1.0}
    stages = stage_schedule(rates, n_stages=1, total_steps=4, exclude_settled=True)
    recipe = load_recipe("tiny", {"curriculum.prompts_per_family": 1, "grpo.num_generations": 4,
                                  "grpo.per_device_train_batch_size": 2, "grpo.gradient_accumulation_steps": 8})
    opts = GrpoOptions.from_recipe(recipe, tmp_path, recipe_rewards(recipe), stages)
    # TRL's own config: a step is open_families prompts x 4 completions, in micro-batches of 2
    assert opts.args.gradient_accumulation_steps == open_families * 4 // 2
    per_step = opts.args.per_device_train_batch_size * opts.args.gradient_accumulation_steps // 4
    items = [Item(family=f, source="rg", question=f"{f} q{k}", answer="1", id=f"{f}-{k}") for f in rates
             for k in range(3)]
    fams = [r["item_id"].split("-")[0] for r in grpo_rows(items, stages, per_step, seed=0)]
    steps = [sorted(fams[i:i + per_step]) for i in range(0, len(fams), per_step)]
    assert len(steps) == 4 and all(s == sorted(rates)[:open_families] for s in steps), steps
    odd = load_recipe("tiny", {"curriculum.prompts_per_family": 1, "grpo.num_generations": 3,
                               "grpo.per_device_train_batch_size": 2})
    with pytest.raises(RecipeError, match="not a multiple of grpo.per_device_train_batch_size 2"):
        GrpoOptions.from_recipe(odd, tmp_path, recipe_rewards(odd), stage_schedule({"a": .5}, 1, 2))


def test_pass_rates_skip_infra_errors_and_difficulty_items():
    def traj(family, score, infra=False):
        ex = [Execution(code="x", infra_error="down")] if infra else []
        return Trajectory(item_id="i", family=family, messages=[], score=None if infra else score, executions=ex)

    rates = pass_rates([traj("a", 1.0), traj("a", 0.0), traj("a", None, infra=True), traj("b", 1.0)])
    assert rates["a"].pass_rate == 0.5 and rates["a"].n_samples == 2 and rates["a"].n_infra_errors == 1
    assert rates["b"].potential == 0.0
    assert FamilyDifficulty("c", 0, 0).pass_rate == 0.0
    chosen = difficulty_items(_items("a", 10) + _items("b", 2), questions_per_family=3, seed=1)
    assert [it.family for it in chosen] == ["a"] * 3 + ["b"] * 2
    assert chosen == difficulty_items(_items("a", 10) + _items("b", 2), questions_per_family=3, seed=1)


def test_rewards_named_weighted_and_none_for_infra_errors():
    names, weights = reward_spec({"correctness": 1.0, "format": 0.5})
    assert names == ["correctness", "format"] and weights == [1.0, 0.5]
    assert reward_spec(None)[0] == ["correctness", "format", "turn_penalty"]
    funcs = get_reward_funcs(["correctness", "format", "turn_penalty"], RolloutConfig(max_turns=7))
    assert [f.__name__ for f in funcs] == ["correctness", "format", "turn_penalty"]
    kw = {"completions": [None] * 4, "score": [1.0, 0.0, None, 0.0], "parseable": [True, False, None, True],
          "infra_error": [False, False, True, False], "n_turns": [2, 2, 1, 7]}
    assert funcs[0](**kw) == [1.0, 0.0, None, 0.0]
    assert funcs[1](**kw) == [0.1, -0.1, None, 0.1]
    assert funcs[2](**kw) == [0.0, 0.0, None, -0.1]
    totals = total_rewards(funcs, [1.0, 1.0, 1.0], **kw)
    assert totals[0] == pytest.approx(1.1) and totals[2] is None and totals[3] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="unknown rewards"):
        get_reward_funcs(["nope"], RolloutConfig())


def test_reward_pass_means_and_trends():
    from r1ci_core.grpo import pass_means, reward_trend, within_stage_trend

    rewards = [0.1, 0.3, 0.2, 0.4, 0.5, 0.6, 0.9]
    assert pass_means(rewards, 3) == pytest.approx([0.2, 0.5])  # the incomplete last pass is left out
    assert pass_means(rewards, 8) == [] and pass_means([], 2) == []
    assert reward_trend([0.0, 0.1, 0.2]) == pytest.approx(0.1) and reward_trend([0.3, 0.2, 0.1]) < 0
    # two stages, each rising by 0.1 per step, the second starting lower: pooled slope 0.1, overall falling
    assert within_stage_trend([0.8, 0.9, 1.0, 0.1, 0.2, 0.3], [1, 1, 1, 2, 2, 2]) == pytest.approx(0.1)
    assert reward_trend([0.8, 0.9, 1.0, 0.1, 0.2, 0.3]) < 0
