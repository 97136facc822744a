"""The model teacher: a tiny policy served by `r1ci serve` on 127.0.0.1, sampled through the `openai` backend
(several samples per question, code really executed), with provenance on every trajectory and in MLflow."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest

from r1ci_core.chat import EXEC_PREFIX, PROMPT_VERSION, SYSTEM_PROMPT
from r1ci_core.rollout.tiny import make_tiny_policy, sample_items

MODEL_NAME = "tiny-teacher"


@pytest.fixture(scope="module")
def policy_items():
    return sample_items(6, families=("number_multiply",), seed=0)


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory, policy_items):
    out = tmp_path_factory.mktemp("teacher") / "tiny"
    make_tiny_policy(out, policy_items, n_teach=4, steps=100)
    return out


@pytest.fixture(scope="module")
def served(policy_dir):
    from r1ci_core.serve import make_server

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = make_server(policy_dir, host="127.0.0.1", port=port, model_name=MODEL_NAME)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/v1"
    server.should_exit = True
    thread.join(timeout=10)


def _corpus(ctx, items):
    """A corpus whose sft pool is `items` (plus one question in each other pool)."""
    import copy

    import mlflow

    from r1ci_core import lineage
    from r1ci_core.corpus import save_corpus
    from r1ci_core.stages import StageResult

    rows = []
    for item in items:
        item = copy.deepcopy(item)
        item.pool, item.split = "sft", "train"
        rows.append(item)
    for pool, item in zip(("grpo", "test_seen", "test_unseen"), sample_items(3, seed=77), strict=True):
        item.pool, item.split = pool, "train" if pool != "test_unseen" else "test"
        rows.append(item)
    path = save_corpus(rows, ctx.artifact("task_corpus"))
    lineage.setup(ctx.recipe.mlflow)
    with mlflow.start_run(run_name="task_corpus") as run:
        return StageResult(str(path), run.info.run_id)


def test_model_teacher_through_openai_backend_against_r1ci_serve(stage_env, served, policy_items, sandbox):
    import mlflow
    from datasets import load_from_disk
    from teacher_helpers import small_recipe

    from r1ci_core.stages import StageContext, sft_dataset, teacher_trajectories

    recipe = small_recipe(**{
        "teacher.kind": "model", "teacher.backend": "openai", "teacher.base_url": served,
        "teacher.model": MODEL_NAME, "teacher.samples_per_question": 2, "teacher.temperature": 0.7,
        "teacher.seed": 5, "teacher.shard_size": 2,
        "rollout.max_new_tokens": 128, "rollout.max_turns": 3,
    })
    ctx = StageContext(recipe=recipe, root=Path(stage_env))
    corpus = _corpus(ctx, policy_items[:4])
    result = teacher_trajectories(ctx, corpus, sandbox)
    rows = list(load_from_disk(result.path))
    assert len(rows) == result.metadata["n_trajectories"] == 4 * 2  # 2 samples per question
    samples = {}
    for row in rows:
        prov = json.loads(row["provenance"])
        assert prov["teacher"] == "model" and prov["backend"] == "openai" and prov["model"] == MODEL_NAME
        assert prov["base_url"] == served and prov["prompt_version"] == PROMPT_VERSION and prov["seed"] == 5
        assert prov["sampling"] == {"temperature": 0.7, "top_p": 1.0} and prov["mode"] == "autonomous"
        samples.setdefault(row["item_id"], []).append(prov["sample"])
        messages = json.loads(row["messages"])
        assert messages[0] == {"role": "system", "content": SYSTEM_PROMPT}
    assert all(sorted(s) == [0, 1] for s in samples.values()) and len(samples) == 4
    # the taught policy writes code; it was executed for real and its output came back
    executed = [r for r in rows if json.loads(r["executions"])]
    assert executed, "the tiny policy wrote no code block"
    for row in executed:
        execution = json.loads(row["executions"])[0]
        tools = [m for m in json.loads(row["messages"]) if m["role"] == "tool"]
        assert execution["exit_code"] is not None and tools[0]["content"].startswith(EXEC_PREFIX)
    run = mlflow.get_run(result.mlflow_run_id)
    params = run.data.params
    assert params["provenance.teacher"] == "model" and params["provenance.backend"] == "openai"
    assert params["provenance.model"] == MODEL_NAME and params["provenance.sampling.temperature"] == "0.7"
    assert params["provenance.sampling.samples_per_question"] == "2" and params["teacher.base_url"] == served
    assert sum(v for k, v in result.metadata["stats"].items() if k.startswith("finish.")) == 8

    # the filter takes them as they are (whatever the tiny policy got right)
    if result.metadata["n_correct"]:
        out = sft_dataset(ctx, result, _tokenizer_base(stage_env))
        assert out.metadata["n_kept"] + sum(out.metadata["dropped"].values()) == 8


def _tokenizer_base(root):
    from r1ci_core.models import train_tiny_tokenizer
    from r1ci_core.stages import StageResult

    tok = train_tiny_tokenizer(["What is the result of 2*3?", "print(1)"], 300)
    tok.save_pretrained(Path(root) / "tok")
    return StageResult(str(Path(root) / "tok"), "base-run")


def test_model_teacher_with_the_transformers_backend_from_the_recipe(stage_env, policy_dir, policy_items, sandbox):
    """`teacher.backend: transformers` + `teacher.model: <checkpoint path>` builds the backend itself."""
    from datasets import load_from_disk
    from teacher_helpers import small_recipe

    from r1ci_core.stages import StageContext, teacher_trajectories

    recipe = small_recipe(**{"teacher.kind": "model", "teacher.backend": "transformers",
                             "teacher.model": str(policy_dir), "teacher.temperature": 0.0,
                             "rollout.max_new_tokens": 96, "rollout.max_turns": 3})
    ctx = StageContext(recipe=recipe, root=Path(stage_env))
    corpus = _corpus(ctx, policy_items[:2])
    result = teacher_trajectories(ctx, corpus, sandbox)
    rows = list(load_from_disk(result.path))
    assert len(rows) == 2
    for row in rows:
        prov = json.loads(row["provenance"])
        assert prov["teacher"] == "model" and prov["backend"] == "transformers"
        assert prov["model"] and row["token_ids"] and len(row["token_ids"]) == len(row["mask"])


def test_model_teacher_with_the_vllm_backend_from_the_recipe(stage_env, policy_dir, policy_items, sandbox,
                                                            monkeypatch):
    """`teacher.backend: vllm` builds a vLLM engine from `teacher.model` (a double sampling from that checkpoint
    stands in for vLLM, which needs a GPU): the stored trajectories are the engine's tokens, masked as usual."""
    import sys

    from datasets import load_from_disk
    from teacher_helpers import small_recipe
    from vllm_doubles import fake_vllm_module

    from r1ci_core.stages import StageContext, teacher_trajectories

    built: list = []
    monkeypatch.setitem(sys.modules, "vllm", fake_vllm_module(built))
    recipe = small_recipe(**{"teacher.kind": "model", "teacher.backend": "vllm",
                             "teacher.model": str(policy_dir), "teacher.temperature": 0.0,
                             "rollout.max_new_tokens": 96, "rollout.max_turns": 3})
    ctx = StageContext(recipe=recipe, root=Path(stage_env))
    result = teacher_trajectories(ctx, _corpus(ctx, policy_items[:2]), sandbox)
    rows = list(load_from_disk(result.path))
    (model, _, engine), = built
    assert model == str(policy_dir) and len(rows) == 2
    for row in rows:
        prov = json.loads(row["provenance"])
        assert prov["teacher"] == "model" and prov["backend"] == "vllm" and "logprobs" not in row
        ids, mask = row["token_ids"], row["mask"]
        assert ids and len(ids) == len(mask)
        starts = [i for i in range(len(mask)) if mask[i] and (i == 0 or not mask[i - 1])]
        assert starts, "the teacher's own tokens are in the loss mask"
        for a in starts:  # each run of the teacher's tokens is (a prefix of) what the engine sampled there
            b = next((j for j in range(a, len(mask)) if not mask[j]), len(mask))
            assert any(c["ids"][: b - a] == ids[a:b] for c in engine.sampler.calls if c["prompt"] == ids[:a])
