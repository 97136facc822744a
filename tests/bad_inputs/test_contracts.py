"""Bad input at the level of a function's contract: what a model or a program may produce, and checkpoints,
stores and datasets a stage may be handed. Each is handled (a defined result) or refused with one clear
line, and leaves no partial artifact."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest

from r1ci_core.config import RolloutConfig
from r1ci_core.rollout import run_rollouts
from r1ci_core.rollout.backends.base import Backend, GenRequest, SamplingParams, cut_token_turn

LIMITS = RolloutConfig(max_new_tokens=400, output_tokens=400, output_chars=4000, max_turns=3)


class Script(Backend):
    """A token-level policy double: its n-th assistant turn of every conversation is `turns[n]`."""

    name = "script"
    token_level = True

    def __init__(self, tokenizer, turns: list[str]):
        self.tokenizer, self.turns = tokenizer, turns
        self.eos_ids = {tokenizer.convert_tokens_to_ids("<|im_end|>")}

    def generate(self, requests: list[GenRequest], sampling: SamplingParams, *, preempt_below: int = 0):
        out = []
        for r in requests:
            n = sum(1 for m in r.messages if m["role"] == "assistant")
            text = self.turns[min(n, len(self.turns) - 1)]
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"] + sorted(self.eos_ids)
            out.append(cut_token_turn(ids, r, eos_ids=self.eos_ids,
                                      piece=lambda t: self.tokenizer.decode([t], skip_special_tokens=False),
                                      decode=lambda x: self.tokenizer.decode(x, skip_special_tokens=False)))
        return out


class NoSandbox:
    def run_many(self, codes, **kw):
        raise AssertionError(f"nothing should run here: {codes}")


@pytest.fixture(scope="module")
def items():
    from r1ci_core.tasks import registry

    out = registry()["number_multiply"].generate(2, seed=0)
    for it in out:
        it.pool = "test_seen"
    return out


@pytest.fixture(scope="module")
def tokenizer_dir(items, tmp_path_factory) -> Path:
    from r1ci_core.models import train_tiny_tokenizer

    tok = train_tiny_tokenizer([it.question for it in items] + ["print sys stdout buffer write bytes range"] * 4, 300)
    out = tmp_path_factory.mktemp("tok") / "tokenizer"
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def tokenizer(tokenizer_dir):
    from r1ci_core.models import load_tokenizer

    return load_tokenizer(str(tokenizer_dir))


@pytest.fixture(scope="module")
def sandbox():
    from r1ci_core.sandbox import Sandbox

    with Sandbox() as sb:
        yield sb


def test_non_utf8_and_binary_program_output_becomes_text(items, tokenizer, sandbox, tmp_path) -> None:
    """Invalid UTF-8 becomes U+FFFD, control bytes stay; the trajectory rolls on, is stored and reloads."""
    from r1ci_core import evaluation, store
    from r1ci_core.tasks import registry

    raw = sandbox.run("import sys\nsys.stdout.buffer.write(b'caf\\xe9 \\xff\\xfe ok\\n' + bytes(range(256)))\n"
                      "sys.stderr.buffer.write(b'\\x80\\x81 err')\n")
    assert raw.exit_code == 0 and raw.infra_error is None
    assert raw.stdout.startswith("caf\ufffd \ufffd\ufffd ok\n\x00\x01") and raw.stderr == "\ufffd\ufffd err"

    code = ("```python\nimport sys\nsys.stdout.buffer.write(b'\\xff\\xfe<<<7>>>' + bytes(range(256)))\n```")
    trajs = run_rollouts(Script(tokenizer, [code, "So <<<7>>>"]), items, limits=LIMITS, sandbox=sandbox,
                         progress=False)
    for t in trajs:
        assert not t.infra_error and t.finish_reason == "answer" and t.final_answer == "7"
        assert "\ufffd\ufffd<<<7>>>" in t.executions[0].stdout
        assert "\ufffd" in t.messages[3]["content"]  # the interpreter turn the policy reads
    rows = evaluation.sample_rows("r1", items, trajs, 1, registry())
    db = tmp_path / "r1ci.duckdb"
    store.write_run(db, {"run_id": "r1", "eval_key": "k", "checkpoint": "base", "mode": "autonomous"}, rows)
    back = store.samples(db, ["r1"], with_trajectory=True)
    assert "\ufffd" in json.loads(back["trajectory"][0])["executions"][0]["stdout"]


def test_code_that_never_closes_its_block_is_not_run(items, tokenizer) -> None:
    trajs = run_rollouts(Script(tokenizer, ["Let me compute.\n```python\nprint(6 * 7)\n"]), items, limits=LIMITS,
                         sandbox=NoSandbox(), progress=False)
    for t in trajs:
        assert t.n_code_calls == 0 and t.executions == []
        assert t.finish_reason == "no_answer" and t.final_answer is None
        assert t.score == 0.0 and t.parseable is False and not t.infra_error


def test_an_answer_without_the_answer_markers_scores_zero_and_is_unparseable(items, tokenizer) -> None:
    from r1ci_core.rewards import correctness_reward, format_reward

    gold = str(items[0].answer)
    trajs = run_rollouts(Script(tokenizer, [f"The answer is {gold}."]), items[:1], limits=LIMITS,
                         sandbox=NoSandbox(), progress=False)
    (t,) = trajs
    assert t.final_answer is None and t.parseable is False and t.score == 0.0
    assert t.finish_reason == "no_answer"
    assert correctness_reward([None], score=[t.score], infra_error=[False]) == [0.0]
    assert format_reward([None], parseable=[t.parseable], infra_error=[False]) == [-0.1]


def test_a_checkpoint_of_another_architecture_is_refused_in_one_line(tmp_path: Path) -> None:
    from r1ci_core.models import ModelLoadError, load_model

    ckpt = tmp_path / "gpt2"
    ckpt.mkdir()
    (ckpt / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_layer": 1, "n_embd": 8, "n_head": 2}))
    with pytest.raises(ModelLoadError) as err:
        load_model(str(ckpt))
    msg = str(err.value)
    assert "\n" not in msg and "'gpt2'" in msg and "Qwen2-family" in msg


def test_a_tokenizer_without_chat_template_is_refused_in_one_line(tokenizer_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    from r1ci_core.models import ModelLoadError, load_tokenizer

    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    tok.chat_template = None
    tok.save_pretrained(tmp_path / "plain")
    for extra in (tmp_path / "plain").glob("chat_template*"):
        extra.unlink()
    with pytest.raises(ModelLoadError) as err:
        load_tokenizer(str(tmp_path / "plain"))
    msg = str(err.value)
    assert "\n" not in msg and "no chat template" in msg and "tokenizer_config.json" in msg


def test_an_empty_sft_set_after_filtering_fails_clearly_and_writes_nothing(tokenizer_dir, items, tmp_path,
                                                                           monkeypatch) -> None:
    """Every teacher trajectory is wrong: the filter keeps none; sft_dataset says so, writes no dataset, and
    its MLflow run ends FAILED."""
    from datasets import Dataset
    from mlflow.tracking import MlflowClient

    from r1ci_core import stages
    from r1ci_core.config import Recipe
    from r1ci_core.trajectory import Trajectory

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("R1CI_DATA_DIR", str(tmp_path / "data"))
    wrong = [Trajectory(item_id=it.id, family=it.family, final_answer="-1", score=0.0, parseable=True, n_turns=1,
                        finish_reason="answer",
                        messages=[{"role": "system", "content": "s"}, {"role": "user", "content": it.question},
                                  {"role": "assistant", "content": "<<<-1>>>"}]) for it in items]
    teacher_path = tmp_path / "teacher"
    Dataset.from_list([t.to_row() for t in wrong]).save_to_disk(str(teacher_path))
    recipe = Recipe.model_validate({"name": "empty", "filter": {"decontaminate": False}})
    ctx = stages.StageContext(recipe, root=tmp_path / "data")
    teacher = stages.StageResult(str(teacher_path), "")
    base = stages.StageResult(str(tokenizer_dir), "")
    with pytest.raises(ValueError) as err:
        stages.sft_dataset(ctx, teacher, base)
    msg = str(err.value)
    assert "\n" not in msg and "kept no trajectory" in msg and "'incorrect': 2" in msg
    assert "check the teacher's scores and the recipe's filter limits" in msg
    out = tmp_path / "data" / "empty"
    assert not (out / "sft_dataset").exists() and not list(out.glob(".sft_dataset*"))
    client = MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name("r1ci").experiment_id])
    assert [r.info.status for r in runs] == ["FAILED"]


def test_an_unreachable_tracking_server_fails_at_once(monkeypatch) -> None:
    from r1ci_core import lineage
    from r1ci_core.config import MlflowConfig

    from .conftest import closed_port

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    t0 = time.monotonic()
    with pytest.raises(lineage.TrackingError) as err:
        lineage.setup(MlflowConfig(tracking_uri=f"http://127.0.0.1:{closed_port()}"))
    assert time.monotonic() - t0 < 10  # not MLflow's minutes of retries
    assert "cannot reach the MLflow tracking server" in str(err.value) and "start the server" in str(err.value)


def test_empty_training_and_evaluation_inputs_are_refused(tmp_path: Path) -> None:
    from r1ci_core.config import Recipe
    from r1ci_core.evaluation import run_evaluation
    from r1ci_core.grpo import train_grpo
    from r1ci_core.sft import train_sft
    from r1ci_core.stages import StageContext

    recipe = Recipe.model_validate({"name": "empty"})
    with pytest.raises(ValueError, match="the SFT dataset is empty"):
        train_sft(recipe, [], "unused", tmp_path / "o", tmp_path / "w")
    with pytest.raises(ValueError, match="raise tasks.n_grpo"):
        train_grpo(recipe, [], "unused", tmp_path / "o", tmp_path / "w", None)
    with pytest.raises(ValueError, match="no evaluation items"):
        run_evaluation(StageContext(recipe, root=tmp_path), [], {"base": "unused"}, None)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_every_execution_failing_in_the_sandbox_is_unscored_not_wrong(items, tokenizer) -> None:
    """R1CI_SANDBOX_FAIL_RATE=1: every execution is an infra error, excluded from scoring (score None)."""
    from r1ci_core.sandbox import Sandbox

    with Sandbox(fail_rate=1.0) as sb:
        trajs = run_rollouts(Script(tokenizer, ["```python\nprint('<<<1>>>')\n```", "<<<1>>>"]), items,
                             limits=LIMITS, sandbox=sb, progress=False)
    assert all(t.infra_error and t.score is None and t.finish_reason == "infra_error" for t in trajs)
    assert not any(isinstance(t.score, float) and math.isnan(t.score) for t in trajs)
