"""Deterministic family split (train / test) and question pools."""

from __future__ import annotations

from .base import Task

POOLS = ("sft", "grpo", "test_seen", "test_unseen")


def family_split(families: dict[str, Task], overrides: dict[str, str] | None = None) -> dict[str, str]:
    """Family name -> "train" or "test": each family's default split, unless `overrides` names it."""
    overrides = overrides or {}
    unknown = sorted(set(overrides) - set(families))
    if unknown:
        raise ValueError(f"split overrides name unknown families {unknown}; known: {sorted(families)}")
    return {name: overrides.get(name, fam.split) for name, fam in families.items()}
