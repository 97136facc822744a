# ruff: noqa: UP031
"""Inside the sandbox: one call per interpreter start (cold, in a per-call bwrap) and ``isolation: none``."""

import os
import signal

from .executor import e_execute, e_prepare
from .protocol import (
    EXIT_SETUP,
    EXIT_SUPERVISOR,
    READY_PREPARED,
    READY_RUNNING,
    STATUS,
    STATUS_ERROR_TAG,
    STATUS_TAG,
)
from .syscalls import (
    CLONE_NEWNET,
    LIBC,
    PR_SET_DUMPABLE,
    _err,
    default_signals,
    drop_caps,
    install_seccomp,
    prctl,
)


def cold_main(cfg):
    """pid 1 of a per-call bwrap: fork the executor, wait, kill and reap the rest, report."""
    st_fd, code_fd = cfg["st_fd"], cfg["code_fd"]
    default_signals()
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # pid 1: SIG_DFL signals from inside are ignored
    prctl(PR_SET_DUMPABLE, 0)
    # bwrap's network namespace has a loopback that is up; a fresh one has it down: no address
    # at all is reachable.  Then no capability is left to anyone.
    if LIBC.unshare(CLONE_NEWNET) != 0:
        raise _err("unshare net")
    drop_caps()
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(st_fd)
            os.close(ready_r)
            prctl(PR_SET_DUMPABLE, 1)
            install_seccomp()
            e_prepare(code_fd, ready_w)
        except BaseException:
            os._exit(EXIT_SETUP)
        e_execute(code_fd, ready_w)
    os.close(ready_w)
    os.close(code_fd)
    null = os.open("/dev/null", os.O_RDWR)
    os.dup2(null, 1)
    os.dup2(null, 2)
    os.close(null)
    try:
        got = b""
        while True:
            chunk = os.read(ready_r, 16)
            if not chunk:
                break
            got += chunk
        _, status, ru = os.wait4(pid, 0)
        try:
            os.kill(-1, signal.SIGKILL)  # as pid 1: every other process in the namespace
        except OSError:
            pass
        while True:
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                break
        if got != READY_PREPARED + READY_RUNNING:
            raise RuntimeError("executor failed before running the code (%r, status %d)" % (got, status))
        cpu = int((ru.ru_utime + ru.ru_stime) * 1e6)
        os.write(st_fd, STATUS.pack(STATUS_TAG, status, cpu, ru.ru_maxrss))
        os._exit(0)
    except BaseException as e:  # noqa: BLE001
        try:
            os.write(st_fd, STATUS_ERROR_TAG + ("supervisor: %r" % (e,)).encode()[:2000])
        finally:
            os._exit(EXIT_SUPERVISOR)


def plain_main(cfg):
    code_fd, ready_fd = cfg["code_fd"], cfg["ready_fd"]
    try:
        e_prepare(code_fd, ready_fd, cwd=None)
    except BaseException:
        os._exit(EXIT_SETUP)
    e_execute(code_fd, ready_fd)
