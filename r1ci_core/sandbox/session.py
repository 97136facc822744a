"""Persistent interpreters: one trajectory's code calls share their Python state (``persistent: true``).

A :class:`Session` is one trajectory's handle (``Sandbox.session()``): its own sandbox (a bwrap, or the
sandbox's own ``unshare`` namespaces, started on the first call), in which each call runs in a copy of
the process that holds the variables of the calls before it, and then holds them itself.  The limits
are those of ``Sandbox.run``, per call; the memory limit counts the state kept.  A call that does not end
by itself (killed for time or output, or a crash) ends the interpreter: its stderr says so and the next
call starts a fresh one.  Sessions share nothing, so one's crash never reaches another.  ``close()``
drops the state.  A :class:`StatelessSession` gives the same handle over plain ``Sandbox.run`` calls.
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import socket
import subprocess
import threading
import time
from typing import TYPE_CHECKING, Any

from . import isolation as iso
from ._pump import decode, pump, send_request
from .inside.protocol import ERROR, KILL, QUIT, READY_RUNNING, SESSION_CALL, SESSION_ENDED, SESSION_READY
from .result import ExecResult

if TYPE_CHECKING:
    from .core import Sandbox

log = logging.getLogger("r1ci.sandbox")

STATE_LOST = ("[sandbox] the interpreter was stopped ({why}): the variables of earlier calls are lost; "
              "the next code runs in a fresh interpreter.")


class StatelessSession:
    """The handle of a trajectory whose calls share nothing: each is a plain ``Sandbox.run``."""

    persistent = False

    def __init__(self, sandbox: Sandbox):
        self.sandbox = sandbox

    def run(self, code: str, **limits: Any) -> ExecResult:
        return self.sandbox.run(code, **limits)

    def close(self) -> None:
        pass

    def __enter__(self) -> StatelessSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Session(StatelessSession):
    """One trajectory's persistent interpreter; calls run one at a time, in order."""

    persistent = True

    def __init__(self, sandbox: Sandbox):
        super().__init__(sandbox)
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._ctrl: socket.socket | None = None
        self._inner_pid: int | None = None
        self._closed = False
        self.starts = 0  # interpreters started (each after the first lost the state before it)

    # ------------------------------------------------------------------ one call
    def run(self, code: str, **limits: Any) -> ExecResult:
        """Run ``code`` with the state the earlier calls left (same arguments as ``Sandbox.run``)."""
        prepared = self.sandbox.prepare(code, **limits)
        if isinstance(prepared, ExecResult):
            return prepared
        request, timeout = prepared
        with self._lock:
            if self._closed:
                return ExecResult(exit_code=None, infra_error="sandbox session closed")
            t0 = time.monotonic()
            try:
                self._ensure_started()
            except (OSError, RuntimeError) as e:
                self._stop()
                return ExecResult(exit_code=None, duration_s=time.monotonic() - t0,
                                  infra_error=f"cannot start the persistent interpreter: {e}")
            try:
                res = self._call(request, timeout)
            except Exception as e:  # never let a sandbox failure look like a program failure
                log.exception("sandbox session failure")
                self._stop()
                return ExecResult(exit_code=None, infra_error=f"sandbox failure: {e!r}")
            return res

    def _call(self, request: bytes, timeout: float) -> ExecResult:
        assert self._ctrl is not None
        ctrl = self._ctrl
        code_r, code_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        ready_r, ready_w = os.pipe()
        st_r, st_w = os.pipe()
        theirs = [code_r, out_w, err_w, ready_w, st_w]
        t0 = time.monotonic()
        try:
            socket.send_fds(ctrl, [SESSION_CALL], theirs)
        except OSError:
            pass  # the interpreter is gone: no status comes, said below
        finally:
            for fd in theirs:
                os.close(fd)
        send_request(code_w, request)

        def kill(_reason: str) -> None:
            try:
                ctrl.send(KILL)
            except OSError:
                pass

        res = pump(out_r, err_r, st_r, deadline=t0 + timeout, cap=self.sandbox.settings.max_output_bytes,
                   kill=kill, lazy=True)
        try:
            ready = os.read(ready_r, 16)
        except OSError:
            ready = b""
        finally:
            os.close(ready_r)
        stdout, stderr = decode(res.out), decode(res.err)
        dur = time.monotonic() - t0
        ended = self._ended()
        if not res.status_complete:
            self._stop()
            return ExecResult(stdout, stderr, None, False, dur, res.truncated,
                              "persistent interpreter lost (its sandbox exited without a status)")
        status = res.wait_status()
        if res.killed_for is not None and os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL:
            out = ExecResult(stdout, stderr, None, res.killed_for == "timeout", dur, res.truncated, None)
        elif ready != READY_RUNNING:
            out = ExecResult(stdout, stderr, None, False, dur, res.truncated,
                             f"executor failed before running the code (ready={ready!r}, "
                             f"status={os.waitstatus_to_exitcode(status)})")
        else:
            out = ExecResult(stdout, stderr, os.waitstatus_to_exitcode(status), False, dur, res.truncated, None)
        if ended:
            self._stop()
            if out.infra_error is None:
                why = {"timeout": "time limit", "output": "output limit"}.get(res.killed_for or "", "it crashed")
                note = STATE_LOST.format(why=why)
                out = ExecResult(out.stdout, f"{out.stderr.rstrip(chr(10))}\n{note}\n".lstrip("\n"), out.exit_code,
                                 out.timed_out, out.duration_s, out.truncated, None)
        return out

    def _ended(self) -> bool:
        """Whether the interpreter said it is gone (it does before its last status) or is gone."""
        assert self._ctrl is not None
        if not select.select([self._ctrl], [], [], 0)[0]:
            return False
        try:
            msg = self._ctrl.recv(64)
        except OSError:
            return True
        return msg[:1] in (SESSION_ENDED, b"")

    # ------------------------------------------------------------------ lifecycle
    def _ensure_started(self) -> None:
        if self._proc is not None:
            return
        s = self.sandbox.settings
        proc, parent, info_r = iso.start_outer(s, self.sandbox.isolation, "session", {})
        self._proc, self._ctrl = proc, parent
        self.starts += 1
        self._inner_pid = None
        try:
            ready = select.select([parent], [], [], s.start_timeout_s)[0]
            msg = parent.recv(4096) if ready else b""
            if msg[:1] != SESSION_READY:
                raise RuntimeError(msg[1:].decode("utf-8", "replace") if msg[:1] == ERROR
                                   else self._startup_error(proc, ready))
        finally:
            self._read_info(info_r)
        assert proc.stderr is not None
        proc.stderr.close()  # after startup the interpreter writes nothing there

    def _read_info(self, fd: int) -> None:
        """bwrap's info (the pid of its child, our pid 1), for the kill of last resort."""
        try:
            if select.select([fd], [], [], 1.0)[0]:
                raw = os.read(fd, 4096)
                self._inner_pid = int(json.loads(raw.decode() or "{}").get("child-pid") or 0) or None
        except (OSError, ValueError):
            pass
        finally:
            os.close(fd)

    @staticmethod
    def _startup_error(proc: subprocess.Popen, answered: Any) -> str:
        if not answered:
            return "no answer within start_timeout_s"
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        tail = proc.stderr.read().decode("utf-8", "replace").strip()[-500:] if proc.stderr else ""
        return f"exited {proc.returncode}: {tail}" if tail else f"exited {proc.returncode}"

    def _stop(self) -> None:
        """End the interpreter (its state with it): ask, then kill what is left."""
        proc, ctrl, self._proc, self._ctrl = self._proc, self._ctrl, None, None
        if ctrl is not None:
            try:
                ctrl.send(QUIT)
            except OSError:
                pass
            ctrl.close()
        if proc is None:
            return
        iso.stop_outer(proc, self._inner_pid, graceful=True, what="persistent interpreter")
        if proc.stderr is not None and not proc.stderr.closed:
            proc.stderr.close()

    def close(self) -> None:
        """Drop the state: the interpreter and everything its calls left end now."""
        with self._lock:
            self._closed = True
            self._stop()

    def __del__(self) -> None:
        try:
            self._stop()
        except Exception:
            pass
