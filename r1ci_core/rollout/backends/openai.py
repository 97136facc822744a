"""Any OpenAI-compatible chat endpoint (vLLM serve, `r1ci serve`, hosted APIs): message-level, no token ids.

The request stops at ``"```\\n"`` (the closing fence of a block followed by a newline; the opening
```` ```python```` never matches) or the model's own end of turn. OpenAI semantics drop the stop string, so
the fence is restored; the returned text is then cut right after the first closed ```python block or the
first ``<<<answer>>>`` outside code, exactly like the token-level backends. Interpreter turns are sent
with role ``user`` (how the R1-CI template renders them) so strict servers accept them.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .base import ANSWER_RE, CODE_BLOCK_RE, CODE_OPEN, Backend, GenRequest, GenResult, SamplingParams

FENCE_STOP = "```\n"


def cut_turn(text: str, server_finish: str | None) -> tuple[str, str]:
    """(text, finish) of a turn returned by a server, cut like the token-level backends cut it."""
    start = text.find(CODE_OPEN)
    if start >= 0 and CODE_BLOCK_RE.search(text) is None and server_finish == "stop":
        text = text + ("```" if text.endswith("\n") else "\n```")  # the stop string ate the closing fence
    m = CODE_BLOCK_RE.search(text)
    outside = text if start < 0 else text[:start]
    a = ANSWER_RE.search(outside)
    if a is not None:
        return text[: a.end()], "answer"
    if m is not None:
        return text[: m.end()], "code"
    return text, "length" if server_finish == "length" else "eos"


class OpenAIBackend(Backend):
    name = "openai"
    token_level = False

    def __init__(self, base_url: str | None = None, model: str | None = None, api_key: str | None = None, *,
                 max_concurrency: int = 8, timeout_s: float = 120.0, max_retries: int = 2, client: Any = None):
        if client is None:
            from openai import OpenAI

            client = OpenAI(base_url=base_url or os.environ.get("OPENAI_BASE_URL"),
                            api_key=api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY",
                            timeout=timeout_s, max_retries=max_retries)
        self.client = client
        self._model_name = model or self._first_model()
        self.max_concurrency = max_concurrency

    def _first_model(self) -> str:
        models = list(self.client.models.list())
        if not models:
            raise ValueError("the OpenAI-compatible endpoint lists no model: pass model=")
        return models[0].id

    def _one(self, req: GenRequest, sampling: SamplingParams) -> GenResult:
        messages = [{"role": "user" if m["role"] == "tool" else m["role"], "content": m["content"]}
                    for m in req.messages]
        kwargs: dict[str, Any] = dict(model=self._model_name, messages=messages, max_tokens=req.max_new_tokens,
                                      temperature=sampling.temperature, top_p=sampling.top_p, seed=sampling.seed)
        stops = ([FENCE_STOP] if req.stop_on_turn else []) + list(req.stop)
        if stops:
            kwargs["stop"] = stops[:4]
        resp = self.client.chat.completions.create(**kwargs)
        choice = resp.choices[0]
        text = choice.message.content or ""
        n_tokens = getattr(getattr(resp, "usage", None), "completion_tokens", None)
        if not req.stop_on_turn:
            finish = "length" if choice.finish_reason == "length" else "stop"
            return GenResult(text=text, finish=finish, n_tokens=n_tokens)
        text, finish = cut_turn(text, choice.finish_reason)
        return GenResult(text=text, finish=finish, n_tokens=n_tokens)

    def generate(self, requests: list[GenRequest], sampling: SamplingParams, *,
                 preempt_below: int = 0) -> list[GenResult]:
        if not requests:
            return []
        with ThreadPoolExecutor(min(self.max_concurrency, len(requests))) as pool:
            return list(pool.map(lambda r: self._one(r, sampling), requests))

    def close(self) -> None:
        close = getattr(self.client, "close", None)
        if close:
            close()
