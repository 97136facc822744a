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
    monkeypatch.setattr(kv_cache, "decode_cache", lambda config, capacity: DynamicCache(config=config))
    stock = backend.generate(requests, sampling)
    assert [r.token_ids for r in ours] == [r.token_ids for r in stock]
    assert len({len(r.token_ids) for r in ours}) > 1  # the rows did end at different steps
