"""A small OpenAI-compatible HTTP server for a local checkpoint (`r1ci serve`).

Endpoints: ``GET /v1/models`` and ``POST /v1/chat/completions`` (non-streaming; ``stop``, ``max_tokens`` /
``max_completion_tokens``, ``temperature``, ``top_p``, ``seed``). Generation runs through the rollout
engine's transformers backend; concurrent requests with the same sampling settings are batched together
(micro-batching, up to `max_batch` requests gathered for `batch_wait_s`).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

log = logging.getLogger(__name__)

DEFAULT_MAX_TOKENS = 512


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str | None = None

class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str | None = None
    messages: list[Message]
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int | None = 1
    stream: bool | None = False


class _Batcher:
    """Collects requests from the HTTP worker threads and runs them in batches on one generation thread."""

    def __init__(self, backend: Any, max_batch: int = 16, batch_wait_s: float = 0.01):
        self.backend = backend
        self.max_batch = max_batch
        self.batch_wait_s = batch_wait_s
        self.queue: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="r1ci-serve-gen", daemon=True)
        self.thread.start()

    def submit(self, request: Any, sampling: Any) -> Future:
        fut: Future = Future()
        self.queue.put((request, sampling, fut))
        return fut

    def close(self) -> None:
        self._stop.set()
        self.queue.put(None)
        self.thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            first = self.queue.get()
            if first is None:
                break
            batch = [first]
            deadline = time.monotonic() + self.batch_wait_s
            while len(batch) < self.max_batch:
                try:
                    nxt = self.queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if nxt is None:
                    self._stop.set()
                    break
                batch.append(nxt)
            groups: dict[Any, list] = {}
            for entry in batch:
                groups.setdefault((entry[1].temperature, entry[1].top_p, entry[1].seed), []).append(entry)
            for entries in groups.values():
                try:
                    results = self.backend.generate([e[0] for e in entries], entries[0][1])
                except Exception as err:  # report to every waiting request, keep serving
                    log.exception("generation failed")
                    for e in entries:
                        e[2].set_exception(err)
                    continue
                for e, r in zip(entries, results, strict=True):
                    e[2].set_result(r)


def create_app(backend: Any, model_name: str, *, max_batch: int = 16, batch_wait_s: float = 0.01) -> Any:
    """The FastAPI app serving `backend` (a token-level rollout backend) as `model_name`."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, HTTPException

    from .rollout.backends.base import GenRequest, SamplingParams

    batcher = _Batcher(backend, max_batch=max_batch, batch_wait_s=batch_wait_s)

    @asynccontextmanager
    async def lifespan(app: Any):
        yield
        batcher.close()

    app = FastAPI(title="r1ci serve", lifespan=lifespan)
    app.state.batcher = batcher

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": model_name, "object": "model", "created": 0, "owned_by": "r1ci"}]}

    @app.post("/v1/chat/completions")
    def chat(req: ChatRequest) -> dict[str, Any]:
        if req.stream:
            raise HTTPException(400, "stream=true is not supported by r1ci serve")
        if (req.n or 1) != 1:
            raise HTTPException(400, "only n=1 is supported by r1ci serve")
        if req.model and req.model != model_name:
            raise HTTPException(404, f"model {req.model!r} is not served here; this server has {model_name!r}")
        max_new = req.max_completion_tokens or req.max_tokens or DEFAULT_MAX_TOKENS
        if max_new < 1:
            raise HTTPException(400, "max_tokens must be >= 1")
        stop = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
        messages = [{"role": m.role, "content": m.content or ""} for m in req.messages]
        temperature = 1.0 if req.temperature is None else req.temperature
        sampling = SamplingParams(temperature=temperature, top_p=req.top_p or 1.0, seed=req.seed or 0)
        try:
            prompt_ids = backend.prompt_ids(messages)
        except Exception as err:
            raise HTTPException(400, f"cannot render the messages with the chat template: {err}") from None
        gen = GenRequest(messages=messages, max_new_tokens=max_new, prompt_ids=prompt_ids, stop_on_turn=False,
                         stop=[s for s in stop if s])
        result = batcher.submit(gen, sampling).result()
        n_out = len(result.token_ids or [])
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model_name,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": result.text},
                "finish_reason": "length" if result.finish == "length" else "stop",
            }],
            "usage": {"prompt_tokens": len(prompt_ids), "completion_tokens": n_out,
                      "total_tokens": len(prompt_ids) + n_out},
        }

    return app


def make_server(checkpoint: str | Path, host: str = "127.0.0.1", port: int = 8000, *, dtype: str = "float32",
                device: str | None = None, model_name: str | None = None, log_level: str = "warning",
                backend: Any = None, max_batch: int = 16) -> Any:
    """A `uvicorn.Server` for `checkpoint` (run it with `.run()`, stop it with `.should_exit = True`)."""
    import uvicorn

    from .rollout.backends.transformers import TransformersBackend

    if backend is None:
        backend = TransformersBackend(model_path=str(checkpoint), dtype=dtype, device=device)
    name = model_name or Path(str(checkpoint)).name or str(checkpoint)
    app = create_app(backend, name, max_batch=max_batch)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False)
    return uvicorn.Server(config)


def serve(checkpoint: str | Path, host: str = "127.0.0.1", port: int = 8000, **kwargs: Any) -> None:
    """Serve `checkpoint` at http://host:port/v1 until interrupted."""
    server = make_server(checkpoint, host, port, **kwargs)
    log.info("serving %s at http://%s:%d/v1", checkpoint, host, port)
    server.run()
