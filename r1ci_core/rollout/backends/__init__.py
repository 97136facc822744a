"""Generation backends, picked by name (the recipe's `rollout.backend`)."""

from __future__ import annotations

import importlib
from typing import Any

from .base import Backend, GenRequest, GenResult, SamplingParams, cut_token_turn, first_code_block, turn_stop

# name -> (module, class); modules are imported only when the backend is asked for.
BACKENDS: dict[str, tuple[str, str]] = {
    "transformers": (".transformers", "TransformersBackend"),
    "vllm": (".vllm", "VLLMBackend"),
    "openai": (".openai", "OpenAIBackend"),
}


def backend_class(name: str) -> type[Backend]:
    if name not in BACKENDS:
        raise ValueError(f"unknown rollout backend {name!r}; choose one of {sorted(BACKENDS)}")
    module, cls = BACKENDS[name]
    return getattr(importlib.import_module(module, __name__), cls)


def get_backend(name: str, **kwargs: Any) -> Backend:
    """Build the backend called `name` (``transformers``, ``vllm`` or ``openai``) with its own kwargs.

    transformers: ``model=, tokenizer=`` (a loaded, possibly training, model) or ``model_path=``;
    vllm: ``model_path=`` (or ``llm=``), engine kwargs; openai: ``base_url=, model=, api_key=``.
    """
    return backend_class(name)(**kwargs)


__all__ = ["BACKENDS", "Backend", "GenRequest", "GenResult", "SamplingParams", "backend_class",
           "cut_token_turn", "first_code_block", "get_backend", "turn_stop"]
