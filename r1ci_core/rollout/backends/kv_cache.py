"""A KV cache that is written in place: the decode loop's cache without a copy of the whole cache per step.

`DynamicLayer.update` concatenates every new token onto the cached keys and values, so each decoding step
copies the whole cache of every layer: on CPU that copy was 40% of a SmolLM2-135M decode step at 40 rows
(`benchmarks/decode_bench.py`). `PreallocatedLayer` keeps a buffer with room for the turn's tokens, writes
each step's keys and values into it and hands attention a view of the filled part.
"""

from __future__ import annotations

from typing import Any

from transformers.cache_utils import DynamicCache, DynamicLayer


class PreallocatedLayer(DynamicLayer):
    """A full-attention cache layer over a buffer of `capacity` positions (grown by doubling if exceeded).

    `dtype` (default: that of the first keys written) is the buffer's: a bf16-autocast prefill's keys are
    stored in it as the model's dtype, as the decoding steps that follow compute in that dtype.
    """

    def __init__(self, capacity: int, dtype: Any = None):
        super().__init__()
        self.capacity = max(1, int(capacity))
        self.dtype = dtype
        self.length = 0
        self._k: Any = None
        self._v: Any = None

    def lazy_initialization(self, key_states: Any, value_states: Any) -> None:
        import torch

        self.dtype = self.dtype or key_states.dtype
        self.device = key_states.device
        b, h, _, d = key_states.shape
        self._k = torch.empty((b, h, self.capacity, d), dtype=self.dtype, device=self.device)
        self._v = torch.empty((b, h, self.capacity, value_states.shape[-1]), dtype=self.dtype, device=self.device)
        self.is_initialized = True

    def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self.length + key_states.shape[-2]
        if end > self._k.shape[-2]:
            self._grow(end)
        self._k[:, :, self.length:end] = key_states
        self._v[:, :, self.length:end] = value_states
        self.length = end
        self.keys, self.values = self._k[:, :, :end], self._v[:, :, :end]
        return self.keys, self.values

    def _grow(self, needed: int) -> None:
        import torch

        size = max(needed, 2 * self._k.shape[-2])
        for name in ("_k", "_v"):
            old = getattr(self, name)
            new = torch.empty((*old.shape[:2], size, old.shape[-1]), dtype=old.dtype, device=old.device)
            new[:, :, :self.length] = old[:, :, :self.length]
            setattr(self, name, new)

    def get_seq_length(self) -> int:
        return self.length

    def batch_select_indices(self, indices: Any) -> None:
        if self.length:
            self._k, self._v = self._k[indices], self._v[indices]
            self.keys, self.values = self._k[:, :, :self.length], self._v[:, :, :self.length]

    def drop_front(self, n: int) -> None:
        """Forget the first `n` cached positions (padding every row shares): a view, nothing is copied."""
        if n and self.length:
            self._k, self._v = self._k[:, :, n:], self._v[:, :, n:]
            self.length -= n
            self.keys, self.values = self._k[:, :, :self.length], self._v[:, :, :self.length]

    def crop(self, tokens_to_remove: int) -> None:
        raise NotImplementedError("the decode loop never crops its cache")

    def batch_repeat_interleave(self, repeats: int) -> None:
        raise NotImplementedError("the decode loop never repeats its cache rows")

    def reset(self) -> None:
        self.length = 0
        self._k = self._v = None
        self.keys = self.values = None
        self.is_initialized = False


def decode_cache(config: Any, capacity: int, dtype: Any = None) -> DynamicCache:
    """A `DynamicCache` for `config` whose full-attention layers are preallocated for `capacity` positions
    (in `dtype`, default the first keys' dtype).

    Models with other layer kinds (sliding windows, linear attention) keep their stock layers.
    """
    cache = DynamicCache(config=config)
    if cache.layers and all(type(layer) is DynamicLayer for layer in cache.layers):
        cache.layers = [PreallocatedLayer(capacity, dtype) for _ in cache.layers]
    return cache
