"""Read a run's stdout/stderr (capped) and its status pipe, enforcing the wall-clock deadline."""

from __future__ import annotations

import os
import select
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

STATUS = struct.Struct("<2siqq")  # same layout as _inside.STATUS
REQUEST = struct.Struct("<5qII")  # same layout as _inside.REQUEST
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
        return len(self.status) >= STATUS.size and self.status[:2] == b"ST"

    def wait_status(self) -> int:
        return STATUS.unpack_from(self.status)[1]

    def infra_message(self) -> str | None:
        if self.status[:2] == b"ER":
            return bytes(self.status[2:]).decode("utf-8", "replace")
        return None


def encode_request(code: str, *, mem: int = 0, cpu: int = 0, nproc: int = 0, fsize: int = 0, nofile: int = 0,
                   stdin: str | None = None) -> bytes:
    """A request for the code running inside: limits (0: none; ``mem`` in bytes on top of the
    interpreter, ``cpu`` in seconds, ``fsize`` in bytes), what ``input()`` reads, the code."""
    data = (stdin or "").encode("utf-8", "surrogatepass")
    text = code.encode("utf-8", "surrogatepass")
    return REQUEST.pack(mem, cpu, nproc, fsize, nofile, len(data), len(text)) + data + text


def write_request(fd: int, request: bytes) -> None:
    data = memoryview(request)
    while data:
        n = os.write(fd, data)
        data = data[n:]


def pump(out_fd: int, err_fd: int, st_fd: int | None, *, deadline: float, cap: int,
         kill: Callable[[str], None], close: bool = True, lazy: bool = False) -> Pumped:
    """Collect until every pipe is at EOF.  ``kill(reason)`` is called once, on timeout or on
    output beyond ``cap`` bytes in a stream; afterwards the data is drained and dropped.

    ``lazy`` (needs ``st_fd``): sleep on the status pipe only and pick the output up when the
    status comes (one wake-up per call instead of three), looking at stdout/stderr on a backing-off
    tick meanwhile; a program that does write while running switches to watching every pipe."""
    res = Pumped()
    bufs = {out_fd: res.out, err_fd: res.err}
    poller = select.poll()
    live = {out_fd, err_fd}
    watched: set[int] = set()
    if st_fd is not None:
        live.add(st_fd)
    lazy = lazy and st_fd is not None

    def watch(fds) -> None:
        for fd in fds:
            if fd in live and fd not in watched:
                poller.register(fd, select.POLLIN)
                watched.add(fd)

    def eof(fd: int) -> None:
        live.discard(fd)
        if fd in watched:
            poller.unregister(fd)
            watched.discard(fd)

    def take(fd: int, data: bytes) -> None:
        nonlocal grace_until
        if fd == st_fd:
            res.status += data
            if res.status_complete and grace_until is None:
                grace_until = time.monotonic() + KILL_GRACE_S
            return
        buf = bufs[fd]
        room = cap - len(buf)
        if room >= len(data):
            buf += data
            return
        if room > 0:
            buf += data[:room]
        res.truncated = True
        if res.killed_for is None and grace_until is None:
            res.killed_for = "output"
            kill("output")
            grace_until = time.monotonic() + KILL_GRACE_S

    def drain(fd: int) -> bool:
        got = False
        while fd in live:
            try:
                data = os.read(fd, 1 << 16)
            except BlockingIOError:
                break
            if not data:
                eof(fd)
                break
            got = True
            take(fd, data)
        return got

    grace_until: float | None = None
    if lazy:
        for fd in (out_fd, err_fd):
            os.set_blocking(fd, False)
        watch([st_fd])
        tick = 0.002
    else:
        watch(live)
    while live:
        now = time.monotonic()
        if res.killed_for is None and grace_until is None and now >= deadline:
            res.killed_for = "timeout"
            kill("timeout")
            grace_until = now + KILL_GRACE_S
        if grace_until is not None:
            if lazy:  # status there (or a kill sent): from now on wait for every pipe's EOF
                lazy = False
                watch(live)
                for fd in (out_fd, err_fd):
                    drain(fd)
                continue
            if now >= grace_until:
                res.hung = True
                break
            wait = grace_until - now
        else:
            wait = deadline - now
        if lazy:
            wait = min(wait, tick)
        events = poller.poll(max(0.0, wait) * 1000.0 + 0.5)
        for fd, _ev in events:
            if fd in watched and fd in (out_fd, err_fd) and os.get_blocking(fd) is False:
                drain(fd)
                continue
            data = os.read(fd, 1 << 16)
            if not data:
                eof(fd)
            else:
                take(fd, data)
        if lazy and not events:  # a tick: has the running program written anything?
            if drain(out_fd) | drain(err_fd):
                lazy = False
                watch(live)
            tick = min(tick * 2, 0.05)
    for fd in (out_fd, err_fd, st_fd) if close else ():
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass
    return res


def decode(b: bytes | bytearray) -> str:
    return bytes(b).decode("utf-8", "replace")
