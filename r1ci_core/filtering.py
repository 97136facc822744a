"""The SFT filter: keep verified-correct teacher trajectories within per-family and length limits."""

from __future__ import annotations

from collections import Counter
from typing import Any

from .config import FilterConfig
from .trajectory import Trajectory


def filter_trajectories(
    trajectories: list[Trajectory], cfg: FilterConfig, tokenizer: Any | None = None
) -> tuple[list[Trajectory], dict[str, int]]:
    """Kept trajectories and the count dropped per reason."""
    from .chat import tokenize_conversation

    dropped: Counter = Counter()
    per_family: Counter = Counter()
    seen: set[str] = set()
    kept = []
    for traj in trajectories:
        if traj.infra_error:
            dropped["infra_error"] += 1
        elif not traj.score or traj.score < 1.0:
            dropped["incorrect"] += 1
        elif (key := repr(traj.messages)) in seen:
            dropped["duplicate"] += 1
        elif per_family[traj.family] >= cfg.cap_per_family:
            dropped["family_cap"] += 1
        elif tokenizer is not None and len(tokenize_conversation(tokenizer, traj.messages)[0]) > cfg.max_tokens:
            dropped["too_long"] += 1
        else:
            seen.add(key)
            per_family[traj.family] += 1
            kept.append(traj)
            continue
    return kept, dict(dropped)
