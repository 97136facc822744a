"""A task family set in the recipe (`tasks.custom_tasks`) is scored in evaluation (issue 21, defect 3: the
evaluation's verifiers came from a bare `registry()` that saw only the environment variables)."""

from __future__ import annotations

import json

import duckdb

from r1ci_core.config import load_recipe
from r1ci_core.evaluation import run_evaluation
from r1ci_core.stages import StageContext
from r1ci_core.tasks import registry

ROWS = [{"family": "h8_quiz", "question": f"What is {a} * {b}?", "answer": str(a * b), "scorer": "numeric"}
        for a, b in ((6, 7), (3, 9), (12, 4))]


def custom_recipe(tmp_path, **overrides):
    path = tmp_path / "h8_quiz.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return load_recipe("tiny", {"tasks.custom_tasks": [str(path)], "tasks.families": ["h8_quiz"],
                                "rollout.max_new_tokens": 48, "rollout.max_turns": 2, "eval.modes": ["autonomous"],
                                **overrides})


def test_a_recipe_custom_family_is_scored_in_evaluation(eval_env, tiny_checkpoints, sandbox, tmp_path, monkeypatch):
    monkeypatch.delenv("R1CI_CUSTOM_TASKS", raising=False)
    recipe = custom_recipe(tmp_path, **{"eval.checkpoints": ["base"]})
    ctx = StageContext(recipe=recipe, root=eval_env / "data")
    assert "h8_quiz" in ctx.families and "h8_quiz" not in registry()  # the recipe's, not the environment's
    items = ctx.families["h8_quiz"].generate(3, seed=0)
    for it in items:
        it.pool = "test_unseen"
    result = run_evaluation(ctx, items, {"base": tiny_checkpoints["base"]}, sandbox)
    with duckdb.connect(str(result["db_path"]), read_only=True) as db:
        scores = db.execute("SELECT score FROM eval_samples WHERE run_id IN (SELECT unnest(?))",
                            [list(result["run_ids"])]).fetchall()
    assert len(scores) == 3 and all(s is not None for (s,) in scores), scores
