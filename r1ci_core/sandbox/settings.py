"""Sandbox settings: every limit, the isolation, the interpreter; maps 1:1 onto a recipe section."""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Isolation = Literal["auto", "bwrap", "unshare", "none"]
Mode = Literal["auto", "warm", "cold"]

FAIL_RATE_ENV = "R1CI_SANDBOX_FAIL_RATE"
FAIL_SEED_ENV = "R1CI_SANDBOX_FAIL_SEED"


PERSISTENT_NEEDS_ISOLATION = ("persistent: true needs isolation (nothing cleans up between the calls of an "
                              "unisolated interpreter): set isolation to auto, bwrap or unshare, or persistent: false")


class SandboxUnavailableError(RuntimeError):
    """No isolation is possible here (and ``isolation: none`` was not asked for)."""


_NON_POSITIVE = {
    "memory_mb": "0 or less would run the program with no memory limit at all",
    "timeout_s": "0 or less would report every program as timed out without running it",
    "cpu_time_s": "0 or less would stop every program before it starts",
}


def check_limit(name: str, value: Any, *, integer: bool = False) -> None:
    """Refuse a limit that is not a finite positive number (a whole one if ``integer``): the sandbox
    fails closed rather than run with no limit or report every program as timed out."""
    number = isinstance(value, numbers.Integral if integer else numbers.Real) and not isinstance(value, bool)
    if number and math.isfinite(value) and value > 0:
        return
    why = f" ({_NON_POSITIVE[name]})" if number and value <= 0 and name in _NON_POSITIVE else ""
    kind = "a whole number above 0" if integer else "a finite number above 0"
    raise ValueError(f"sandbox {name} must be {kind}, got {value!r}{why}: give {kind}")


@dataclass(frozen=True)
class SandboxSettings:
    """Limits and isolation of a :class:`~r1ci_core.sandbox.Sandbox`.

    Per-call limits (``timeout_s``, ``memory_mb``, ``cpu_time_s``) are defaults that
    ``Sandbox.run`` can override; the rest are fixed for the sandbox's lifetime.
    """

    # --- isolation / interpreter
    isolation: Isolation = "auto"
    """``auto``: bwrap if it works, else ``unshare`` (own namespaces + pivot_root), else refuse.
    ``none``: a plain subprocess with rlimits only; logged as a warning on every run."""
    mode: Mode = "auto"
    """``warm``: pre-started zygote interpreters that fork one executor per call; ``cold``: one
    interpreter start (one bwrap) per call; ``auto``: warm, falling back to cold if it cannot start."""
    persistent: bool = False
    """``Sandbox.session()`` gives each trajectory its own interpreter whose Python state its code calls
    share (see :mod:`~r1ci_core.sandbox.session`); off: every call starts fresh (as in R1-CI)."""
    python: str = "/usr/bin/python3"
    """Interpreter inside the sandbox.  It (and its packages) must be readable by ``uid``; a
    venv under a 0700 home folder will not work.  Packages come from this interpreter's path."""
    preload: tuple[str, ...] = ("numpy", "sympy")
    """Heavy packages imported once by the warm *sci* executors; programs that mention one of them
    run there (others run on lighter executors, where importing them still works, only slower)."""
    preload_stdlib: tuple[str, ...] = (
        "re", "math", "cmath", "collections", "itertools", "functools", "heapq", "bisect", "random",
        "string", "fractions", "decimal", "statistics", "typing", "dataclasses", "json", "copy",
        "operator", "datetime", "time", "array")
    """Standard-library modules every warm executor has imported already (each costs a cold
    interpreter milliseconds to import; a fork of a process that has them costs a little more)."""
    python_path: tuple[str, ...] = ()
    """Extra import folders (made visible read-only, put first on ``sys.path``)."""
    ro_binds: tuple[str, ...] = ()
    """Extra host paths made visible read-only at the same place (e.g. a venv or data folder)."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Extra environment variables inside (the host's environment never leaks in)."""
    uid: int = 65534
    gid: int = 65534
    """Unprivileged ids the sandbox runs as (on the host and inside)."""

    # --- limits
    timeout_s: float = 10.0
    memory_mb: int = 1024
    """Address space the program may add on top of the (warm) interpreter, per process."""
    cpu_time_s: float | None = None
    """CPU seconds per process; None: ``timeout_s`` + 1."""
    max_processes: int = 32
    """Processes and threads the program may have at once (its namespace's count)."""
    file_size_mb: int = 16
    open_files: int = 256
    max_output_bytes: int = 1 << 20
    """Kept per stream (stdout, stderr); beyond it the program is stopped, ``truncated=True``."""
    scratch_mb: int = 64
    """Size of the per-call writable scratch (tmpfs at /tmp, also the working directory)."""

    # --- executor pool
    workers: int = 0
    """Warm zygotes; 0: one per CPU core."""
    spares: int = 2
    """Executors each zygote keeps ready."""
    start_timeout_s: float = 60.0

    # --- fault injection (tests of the callers' infra-failure handling)
    fail_rate: float | None = None
    """Fraction of runs answered ``infra_error="injected"`` without running; None: read the
    environment variable R1CI_SANDBOX_FAIL_RATE (default 0)."""
    fail_seed: int | None = None

    def __post_init__(self) -> None:
        if self.isolation not in ("auto", "bwrap", "unshare", "none"):
            raise ValueError(f"isolation must be auto|bwrap|unshare|none, not {self.isolation!r}")
        if self.mode not in ("auto", "warm", "cold"):
            raise ValueError(f"mode must be auto|warm|cold, not {self.mode!r}")
        if self.persistent and self.isolation == "none":
            raise ValueError(PERSISTENT_NEEDS_ISOLATION)
        check_limit("timeout_s", self.timeout_s)
        for name in ("memory_mb", "max_processes", "file_size_mb", "open_files", "max_output_bytes",
                     "scratch_mb", "spares"):
            check_limit(name, getattr(self, name), integer=True)
        if self.cpu_time_s is not None:
            check_limit("cpu_time_s", self.cpu_time_s)
        if self.workers < 0:
            raise ValueError("workers must be >= 0")
        for p in (*self.python_path, *self.ro_binds):
            if not str(p).startswith("/") or any(str(p) == t or str(p).startswith(t + "/")
                                                 for t in ("/tmp", "/dev", "/proc")):
                raise ValueError(f"{p!r}: read-only binds must be absolute and outside /tmp, /dev and /proc "
                                 "(those are the sandbox's own)")
        object.__setattr__(self, "preload", tuple(self.preload))
        object.__setattr__(self, "preload_stdlib", tuple(self.preload_stdlib))
        object.__setattr__(self, "ro_binds", tuple(self.ro_binds))
        object.__setattr__(self, "python_path", tuple(self.python_path))
        object.__setattr__(self, "env", dict(self.env))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None = None, **overrides: Any) -> SandboxSettings:
        """Build from a recipe section; unknown keys are an error, None values mean 'default'."""
        merged = {**(data or {}), **overrides}
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(merged) - names)
        if unknown:
            raise ValueError(f"unknown sandbox settings: {unknown}")
        return cls(**{k: v for k, v in merged.items() if v is not None})

    def replace(self, **changes: Any) -> SandboxSettings:
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def n_workers(self) -> int:
        return self.workers or os.cpu_count() or 1

    def effective_fail_rate(self) -> float:
        if self.fail_rate is not None:
            return float(self.fail_rate)
        raw = os.environ.get(FAIL_RATE_ENV, "").strip()
        return float(raw) if raw else 0.0

    def effective_fail_seed(self) -> int | None:
        if self.fail_seed is not None:
            return self.fail_seed
        raw = os.environ.get(FAIL_SEED_ENV, "").strip()
        return int(raw) if raw else None
