"""The SFT filter: one test per rule, then the `sft_dataset` stage's counts, MLflow metrics and inputs."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from r1ci_core.config import FilterConfig
from r1ci_core.filtering import REASONS, Decontaminator, filter_trajectories, tokens
from r1ci_core.rollout.tiny import sample_items
from r1ci_core.tasks import registry
from r1ci_core.teachers import REASONING, reference_trajectories

CFG = FilterConfig()


@pytest.fixture(scope="module")
def trajs(sandbox):
    """Plain reference trajectories of 8 multiplication and 8 boolean-expression questions (all correct)."""
    items = sample_items(16, families=("number_multiply", "bbh_boolean_expressions"), seed=3)
    out = reference_trajectories(items, registry(), sandbox, recovery_share=0.0, text_only_share=0.0)
    assert all(t.score == 1.0 for t in out)
    return out


@pytest.fixture(scope="module")
def tokenizer():
    from r1ci_core.models import train_tiny_tokenizer

    items = sample_items(16, families=("number_multiply", "bbh_boolean_expressions"), seed=3)
    return train_tiny_tokenizer([i.question for i in items] * 4 + list(REASONING), 512)


def _copy(trajs):
    return [copy.deepcopy(t) for t in trajs]


def test_keeps_correct_trajectories_and_drops_nothing_else(trajs, tokenizer):
    kept, dropped = filter_trajectories(_copy(trajs), CFG, tokenizer, test_questions=["What is 1+1?"])
    assert len(kept) == len(trajs) and dropped == {}


def test_drops_infra_errors(trajs):
    batch = _copy(trajs)
    batch[0].executions[0].infra_error = "sandbox worker died"
    batch[0].score = None
    kept, dropped = filter_trajectories(batch, CFG)
    assert dropped == {"infra_error": 1} and batch[0] not in kept


def test_drops_incorrect_and_unscored(trajs):
    batch = _copy(trajs)
    batch[1].score, batch[1].final_answer = 0.0, "wrong"
    batch[2].score = None  # unverified is not verified-correct
    batch[3].score = 0.5  # partial credit is not correct either
    kept, dropped = filter_trajectories(batch, CFG)
    assert dropped == {"incorrect": 3} and len(kept) == len(batch) - 3


def test_drops_questions_overlapping_the_test_pools(trajs):
    batch = _copy(trajs)
    test_pool = [batch[0].messages[1]["content"], batch[9].messages[1]["content"]]
    # a question that shares a long passage (>= 13 tokens) with a test question, worded differently
    words = "apple banana cherry date elder fig grape honeydew kiwi lemon mango nectarine olive"
    test_pool.append(f"Sort the following words alphabetically: List: {words}\n\nGive your final answer.")
    reworded = copy.deepcopy(batch[4])
    reworded.messages[1]["content"] = f"Put these words in order: {words}. Answer inside <<< >>>."
    reworded.item_id = "reworded"
    kept, dropped = filter_trajectories(batch + [reworded], CFG, test_questions=test_pool)
    assert dropped == {"contaminated": 3}
    assert {t.item_id for t in kept} == {t.item_id for t in batch} - {batch[0].item_id, batch[9].item_id}
    # the family's template, shared by every question, is not contamination
    d = Decontaminator(test_pool, other_questions=[t.messages[1]["content"] for t in batch])
    assert batch[2].family == "number_multiply" and not d.contaminated(batch[2].messages[1]["content"])
    (span,) = d.content_spans(tokens(batch[2].messages[1]["content"]))  # template cut out, content kept
    assert span[:5] == ["what", "is", "the", "result", "of"] and "return" not in span
    # the rule can be switched off
    assert len(filter_trajectories(batch, CFG.model_copy(update={"decontaminate": False}),
                                   test_questions=test_pool)[0]) == len(batch)


def test_drops_exact_duplicates(trajs):
    batch = _copy(trajs) + _copy(trajs[:3])
    kept, dropped = filter_trajectories(batch, CFG)
    assert dropped == {"duplicate": 3} and len(kept) == len(trajs)


def test_drops_near_duplicates_of_the_same_question(trajs):
    from r1ci_core.filtering import assistant_shingles, jaccard

    batch = _copy(trajs)
    twin = copy.deepcopy(batch[0])  # same question, same program and answer, another reasoning line
    first = twin.messages[2]["content"].split("\n", 1)
    twin.messages[2]["content"] = next(r for r in REASONING if r != first[0]) + "\n" + first[1]
    twin.provenance = {**twin.provenance, "sample": 1}
    edited = copy.deepcopy(batch[2])  # same question, the program edited a little (a comment): similar text
    edited.messages[2]["content"] = edited.messages[2]["content"].replace("\n```", "  # done\n```")
    edited.executions[0].code = edited.executions[0].code.rstrip("\n") + "  # done\n"
    assert jaccard(assistant_shingles(edited), assistant_shingles(batch[2])) >= CFG.near_duplicate
    other = copy.deepcopy(batch[4])  # same question, a genuinely different solution: kept
    other.messages[2]["content"] = (
        "Multiplying is easy to get wrong by hand; I will check it step by step with a loop.\n```python\n"
        "total = 0\nfor x in range(3):\n    total += x\nprint(f'<<<{total}>>>')\n```")
    other.executions[0].code = "total = 0\nfor x in range(3):\n    total += x\nprint(f'<<<{total}>>>')\n"
    kept, dropped = filter_trajectories(batch + [twin, edited, other], CFG)
    assert dropped == {"near_duplicate": 2} and other in kept and twin not in kept and edited not in kept
    # the same program for another question is no duplicate
    moved = copy.deepcopy(batch[0])
    moved.messages[1]["content"] = batch[2].messages[1]["content"]
    assert filter_trajectories(batch + [moved], CFG)[1] == {}
    # a threshold of 1.0 still drops the same program, no longer the edited one
    kept, dropped = filter_trajectories(batch + [twin, edited], CFG.model_copy(update={"near_duplicate": 1.0}))
    assert edited in kept and twin not in kept


def test_drops_too_long_trajectories(trajs, tokenizer):
    from r1ci_core.filtering import n_tokens

    batch = _copy(trajs)
    longest = max(n_tokens(tokenizer, t.messages) for t in batch)
    batch[5].messages[3]["content"] += "\n" + "x = 1234567 " * 200  # a huge interpreter output
    kept, dropped = filter_trajectories(batch, CFG.model_copy(update={"max_tokens": longest}), tokenizer)
    assert dropped == {"too_long": 1} and batch[5] not in kept


def test_caps_each_family_spreading_over_questions(trajs, sandbox):
    batch = _copy(trajs)
    items = sample_items(16, families=("number_multiply", "bbh_boolean_expressions"), seed=3)
    seconds = reference_trajectories(items, registry(), sandbox, text_only_share=1.0, recovery_share=0.0,
                                     text_only_families=["number_multiply", "bbh_boolean_expressions"])
    for t in seconds:  # a second, different (text-only) sample of every question
        t.provenance = {**t.provenance, "sample": 1}
    cfg = CFG.model_copy(update={"cap_per_family": 5})
    kept, dropped = filter_trajectories(batch + seconds, cfg)
    per_family = {}
    for t in kept:
        per_family.setdefault(t.family, []).append(t.item_id)
    assert {f: len(ids) for f, ids in per_family.items()} == {"number_multiply": 5, "bbh_boolean_expressions": 5}
    assert all(len(set(ids)) == 5 for ids in per_family.values())  # first samples of 5 questions, no seconds
    assert dropped == {"family_cap": 2 * len(trajs) - 10}


def test_balances_code_and_text_only(sandbox, trajs):
    items = sample_items(8, families=("bbh_boolean_expressions",), seed=11)
    text_only = reference_trajectories(items, registry(), sandbox, recovery_share=0.0, text_only_share=1.0)
    assert all(t.n_code_calls == 0 for t in text_only)
    batch = _copy(trajs) + text_only  # 16 code-using, 8 text-only
    assert filter_trajectories(batch, CFG)[1] == {}  # off by default
    kept, dropped = filter_trajectories(batch, CFG.model_copy(update={"code_share": 0.5}))
    assert sum(t.n_code_calls > 0 for t in kept) == 8 and sum(t.n_code_calls == 0 for t in kept) == 8
    assert dropped == {"balance": 8}
    again, _ = filter_trajectories(batch, CFG.model_copy(update={"code_share": 0.5}))
    assert [t.item_id for t in again] == [t.item_id for t in kept]  # seeded
    kept, dropped = filter_trajectories(batch, CFG.model_copy(update={"code_share": 0.8}))
    assert sum(t.n_code_calls > 0 for t in kept) == 16 and sum(t.n_code_calls == 0 for t in kept) == 4
    kept, dropped = filter_trajectories(batch, CFG.model_copy(update={"code_share": 1.0}))
    assert all(t.n_code_calls > 0 for t in kept) and dropped == {"balance": 8}


def test_sft_dataset_stage_counts_reasons_and_logs_inputs(stage_env, sandbox, tmp_path, tokenizer):
    """teacher_trajectories -> sft_dataset on a corpus where one training question is also a test question."""
    import mlflow
    from datasets import load_from_disk
    from teacher_helpers import small_recipe

    from r1ci_core import lineage
    from r1ci_core.corpus import save_corpus
    from r1ci_core.stages import StageContext, StageResult, sft_dataset, teacher_trajectories

    items = sample_items(30, families=("number_multiply", "letters"), seed=5)
    for i, item in enumerate(items):
        item.pool, item.split = ("sft", "train") if i < 20 else ("grpo" if i < 22 else "test_seen", "train")
    leaked = copy.deepcopy(items[0])
    leaked.pool = "test_seen"
    items.append(leaked)
    recipe = small_recipe(**{"filter.cap_per_family": 8, "tasks.families": ["number_multiply", "letters"]})
    ctx = StageContext(recipe=recipe, root=Path(stage_env))
    corpus_path = save_corpus(items, ctx.artifact("task_corpus"))
    lineage.setup(recipe.mlflow)
    with mlflow.start_run(run_name="task_corpus") as run:
        corpus = StageResult(str(corpus_path), run.info.run_id)
    teacher = teacher_trajectories(ctx, corpus, sandbox)
    tok_dir = tmp_path / "tok"
    tokenizer.save_pretrained(tok_dir)
    result = sft_dataset(ctx, teacher, StageResult(str(tok_dir), "base-run"))

    dropped = result.metadata["dropped"]
    assert set(dropped) == set(REASONS)
    assert dropped["contaminated"] == 1 and dropped["family_cap"] == 20 - 1 - 16
    assert result.metadata["n_kept"] == 16 == len(load_from_disk(result.path))
    run = mlflow.get_run(result.mlflow_run_id)
    assert run.data.metrics["dropped.contaminated"] == 1 and run.data.metrics["n_kept"] == 16
    assert {(d.dataset.name, d.tags[0].value) for d in run.inputs.dataset_inputs} == {
        ("teacher_trajectories", "input"), ("task_corpus.test", "input"), ("sft_dataset", "output")}
    assert run.data.tags["r1ci.upstream.task_corpus"] == corpus.mlflow_run_id
    kept_ids = set(load_from_disk(result.path)["item_id"])
    assert items[0].id not in kept_ids
    assert json.loads(load_from_disk(result.path)[0]["provenance"])["teacher"] == "reference"
