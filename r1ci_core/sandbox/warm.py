"""Warm executor: long-lived interpreters inside the isolation, one pre-forked executor per call.

Host side.  Each :class:`_Worker` is one *hub* (:mod:`.inside.warm`, role ``hub``) started inside bwrap
(or its own ``unshare`` namespaces) as the unprivileged uid, with two templates (``lite``: the
standard library preloaded; ``sci``: numpy, sympy, ... too) that each keep a few *slots* (pid 1 of
their own namespaces).  The hub hands the host each new slot's SOCK_SEQPACKET socket; from then on
the slot announces its *spares* (an executor, forked and prepared, blocked on its request) on it
with five pipe ends (request, stdout, stderr, ready, status) and takes kills from it.  A call takes
a ready spare of the right kind from any worker, writes the request and reads output and status
straight from its pipes; the slot writes the status once nothing the program started is left,
then prepares its next executor.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import re
import select
import signal
import socket
import subprocess
import threading
import time

from . import isolation as iso
from ._pump import decode, encode_request, pump, send_request
from .inside.protocol import (
    ERROR,
    HUB_NEW_SLOT,
    HUB_PRELOADED,
    HUB_READY,
    KILL,
    LITE,
    QUIT,
    READY_PREPARED,
    READY_RUNNING,
    SCI,
    SLOT_MSG,
    SPARE,
)
from .result import ExecResult
from .settings import SandboxSettings

log = logging.getLogger("r1ci.sandbox")

_FORGOTTEN: list = []  # pools inherited through fork(): kept alive, never finalised (see forget)


class WorkerDied(Exception):
    pass


class _Slot:
    """The host's end of one slot's socket: spares arrive on it, kills leave on it."""

    __slots__ = ("sock", "number", "kind", "spare", "calls")

    def __init__(self, sock: socket.socket, number: int, kind: int):
        self.sock, self.number, self.kind = sock, number, kind
        self.spare: _Spare | None = None  # its executor of the moment
        self.calls = 0

    def kill(self) -> None:
        try:
            self.sock.send(KILL)
        except OSError:
            pass  # the slot is gone: its socket's end says so to the reader


class _Spare:
    __slots__ = ("worker", "slot", "sid", "kind", "code_w", "out_r", "err_r", "st_r", "ready_r", "taken",
                 "done", "lost")

    def __init__(self, worker: _Worker, slot: _Slot, fds: list[int]):
        self.worker = worker
        self.slot = slot
        slot.calls += 1
        self.sid = f"{slot.number}.{slot.calls}"  # for the logs
        self.kind = slot.kind
        self.code_w, self.out_r, self.err_r, self.ready_r, self.st_r = fds  # order sent by the slot
        self.taken = False
        self.lost: str | None = None  # why the supervisor vanished (worker died, pool closed)
        self.done = threading.Event()

    def close_fds(self) -> None:
        for fd in (self.code_w, self.out_r, self.err_r, self.st_r, self.ready_r):
            try:
                os.close(fd)
            except OSError:
                pass


class _Worker:
    def __init__(self, pool: WarmPool, index: int):
        self.pool = pool
        self.index = index
        self.s = pool.settings
        self.proc: subprocess.Popen | None = None
        self.sock: socket.socket | None = None
        self.spares: dict[str, _Spare] = {}
        self.slots: dict[int, _Slot] = {}  # socket fd -> slot
        self.ready = threading.Event()
        self.preloaded = threading.Event()  # the preloading template is up (or gave up)
        self.dead = threading.Event()
        self.error: str | None = None
        self.info: dict = {}
        self.inner_pid: int | None = None
        self.stderr_fd: int | None = None
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=40)
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        s = self.s
        cfg = {"slots": s.spares, "preload": list(s.preload), "preload_stdlib": list(s.preload_stdlib)}
        self.proc, parent, info_r = iso.start_outer(s, self.pool.isolation, "hub", cfg)
        self.sock = parent
        self.stderr_fd = self.proc.stderr.fileno() if self.proc.stderr is not None else None
        threading.Thread(target=self._read_info, args=(info_r,), daemon=True,
                         name=f"sandbox-info-{self.index}").start()
        threading.Thread(target=self._read_stderr, daemon=True, name=f"sandbox-err-{self.index}").start()
        threading.Thread(target=self._read_ctrl, daemon=True, name=f"sandbox-ctrl-{self.index}").start()

    def _read_info(self, fd: int) -> None:
        data = b""
        try:
            while chunk := os.read(fd, 4096):
                data += chunk
        except OSError:
            pass
        finally:
            os.close(fd)
        try:
            self.inner_pid = int(json.loads(data.decode() or "{}").get("child-pid") or 0) or None
        except ValueError:
            pass

    def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        try:
            for line in self.proc.stderr:
                text = line.decode("utf-8", "replace").rstrip()
                self.stderr_tail.append(text)
                log.debug("sandbox worker %d: %s", self.index, text)
        except (OSError, ValueError):
            pass
        if not _FORGOTTEN or self.pool not in _FORGOTTEN:
            try:
                self.proc.stderr.close()
            except OSError:
                pass

    def _read_ctrl(self) -> None:
        """One thread per worker: the hub's socket (startup, new slots, errors) and every slot's
        (spares, errors; its end when the slot died)."""
        sock = self.sock
        assert sock is not None
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        try:
            while True:
                for fd, _ev in poller.poll():
                    if fd != sock.fileno():
                        self._from_slot(poller, self.slots[fd])
                        continue
                    msg, fds, _flags, _addr = socket.recv_fds(sock, 4096, 1)
                    if not msg:
                        raise EOFError
                    self._from_hub(poller, msg, fds)
        except EOFError:
            pass
        except OSError as e:
            if not self.pool.closed:
                log.warning("sandbox worker %d control socket: %s", self.index, e)
        self._on_death()

    def _from_slot(self, poller: select.poll, slot: _Slot) -> None:
        try:
            msg, fds, _flags, _addr = socket.recv_fds(slot.sock, 4096, 5)
        except OSError:
            msg, fds = b"", []
        if msg[:1] == SPARE and len(fds) == 5:
            spare = _Spare(self, slot, fds)
            slot.spare = spare
            with self._lock:
                self.spares[spare.sid] = spare
            self.pool._add_spare(spare)
            return
        for fd in fds:
            os.close(fd)
        if msg[:1] == ERROR:
            self._error(msg)
        elif not msg:  # the slot died (its namespace with it), and its executor with it
            poller.unregister(slot.sock.fileno())
            self.slots.pop(slot.sock.fileno(), None)
            slot.sock.close()
            spare = slot.spare
            if spare is not None:
                with self._lock:
                    self.spares.pop(spare.sid, None)
                spare.lost = "sandbox slot died"
                if not spare.taken and self.pool._discard_spare(spare):
                    spare.close_fds()
                spare.done.set()

    def _from_hub(self, poller: select.poll, msg: bytes, fds: list[int]) -> None:
        kind = msg[:1]
        if kind == HUB_NEW_SLOT and len(fds) == 1:  # a new slot: from now on it talks to us directly
            number, slot_kind = SLOT_MSG.unpack_from(msg, 1)
            self.slots[fds[0]] = _Slot(socket.socket(fileno=fds[0]), number, slot_kind)
            poller.register(fds[0], select.POLLIN)
            return
        for fd in fds:
            os.close(fd)
        if kind == HUB_READY:
            self.info = json.loads(msg[1:].decode())
            self.ready.set()
        elif kind == HUB_PRELOADED:
            self.info["preloaded"] = json.loads(msg[1:].decode())
            self.preloaded.set()
            missing = sorted(set(self.s.preload) - set(self.info["preloaded"]))
            if missing:
                log.warning("sandbox worker %d could not preload %s", self.index, missing)
        elif kind == ERROR:
            self._error(msg)

    def _error(self, msg: bytes) -> None:
        self.error = msg[1:].decode("utf-8", "replace")
        log.warning("sandbox worker %d: %s", self.index, self.error)

    def _on_death(self) -> None:
        if self.error is None:
            tail = " | ".join(list(self.stderr_tail)[-5:])
            self.error = f"sandbox worker exited{': ' + tail if tail else ''}"
        self.dead.set()
        self.ready.set()  # wake anyone waiting for startup
        self.preloaded.set()
        self.kill(graceful=True)  # its outer process usually exits by itself: let it reap first
        reason = "sandbox closed" if self.pool.closed else f"sandbox worker died ({self.error})"
        with self._lock:
            spares = list(self.spares.values())
            self.spares.clear()
        for spare in spares:
            spare.lost = reason
            if not spare.taken and self.pool._discard_spare(spare):
                spare.close_fds()
            spare.done.set()
        for slot in list(self.slots.values()):
            try:
                slot.sock.close()
            except OSError:
                pass
        self.slots.clear()
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        self.pool._worker_died(self)

    def kill(self, graceful: bool = False) -> None:
        """Stop the hub; as pid 1 of its namespace its death takes every process with it.  The
        hub dies first so that bwrap reaps it (no orphan is left to the host's init)."""
        if self.proc is None:
            return
        iso.stop_outer(self.proc, self.inner_pid, graceful=graceful, what=f"sandbox worker {self.index}")
        if self.sock is not None:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.send(QUIT)
            except OSError:
                pass
        self.kill(graceful=True)


class WarmPool:
    """A set of hub workers and their ready spares; thread-safe."""

    def __init__(self, settings: SandboxSettings, isolation: str):
        self.settings = settings
        self.isolation = isolation
        self.closed = False
        self._cond = threading.Condition()
        self._idle: dict[int, collections.deque[_Spare]] = {LITE: collections.deque(), SCI: collections.deque()}
        self._restarts = 0
        self._last_error: str | None = None
        self._sci_re: re.Pattern | None = None
        self._workers = [_Worker(self, i) for i in range(settings.n_workers)]
        try:
            for w in self._workers:
                w.start()
            deadline = time.monotonic() + settings.start_timeout_s
            for w in self._workers:
                w.ready.wait(max(0.0, deadline - time.monotonic()))
            live = [w for w in self._workers if w.ready.is_set() and not w.dead.is_set()]
            if not live:
                raise WorkerDied("; ".join(sorted({w.error or "did not start in time" for w in self._workers})))
            preloaded = [m for m in settings.preload if m]
            if preloaded:
                self._sci_re = re.compile(r"\b(?:" + "|".join(re.escape(m.split(".")[0]) for m in preloaded) + r")\b")
            # nested namespaces may be forbidden here: one real run proves the executors work
            probe_code = "print(6 * 7)"
            probe = self.run(probe_code, encode_request(probe_code, nproc=16),
                             timeout_s=max(10.0, settings.start_timeout_s / 2), cap=1 << 16)
            if probe.infra_error or probe.stdout != "42\n":
                raise WorkerDied(probe.infra_error or f"self-test failed: {probe}")
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ spare bookkeeping
    def _add_spare(self, spare: _Spare) -> None:
        with self._cond:
            if self.closed:
                spare.close_fds()
                return
            self._idle[spare.kind].append(spare)
            self._cond.notify_all()

    def _discard_spare(self, spare: _Spare) -> bool:
        with self._cond:
            try:
                self._idle[spare.kind].remove(spare)
                return True
            except ValueError:
                return False

    def _worker_died(self, w: _Worker) -> None:
        self._last_error = w.error
        if self.closed:
            return
        log.warning("sandbox worker %d died: %s; restarting", w.index, w.error)
        threading.Thread(target=self._restart, args=(w.index,), daemon=True).start()

    def _restart(self, index: int) -> None:
        delay = min(5.0, 0.05 * (2 ** min(self._restarts, 7)))
        self._restarts += 1
        time.sleep(delay)
        with self._cond:
            if self.closed:
                return
            w = _Worker(self, index)
            self._workers[index] = w
        try:
            w.start()
        except OSError as e:
            w.error = f"cannot start sandbox worker: {e}"
            self._worker_died(w)
            return
        if w.ready.wait(self.settings.start_timeout_s) and not w.dead.is_set():
            self._restarts = 0

    def wait_preloaded(self, timeout: float) -> bool:
        """Wait until every worker's preloading template (numpy, sympy, ...) is up; True if so."""
        deadline = time.monotonic() + timeout
        if not self.settings.preload:
            return True
        return all(w.preloaded.wait(max(0.0, deadline - time.monotonic())) for w in list(self._workers))

    def kind_for(self, code: str) -> int:
        """Programs that mention a preloaded module go to the executors that have it imported."""
        return SCI if self._sci_re is not None and self._sci_re.search(code) else LITE

    @staticmethod
    def _pick(q: collections.deque[_Spare]) -> _Spare | None:
        """Oldest spare whose executor is prepared; drops spares that died idle.  Lock held."""
        if not q:
            return None
        poller = select.poll()
        for sp in q:
            poller.register(sp.ready_r, select.POLLIN)
            poller.register(sp.st_r, select.POLLIN)
        readable = {fd for fd, _ev in poller.poll(0)}
        chosen = None
        for sp in list(q):
            if sp.st_r in readable:  # its status is already there: it died before use
                q.remove(sp)
                with sp.worker._lock:
                    sp.worker.spares.pop(sp.sid, None)
                try:
                    os.set_blocking(sp.err_r, False)
                    why = os.read(sp.err_r, 4096).decode("utf-8", "replace").strip()[-800:]
                except OSError:
                    why = ""
                log.warning("sandbox executor %d/%s died before use: %s", sp.worker.index, sp.sid, why)
                sp.close_fds()
            elif chosen is None and sp.ready_r in readable:
                chosen = sp
        if chosen is None and q:
            chosen = q[0]
        if chosen is not None:
            q.remove(chosen)
        return chosen

    def _take(self, kind: int, timeout: float) -> _Spare | None:
        other = SCI if kind == LITE else LITE
        deadline = time.monotonic() + timeout
        borrow_after = time.monotonic() + 0.05
        with self._cond:
            while True:
                if self.closed:
                    return None
                spare = self._pick(self._idle[kind])
                if spare is None and kind == LITE and time.monotonic() > borrow_after:
                    # a preloaded executor runs anything, but costs more (bigger process): only
                    # when no light one came free for a while
                    spare = self._pick(self._idle[other])
                left = deadline - time.monotonic()
                if spare is None and left <= 0:
                    spare = self._pick(self._idle[other])
                    if spare is None:
                        return None
                if spare is not None:
                    spare.taken = True
                    return spare
                now = time.monotonic()
                wake = borrow_after - now if kind == LITE and now < borrow_after else left
                self._cond.wait(max(0.001, min(left, wake)))  # new spares notify

    # ------------------------------------------------------------------ one call
    def run(self, code: str, request: bytes, *, timeout_s: float, cap: int) -> ExecResult:
        """Run ``request`` (``encode_request(code, ...)``) on a spare of the kind ``code`` needs."""
        t0 = time.monotonic()
        spare = self._take(self.kind_for(code), self.settings.start_timeout_s)
        if spare is None:
            why = "sandbox closed" if self.closed else f"no sandbox executor available ({self._last_error})"
            return ExecResult(exit_code=None, duration_s=time.monotonic() - t0, infra_error=why)
        t0 = time.monotonic()
        deadline = t0 + timeout_s
        send_request(spare.code_w, request)  # if the executor is gone, its status (or its worker's death) says why

        def kill(_reason: str) -> None:
            spare.slot.kill()

        res = pump(spare.out_r, spare.err_r, spare.st_r, deadline=deadline, cap=cap, kill=kill, lazy=True)
        try:
            ready = os.read(spare.ready_r, 16) if res.status_complete else b""
        except OSError:
            ready = b""
        finally:
            os.close(spare.ready_r)
        if not res.status_complete:  # the slot or the whole worker died: let the reader say which
            end = time.monotonic() + 10.0
            while not (spare.done.is_set() or spare.worker.dead.is_set()) and time.monotonic() < end:
                spare.done.wait(0.05)
        with spare.worker._lock:
            spare.worker.spares.pop(spare.sid, None)
        stdout, stderr = decode(res.out), decode(res.err)
        dur = time.monotonic() - t0
        if res.status_complete:
            status = res.wait_status()
            if res.killed_for is not None and os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL:
                return ExecResult(stdout, stderr, None, res.killed_for == "timeout", dur, res.truncated, None)
            if not ready.startswith(READY_PREPARED + READY_RUNNING):
                return ExecResult(stdout, stderr, None, False, dur, res.truncated,
                                  f"executor failed before running the code (ready={ready!r}, "
                                  f"status={os.waitstatus_to_exitcode(status)})")
            return ExecResult(stdout, stderr, os.waitstatus_to_exitcode(status), False, dur, res.truncated, None)
        # No status: the hub (the whole worker) died, or it did not answer a kill in time.
        if res.hung:
            log.error("sandbox executor %d/%s did not end after a kill; restarting its worker",
                      spare.worker.index, spare.sid)
            spare.worker.kill()
        why = spare.lost or (f"sandbox worker died ({spare.worker.error})" if spare.worker.dead.is_set()
                             else "sandbox worker lost the executor")
        return ExecResult(stdout, stderr, None, False, time.monotonic() - t0, res.truncated, why)

    def close(self) -> None:
        with self._cond:
            self.closed = True
            idle = [sp for q in self._idle.values() for sp in q]
            for q in self._idle.values():
                q.clear()
            self._cond.notify_all()
        workers = list(self._workers)
        for w in workers:  # the hubs quit first, so idle executors do not see their request pipe close
            if w.sock is not None:
                try:
                    w.sock.send(QUIT)
                except OSError:
                    pass
        for w in workers:
            w.kill(graceful=True)
        for spare in idle:
            spare.close_fds()

    def forget(self) -> None:
        """In a forked child: close our copies of every pipe and socket without telling anyone
        (the parent still owns the workers).  Only raw descriptors are closed: locks inside the
        file objects may have been held by the parent's reader threads at the fork, so those
        objects are kept referenced for ever and never finalised."""
        _FORGOTTEN.append(self)
        self.closed = True
        fds: set[int] = set()
        for q in self._idle.values():
            for sp in q:
                fds.update((sp.code_w, sp.out_r, sp.err_r, sp.ready_r, sp.st_r))
        for w in self._workers:
            for sp in list(w.spares.values()):
                fds.update((sp.code_w, sp.out_r, sp.err_r, sp.ready_r, sp.st_r))
            if w.sock is not None:
                fds.add(w.sock.detach())
            for slot in list(w.slots.values()):
                fds.add(slot.sock.detach())
            if w.stderr_fd is not None:
                fds.add(w.stderr_fd)
        for fd in fds:
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass

    def describe(self) -> dict:
        return {"workers": [w.info for w in self._workers], "isolation": self.isolation, "mode": "warm"}
