"""Shared helpers of the teacher tests (importable from the tests and from their subprocess scripts)."""

from __future__ import annotations

CORPUS_FAMILIES = ["number_multiply", "bbh_boolean_expressions", "letters"]


def small_recipe(**overrides):
    from r1ci_core.config import load_recipe

    base = {"tasks.families": CORPUS_FAMILIES, "tasks.n_sft": 12, "tasks.n_grpo": 2, "tasks.n_test_seen": 4,
            "tasks.n_test_unseen": 4, "tasks.split_overrides": {f: "train" for f in CORPUS_FAMILIES},
            # pinned here so the tiny recipe's tuning does not move these tests' expected counts
            "teacher.recovery_share": 0.1, "teacher.text_only_share": 0.1, "filter.cap_per_family": 70,
            "filter.max_tokens": 2048}
    return load_recipe("tiny", {**base, **overrides})
