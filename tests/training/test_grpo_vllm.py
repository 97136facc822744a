"""GRPO with `grpo.use_vllm`: r1ci's multi-turn rollouts run on TRL's vLLM engine (colocate: its `LLM`; server:
its `VLLMClient`), TRL's own weight sync pushes the policy into it before each step, interpreter tokens carry no
loss, infra errors stay masked, and the sampled logprobs feed TRL's importance-sampling correction.

vLLM needs a GPU: a double stands in for its engine (tests/vllm_doubles.py; it samples from its own copy of the
tiny model, which starts with other weights than the policy). Only the engine's construction is replaced;
`GRPOTrainer`, `VLLMGeneration.sync_weights` and r1ci's rollout function are the real ones.
"""

from __future__ import annotations

import importlib.util
import math

import pytest
from test_grpo import HalfBrokenSandbox, _recording
from vllm_doubles import DoubleClient, DoubleLLM, fake_vllm_module, install_double_engines

import r1ci_core.grpo as grpo
from r1ci_core.chat import EXEC_PREFIX
from r1ci_core.config import RecipeError
from r1ci_core.models import load_tokenizer


def _policy_runs(traj):
    runs, start = [], None
    for i, m in enumerate([*traj.mask, 0]):
        if m and start is None:
            start = i
        elif not m and start is not None:
            runs.append((start, i))
            start = None
    return runs


def _check_batch(captured, engine, tok):
    """Every rollout came from the engine, with synced weights; the loss sees only the sampled policy tokens;
    the sampling logprobs line up with them."""
    calls = engine.sampler.calls
    assert calls and all(c["synced"] for c in calls), "each generate must run on the policy's current weights"
    eos = {tok.convert_tokens_to_ids("<|im_end|>"), tok.eos_token_id}
    for trajs, inputs in zip(captured["trajs"], captured["loss_inputs"], strict=True):
        assert all(t.provenance["backend"] == "vllm" for t in trajs)
        lens = [int(inputs["completion_mask"][r].sum()) for r in range(len(trajs))]
        rows = [(inputs["completion_ids"][r][:n].tolist(), inputs["tool_mask"][r][:n].tolist())
                for r, n in enumerate(lens)]
        loss_mask = inputs["completion_mask"] * inputs["tool_mask"]
        for traj in trajs:
            for a, b in _policy_runs(traj):  # the policy's ids are (a prefix of) what the engine sampled
                assert any(c["ids"][: b - a] == traj.token_ids[a:b] for c in calls if c["prompt"] == traj.token_ids[:a])
            completion, mask = grpo.trl_completion(traj, eos)
            env_mask = [0] * len(mask) if traj.infra_error else mask
            row = rows.index((completion, env_mask))  # TRL shuffles the batch before the loss: find its row
            ids = inputs["completion_ids"][row].tolist()
            trained = [i for i, m in zip(ids, loss_mask[row].tolist(), strict=False) if m]
            if traj.infra_error:
                assert trained == [] and float(inputs["advantages"][row]) == 0.0 and traj.score is None
                continue
            own = [i for i, m in zip(traj.token_ids[traj.prompt_len:], traj.mask[traj.prompt_len:], strict=True) if m]
            assert trained == own[: len(trained)] and len(trained) == sum(traj.mask[traj.prompt_len:][: len(completion)])
            assert EXEC_PREFIX not in tok.decode(trained, skip_special_tokens=False)
            # the sampling logprobs TRL got: the engine's value on policy tokens, NaN (no correction) elsewhere
            lps = inputs["sampling_per_token_logps"][row][: len(completion)].tolist()
            for lp, m, want in zip(lps, traj.mask[traj.prompt_len:], traj.logprobs[traj.prompt_len:], strict=False):
                assert math.isnan(lp) if not m else abs(lp - want) < 1e-5


def test_grpo_colocate_runs_rollouts_on_trls_engine_with_weight_sync_and_sleep(tmp_path, monkeypatch, tiny_policy,
                                                                              items, sandbox, small_recipe):
    engines: list = []
    install_double_engines(monkeypatch, engines)
    captured: dict = {}
    monkeypatch.setattr(grpo, "make_trainer_class", _recording(captured))
    recipe = small_recipe.with_overrides({"rollout.backend": "vllm", "grpo.max_steps": 2,
                                          "grpo.vllm_enable_sleep_mode": True})  # use_vllm from rollout.backend
    figures = grpo.train_grpo(recipe, items[:3], str(tiny_policy), tmp_path / "out", tmp_path / "work", sandbox)
    assert figures["steps"] == 2 and figures["n_rollouts"] == 8
    (llm,) = engines
    assert isinstance(llm, DoubleLLM)
    assert any(t.n_code_calls for trajs in captured["trajs"] for t in trajs), "the policy must write code that runs"
    _check_batch(captured, llm, load_tokenizer(str(tiny_policy)))
    n_params = len(list(llm.sampler.model.named_parameters()))
    assert llm.sampler.loads == 2 * n_params and llm.events.count("reset_prefix_cache") == 2  # TRL's sync, per step
    # asleep between steps, woken for the rollouts: weights (TRL's sync), then the KV cache (r1ci)
    assert llm.events[0] == "sleep2" and llm.events[-1] == "sleep2"
    step = llm.events[1:llm.events.index("sleep2", 1) + 1]
    assert step[:3] == ["wake:weights", "reset_prefix_cache", "wake:kv_cache"] and "generate" in step
    # TRL's importance-sampling correction ran on the engine's logprobs: same weights, so a ratio of ~1
    for inputs in captured["loss_inputs"]:
        ratio = inputs["importance_sampling_ratio"]  # per sequence (TRL's default sequence_mask)
        assert ratio.numel() == inputs["completion_ids"].shape[0] and float((ratio - 1).abs().max()) < 1e-3


def test_grpo_server_mode_pushes_weights_and_masks_infra_errors(tmp_path, monkeypatch, tiny_policy, items, sandbox,
                                                                small_recipe):
    engines: list = []
    install_double_engines(monkeypatch, engines)
    captured: dict = {}
    monkeypatch.setattr(grpo, "make_trainer_class", _recording(captured))
    recipe = small_recipe.with_overrides({"grpo.use_vllm": True, "grpo.vllm_mode": "server", "grpo.max_steps": 2,
                                          "grpo.per_device_train_batch_size": 8, "grpo.num_generations": 4})
    figures = grpo.train_grpo(recipe, items[:3], str(tiny_policy), tmp_path / "out", tmp_path / "work",
                              HalfBrokenSandbox(sandbox))
    (client,) = engines
    assert isinstance(client, DoubleClient)
    assert len(client.updates) == 2 and client.updates[0] == client.updates[1]  # every parameter, each step
    assert figures["n_infra_errors"] >= 1
    assert sum(t.infra_error for trajs in captured["trajs"] for t in trajs) == figures["n_infra_errors"]
    _check_batch(captured, client, load_tokenizer(str(tiny_policy)))
    seeds = [r["seed"] for r in client.requests]
    assert len(set(seeds)) > len(seeds) // 2  # one seed per conversation, not one per batch


def test_use_vllm_resolution_and_its_errors(monkeypatch):
    import sys

    section = {"use_vllm": False}
    grpo.resolve_vllm(section, "vllm")
    assert section["use_vllm"] is False  # an explicit choice wins over rollout.backend
    section = {}
    grpo.resolve_vllm(section, "transformers")
    assert section["use_vllm"] is False
    if importlib.util.find_spec("vllm") is None:
        with pytest.raises(RecipeError) as err:
            grpo.resolve_vllm({}, "vllm")
        assert "pip install 'r1ci[vllm]'" in str(err.value) and "\n" not in str(err.value)
    monkeypatch.setitem(sys.modules, "vllm", fake_vllm_module())
    section = {}
    grpo.resolve_vllm(section, "vllm")
    assert section["use_vllm"] is True
    with pytest.raises(RecipeError, match="vllm_mode: server"):
        grpo.resolve_vllm({"use_vllm": True, "vllm_tensor_parallel_size": 2}, "transformers")
    grpo.resolve_vllm({"use_vllm": True, "vllm_mode": "server", "vllm_tensor_parallel_size": 2}, "transformers")


def test_dynamic_sampling_rolls_out_every_round_on_the_steps_weights(tmp_path, monkeypatch, tiny_policy, items,
                                                                      sandbox, small_recipe):
    """The refill rounds run before TRL's own rollout call: the policy is pushed into vLLM once per step, before
    the first of them."""
    from r1ci_core import rewards

    engines: list = []
    install_double_engines(monkeypatch, engines)
    monkeypatch.setitem(rewards.REWARDS, "constant", lambda limits: lambda completions, **kw: [1.0] * len(completions))
    recipe = small_recipe.with_overrides({"rollout.backend": "vllm", "grpo.max_steps": 2,
                                          "grpo.rewards": {"constant": 1.0},
                                          "grpo.dynamic_sampling": {"enabled": True, "max_rounds": 1}})
    figures = grpo.train_grpo(recipe, items, str(tiny_policy), tmp_path / "out", tmp_path / "work", sandbox)
    assert figures["steps"] == 2 and figures["dynamic_sampling_rounds"] == 2 and figures["n_rollouts"] == 2 * 8
    (llm,) = engines
    calls = llm.sampler.calls
    assert calls and all(c["synced"] for c in calls), "each generate must run on the policy's current weights"
    assert llm.sampler.loads == 2 * len(list(llm.sampler.model.named_parameters()))  # one push per step
