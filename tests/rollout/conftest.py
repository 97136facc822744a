"""Shared fixtures: one tiny model per session, taught a few R1-CI conversations so it writes code blocks."""

from __future__ import annotations

import pytest

from r1ci_core.rollout.tiny import make_tiny_policy, sample_items
from r1ci_core.sandbox import Sandbox


@pytest.fixture(scope="session")
def items():
    return sample_items(6)


@pytest.fixture(scope="session")
def tiny_policy(tmp_path_factory, items):
    """(checkpoint dir, model, tokenizer) of the tiny model taught on the first 3 items."""
    out = tmp_path_factory.mktemp("rollout") / "tiny"
    model, tokenizer = make_tiny_policy(out, items, n_teach=3, steps=100)
    return out, model, tokenizer


@pytest.fixture(scope="session")
def sandbox():
    with Sandbox() as sb:
        yield sb
