"""Code that runs INSIDE the isolation: its parts, joined by :func:`source` into the one program passed to
the sandbox interpreter with ``-c``.

Self-contained and standard-library only: it runs under the *sandbox* interpreter (by default
Debian's /usr/bin/python3), never under the host's.  Roles (``sys.argv[1]``):

``hub``     The warm executor of one worker: pid 1 of a long-lived bwrap (or of its own
            ``unshare`` namespaces + pivot_root), small, never forked per call.  It forks two
            *templates*: ``lite`` (the standard library modules of ``preload_stdlib`` imported)
            and ``sci`` (the ``preload`` packages too, e.g. numpy and sympy).  Each template
            ``clone()``s a few *slots* into fresh pid/mount/net/uts/cgroup namespaces, and the hub
            passes each slot's socket to the host, which talks to the slot directly.  A slot is
            pid 1 of its namespaces (signals from inside are ignored, it is not dumpable), mounts
            a fresh /proc once, takes its own user namespace (with a mount namespace it owns, and
            an IPC namespace; no further namespaces can be made in it), sets no_new_privs and the
            seccomp filter, and forks its *zygote* Z, which drops every capability.  Per call:
            the slot mounts a size-limited tmpfs on /tmp and /dev/shm (or keeps the last call's,
            if that call left it exactly as mounted), has Z fork the executor E (which pre-touches
            its copy-on-write pages and blocks reading its request) and hands E's pipes to the
            host (SCM_RIGHTS).  The host writes the request and reads stdout/stderr straight from
            E's pipes, so a call costs no fork and two hops.  When the program ends, E tells the
            slot its exit code; the slot kills E and writes the status to the call's status pipe
            at once if nothing else is alive in the namespace, or else first kills and reaps every
            other process; so when the host has the status, nothing the code started is left.
            The network namespace has only a loopback that is down: no address is reachable.
``cold``    One call per interpreter start (inside a per-call bwrap): pid 1 forks the executor,
            waits, kills and reaps the rest of the namespace and reports.
``plain``   ``isolation="none"``: no namespaces, the process is the executor (rlimits only).
``session`` A persistent interpreter (``persistent: true``): pid 1 of one trajectory's own sandbox.

Parts, in the order joined: ``protocol`` (struct layouts, exit codes and tags, shared with the host),
``syscalls``, ``executor`` (E), ``outer`` (``unshare`` isolation), ``warm`` (hub, templates, slots,
zygotes), ``session``, ``cold`` (cold and plain) and ``main`` (the role).  Each part is a module that
imports what it uses from the others (for readers and linters); :func:`source` drops those imports, so
that the program is one namespace.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

PARTS = ("protocol", "syscalls", "executor", "outer", "warm", "session", "cold", "main")


@cache
def source() -> str:
    """The program run inside: every part in order, without the imports between parts."""
    texts = []
    for name in PARTS:
        text = (Path(__file__).parent / f"{name}.py").read_text()
        own = set()
        for node in ast.parse(text).body:
            if isinstance(node, ast.ImportFrom) and node.level:
                own.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
        texts.append("\n".join(line for i, line in enumerate(text.splitlines(), 1) if i not in own))
    return "\n\n".join(texts) + "\n"
