"""Sandboxed execution of model-written Python code.

``execute(code)`` runs one program in a shared default :class:`Sandbox`; ``Sandbox(...)`` holds
the limits (:class:`SandboxSettings`) and runs ``.run(code)`` / ``.run_many(codes)``.  Isolation
is bubblewrap (or the sandbox's own ``unshare`` namespaces) as an unprivileged uid; each call runs
in a fresh process, forked from a warm interpreter, in namespaces (pid, mount, net, ipc, user, uts)
and a scratch tmpfs no other call can reach or has touched, with no capabilities and a seccomp
filter (no keyrings, no System V IPC or POSIX message queues).  A call costs about a millisecond.
``ExecResult.infra_error`` is set only when the sandbox itself failed.
"""

from __future__ import annotations

from .core import Sandbox, default_sandbox, execute
from .result import ExecResult
from .settings import SandboxSettings, SandboxUnavailableError

__all__ = ["ExecResult", "Sandbox", "SandboxSettings", "SandboxUnavailableError", "default_sandbox", "execute"]
