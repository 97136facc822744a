"""Batched decoding with a Hugging Face causal LM: one prefill, then a token at a time with a KV cache.

r1ci's own decode loop rather than `model.generate`: a row that ends its turn (closing fence, answer, EOS,
budget) leaves the batch at once (`DynamicCache.batch_select_indices`), so the remaining rows no longer pay
for finished ones, and the left padding every remaining row shares is dropped from the cache. With SDPA or
eager attention the decode steps take a ready 4-D mask, so no mask is rebuilt per step.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from .base import Backend, GenRequest, GenResult, SamplingParams, TurnStops, turn_result

log = logging.getLogger(__name__)

# Attention implementations that take a prepared 4-D mask as is: SDPA a boolean one (True = attend), eager an
# additive one (0 or the dtype's minimum). Others (flash-attention) get the 2-D padding mask.
MASK_4D_ATTENTION = ("sdpa", "eager")


class TransformersBackend(Backend):
    """Generation with a (possibly live, training) Hugging Face causal LM, on CPU or GPU.

    Pass a loaded `model` + `tokenizer` (e.g. the GRPO policy being trained: it is put in eval mode for
    generation and restored afterwards), or a checkpoint `model_path` to load.
    """

    name = "transformers"
    token_level = True
    streams_turns = True

    def __init__(self, model: Any = None, tokenizer: Any = None, *, model_path: str | None = None,
                 dtype: str = "float32", device: str | None = None, local_files_only: bool = True,
                 prefill_dtype: str = "model"):
        from ...models import load_model, load_tokenizer

        if model is None:
            if model_path is None:
                raise ValueError("the transformers backend needs a loaded model+tokenizer or a model_path")
            model = load_model(model_path, dtype=dtype, local_files_only=local_files_only, device=device)
        if tokenizer is None:
            if model_path is None:
                model_path = getattr(getattr(model, "config", None), "_name_or_path", None)
            if not model_path:
                raise ValueError("the transformers backend needs the tokenizer of the model")
            tokenizer = load_tokenizer(model_path, local_files_only=local_files_only)
        self.model = model
        self.tokenizer = tokenizer
        if prefill_dtype not in ("model", "bfloat16"):
            raise ValueError(f"prefill_dtype {prefill_dtype!r}: choose 'model' or 'bfloat16'")
        self.prefill_dtype = prefill_dtype
        self._model_name = str(model_path or getattr(getattr(model, "config", None), "_name_or_path", "") or "model")
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.eos_ids = self._eos_ids()
        self._pieces: dict[int, str] = {}
        self._lock = threading.Lock()  # one generate at a time (the HTTP server calls from threads)
        # On CPU a decoding step costs ~1 ms fixed plus attention over every padded row-token, so
        # length-similar batches pay off; on GPU the fixed cost dominates: keep batches whole.
        self.batch_overhead_tokens = 4096 if self.device.type == "cpu" else 1 << 30

    def _eos_ids(self) -> set[int]:
        ids: set[int] = set()
        for source in (getattr(self.model, "generation_config", None), self.tokenizer):
            value = getattr(source, "eos_token_id", None)
            if isinstance(value, int):
                ids.add(value)
            elif value:
                ids.update(int(v) for v in value)
        im_end = self.tokenizer.convert_tokens_to_ids("<|im_end|>")
        if isinstance(im_end, int) and im_end != getattr(self.tokenizer, "unk_token_id", None):
            ids.add(im_end)
        return ids

    def piece(self, token_id: int) -> str:
        """The text of one token (cached); partial UTF-8 shows as U+FFFD, which is fine for finding fences."""
        text = self._pieces.get(token_id)
        if text is None:
            text = self._pieces[token_id] = self.tokenizer.decode([token_id], skip_special_tokens=False)
        return text

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    def prompt_ids(self, messages: list[dict[str, str]]) -> list[int]:
        out = self.tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True, return_dict=True)
        return list(out["input_ids"])

    @property
    def device(self) -> Any:
        import torch

        try:
            return next(self.model.parameters()).device
        except (StopIteration, AttributeError):
            return torch.device("cpu")

    def generate(self, requests: list[GenRequest], sampling: SamplingParams, *, preempt_below: int = 0,
                 on_turn: Callable[[int, GenResult], None] | None = None) -> list[GenResult]:
        """One turn per request; `on_turn(i, result)` is called as soon as request i's turn ends."""
        if not requests:
            return []
        with self._lock:
            return self._generate(requests, sampling, preempt_below, on_turn)

    def _generate(self, requests: list[GenRequest], sampling: SamplingParams, preempt_below: int = 0,
                  on_turn: Callable[[int, GenResult], None] | None = None) -> list[GenResult]:
        import torch

        prompts = [r.prompt_ids if r.prompt_ids is not None else self.prompt_ids(r.messages) for r in requests]
        if any(not p for p in prompts):
            raise ValueError("the transformers backend needs a non-empty prompt for every request")
        results: list[GenResult | None] = [None] * len(requests)

        def finished(b: int, ids: list[int], reason: str) -> None:
            results[b] = turn_result(requests[b], ids, reason, decode=self.decode, eos_ids=self.eos_ids)
            if on_turn is not None:
                on_turn(b, results[b])

        was_training = bool(getattr(self.model, "training", False))
        self.model.eval()
        try:
            with torch.no_grad():
                self._decode(prompts, requests, sampling, preempt_below, finished)
        finally:
            if was_training:
                self.model.train()
        missing = [b for b, r in enumerate(results) if r is None]
        if missing:
            raise RuntimeError(f"decode loop ended without a turn for rows {missing}")
        return results  # type: ignore[return-value]

    def _decode(self, prompts: list[list[int]], requests: list[GenRequest], sampling: SamplingParams,
                preempt_below: int, finished: Callable[[int, list[int], str], None]) -> None:
        """Prefill the left-padded batch, then decode; a row leaves the batch (`finished(row, ids, reason)`) as
        soon as its turn ends."""
        import torch
        from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopPLogitsWarper

        from .kv_cache import decode_cache

        device = self.device
        n, width = len(prompts), max(len(p) for p in prompts)
        input_ids = torch.full((n, width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((n, width), dtype=torch.long)
        for b, p in enumerate(prompts):
            input_ids[b, width - len(p):] = torch.tensor(p, dtype=torch.long)
            attention[b, width - len(p):] = 1
        input_ids, attention = input_ids.to(device), attention.to(device)
        positions = (attention.cumsum(-1) - 1).clamp(min=0)
        warpers = LogitsProcessorList()
        if not sampling.greedy:
            warpers.append(TemperatureLogitsWarper(sampling.temperature))
            if sampling.top_p < 1.0:
                warpers.append(TopPLogitsWarper(sampling.top_p))
            generator = torch.Generator(device=device).manual_seed(sampling.seed)
        attn = getattr(self.model.config, "_attn_implementation", None)
        mask_4d = attn in MASK_4D_ATTENTION
        additive_min = torch.finfo(self.model.dtype).min if attn == "eager" else None

        cache = decode_cache(self.model.config, width + max(r.max_new_tokens for r in requests) + 1,
                             dtype=self.model.dtype)
        with self._prefill_precision():
            out = self.model(input_ids=input_ids, attention_mask=attention, position_ids=positions,
                             past_key_values=cache, use_cache=True, logits_to_keep=1)
        keep = attention.bool()  # (rows, cache length): which cached positions each row attends to
        next_pos = positions[:, -1] + 1
        rows = list(range(n))  # the request index of each row still in the batch
        stops = [TurnStops(r, self.piece, self.eos_ids) for r in requests]
        generated: list[list[int]] = [[] for _ in range(n)]
        while True:
            scores = out.logits[:, -1, :].float()
            if sampling.greedy:
                tokens = scores.argmax(-1)
            else:
                probs = torch.softmax(warpers(None, scores), dim=-1)
                tokens = torch.multinomial(probs, 1, generator=generator).squeeze(1)
            ended = []
            for j, (b, tok) in enumerate(zip(rows, tokens.tolist(), strict=True)):
                generated[b].append(tok)
                why = stops[b].step(tok)
                if why is not None:
                    finished(b, generated[b], why)
                    ended.append(j)
            if len(ended) == len(rows):
                return
            if ended:
                gone = set(ended)
                left = torch.tensor([j for j in range(len(rows)) if j not in gone], device=device)
                cache.batch_select_indices(left)
                tokens, keep, next_pos = tokens[left], keep[left], next_pos[left]
                rows = [rows[j] for j in left.tolist()]
                keep = self._drop_shared_padding(cache, keep)
            if len(rows) <= preempt_below:
                for b in rows:
                    finished(b, generated[b], "preempted")
                return
            keep = torch.cat([keep, keep.new_ones((len(rows), 1))], dim=1)
            if not mask_4d:
                mask = keep.long()
            elif additive_min is None:
                mask = keep[:, None, None, :]
            else:
                mask = torch.zeros(keep.shape, dtype=self.model.dtype, device=device).masked_fill_(
                    ~keep, additive_min)[:, None, None, :]
            out = self.model(input_ids=tokens[:, None], attention_mask=mask, position_ids=next_pos[:, None],
                             past_key_values=cache, use_cache=True)
            next_pos = next_pos + 1

    def _prefill_precision(self) -> Any:
        """bfloat16 autocast for the prompt forward when asked and the model computes in another dtype."""
        import contextlib

        import torch

        if self.prefill_dtype == "model" or self.model.dtype == torch.bfloat16:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    @staticmethod
    def _drop_shared_padding(cache: Any, keep: Any) -> Any:
        """Cut the leading cache positions that are padding for every remaining row (shorter attention).

        Only for caches made of plain full-attention layers, whose state is just their tensors.
        """
        from transformers.cache_utils import DynamicLayer

        from .kv_cache import PreallocatedLayer

        shared = int((~keep).all(dim=0).long().cumprod(dim=0).sum())
        layers = getattr(cache, "layers", None) or []
        if not shared or not layers or any(type(layer) not in (DynamicLayer, PreallocatedLayer)
                                           or not layer.is_initialized for layer in layers):
            return keep
        for layer in layers:
            if isinstance(layer, PreallocatedLayer):
                layer.drop_front(shared)
            else:
                layer.keys = layer.keys[:, :, shared:]
                layer.values = layer.values[:, :, shared:]
        return keep[:, shared:]
