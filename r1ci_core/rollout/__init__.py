"""Multi-turn rollouts (text + executed ```python blocks) shared by teachers, GRPO and evaluation.

Entry point: `run_rollouts(backend, items, limits=..., sandbox=..., mode=...)` with a backend from
`get_backend(name, **kwargs)`.
"""

from __future__ import annotations

from .backends import Backend, GenRequest, GenResult, SamplingParams, get_backend
from .engine import DISABLED_MESSAGE, LIMIT_MESSAGE, MODES, TRUNCATION_MARK, format_output, run_rollouts

__all__ = ["DISABLED_MESSAGE", "LIMIT_MESSAGE", "MODES", "TRUNCATION_MARK", "Backend", "GenRequest", "GenResult",
           "SamplingParams", "format_output", "get_backend", "run_rollouts"]
