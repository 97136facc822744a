"""Batched, left-padded `model.generate` with a per-row stopping criterion (closing fence, answer, EOS, budget)."""

from __future__ import annotations

import logging
import threading
from typing import Any

from transformers import StoppingCriteria

from .base import Backend, GenRequest, GenResult, SamplingParams, turn_stop

log = logging.getLogger(__name__)


class _TurnStopper(StoppingCriteria):
    """Per-row stop decision made on the host after every generated token.

    Records for each row how many generated tokens to keep and why it stopped, so rows that finish early
    (and are then filled with padding by `generate`) are cut exactly after their last real token.
    """

    def __init__(self, backend: TransformersBackend, start: int, requests: list[GenRequest], preempt_below: int = 0):
        self.backend = backend
        self.start = start
        self.requests = requests
        self.preempt_below = preempt_below
        n = len(requests)
        self.keep: list[int | None] = [None] * n
        self.reason: list[str | None] = [None] * n
        self.text = [r.turn_text for r in requests]

    def __call__(self, input_ids: Any, scores: Any = None, **kwargs: Any) -> Any:
        import torch

        n_new = input_ids.shape[1] - self.start
        last = input_ids[:, -1].tolist()
        eos = self.backend.eos_ids
        for b, tok in enumerate(last):
            if self.reason[b] is not None:
                continue
            req = self.requests[b]
            if tok in eos:
                self.reason[b], self.keep[b] = "eos", n_new
                continue
            piece = self.backend.piece(tok)
            text = self.text[b] = self.text[b] + piece
            if req.stop_on_turn and ("`" in piece or ">" in piece):
                why = turn_stop(text)
                if why:
                    self.reason[b], self.keep[b] = why, n_new
                    continue
            if req.stop:
                tail = len(piece) + max(len(s) for s in req.stop)
                if any(s in text[-tail:] for s in req.stop):
                    self.reason[b], self.keep[b] = "stop", n_new
                    continue
            if n_new >= req.max_new_tokens:
                self.reason[b], self.keep[b] = "length", n_new
        running = [b for b, r in enumerate(self.reason) if r is None]
        if running and len(running) <= self.preempt_below:
            for b in running:
                self.reason[b], self.keep[b] = "preempted", n_new
        done = [r is not None for r in self.reason]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


class TransformersBackend(Backend):
    """Generation with a (possibly live, training) Hugging Face causal LM, on CPU or GPU.

    Pass a loaded `model` + `tokenizer` (e.g. the GRPO policy being trained: it is put in eval mode for
    generation and restored afterwards), or a checkpoint `model_path` to load.
    """

    name = "transformers"
    token_level = True

    def __init__(self, model: Any = None, tokenizer: Any = None, *, model_path: str | None = None,
                 dtype: str = "float32", device: str | None = None, local_files_only: bool = True):
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

    def generate(self, requests: list[GenRequest], sampling: SamplingParams, *,
                 preempt_below: int = 0) -> list[GenResult]:
        if not requests:
            return []
        with self._lock:
            return self._generate(requests, sampling, preempt_below)

    def _generate(self, requests: list[GenRequest], sampling: SamplingParams, preempt_below: int = 0) -> list[GenResult]:
        import torch
        from transformers import StoppingCriteriaList

        prompts = [r.prompt_ids if r.prompt_ids is not None else self.prompt_ids(r.messages) for r in requests]
        width = max(len(p) for p in prompts)
        input_ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(prompts), width), dtype=torch.long)
        for b, p in enumerate(prompts):
            if p:
                input_ids[b, width - len(p):] = torch.tensor(p, dtype=torch.long)
                attention[b, width - len(p):] = 1
        device = self.device
        input_ids, attention = input_ids.to(device), attention.to(device)

        stopper = _TurnStopper(self, width, requests, preempt_below)
        kwargs: dict[str, Any] = dict(
            max_new_tokens=max(1, max(r.max_new_tokens for r in requests)),
            eos_token_id=sorted(self.eos_ids),
            pad_token_id=self.pad_id,
            use_cache=True,
            num_beams=1,
            repetition_penalty=1.0,
            stopping_criteria=StoppingCriteriaList([stopper]),
        )
        if sampling.greedy:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            kwargs.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p, top_k=0)
            torch.manual_seed(sampling.seed)

        was_training = bool(getattr(self.model, "training", False))
        self.model.eval()
        try:
            with torch.no_grad():
                out = self.model.generate(input_ids=input_ids, attention_mask=attention, **kwargs)
        finally:
            if was_training:
                self.model.train()
        generated = out[:, width:].tolist()

        results = []
        for b, req in enumerate(requests):
            row = generated[b]
            keep = stopper.keep[b]
            reason = stopper.reason[b]
            if keep is None:  # generate ended by its own criteria (max length): everything is real
                keep, reason = min(len(row), req.max_new_tokens), "length"
            ids = row[:keep]
            ended_with_eos = bool(ids) and ids[-1] in self.eos_ids and reason == "eos"
            text = self.decode(ids[:-1] if ended_with_eos else ids)
            if reason == "stop":
                cut = [text.find(s) for s in req.stop if s in text]
                if cut:
                    text = text[: min(cut)]
            results.append(GenResult(text=text, finish=reason, token_ids=ids, ended_with_eos=ended_with_eos))
        return results
