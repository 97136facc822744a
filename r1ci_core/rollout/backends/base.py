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
