"""The decode loop's in-place KV cache gives what transformers' concatenating `DynamicCache` gives."""

from __future__ import annotations

import pytest
import torch
from transformers import DynamicCache

from r1ci_core.rollout.backends import GenRequest, SamplingParams, kv_cache
from r1ci_core.rollout.backends.kv_cache import PreallocatedLayer, decode_cache
from r1ci_core.rollout.backends.transformers import TransformersBackend


def test_layer_grows_selects_and_drops_like_concatenation():
    torch.manual_seed(0)
    layer = PreallocatedLayer(capacity=3)  # smaller than what is written: it must grow
    keys = []
    for n in (2, 1, 1, 4):
        k, v = torch.randn(5, 2, n, 4), torch.randn(5, 2, n, 4)
        keys.append(k)
        out_k, out_v = layer.update(k, v)
    expect = torch.cat(keys, dim=-2)
    assert torch.equal(out_k, expect) and layer.get_seq_length() == 8
    rows = torch.tensor([4, 1])
    layer.batch_select_indices(rows)
    layer.drop_front(3)
    assert torch.equal(layer.keys, expect[rows][:, :, 3:])
    k = torch.randn(2, 2, 1, 4)
    out_k, _ = layer.update(k, k)
    assert torch.equal(out_k, torch.cat([expect[rows][:, :, 3:], k], dim=-2))


@pytest.mark.parametrize("greedy", [True, False])
def test_backend_turns_are_the_same_with_either_cache(tiny_policy, items, monkeypatch, greedy):
    """Rows of different prompt lengths that end at different steps (rows leave, shared padding is cut)."""
    _, model, tok = tiny_policy
    backend = TransformersBackend(model, tok)
    requests = [GenRequest(messages=[{"role": "system", "content": "Solve."},
                                     {"role": "user", "content": it.question * (1 + i % 3)}],
                           max_new_tokens=12 + 9 * i)
                for i, it in enumerate(items)]
    sampling = SamplingParams(temperature=0.0 if greedy else 1.0, seed=3)
    ours = backend.generate(requests, sampling)
    assert isinstance(decode_cache(model.config, 8).layers[0], PreallocatedLayer)
    monkeypatch.setattr(kv_cache, "decode_cache", lambda config, capacity, dtype=None: DynamicCache(config=config))
    stock = backend.generate(requests, sampling)
    assert [r.token_ids for r in ours] == [r.token_ids for r in stock]
    assert len({len(r.token_ids) for r in ours}) > 1  # the rows did end at different steps


def test_bf16_prefill_then_fp32_decoding(tiny_policy, items):
    """`rollout.prefill_dtype: bfloat16`: the prompt forward runs under bf16 autocast, decoding in fp32."""
    _, model, tok = tiny_policy
    seen: list[tuple[int, torch.dtype]] = []
    proj = model.model.layers[0].self_attn.q_proj
    hook = proj.register_forward_hook(lambda mod, args, out: seen.append((args[0].shape[1], out.dtype)))
    try:
        backend = TransformersBackend(model, tok, prefill_dtype="bfloat16")
        requests = [GenRequest(messages=[{"role": "user", "content": it.question}], max_new_tokens=6)
                    for it in items[:3]]
        out = backend.generate(requests, SamplingParams())
    finally:
        hook.remove()
    assert model.dtype == torch.float32 and all(r.token_ids for r in out)
    assert seen[0][0] > 1 and seen[0][1] == torch.bfloat16
    assert {dtype for n, dtype in seen[1:]} == {torch.float32} and all(n == 1 for n, _ in seen[1:])
    with pytest.raises(ValueError, match="prefill_dtype"):
        TransformersBackend(model, tok, prefill_dtype="fp8")
