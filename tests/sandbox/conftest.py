"""Fixtures for the sandbox tests: they run against the real isolation (bwrap here)."""

from __future__ import annotations

import os

import pytest

from r1ci_core.sandbox import Sandbox, SandboxUnavailableError
from r1ci_core.sandbox.isolation import resolve_isolation
from r1ci_core.sandbox.settings import SandboxSettings


def _available(isolation: str) -> str | None:
    try:
        resolve_isolation(SandboxSettings(isolation=isolation))
        return None
    except SandboxUnavailableError as e:
        return str(e)


BWRAP_MISSING = _available("bwrap")
UNSHARE_MISSING = _available("unshare")

needs_bwrap = pytest.mark.skipif(BWRAP_MISSING is not None, reason=f"bwrap isolation unavailable: {BWRAP_MISSING}")
needs_unshare = pytest.mark.skipif(UNSHARE_MISSING is not None,
                                   reason=f"unshare isolation unavailable: {UNSHARE_MISSING}")


@pytest.fixture(scope="session")
def sb():
    """The warm, bwrap-isolated sandbox most tests share (as in production)."""
    if BWRAP_MISSING:
        pytest.skip(f"bwrap isolation unavailable: {BWRAP_MISSING}")
    with Sandbox(isolation="bwrap", mode="warm", workers=2, timeout_s=10) as s:
        s.start()
        yield s


@pytest.fixture(scope="session")
def cold_sb():
    if BWRAP_MISSING:
        pytest.skip(f"bwrap isolation unavailable: {BWRAP_MISSING}")
    with Sandbox(isolation="bwrap", mode="cold", workers=2) as s:
        yield s


@pytest.fixture(scope="session")
def unshare_sb():
    if UNSHARE_MISSING:
        pytest.skip(f"unshare isolation unavailable: {UNSHARE_MISSING}")
    with Sandbox(isolation="unshare", mode="warm", workers=1, preload=()) as s:
        s.start()
        yield s


def host_processes() -> dict[int, tuple[int, bytes]]:
    """pid -> (uid, cmdline) of every process on the host (the tests run in the host pid namespace)."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmd = f.read()
            uid = os.stat(f"/proc/{name}").st_uid
        except OSError:
            continue
        out[int(name)] = (uid, cmd)
    return out


def descendants(root: int) -> set[int]:
    """Every live (non-zombie) process below ``root``."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] == "Z":
            continue
        children.setdefault(int(fields[1]), []).append(int(name))
    out, todo = set(), [root]
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out
