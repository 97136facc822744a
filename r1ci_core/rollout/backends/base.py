"""The generation-backend interface shared by the transformers, vLLM and OpenAI-compatible backends.

A backend produces ONE assistant turn per request. It stops a turn at whichever comes first:

* the model's own end of turn (EOS, e.g. ``<|im_end|>``),
* right after the closing fence of the first ```` ```python ```` block (``finish="code"``),
* right after a complete ``<<<answer>>>`` written outside a code block (``finish="answer"``),
* the request's token budget (``finish="length"``),
* preemption (``finish="preempted"``, token backends that support it): when few rows of a batch are still
  running, they are stopped mid-turn so they can continue in the next, fuller batch (the engine passes
  the partial turn back as `GenRequest.turn_text`, its ids already ending `prompt_ids`).

Token-level backends (``token_level = True``: transformers, vLLM) receive the conversation's token ids
and return the ids the policy actually generated; message-level backends (OpenAI) receive messages and
return text only.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any, Literal

Finish = Literal["eos", "code", "answer", "length", "stop", "preempted"]

# A ```python block: the opening fence (optionally followed by spaces) and a newline, code, the closing fence.
CODE_BLOCK_RE = re.compile(r"```python[ \t]*\n(.*?)```", re.DOTALL)
CODE_OPEN = "```python"
ANSWER_RE = re.compile(r"<<<(.*?)>>>", re.DOTALL)


def turn_stop(text: str) -> Literal["code", "answer"] | None:
    """Whether an assistant turn written so far must stop: a python block closed, or an answer given.

    An answer inside an (open or closed) code block does not count: code often prints ``<<<x>>>``.
    """
    if CODE_BLOCK_RE.search(text):
        return "code"
    start = text.find(CODE_OPEN)
    outside = text if start < 0 else text[:start]
    if ANSWER_RE.search(outside):
        return "answer"
    return None


def first_code_block(text: str) -> str | None:
    """The code of the first closed ```python block of `text`, or None."""
    m = CODE_BLOCK_RE.search(text)
    return m.group(1) if m else None


class TurnStops:
    """Where one turn must end, decided token by token as it is generated: the model's EOS, a closed code
    block or an answer outside code (`turn_stop`), a stop string, or the request's token budget."""

    def __init__(self, req: GenRequest, piece: Callable[[int], str], eos_ids: Collection[int]):
        self.req, self.piece, self.eos_ids = req, piece, eos_ids
        self.text = req.turn_text
        self.n = 0

    def step(self, tok: int) -> Finish | None:
        """The finish reason if the turn ends with `tok` (the next token), else None."""
        self.n += 1
        if tok in self.eos_ids:
            return "eos"
        req, p = self.req, self.piece(tok)
        self.text += p
        if req.stop_on_turn and ("`" in p or ">" in p):
            why = turn_stop(self.text)
            if why:
                return why
        if req.stop:
            tail = len(p) + max(len(s) for s in req.stop)
            if any(s in self.text[-tail:] for s in req.stop):
                return "stop"
        if self.n >= req.max_new_tokens:
            return "length"
        return None


def turn_result(req: GenRequest, ids: list[int], finish: Finish, *, decode: Callable[[list[int]], str],
                eos_ids: Collection[int], logprobs: list[float | None] | None = None) -> GenResult:
    """The turn made of `ids`: its text without a final EOS token and, ended by a stop string, cut before it."""
    ended_with_eos = finish == "eos" and bool(ids) and ids[-1] in eos_ids
    text = decode(ids[:-1] if ended_with_eos else ids)
    if finish == "stop":
        cut = [text.find(s) for s in req.stop if s in text]
        if cut:
            text = text[: min(cut)]
    return GenResult(text=text, finish=finish, token_ids=ids, ended_with_eos=ended_with_eos, logprobs=logprobs)


def cut_token_turn(ids: list[int], req: GenRequest, *, piece: Callable[[int], str],
                   decode: Callable[[list[int]], str], eos_ids: Collection[int],
                   engine_finish: str | None = None, logprobs: list[float | None] | None = None) -> GenResult:
    """Cut freshly generated `ids` where a turn must end (EOS, closed block, answer, budget, stop string).

    For engines that cannot stop on these conditions themselves (vLLM, test doubles): the kept ids are a
    prefix of what was generated, so they are still exactly the policy's tokens. `logprobs` (one per id, the
    sampling log-probability) is cut the same way.
    """
    if logprobs is not None and len(logprobs) != len(ids):
        raise ValueError(f"the engine returned {len(logprobs)} logprobs for {len(ids)} sampled tokens")
    stops = TurnStops(req, piece, eos_ids)
    for k, tok in enumerate(ids):
        why = stops.step(tok)
        if why:
            return turn_result(req, ids[: k + 1], why, decode=decode, eos_ids=eos_ids,
                               logprobs=None if logprobs is None else logprobs[: k + 1])
    finish = "length" if engine_finish == "length" or len(ids) >= req.max_new_tokens else "eos"
    return turn_result(req, ids, finish, decode=decode, eos_ids=eos_ids, logprobs=logprobs)


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0


@dataclass
class GenRequest:
    """One assistant turn to generate. `prompt_ids` is set for token-level backends."""

    messages: list[dict[str, str]]
    max_new_tokens: int
    prompt_ids: list[int] | None = None
    stop_on_turn: bool = True  # stop at a closed code block / an answer (else only EOS, stop strings, length)
    stop: list[str] = field(default_factory=list)  # extra stop strings (OpenAI semantics: excluded from text)
    turn_text: str = ""  # text of this turn generated by earlier (preempted) calls; its ids end prompt_ids


@dataclass
class GenResult:
    """The generated turn: its text (without the end-of-turn token) and, for token backends, the exact ids."""

    text: str
    finish: Finish
    token_ids: list[int] | None = None  # as sampled, including the EOS token when the model wrote it
    ended_with_eos: bool = False
    n_tokens: int | None = None  # message-level backends: completion tokens reported by the server
    logprobs: list[float | None] | None = None  # token backends that report them: one per id, as sampled


class Backend(ABC):
    """Generates assistant turns for a batch of conversations."""

    name: str = ""
    token_level: bool = True
    tokenizer: Any = None  # token-level backends: the chat tokenizer (with its chat template)
    # What one more batch costs, in padded row-tokens: the engine splits a round into length-similar
    # batches only when that saves more padding than this (huge = plain `batch_size` chunks).
    batch_overhead_tokens: int = 1 << 30
    # True: `generate` takes `on_turn` and calls it as each request's turn ends, before the call returns,
    # so the engine can run that turn's code while the other rows are still generating.
    streams_turns: bool = False

    @property
    def model_name(self) -> str:
        return getattr(self, "_model_name", self.name)

    @abstractmethod
    def generate(self, requests: list[GenRequest], sampling: SamplingParams, *,
                 preempt_below: int = 0) -> list[GenResult]:
        """One assistant turn per request, in order.

        `preempt_below` > 0: a backend that batches rows in lock-step may stop the call once at most that
        many rows are still running, returning them with ``finish="preempted"`` (optional; others ignore it).
        """

    def close(self) -> None:
        """Free resources (servers, engines); nothing to free by default."""
        return None
