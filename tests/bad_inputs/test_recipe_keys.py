"""The recipe's `sft:` / `grpo:` sections: TRL fields plus r1ci's own keys, both accepted by preflight on every
shipped recipe; a misspelt key is refused in one line that names the fix."""

from __future__ import annotations

import pytest

from r1ci_core.config import RecipeError, available_recipes, load_recipe
from r1ci_core.preflight import check_training_sections


@pytest.mark.parametrize("name", available_recipes())
def test_every_shipped_recipe_passes_the_training_section_check(name: str) -> None:
    check_training_sections(load_recipe(name))


@pytest.mark.parametrize("section,key,fix,cls", [
    ("sft", "num_procesess", "num_processes", "SFTConfig"),
    ("sft", "lerning_rate", "learning_rate", "SFTConfig"),
    ("grpo", "filter_uniform_group", "filter_uniform_groups", "GRPOConfig"),
])
def test_a_misspelt_training_key_is_refused_naming_the_fix(section: str, key: str, fix: str, cls: str) -> None:
    recipe = load_recipe("tiny").with_overrides({f"{section}.{key}": 2})
    with pytest.raises(RecipeError) as err:
        check_training_sections(recipe)
    msg = str(err.value)
    assert f"recipe {section}: unknown key {key!r}" in msg and f"did you mean {fix!r}" in msg and cls in msg, msg
    assert "\n" not in msg


@pytest.mark.parametrize("override,needle", [
    ({"sft.num_processes": 0}, "sft.num_processes"),
    ({"sft.varlen_attention": "sometimes"}, "sft.varlen_attention"),
    ({"grpo.filter_uniform_groups": "maybe"}, "grpo.filter_uniform_groups"),
])
def test_r1ci_training_keys_are_typed_at_load(override: dict, needle: str) -> None:
    with pytest.raises(RecipeError, match=f"{needle}.*fix the recipe key"):
        load_recipe("tiny").with_overrides(override)


def test_r1ci_keys_are_fields_and_trl_keys_pass_through() -> None:
    recipe = load_recipe("qwen2.5-7b")
    assert recipe.sft.num_processes == 1 and recipe.sft.accelerate_config == "zero3"
    assert "num_processes" not in recipe.sft.trl and recipe.sft.trl["learning_rate"] == 1e-5
    assert recipe.grpo.rewards == {"correctness": 1.0, "format": 1.0, "turn_penalty": 1.0}
    assert "rewards" not in recipe.grpo.trl and recipe.grpo.trl["num_generations"] == 5
