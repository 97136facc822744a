"""Shared by every test folder."""

from __future__ import annotations

import os

import pytest

# The shipped default is a real 135M model; tests that do not name a recipe use the tiny one (speed).
os.environ.setdefault("R1CI_RECIPE", "tiny")


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    """Torch on one thread: the 2-core machine is shared with sandboxes and subprocesses."""
    import torch

    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)
