"""Read a run's stdout/stderr (capped) and its status pipe, enforcing the wall-clock deadline."""

from __future__ import annotations

import os
import select
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .inside.protocol import REQUEST, STATUS, STATUS_ERROR_TAG, STATUS_TAG

KILL_GRACE_S = 5.0


@dataclass
class Pumped:
    out: bytearray = field(default_factory=bytearray)
    err: bytearray = field(default_factory=bytearray)
    status: bytearray = field(default_factory=bytearray)
    truncated: bool = False
    killed_for: str | None = None  # "timeout" | "output"
    hung: bool = False  # pipes stayed open KILL_GRACE_S after a kill or a status

    @property
    def status_complete(self) -> bool:
        return len(self.status) >= STATUS.size and self.status[:2] == STATUS_TAG

    def wait_status(self) -> int:
        return STATUS.unpack_from(self.status)[1]

    def infra_message(self) -> str | None:
        if self.status[:2] == STATUS_ERROR_TAG:
            return bytes(self.status[2:]).decode("utf-8", "replace")
        return None


def encode_request(code: str, *, mem: int = 0, cpu: int = 0, nproc: int = 0, fsize: int = 0, nofile: int = 0,
                   stdin: str | None = None) -> bytes:
    """A request for the code running inside: limits (0: none; ``mem`` in bytes on top of the
    interpreter, ``cpu`` in seconds, ``fsize`` in bytes), what ``input()`` reads, the code."""
    data = (stdin or "").encode("utf-8", "surrogatepass")
    text = code.encode("utf-8", "surrogatepass")
    return REQUEST.pack(mem, cpu, nproc, fsize, nofile, len(data), len(text)) + data + text


def send_request(fd: int, request: bytes) -> None:
    """Write the whole request and close the pipe; a reader already gone is no error here (the call's
    status, or its missing status, says why)."""
    data = memoryview(request)
    try:
        while data:
            n = os.write(fd, data)
            data = data[n:]
    except OSError:
        pass
    finally:
        try:
            os.close(fd)
        except OSError:
            pass


def pump(out_fd: int, err_fd: int, st_fd: int | None, *, deadline: float, cap: int,
         kill: Callable[[str], None], close: bool = True, lazy: bool = False) -> Pumped:
    """Collect until every pipe is at EOF.  ``kill(reason)`` is called once, on timeout or on
    output beyond ``cap`` bytes in a stream; afterwards the data is drained and dropped.

    ``lazy`` (needs ``st_fd``): sleep on the status pipe only and pick the output up when the
    status comes (one wake-up per call instead of three), looking at stdout/stderr on a backing-off
    tick meanwhile; a program that does write while running switches to watching every pipe."""
    p = _Pump(out_fd, err_fd, st_fd, deadline=deadline, cap=cap, kill=kill, lazy=lazy)
    p.run()
    for fd in (out_fd, err_fd, st_fd) if close else ():
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass
    return p.res


class _Pump:
    """The state of one :func:`pump`: the pipes still open, those polled, the deadline and the grace."""

    def __init__(self, out_fd: int, err_fd: int, st_fd: int | None, *, deadline: float, cap: int,
                 kill: Callable[[str], None], lazy: bool):
        self.res = Pumped()
        self.out_fd, self.err_fd, self.st_fd = out_fd, err_fd, st_fd
        self.bufs = {out_fd: self.res.out, err_fd: self.res.err}
        self.deadline, self.cap, self.kill = deadline, cap, kill
        self.poller = select.poll()
        self.live = {out_fd, err_fd} | ({st_fd} if st_fd is not None else set())
        self.watched: set[int] = set()
        self.lazy = lazy and st_fd is not None
        self.grace_until: float | None = None  # set by a kill or the status: EOF is due by then
        self.tick = 0.002

    def run(self) -> None:
        if self.lazy:
            for fd in (self.out_fd, self.err_fd):
                os.set_blocking(fd, False)
            self.watch([self.st_fd])
        else:
            self.watch(self.live)
        while self.live:
            wait = self.wait_s(time.monotonic())
            if wait is None:
                continue
            if wait < 0:
                self.res.hung = True
                break
            events = self.poller.poll(max(0.0, wait) * 1000.0 + 0.5)
            self.read(events)
            if self.lazy and not events:
                self.on_tick()

    def wait_s(self, now: float) -> float | None:
        """How long to poll; None: poll again at once (just switched to every pipe); < 0: hung."""
        res = self.res
        if res.killed_for is None and self.grace_until is None and now >= self.deadline:
            res.killed_for = "timeout"
            self.kill("timeout")
            self.grace_until = now + KILL_GRACE_S
        if self.grace_until is not None:
            if self.lazy:  # status there (or a kill sent): from now on wait for every pipe's EOF
                self.lazy = False
                self.watch(self.live)
                for fd in (self.out_fd, self.err_fd):
                    self.drain(fd)
                return None
            if now >= self.grace_until:
                return -1.0
            wait = self.grace_until - now
        else:
            wait = self.deadline - now
        return min(wait, self.tick) if self.lazy else wait

    def read(self, events: list[tuple[int, int]]) -> None:
        for fd, _ev in events:
            if fd in self.watched and fd in (self.out_fd, self.err_fd) and os.get_blocking(fd) is False:
                self.drain(fd)
                continue
            data = os.read(fd, 1 << 16)
            if not data:
                self.eof(fd)
            else:
                self.take(fd, data)

    def on_tick(self) -> None:
        """A lazy tick went by: has the running program written anything?"""
        if self.drain(self.out_fd) | self.drain(self.err_fd):
            self.lazy = False
            self.watch(self.live)
        self.tick = min(self.tick * 2, 0.05)

    def watch(self, fds) -> None:
        for fd in fds:
            if fd in self.live and fd not in self.watched:
                self.poller.register(fd, select.POLLIN)
                self.watched.add(fd)

    def eof(self, fd: int) -> None:
        self.live.discard(fd)
        if fd in self.watched:
            self.poller.unregister(fd)
            self.watched.discard(fd)

    def take(self, fd: int, data: bytes) -> None:
        res = self.res
        if fd == self.st_fd:
            res.status += data
            if res.status_complete and self.grace_until is None:
                self.grace_until = time.monotonic() + KILL_GRACE_S
            return
        buf = self.bufs[fd]
        room = self.cap - len(buf)
        if room >= len(data):
            buf += data
            return
        if room > 0:
            buf += data[:room]
        res.truncated = True
        if res.killed_for is None and self.grace_until is None:
            res.killed_for = "output"
            self.kill("output")
            self.grace_until = time.monotonic() + KILL_GRACE_S

    def drain(self, fd: int) -> bool:
        got = False
        while fd in self.live:
            try:
                data = os.read(fd, 1 << 16)
            except BlockingIOError:
                break
            if not data:
                self.eof(fd)
                break
            got = True
            self.take(fd, data)
        return got


def decode(b: bytes | bytearray) -> str:
    return bytes(b).decode("utf-8", "replace")
