"""The public Sandbox: picks the isolation and the executor, applies limits, injects faults."""

from __future__ import annotations

import logging
import math
import os
import random
import threading
import weakref
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from . import isolation as iso
from ._pump import encode_request
from .cold import run_cold, run_plain
from .result import ExecResult
from .session import Session, StatelessSession
from .settings import SandboxSettings, SandboxUnavailableError, check_limit
from .warm import WarmPool, WorkerDied

log = logging.getLogger("r1ci.sandbox")


class Sandbox:
    """Runs untrusted Python code in isolation.  Thread-safe; use as a context manager or ``close()``.

    ``Sandbox()``, ``Sandbox(settings)``, ``Sandbox(settings, timeout_s=5)``, ``Sandbox(**recipe)``.
    The isolation is resolved (and refused with :class:`SandboxUnavailableError`) at construction;
    warm executors start lazily on the first run (or eagerly with ``start()``).
    """

    def __init__(self, settings: SandboxSettings | Mapping[str, Any] | None = None, **overrides: Any):
        if isinstance(settings, SandboxSettings):
            s = settings.replace(**overrides) if overrides else settings
        else:
            s = SandboxSettings.from_mapping(settings, **overrides)
        self.settings = s
        self.isolation = iso.resolve_isolation(s)
        self._lock = threading.Lock()
        self._pool: WarmPool | None = None
        self._mode: str | None = None
        self._closed = False
        self._pid = os.getpid()
        _live.add(self)
        self._rng = random.Random(s.effective_fail_seed())
        self._rng_lock = threading.Lock()
        self._fail_rate = s.effective_fail_rate()
        if self.isolation == "none":
            log.warning("sandbox isolation is 'none': code runs as a plain subprocess of uid %d", _euid())
            self._mode = "plain"
        elif s.mode == "cold":
            self._mode = "cold"

    @classmethod
    def from_settings(cls, settings: SandboxSettings | Mapping[str, Any], **overrides: Any) -> Sandbox:
        return cls(settings, **overrides)

    # ------------------------------------------------------------------ lifecycle
    def start(self, *, wait_preload: bool = False) -> Sandbox:
        """Start the executors now (otherwise: on the first run).  The sandbox is usable as soon as
        its light executors are; ``wait_preload`` also waits for those with the ``preload``
        packages imported (seconds: numpy and sympy load in the background otherwise)."""
        self._ensure_started()
        if wait_preload and self._pool is not None:
            self._pool.wait_preloaded(self.settings.start_timeout_s)
        return self

    @property
    def mode(self) -> str:
        """'warm', 'cold' or 'plain' (isolation none); resolved by the first run."""
        return self._ensure_started()

    def _after_fork_in_child(self) -> None:
        """A forked copy of the caller must not share the parent's executors (their reader threads
        did not survive the fork): drop our copies of their pipes, start anew on the next run."""
        self._lock = threading.Lock()
        self._rng_lock = threading.Lock()
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.forget()
            self._mode = None
        self._pid = os.getpid()

    def _ensure_started(self) -> str:
        if self._pid != os.getpid():
            self._after_fork_in_child()
        if self._mode is not None:
            return self._mode
        with self._lock:
            if self._closed:
                raise RuntimeError("sandbox is closed")
            if self._mode is None:
                try:
                    self._pool = WarmPool(self.settings, self.isolation)
                    self._mode = "warm"
                except (WorkerDied, OSError) as e:
                    if self.settings.mode == "warm":
                        raise SandboxUnavailableError(f"warm sandbox executor cannot start: {e}") from e
                    log.warning("warm sandbox executor cannot start (%s); using one %s per call", e,
                                self.isolation)
                    self._mode = "cold"
        return self._mode

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # best effort; hubs also exit when our end of their socket closes
        try:
            self.close()
        except Exception:
            pass

    def describe(self) -> dict[str, Any]:
        mode = self._ensure_started()
        out = {"isolation": self.isolation, "mode": mode, "python": self.settings.python}
        if self._pool is not None:
            out["workers"] = self._pool.describe()["workers"]
        return out

    # ------------------------------------------------------------------ running
    def session(self) -> StatelessSession:
        """One trajectory's handle for its code calls: with ``persistent`` a :class:`Session` (its own
        interpreter, whose state the calls share, dropped by ``close()``), else plain ``run`` calls."""
        return Session(self) if self.settings.persistent else StatelessSession(self)

    def prepare(self, code: str, *, timeout_s: float | None = None, memory_mb: int | None = None,
                cpu_time_s: float | None = None, stdin: str | None = None) -> tuple[bytes, float] | ExecResult:
        """The request of one call and its wall-clock limit, or the result of a call that is not run
        (an injected failure).  A limit that is not positive (or not finite) raises ValueError."""
        s = self.settings
        if timeout_s is not None:
            check_limit("timeout_s", timeout_s)
        if memory_mb is not None:
            check_limit("memory_mb", memory_mb, integer=True)
        if cpu_time_s is not None:
            check_limit("cpu_time_s", cpu_time_s)
        if self._fail_rate > 0:
            with self._rng_lock:
                fail = self._rng.random() < self._fail_rate
            if fail:
                return ExecResult(exit_code=None, infra_error="injected")
        timeout = float(s.timeout_s if timeout_s is None else timeout_s)
        mem = int(s.memory_mb if memory_mb is None else memory_mb)
        cpu = cpu_time_s if cpu_time_s is not None else (s.cpu_time_s if s.cpu_time_s is not None else timeout + 1)
        request = encode_request(code, mem=mem << 20, cpu=max(1, math.ceil(cpu)), nproc=s.max_processes,
                                 fsize=s.file_size_mb << 20, nofile=s.open_files, stdin=stdin)
        return request, timeout

    def run(self, code: str, **limits: Any) -> ExecResult:
        """Run one program in a fresh process.  ``input()`` sees ``stdin`` (default: EOF at once); the
        limits (``timeout_s``, ``memory_mb``, ``cpu_time_s``) default to the settings' (see ``prepare``)."""
        prepared = self.prepare(code, **limits)
        if isinstance(prepared, ExecResult):
            return prepared
        request, timeout = prepared
        s = self.settings
        try:
            mode = self._ensure_started()
        except SandboxUnavailableError as e:
            return ExecResult(exit_code=None, infra_error=str(e))
        except RuntimeError as e:
            return ExecResult(exit_code=None, infra_error=str(e))
        cap = s.max_output_bytes
        try:
            if mode == "warm":
                pool = self._pool
                if pool is None:
                    return ExecResult(exit_code=None, infra_error="sandbox closed")
                return pool.run(code, request, timeout_s=timeout, cap=cap)
            if mode == "cold":
                return run_cold(s, request, timeout_s=timeout, cap=cap)
            log.warning("running code WITHOUT isolation (sandbox isolation: none)")
            return run_plain(s, request, timeout_s=timeout, cap=cap)
        except Exception as e:  # never let a sandbox failure look like a program failure
            log.exception("sandbox failure")
            return ExecResult(exit_code=None, duration_s=0.0, infra_error=f"sandbox failure: {e!r}")

    def run_many(self, codes: Iterable[str], *, concurrency: int | None = None,
                 sessions: Sequence[StatelessSession] | None = None, **kwargs: Any) -> list[ExecResult]:
        """Run programs in parallel (default: two per worker), results in input order; program i in
        ``sessions[i]`` when given (each session one at a time)."""
        codes = list(codes)
        if not codes:
            return []
        if sessions is not None:
            if len(sessions) != len(codes):
                raise ValueError(f"{len(sessions)} sessions for {len(codes)} programs")
            pairs = list(zip(sessions, codes, strict=True))
            if len(pairs) == 1:
                return [pairs[0][0].run(pairs[0][1], **kwargs)]
            with ThreadPoolExecutor(max_workers=min(concurrency or 2 * self.settings.n_workers, len(pairs)),
                                    thread_name_prefix="sandbox-run") as ex:
                return list(ex.map(lambda p: p[0].run(p[1], **kwargs), pairs))
        if self._ensure_started() == "warm":
            n = concurrency or 2 * self.settings.n_workers
        else:
            n = concurrency or self.settings.n_workers
        if n <= 1 or len(codes) == 1:
            return [self.run(c, **kwargs) for c in codes]
        with ThreadPoolExecutor(max_workers=min(n, len(codes)), thread_name_prefix="sandbox-run") as ex:
            return list(ex.map(lambda c: self.run(c, **kwargs), codes))


def _euid() -> int:
    return os.geteuid()


_default: Sandbox | None = None
_default_lock = threading.Lock()
_live: weakref.WeakSet[Sandbox] = weakref.WeakSet()


def _reset_after_fork() -> None:
    global _default_lock
    _default_lock = threading.Lock()
    iso._probe_lock = threading.Lock()
    for sb in list(_live):
        try:
            sb._after_fork_in_child()
        except Exception:
            pass


os.register_at_fork(after_in_child=_reset_after_fork)


def default_sandbox() -> Sandbox:
    """The shared sandbox behind :func:`execute` (default settings; closed at exit)."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                import atexit

                _default = Sandbox()
                atexit.register(_default.close)
    return _default


def execute(code: str, *, timeout_s: float = 10.0, memory_mb: int = 1024) -> ExecResult:
    """Run one program in the shared default :class:`Sandbox` (raises SandboxUnavailableError
    when this machine allows no isolation: never silently unsandboxed; ValueError for a limit
    that is not positive)."""
    return default_sandbox().run(code, timeout_s=timeout_s, memory_mb=memory_mb)
