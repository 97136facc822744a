"""BIG-Bench-Hard families: generation, verifiers, reference programs, official files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from r1ci_core.tasks import clear_registry_cache, load_bbh, registry, unavailable_families
from r1ci_core.tasks.base import extract_answer, run_programs
from r1ci_core.tasks.bbh import BBH_TASKS, OFFICIAL_ONLY, PROCEDURAL, NoReferenceSolution, bbh_families
from r1ci_core.tasks.bbh.common import LETTERS, parse_options

FIXTURES = Path(__file__).parent / "fixtures" / "bbh"
FAMILIES = {cls.task: cls() for cls in PROCEDURAL}
N = 20


def test_all_27_bbh_tasks_are_families():
    assert len(BBH_TASKS) == 27
    names = {f.name for f in bbh_families(None)}
    assert names == {f"bbh_{t}" for t in BBH_TASKS}
    assert len(PROCEDURAL) == 20 and len(OFFICIAL_ONLY) == 7


def _wrong_answer(family, item) -> str:
    kind = family.answer_kind
    if kind == "choice":
        letters = [L for L, _ in parse_options(item.question)] or list(LETTERS[:4])
        return f"({next(L for L in letters if f'({L})' != item.answer)})"
    if kind == "label":
        return next(lab for lab in family.labels if lab.lower() != item.answer.lower())
    if kind == "numeric":
        return str(float(item.answer) + 1)
    return item.answer + " ]" if family.task == "dyck_languages" else "zzz " + item.answer


@pytest.mark.parametrize("task", sorted(FAMILIES))
def test_generation_is_deterministic(task):
    family = FAMILIES[task]
    a, b = family.generate(8, seed=11), family.generate(8, seed=11)
    assert [(i.id, i.question, i.answer) for i in a] == [(i.id, i.question, i.answer) for i in b]
    assert len({i.id for i in a}) == 8
    assert {i.id for i in family.generate(8, seed=12)} != {i.id for i in a}
    for item in a:
        assert item.family == f"bbh_{task}" and item.source == "bbh"
        json.dumps(item.to_row())
        assert "<<<" in item.question


@pytest.mark.parametrize("task", sorted(FAMILIES))
def test_reference_programs_solve_generated_items(task):
    family = FAMILIES[task]
    items = family.generate(N, seed=5)
    assert len(items) == N
    outputs = run_programs([family.reference_solution(it) for it in items], timeout_s=120)
    scores = [family.score(extract_answer(out), it) for out, it in zip(outputs, items, strict=True)]
    failed = [(it.question[-200:], it.answer, out) for out, it, s in zip(outputs, items, scores, strict=True)
              if s != 1.0]
    assert not failed, failed[:2]


@pytest.mark.parametrize("task", sorted(FAMILIES))
def test_verifier_gold_wrong_and_unparseable(task):
    family = FAMILIES[task]
    for item in family.generate(5, seed=9):
        assert family.check(item.answer, item).score == 1.0
        wrong = family.check(_wrong_answer(family, item), item)
        assert wrong.score == 0.0 and wrong.parseable
        none = family.check(None, item)
        assert none.score == 0.0 and not none.parseable
        assert not family.check("   ", item).parseable
        if family.answer_kind in ("choice", "label", "numeric"):
            garbage = family.check("I am not sure at all", item)
            assert garbage.score == 0.0 and not garbage.parseable


def test_choice_accepts_letter_forms_and_option_text():
    family = FAMILIES["tracking_shuffled_objects_three_objects"]
    item = family.generate(1, seed=0)[0]
    letter = item.answer.strip("()")
    text = dict(parse_options(item.question))[letter]
    for answer in (letter, f"({letter})", f"({letter}) {text}", text, text.upper(), f"{letter})"):
        assert family.score(answer, item) == 1.0, answer


def test_numeric_tolerance_and_label_case():
    fam = FAMILIES["multistep_arithmetic_two"]
    item = fam.generate(1, seed=1)[0]
    gold = float(item.answer)
    assert fam.score(str(gold * (1 + 5e-4) if gold else 0.0), item) == 1.0
    assert fam.score(str(gold + 10), item) == 0.0
    nav = FAMILIES["navigate"]
    item = nav.generate(1, seed=1)[0]
    assert nav.score(item.answer.lower(), item) == 1.0


def test_load_bbh_official_layout():
    items = load_bbh(FIXTURES)
    tasks = {p.stem for p in FIXTURES.glob("*.json")}
    assert {i.family for i in items} == {f"bbh_{t}" for t in tasks}
    fams = registry(bbh_dir=FIXTURES)
    for item in items:
        assert item.source == "bbh" and item.metadata["official"]
        assert fams[item.family].score(item.answer, item) == 1.0
    raw = json.loads((FIXTURES / "boolean_expressions.json").read_text())["examples"]
    first = [i for i in items if i.family == "bbh_boolean_expressions"][0]
    assert first.answer == raw[0]["target"] and first.question.startswith(raw[0]["input"])


def test_reference_programs_solve_parseable_official_items():
    fams = registry(bbh_dir=FIXTURES)
    solvable = [(fams[i.family], i) for i in load_bbh(FIXTURES)
                if fams[i.family].has_reference_solution and fams[i.family].can_solve(i)]
    assert {f.task for f, _ in solvable} >= {"boolean_expressions", "multistep_arithmetic_two", "word_sorting",
                                             "dyck_languages", "navigate", "web_of_lies", "geometric_shapes",
                                             "tracking_shuffled_objects_three_objects", "temporal_sequences",
                                             "object_counting", "hyperbaton"}
    outputs = run_programs([f.reference_solution(i) for f, i in solvable])
    for (family, item), out in zip(solvable, outputs, strict=True):
        assert family.score(extract_answer(out), item) == 1.0, (item.question, out)
    # an official question a procedural family cannot parse says so instead of faking a program
    date_item = next(i for i in load_bbh(FIXTURES) if i.family == "bbh_date_understanding")
    assert not fams["bbh_date_understanding"].can_solve(date_item)
    with pytest.raises(NoReferenceSolution):
        fams["bbh_date_understanding"].reference_solution(date_item)


def test_load_bbh_subset_and_missing_folder(tmp_path):
    assert {i.family for i in load_bbh(FIXTURES, tasks=["snarks"])} == {"bbh_snarks"}
    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError, match="nope"):
        load_bbh(missing)
    with pytest.raises(FileNotFoundError, match="R1CI_BBH_DIR"):
        registry(bbh_dir=missing)


def test_load_bbh_malformed_file(tmp_path):
    (tmp_path / "snarks.json").write_text(json.dumps({"examples": [{"input": "x"}]}))
    with pytest.raises(ValueError, match="snarks.json"):
        load_bbh(tmp_path)


def test_official_only_families_unavailable_without_folder(monkeypatch):
    monkeypatch.delenv("R1CI_BBH_DIR", raising=False)
    clear_registry_cache()
    fams = registry()
    everything = registry(include_unavailable=True)
    hints = unavailable_families()
    for task in OFFICIAL_ONLY:
        name = f"bbh_{task}"
        assert name not in fams and name in everything
        assert not everything[name].available and "R1CI_BBH_DIR" in hints[name]
        assert everything[name].has_reference_solution is False
        with pytest.raises(RuntimeError, match="BIG-Bench-Hard"):
            everything[name].generate(1, seed=0)


def test_official_only_families_available_with_folder(monkeypatch):
    monkeypatch.setenv("R1CI_BBH_DIR", str(FIXTURES))
    clear_registry_cache()
    try:
        fams = registry()
        snarks = fams["bbh_snarks"]
        assert snarks.available and snarks.source == "bbh"
        items = snarks.generate(5, seed=0)
        assert len(items) == 1 and snarks.score(items[0].answer, items[0]) == 1.0
        assert snarks.score("A", items[0]) == 0.0
        with pytest.raises(NoReferenceSolution):
            snarks.reference_solution(items[0])
        assert fams["bbh_causal_judgement"].generate(3, seed=1)[0].answer == "No"
        # a family whose file the folder lacks stays unavailable, with a hint naming the file
        assert "bbh_movie_recommendation" not in fams
        assert "movie_recommendation.json" in unavailable_families()["bbh_movie_recommendation"]
    finally:
        monkeypatch.delenv("R1CI_BBH_DIR")
        clear_registry_cache()


def test_official_targets_given_as_split_option_text(tmp_path):
    """A few official targets are an option's text, not its letter: the option held commas and the official
    file split it into consecutive options ("(A) Monsters" "(B) Inc", target "Monsters, Inc"). Shapes copied
    by hand from movie_recommendation and ruin_names; every target must score 1.0 against itself."""
    movie = ("Find a movie similar to Shrek, Aladdin:\nOptions:\n(A) Monsters\n(B) Inc\n(C) Children of the Night\n"
             "(D) Town & Country")
    ruin = ("Which of the following is a humorous edit of this artist or movie name: 'rita, sue and bob too'?\n"
            "Options:\n(A) rita\n(B) sue and bob too\n(C) rita\n(D) sue and bob poo\n(E) rita,y sue and bob too")
    (tmp_path / "movie_recommendation.json").write_text(json.dumps({"examples": [
        {"input": movie, "target": "Monsters, Inc"}, {"input": movie.replace("Shrek", "Heat"), "target": "(C)"}]}))
    (tmp_path / "ruin_names.json").write_text(json.dumps({"examples": [
        {"input": ruin, "target": "rita, sue and bob poo"}]}))
    fams = registry(bbh_dir=tmp_path)
    items = load_bbh(tmp_path)
    assert len(items) == 3
    for item in items:
        assert fams[item.family].score(item.answer, item) == 1.0, item.answer
    monsters, heat, rita = items
    fam = fams["bbh_movie_recommendation"]
    for answer in ("(A)", "A", "(A) Monsters", "Monsters, Inc", "monsters, inc."):
        assert fam.score(answer, monsters) == 1.0, answer
    for answer in ("(B)", "(C)", "Inc", "Children of the Night"):
        assert fam.score(answer, monsters) == 0.0, answer
    assert fam.score("(C)", heat) == 1.0 and fam.score("(A)", heat) == 0.0
    # the run starts at the second "rita" (C), not at the first (A) nor the third (E)
    assert fams["bbh_ruin_names"].score("(C)", rita) == 1.0
    for answer in ("(A)", "(D)", "(E)", "rita"):
        assert fams["bbh_ruin_names"].score(answer, rita) == 0.0, answer
