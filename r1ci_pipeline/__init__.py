"""Dagster definitions for r1ci: one asset per artifact, each calling one `r1ci_core.stages` function."""

from .definitions import defs

__all__ = ["defs"]
