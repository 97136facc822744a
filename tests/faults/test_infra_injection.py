"""Sandbox infra failures injected at 10 % (`fail_rate`, the R1CI_SANDBOX_FAIL_RATE hook).

A scripted policy (a real token-level backend double) answers each question by running a program in the
real sandbox; a third of the programs print a wrong answer so scores vary. With 10 % of executions failing
as infra errors: the evaluation's accuracy equals the accuracy over the non-failed samples alone (the same
as a run without injected failures, restricted to those questions), GRPO's logged rewards equal the mean
reward over the non-failed rollouts of each step, and the failures are counted (eval_runs, views, figures,
GRPO's n_infra_errors).
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from r1ci_core.rollout.backends.base import Backend, GenRequest, SamplingParams, cut_token_turn

FAIL_RATE = 0.1
FAMILY = "number_multiply"


def _seed_with_failures(n_draws: int, low: int, high: int) -> int:
    """A fail_seed whose first `n_draws` draws fail between `low` and `high` times (so some, not all)."""
    for s in range(10_000):
        rng = random.Random(s)
        if low <= sum(rng.random() < FAIL_RATE for _ in range(n_draws)) <= high:
            return s
    raise AssertionError("no seed")


class ReferencePolicy(Backend):
    """Turn 1: the family's reference program in a python block (every third question: a wrong one);
    turn 2: the answer the program printed."""

    name = "reference-policy"
    token_level = True

    def __init__(self, tokenizer, items):
        from r1ci_core.tasks import registry

        self.tokenizer = tokenizer
        family = registry()[FAMILY]
        self.by_question = {}
        for k, it in enumerate(items):
            code = family.reference_solution(it)
            if k % 3 == 2:
                code = "print('<<<-1>>>')\n"
            self.by_question[it.question] = code
        self.eos_ids = {tokenizer.convert_tokens_to_ids("<|im_end|>")}

    def generate(self, requests: list[GenRequest], sampling: SamplingParams, *, preempt_below: int = 0):
        out = []
        for r in requests:
            question = next(m["content"] for m in r.messages if m["role"] == "user")
            if r.messages[-1]["role"] == "user" and r.messages[-1]["content"] == question:
                text = f"```python\n{self.by_question[question]}```"
            else:
                found = re.findall(r"<<<(.*?)>>>", r.messages[-1]["content"])
                text = f"The answer is <<<{found[-1] if found else '?'}>>>"
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"] + sorted(self.eos_ids)
            out.append(cut_token_turn(ids, r, eos_ids=self.eos_ids,
                                      piece=lambda t: self.tokenizer.decode([t], skip_special_tokens=False),
                                      decode=lambda x: self.tokenizer.decode(x, skip_special_tokens=False)))
        return out


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory):
    import torch

    from r1ci_core.config import TinyModelConfig
    from r1ci_core.models import build_tiny_model
    from r1ci_core.tasks import registry

    torch.set_num_threads(1)
    family = registry()[FAMILY]
    items = family.generate(12, seed=3)
    for it in items:
        it.pool = "test_seen"
    texts = [it.question for it in items] + [family.reference_solution(it) for it in items]
    tiny = build_tiny_model(tmp_path_factory.mktemp("infra") / "tiny", texts,
                            TinyModelConfig(vocab_size=400, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                            num_key_value_heads=1, intermediate_size=64))
    return items, tiny


def _recipe(**sections):
    from r1ci_core.config import Recipe

    return Recipe.model_validate({"name": "infra", "rollout": {"max_new_tokens": 400, "max_turns": 3,
                                                               "max_code_calls": 1, "output_tokens": 200},
                                  "eval": {"checkpoints": ["base"], "pools": ["test_seen"]}, **sections})


def _evaluate(root: Path, items, tiny: Path, fail_rate: float, fail_seed: int, monkeypatch) -> tuple[dict, list]:
    from r1ci_core import evaluation, store
    from r1ci_core.models import load_tokenizer
    from r1ci_core.sandbox import Sandbox
    from r1ci_core.stages import StageContext

    tokenizer = load_tokenizer(str(tiny))
    monkeypatch.setattr(evaluation, "_make_backend", lambda spec, recipe: ReferencePolicy(tokenizer, items))
    ctx = StageContext(_recipe(), root=root)
    with Sandbox(fail_rate=fail_rate, fail_seed=fail_seed) as sb:
        result = evaluation.run_evaluation(ctx, items, {"base": str(tiny)}, sb)
    run = store.runs(store.db_path(root)).iloc[0].to_dict()
    samples = store.samples(store.db_path(root), [run["run_id"]]).to_dict("records")
    return {"result": result, "run": run}, samples


def test_eval_accuracy_is_over_the_non_failed_samples(setup, tmp_path, monkeypatch) -> None:
    from r1ci_core import store

    items, tiny = setup
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("R1CI_DATA_DIR", str(tmp_path))
    seed = _seed_with_failures(len(items), 2, 4)
    faulty, faulty_samples = _evaluate(tmp_path / "faulty", items, tiny, FAIL_RATE, seed, monkeypatch)
    clean, clean_samples = _evaluate(tmp_path / "clean", items, tiny, 0.0, seed, monkeypatch)

    failed = {s["question_id"] for s in faulty_samples if s["infra_error"]}
    assert 2 <= len(failed) <= 4, "the injection hook did not fail about 10 % of executions"
    assert all(s["score"] is None or pd_isna(s["score"]) for s in faulty_samples if s["infra_error"])
    ok_scores = [s["score"] for s in faulty_samples if not s["infra_error"]]
    clean_ok = [s["score"] for s in clean_samples if s["question_id"] not in failed]
    assert sorted(ok_scores) == sorted(clean_ok), "a non-failed sample scored differently"
    assert 0 < sum(ok_scores) < len(ok_scores)  # scores vary, so the check below means something
    assert faulty["run"]["accuracy"] == pytest.approx(sum(ok_scores) / len(ok_scores))
    assert faulty["run"]["accuracy"] != pytest.approx(sum(ok_scores) / len(faulty_samples))  # not failed = wrong
    assert clean["run"]["n_infra_errors"] == 0
    # the failures are counted: eval_runs, the views, the stage's figures
    assert faulty["run"]["n_infra_errors"] == len(failed)
    view = store.query(store.db_path(tmp_path / "faulty"), "SELECT n, n_infra, accuracy FROM eval_run_accuracy")
    assert view.iloc[0].to_dict() == {"n": len(ok_scores), "n_infra": len(failed),
                                      "accuracy": pytest.approx(faulty["run"]["accuracy"])}
    assert faulty["result"]["n_infra_errors"] == len(failed)
    assert faulty["result"]["accuracy"]["base"]["autonomous"] == pytest.approx(faulty["run"]["accuracy"])


def pd_isna(x) -> bool:
    import math

    return isinstance(x, float) and math.isnan(x)


def test_grpo_rewards_are_over_the_non_failed_rollouts(setup, tmp_path, monkeypatch) -> None:
    import r1ci_core.rollout as rollout_pkg
    from r1ci_core.grpo import train_grpo
    from r1ci_core.models import load_tokenizer
    from r1ci_core.rewards import recipe_rewards
    from r1ci_core.sandbox import Sandbox

    items, tiny = setup
    items = items[:6]
    steps, batch = 3, 4
    seed = _seed_with_failures(steps * batch, 1, 3)
    tokenizer = load_tokenizer(str(tiny))
    calls: list[list] = []
    real_run_rollouts = rollout_pkg.run_rollouts

    def recording_run_rollouts(*args, **kwargs):
        trajs = real_run_rollouts(*args, **kwargs)
        calls.append(trajs)
        return trajs

    monkeypatch.setattr(rollout_pkg, "get_backend", lambda name, **kw: ReferencePolicy(tokenizer, items))
    monkeypatch.setattr(rollout_pkg, "run_rollouts", recording_run_rollouts)
    recipe = _recipe(grpo={"max_steps": steps, "per_device_train_batch_size": batch, "num_generations": 2,
                           "save_steps": 100, "logging_steps": 1, "learning_rate": 1e-5})
    with Sandbox(fail_rate=FAIL_RATE, fail_seed=seed) as sb:
        figures = train_grpo(recipe, items, str(tiny), tmp_path / "out", tmp_path / "work", sb)

    flat = [t for trajs in calls for t in trajs]
    rewards = recipe_rewards(recipe)
    n_failed = sum(t.infra_error for t in flat)
    assert 1 <= n_failed <= 3 and len(flat) == steps * batch
    assert figures["n_infra_errors"] == n_failed and figures["n_rollouts"] == len(flat)

    def reward(t) -> float:
        kw = {"completions": [None], "score": [t.score], "parseable": [t.parseable], "infra_error": [False],
              "n_turns": [t.n_turns]}
        return sum(f(**kw)[0] * w for f, w in zip(rewards.funcs, rewards.weights, strict=True))

    for t in flat:  # every reward function leaves a failed rollout unscored (TRL: no advantage)
        if t.infra_error:
            kw = {"completions": [None], "score": [t.score], "parseable": [t.parseable], "infra_error": [True],
                  "n_turns": [t.n_turns]}
            assert all(f(**kw) == [None] for f in rewards.funcs)
    expected = [sum(reward(t) for t in trajs if not t.infra_error) / sum(not t.infra_error for t in trajs)
                for trajs in calls]
    assert figures["reward_curve"] == pytest.approx(expected, abs=1e-5)
    with_zeros = [sum(reward(t) if not t.infra_error else 0.0 for t in trajs) / len(trajs) for trajs in calls]
    assert with_zeros != pytest.approx(expected, abs=1e-5), "no step had a failure: the check proves nothing"
