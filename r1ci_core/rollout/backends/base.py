"""The generation-backend interface shared by the transformers, vLLM and OpenAI-compatible backends.

A backend produces ONE assistant turn per request. It stops a turn at whichever comes first:

* the model's own end of turn (EOS, e.g. ``<|im_end|>``),
* right after the closing fence of the first ```` ```python ```` block (``finish="code"``),
* right after a complete ``<<<answer>>>`` written outside a code block (``finish="answer"``),
* the request's token budget (``finish="length"``).

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

Finish = Literal["eos", "code", "answer", "length", "stop"]

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


def cut_token_turn(ids: list[int], req: GenRequest, *, piece: Callable[[int], str],
                   decode: Callable[[list[int]], str], eos_ids: Collection[int],
                   engine_finish: str | None = None) -> GenResult:
    """Cut freshly generated `ids` where a turn must end (EOS, closed block, answer, budget, stop string).

    For engines that cannot stop on these conditions themselves (vLLM, test doubles): the kept ids are a
    prefix of what was generated, so they are still exactly the policy's tokens.
    """
    text = ""
    for k, tok in enumerate(ids[: max(1, req.max_new_tokens)]):
        if tok in eos_ids:
            kept = ids[: k + 1]
            return GenResult(text=decode(kept[:-1]), finish="eos", token_ids=kept, ended_with_eos=True)
        p = piece(tok)
        text += p
        if req.stop_on_turn and ("`" in p or ">" in p):
            why = turn_stop(text)
            if why:
                kept = ids[: k + 1]
                return GenResult(text=decode(kept), finish=why, token_ids=kept)
        if req.stop:
            tail = len(p) + max(len(s) for s in req.stop)
            if any(s in text[-tail:] for s in req.stop):
                kept = ids[: k + 1]
                body = decode(kept)
                cut = [body.find(s) for s in req.stop if s in body]
                return GenResult(text=body[: min(cut)] if cut else body, finish="stop", token_ids=kept)
    kept = ids[: max(1, req.max_new_tokens)]
    finish = "length" if engine_finish == "length" or len(kept) >= req.max_new_tokens else "eos"
    return GenResult(text=decode(kept), finish=finish, token_ids=kept)


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


@dataclass
class GenResult:
    """The generated turn: its text (without the end-of-turn token) and, for token backends, the exact ids."""

    text: str
    finish: Finish
    token_ids: list[int] | None = None  # as sampled, including the EOS token when the model wrote it
    ended_with_eos: bool = False
    n_tokens: int | None = None  # message-level backends: completion tokens reported by the server


class Backend(ABC):
    """Generates assistant turns for a batch of conversations."""

    name: str = ""
    token_level: bool = True
    tokenizer: Any = None  # token-level backends: the chat tokenizer (with its chat template)

    @property
    def model_name(self) -> str:
        return getattr(self, "_model_name", self.name)

    @abstractmethod
    def generate(self, requests: list[GenRequest], sampling: SamplingParams) -> list[GenResult]:
        """One assistant turn per request, in order."""

    def close(self) -> None:
        """Free resources (servers, engines); nothing to free by default."""
        return None
