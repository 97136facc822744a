"""Reasoning-Gym families: one per dataset, generated and scored by reasoning_gym itself."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from r1ci_core.tasks import registry
from r1ci_core.tasks.base import Item, extract_answer, run_programs
from r1ci_core.tasks.reasoning_gym import RG_DATASETS, SKIPPED, ReasoningGymTask, rg_families

FAMILIES = {f.dataset: f for f in rg_families()}
N = 20


def test_one_family_per_registered_dataset():
    from reasoning_gym.factory import DATASETS

    assert set(RG_DATASETS) == set(DATASETS)
    assert set(FAMILIES) == set(DATASETS) - set(SKIPPED)
    assert len(FAMILIES) >= 84
    reg = registry()
    for dataset in FAMILIES:
        fam = reg[f"rg_{dataset}"]
        assert fam.source == "reasoning_gym" and fam.split in ("train", "test")
    for dataset, reason in SKIPPED.items():
        assert f"rg_{dataset}" not in reg and reason


@pytest.mark.parametrize("dataset", sorted(FAMILIES))
def test_reference_programs_score_full_marks(dataset):
    family = FAMILIES[dataset]
    items = family.generate(N, seed=5)
    assert len(items) == N and len({i.id for i in items}) == N
    for item in items:
        assert item.family == f"rg_{dataset}" and item.source == "reasoning_gym"
        assert item.question.rstrip().endswith("<<<answer>>>.")
        row = item.to_row()  # metadata is JSON-serialisable
        assert Item.from_row(json.loads(json.dumps(row))).metadata == item.metadata
    outputs = run_programs([family.reference_solution(it) for it in items], timeout_s=180)
    failed = [(it.answer[:100], out) for it, out in zip(items, outputs, strict=True)
              if family.score(extract_answer(out), it) != 1.0]
    assert not failed, failed[:2]


@pytest.mark.parametrize("dataset", sorted(FAMILIES))
def test_generation_deterministic_and_verifier(dataset):
    family = FAMILIES[dataset]
    a, b = family.generate(3, seed=17), family.generate(3, seed=17)
    assert [(i.id, i.answer) for i in a] == [(i.id, i.answer) for i in b]
    item = a[0]
    assert family.check(item.answer, item).score == 1.0
    wrong = family.check("zzqx certainly wrong 12345", item)
    # the dataset's own scorer: 0, or a small format credit (<= 0.25) for some datasets
    assert wrong.score <= 0.25
    for empty in (None, "", "   "):
        verdict = family.check(empty, item)
        assert verdict.score == 0.0 and not verdict.parseable


def test_trivial_references_are_flagged():
    derived = {d for d, f in FAMILIES.items() if not f.trivial_reference}
    assert {"basic_arithmetic", "gcd", "graph_color", "maze", "n_queens"} <= derived
    item = FAMILIES["aiw"].generate(1, seed=0)[0]
    assert FAMILIES["aiw"].trivial_reference and repr(item.answer) in FAMILIES["aiw"].reference_solution(item)


def test_broken_upstream_scorer_is_replaced():
    # reasoning_gym 0.1.25 scores any non-empty text 1.0 on game_of_life_halting
    family = FAMILIES["game_of_life_halting"]
    item = family.generate(1, seed=3)[0]
    other = "True" if item.answer == "False" else "False"
    assert family.score(other, item) == 0.0 and family.score(item.answer, item) == 1.0


def test_scorer_exception_is_unparseable():
    family = ReasoningGymTask("prime_factorization")
    item = family.generate(1, seed=0)[0]
    verdict = family.check("not × a × number", item)
    assert verdict.score < 1.0


def test_registry_does_not_import_reasoning_gym():
    code = ("import sys, r1ci_core.tasks as t; r = t.registry(); assert any(n.startswith('rg_') for n in r); "
            "print('reasoning_gym' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
