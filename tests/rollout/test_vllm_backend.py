"""The vllm backend over its two engines (offline `LLM`, TRL's server client), with doubles standing in for
vLLM that really sample from the tiny model: turns cut like the transformers backend's, logprobs aligned with
the policy tokens, the context length respected, one seed per request."""

from __future__ import annotations

import pytest
from rollout_doubles import FakeSandbox
from vllm_doubles import DoubleClient, DoubleLLM, fake_vllm_module

from r1ci_core.config import RolloutConfig
from r1ci_core.rollout import get_backend, run_rollouts
from r1ci_core.rollout.backends.transformers import TransformersBackend


@pytest.fixture
def fake_vllm(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "vllm", fake_vllm_module())


def _runs(traj):
    """(start, end) of each run of policy tokens (mask 1) in a trajectory."""
    runs, start = [], None
    for i, m in enumerate([*traj.mask, 0]):
        if m and start is None:
            start = i
        elif not m and start is not None:
            runs.append((start, i))
            start = None
    return runs


def test_offline_engine_greedy_matches_the_transformers_backend(fake_vllm, tiny_policy, items):
    """Same model, same greedy decoding, one conversation per batch (no padding): the vllm backend over the
    double gives the transformers backend's trajectories token for token, masks and scores included."""
    _, model, tok = tiny_policy
    limits = RolloutConfig(max_new_tokens=200, max_turns=3, max_code_calls=2, batch_size=1)
    sandbox = FakeSandbox(stdout="6\n")
    want = run_rollouts(TransformersBackend(model, tok), items[:3], limits=limits, sandbox=sandbox, progress=False)
    llm = DoubleLLM(model, tok)
    llm.sampler.load(model.named_parameters())  # the engine holds the policy's weights
    got = run_rollouts(get_backend("vllm", llm=llm, tokenizer=tok, logprobs=True), items[:3], limits=limits,
                       sandbox=sandbox, progress=False)
    assert any(t.n_code_calls for t in want), "the policy must write code"
    for w, g in zip(want, got, strict=True):
        assert g.token_ids == w.token_ids and g.mask == w.mask
        assert (g.score, g.parseable, g.finish_reason, g.n_turns) == (w.score, w.parseable, w.finish_reason, w.n_turns)
        assert g.provenance["backend"] == "vllm" and w.logprobs is None
        # logprobs exactly on the policy's tokens, each the engine's log-probability of the sampled id
        assert len(g.logprobs) == len(g.token_ids)
        assert [lp is not None for lp in g.logprobs] == [bool(m) for m in g.mask]
        assert all(lp <= 0 for lp in g.logprobs if lp is not None)
    # every turn asked the engine for token ids with the fence stop, and the kept ids are a prefix of its sample
    for call in llm.sampler.calls:
        assert call["params"].stop == ["```\n"] and call["params"].include_stop_str_in_output
    for t in got:
        for a, b in _runs(t):
            samples = [c["ids"] for c in llm.sampler.calls if c["prompt"] == t.token_ids[:a]]
            assert any(s[: b - a] == t.token_ids[a:b] for s in samples)


def test_conversation_at_the_context_limit_ends_instead_of_failing(fake_vllm, tiny_policy, items):
    _, model, tok = tiny_policy
    llm = DoubleLLM(model, tok, max_model_len=120)  # raises like vLLM when prompt + max_tokens exceed it
    backend = get_backend("vllm", llm=llm, tokenizer=tok)
    assert backend.max_model_len == 120
    trajs = run_rollouts(backend, items[:2], limits=RolloutConfig(max_new_tokens=400, max_turns=4),
                         sandbox=FakeSandbox(stdout="1\n" * 40), progress=False)
    for t in trajs:
        assert t.finish_reason in ("max_tokens", "answer", "no_answer", "max_turns")
    assert all(len(c["prompt"]) + c["params"].max_tokens <= 120 for c in llm.sampler.calls)
    assert any(t.finish_reason == "max_tokens" for t in trajs)


def test_server_client_one_seeded_request_per_conversation(tiny_policy, items):
    """Server mode needs no vllm import here: ids and logprobs come back through TRL's client surface."""
    _, model, tok = tiny_policy
    client = DoubleClient(model, tok)
    backend = get_backend("vllm", client=client, tokenizer=tok, logprobs=True)
    limits = RolloutConfig(max_new_tokens=120, max_turns=2, temperature=1.0)
    trajs = run_rollouts(backend, [items[0]] * 4, limits=limits, sandbox=FakeSandbox(), seed=3, progress=False)
    first = client.requests[:4]
    assert all(r["n_prompts"] == 1 and r["stop"] == ["```\n"] and r["skip_special_tokens"] is False for r in first)
    assert len({r["seed"] for r in first}) == 4  # the same question, four different samples
    assert len({tuple(t.token_ids) for t in trajs}) > 1
    for t in trajs:
        assert [lp is not None for lp in t.logprobs] == [bool(m) for m in t.mask]
    assert trajs[0].provenance["model"] == "served-policy"


def test_server_client_needs_the_tokenizer(tiny_policy):
    _, model, tok = tiny_policy
    with pytest.raises(ValueError, match="tokenizer="):
        get_backend("vllm", client=DoubleClient(model, tok))
