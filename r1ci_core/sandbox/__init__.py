"""Sandboxed execution of model-written Python code."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from .result import ExecResult

__all__ = ["ExecResult", "Sandbox", "execute"]


class Sandbox:
    """Minimal placeholder (plain subprocess); hardened version follows."""

    def __init__(self, *, timeout_s: float = 10.0, memory_mb: int = 1024, workers: int = 2):
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        self.workers = workers

    def run(self, code: str, *, timeout_s: float | None = None, memory_mb: int | None = None) -> ExecResult:
        t = self.timeout_s if timeout_s is None else timeout_s
        start = time.monotonic()
        with tempfile.TemporaryDirectory() as d:
            try:
                p = subprocess.run([sys.executable, "-I", "-c", code], cwd=d, capture_output=True,
                                   stdin=subprocess.DEVNULL, timeout=t, env={"PATH": "/usr/bin:/bin"})
            except subprocess.TimeoutExpired as e:
                return ExecResult(stdout=(e.stdout or b"").decode("utf-8", "replace"),
                                  stderr=(e.stderr or b"").decode("utf-8", "replace"),
                                  exit_code=None, timed_out=True, duration_s=time.monotonic() - start)
        return ExecResult(p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace"),
                          p.returncode, False, time.monotonic() - start)

    def run_many(self, codes, **kw) -> list[ExecResult]:
        with ThreadPoolExecutor(self.workers) as ex:
            return list(ex.map(lambda c: self.run(c, **kw), codes))

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


_default: Sandbox | None = None
_lock = threading.Lock()


def execute(code: str, *, timeout_s: float = 10.0, memory_mb: int = 1024) -> ExecResult:
    global _default
    with _lock:
        if _default is None:
            _default = Sandbox()
    return _default.run(code, timeout_s=timeout_s, memory_mb=memory_mb)
