"""The reference-solver teacher: stable plain format, variants at their configured shares, real failing
first attempts, text-only answers for easy families, skipped families counted, provenance everywhere."""

from __future__ import annotations

from collections import Counter

import pytest

from r1ci_core.chat import EXEC_PREFIX, PROMPT_VERSION, SYSTEM_PROMPT
from r1ci_core.config import TeacherConfig
from r1ci_core.rollout.engine import format_output
from r1ci_core.rollout.tiny import sample_items
from r1ci_core.tasks import Item, extract_answer, registry
from r1ci_core.teachers import (
    EASY_FAMILIES,
    REASONING,
    RECOVERY_TEXT,
    ReferenceTeacher,
    failure_kind,
    reference_trajectories,
)

FAMILIES = registry()
PROVENANCE_KEYS = {"teacher", "model", "backend", "prompt_version", "sampling", "seed", "sample", "variant"}


@pytest.fixture(scope="module")
def many_items():
    """120 multiplication questions (not easy) and 120 boolean expressions (an easy family)."""
    return sample_items(240, families=("number_multiply", "bbh_boolean_expressions"), seed=1)


@pytest.fixture(scope="module")
def mixed(many_items, sandbox):
    stats = Counter()
    trajs = reference_trajectories(many_items, FAMILIES, sandbox, recovery_share=0.25, text_only_share=0.4,
                                   stats=stats)
    return trajs, stats


def test_plain_format_is_stable(sandbox):
    items = sample_items(6, families=("number_multiply", "letters"), seed=2)
    trajs = reference_trajectories(items, FAMILIES, sandbox, recovery_share=0.0, text_only_share=0.0)
    for item, t in zip(items, trajs, strict=True):
        code = FAMILIES[item.family].reference_solution(item)
        (execution,) = t.executions
        assert execution.code == code and execution.exit_code == 0 and f"<<<{item.answer}>>>" in execution.stdout
        roles = [m["role"] for m in t.messages]
        assert roles == ["system", "user", "assistant", "tool", "assistant"]
        assert t.messages[0]["content"] == SYSTEM_PROMPT and t.messages[1]["content"] == item.question
        reasoning, block = t.messages[2]["content"].split("\n", 1)
        assert reasoning in REASONING and block == f"```python\n{code}```"
        assert t.messages[3]["content"] == f"{EXEC_PREFIX}\n{execution.stdout.rstrip()}"
        assert t.messages[4]["content"] == f"The answer is <<<{item.answer}>>>."
        assert t.score == 1.0 and t.n_code_calls == 1 and t.n_turns == 2 and t.finish_reason == "answer"
        assert PROVENANCE_KEYS <= set(t.provenance) and t.provenance["variant"] == "plain"
        assert t.provenance["teacher"] == "reference" and t.provenance["prompt_version"] == PROMPT_VERSION


def test_variants_appear_at_their_configured_shares(mixed):
    trajs, stats = mixed
    share = {}
    for fam in ("number_multiply", "bbh_boolean_expressions"):
        per = Counter(t.provenance["variant"] for t in trajs if t.family == fam)
        share[fam] = {v: n / sum(per.values()) for v, n in per.items()}
    assert "bbh_boolean_expressions" in EASY_FAMILIES and "number_multiply" not in EASY_FAMILIES
    assert share["bbh_boolean_expressions"]["text_only"] == pytest.approx(0.4, abs=0.1)
    assert share["bbh_boolean_expressions"]["recovery"] == pytest.approx(0.25, abs=0.1)
    assert "text_only" not in share["number_multiply"]  # not an easy family
    assert share["number_multiply"]["recovery"] == pytest.approx(0.25, abs=0.1)
    assert stats["variant.plain"] + stats["variant.recovery"] + stats["variant.text_only"] == len(trajs)
    assert all(t.score == 1.0 for t in trajs)  # every variant ends correct


def test_defaults_keep_most_trajectories_plain(many_items, sandbox):
    cfg = TeacherConfig()
    teacher = ReferenceTeacher(cfg, FAMILIES, sandbox)
    rows, stats = teacher.generate(many_items)
    assert len(rows) == len(many_items)
    assert stats["variant.plain"] >= 0.75 * len(rows)
    assert stats["variant.recovery"] > 0 and stats["variant.text_only"] > 0


def test_recovery_trajectories_execute_a_failing_first_attempt(mixed):
    trajs, stats = mixed
    recovery = [t for t in trajs if t.provenance["variant"] == "recovery"]
    assert len(recovery) >= 30
    for t in recovery:
        item = Item(family=t.family, source="", question=t.messages[1]["content"], answer=t.final_answer)
        first, fixed = t.executions
        assert first.code != fixed.code
        assert failure_kind(first, FAMILIES[t.family], item) == t.provenance["failure"] is not None
        assert failure_kind(fixed, FAMILIES[t.family], item) is None
        # the conversation shows the real output of the failing attempt, then the fix
        assert [m["role"] for m in t.messages] == ["system", "user", "assistant", "tool", "assistant", "tool",
                                                   "assistant"]
        assert f"```python\n{first.code}```" in t.messages[2]["content"]
        shown = format_output(first, output_chars=1000, output_tokens=256)[0]
        assert t.messages[3]["content"] == f"{EXEC_PREFIX}\n{shown}"
        assert t.messages[4]["content"].startswith(RECOVERY_TEXT[t.provenance["failure"]])
        assert t.n_code_calls == 2 and t.score == 1.0
    kinds = Counter(t.provenance["failure"] for t in recovery)
    assert set(kinds) == {"error", "no_answer", "wrong_answer"}, kinds
    errors = [t for t in recovery if t.provenance["failure"] == "error"]
    assert all("Traceback" in t.executions[0].stderr and t.executions[0].exit_code != 0 for t in errors)
    wrong = [t for t in recovery if t.provenance["failure"] == "wrong_answer"]
    assert all(extract_answer(t.executions[0].stdout) != t.final_answer for t in wrong)


def test_recovery_kinds_can_be_chosen(many_items, sandbox):
    trajs = reference_trajectories(many_items[:60], FAMILIES, sandbox, recovery_share=1.0, text_only_share=0.0,
                                   recovery_kinds=["no_output"])
    assert {t.provenance["failure"] for t in trajs} == {"no_answer"}
    assert all(t.executions[0].stdout.strip() == "" for t in trajs)


def test_text_only_answers_only_for_easy_families(mixed, many_items, sandbox):
    trajs, _ = mixed
    text_only = [t for t in trajs if t.provenance["variant"] == "text_only"]
    for t in text_only:
        assert t.family in EASY_FAMILIES and t.n_code_calls == 0 and not t.executions
        assert [m["role"] for m in t.messages] == ["system", "user", "assistant"]
        assert "```" not in t.messages[2]["content"] and t.messages[2]["content"].endswith(
            f"The answer is <<<{t.final_answer}>>>.")
        assert t.score == 1.0
    # the easy families are configurable
    chosen = reference_trajectories(many_items[:40], FAMILIES, sandbox, recovery_share=0.0, text_only_share=1.0,
                                    text_only_families=["number_multiply"])
    assert {t.family for t in chosen if t.provenance["variant"] == "text_only"} == {"number_multiply"}


def test_samples_per_question_give_different_draws(sandbox):
    items = sample_items(20, families=("bbh_boolean_expressions",), seed=4)
    trajs = reference_trajectories(items, FAMILIES, sandbox, samples=3, recovery_share=0.3, text_only_share=0.3)
    assert len(trajs) == 60
    assert [t.provenance["sample"] for t in trajs[:3]] == [0, 1, 2] and trajs[0].item_id == trajs[2].item_id
    per_item = Counter(t.item_id for t in trajs)
    assert set(per_item.values()) == {3}
    assert len({(t.item_id, t.provenance["variant"]) for t in trajs}) > 20  # samples of a question vary


class _NoProgram:
    name, source, has_reference_solution, trivial_reference = "no_program", "custom", False, False


class _Broken:
    name, source, has_reference_solution, trivial_reference = "broken", "custom", True, False

    def reference_solution(self, item):
        raise RuntimeError("cannot write this one")

    def check(self, answer, item):
        raise AssertionError("not reached")


def test_skipped_and_failing_families_are_counted(sandbox):
    date_item = Item(family="bbh_date_understanding", source="bbh", answer="(A)",
                     question="Yesterday was a day of some kind. What is the date today?\nOptions:\n(A) 01/01/2000")
    aiw = FAMILIES["rg_aiw"].generate(2, seed=0)
    mult = sample_items(3, families=("number_multiply",), seed=0)
    stub = [Item(family="no_program", source="custom", question="q1", answer="1"),
            Item(family="broken", source="custom", question="q2", answer="2"),
            Item(family="nowhere", source="custom", question="q3", answer="3")]
    families = {**FAMILIES, "no_program": _NoProgram(), "broken": _Broken()}
    items = [date_item, *aiw, *mult, *stub]

    teacher = ReferenceTeacher(TeacherConfig(), families, sandbox)
    todo, skipped = teacher.select(items)
    assert skipped == {"cannot_solve": 1, "trivial_reference": 2, "no_reference_solution": 1, "unknown_family": 1}
    assert [i.family for i in todo] == ["number_multiply"] * 3 + ["broken"]
    rows, stats = teacher.generate(todo)
    assert len(rows) == 3 and stats["reference_error"] == 1

    as_text = ReferenceTeacher(TeacherConfig(trivial_reference="text_only"), families, sandbox)
    todo, skipped = as_text.select(aiw)
    assert not skipped
    rows, stats = as_text.generate(todo)
    assert stats == {"variant.text_only": 2}


def test_teacher_stage_records_provenance_and_skips(corpus_stage, sandbox):
    """Every trajectory and the MLflow run carry the provenance; skipped questions are counted."""
    import json

    import mlflow
    from datasets import load_from_disk
    from teacher_helpers import CORPUS_FAMILIES, small_recipe

    from r1ci_core.stages import StageContext, task_corpus, teacher_trajectories

    ctx, _ = corpus_stage
    recipe = small_recipe(**{"tasks.families": [*CORPUS_FAMILIES, "rg_aiw"], "tasks.split_overrides": {
        f: "train" for f in [*CORPUS_FAMILIES, "rg_aiw"]}})
    ctx = StageContext(recipe=recipe, root=ctx.root)
    corpus = task_corpus(ctx)
    result = teacher_trajectories(ctx, corpus, sandbox)
    assert result.metadata["skipped"] == {"trivial_reference": 12}
    assert result.metadata["n_trajectories"] == 36 and result.metadata["n_questions"] == 48
    rows = list(load_from_disk(result.path))
    for row in rows:
        prov = json.loads(row["provenance"])
        assert PROVENANCE_KEYS <= set(prov) and prov["backend"] == "reference_solution" and prov["seed"] == 0
    run = mlflow.get_run(result.mlflow_run_id)
    params = run.data.params
    assert params["provenance.teacher"] == "reference" and params["provenance.prompt_version"] == PROMPT_VERSION
    assert params["provenance.sampling.recovery_share"] == "0.1" and params["teacher.kind"] == "reference"
    assert run.data.metrics["skipped.trivial_reference"] == 12
    assert result.extra["corpus_path"] == corpus.path
