# ruff: noqa: UP031
"""Inside the sandbox, a persistent interpreter (``persistent: true``).

A trajectory's own sandbox: pid 1 (S) of its own bwrap (or of its own ``unshare`` namespaces) supervises a
*holder* H, a Python process whose ``__main__`` keeps the trajectory's variables.  Per call, H forks the
call's process C (a copy of H: every variable, fresh CPU time) and exits; C runs the code within the call's
limits and, when it ends normally, becomes the next holder.  S then kills whatever else the code started and
reports.  A call that does not end normally (killed for time or output, a crash) ends the session: S kills
everything and exits, and the host starts the next call in a fresh one.
S -> H: b"C" + the call's pipe ends (code, stdout, stderr, ready); H -> S: b"H" once prepared, b"P" + C's
pid once forked; C -> S: b"D" + exit code + its pid once done (`SESSION_MSG`)."""

import os
import select
import signal
import socket
import sys

from .executor import _apply_limits, _new_main, _parse_request, _run_code, measure_base_vm, set_nproc_extra
from .outer import unshare_outer
from .protocol import (
    CALL_DONE,
    ERROR,
    EXIT_SETUP,
    EXIT_SUPERVISOR,
    HOLDER_FORKED,
    HOLDER_READY,
    KILL,
    QUIT,
    READY_RUNNING,
    REQUEST,
    SESSION_CALL,
    SESSION_ENDED,
    SESSION_MSG,
    SESSION_READY,
)
from .syscalls import (
    CLONE_NEWNET,
    LIBC,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    PR_SET_DUMPABLE,
    TRACE_FD,
    _err,
    close_fds_except,
    default_signals,
    drop_caps,
    install_seccomp,
    mount,
    prctl,
    prepare_seccomp,
    read_exact,
    set_name,
    write_file,
)
from .warm import Slot, _kill


def _live_pids():
    """pids of this namespace's processes that are not zombies (pid 1 included)."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name, "rb") as f:
                stat = f.read()
        except OSError:
            continue
        if stat[stat.rindex(b")") + 2:][:1] != b"Z":
            out.append(int(name))
    return out


def _reap_nohang():
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass


def holder_main(sock):
    """H: prepare once, then fork one process per call; the child runs it and holds the state after."""
    import time  # noqa: F401  (imported before the first call, like a warm executor)

    set_nproc_extra(2)  # S and the exiting holder count against a call's process limit
    prctl(PR_SET_DUMPABLE, 1)
    install_seccomp()
    close_fds_except([0, 1, 2, sock.fileno()] + ([TRACE_FD] if TRACE_FD is not None else []))
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    os.chdir("/tmp")
    main = _new_main()
    sys.modules["__main__"] = main
    sys.argv[:] = ["-c"]
    if sys.path[:1] != [""]:
        sys.path.insert(0, "")
    measure_base_vm()  # the memory limit counts the state the calls build up on top of this
    sock.send(HOLDER_READY)
    while True:
        msg, fds, _f, _a = socket.recv_fds(sock, 16, 4)
        if msg[:1] != SESSION_CALL or len(fds) != 4:
            os._exit(0)  # S gone (or confused): nothing to hold the state for
        _reap_nohang()  # what the previous call started (S killed it)
        rnd = sys.modules.get("random")
        rstate = rnd.getstate() if rnd is not None else None  # `random` reseeds itself at fork
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid:
            sock.send(SESSION_MSG.pack(HOLDER_FORKED, 0, pid))
            os._exit(0)  # the state lives on in the child
        if rstate is not None:
            rnd.setstate(rstate)
        rc = session_call(fds, main)
        try:
            sock.send(SESSION_MSG.pack(CALL_DONE, rc, os.getpid()))
        except OSError:
            os._exit(rc)


def session_call(fds, main):
    """C: one call in the holder's ``__main__``: the request's stdin and limits, the code; its exit code."""
    code_r, out_w, err_w, ready_w = fds
    try:
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        os.close(out_w)
        os.close(err_w)
        head = read_exact(code_r, REQUEST.size)
        *_limits, sl, cl = REQUEST.unpack(head)
        limits, stdin, code = _parse_request(head + read_exact(code_r, sl + cl))
        os.close(code_r)
        if not stdin:
            null = os.open("/dev/null", os.O_RDONLY)
            os.dup2(null, 0)
            os.close(null)
        _apply_limits(limits, stdin)
        os.write(ready_w, READY_RUNNING)
        os.close(ready_w)
    except BaseException:
        os._exit(EXIT_SETUP)
    rc = _run_code(code, main.__dict__)
    th = sys.modules.get("threading")
    if th is not None:  # like the end of a script: wait for the threads it started
        for t in th.enumerate():
            if t is not th.main_thread() and not t.daemon:
                try:
                    t.join()
                except BaseException:
                    pass
    for s in (sys.stdout, sys.stderr):
        try:
            s.flush()
        except BaseException:
            pass
    null = os.open("/dev/null", os.O_RDWR)  # let go of the call's pipes: the host reads to EOF
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    return rc & 0xFF


class Session:
    """S: pid 1 of one trajectory's sandbox; starts the holder, relays calls, cleans up after each."""

    def __init__(self, ctrl):
        self.ctrl = ctrl
        self.hs = None
        self.holder = None

    def start(self):
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:
            try:
                a.close()
                self.ctrl.detach()
                holder_main(b)
            finally:
                os._exit(EXIT_SETUP)
        b.close()
        self.hs, self.holder = a, pid
        if a.recv(16) != HOLDER_READY:
            raise RuntimeError("the interpreter did not start")

    def serve(self):
        while True:
            msg, fds, _f, _a = socket.recv_fds(self.ctrl, 16, 5)
            if not msg or msg[:1] == QUIT:
                os._exit(0)  # host gone or done: pid 1 exit ends the namespace
            if msg[:1] != SESSION_CALL or len(fds) != 5:
                for fd in fds:
                    os.close(fd)
                continue  # a late kill of a call that had ended already
            st_w = fds[4]
            socket.send_fds(self.hs, [SESSION_CALL], fds[:4])
            for fd in fds[:4]:
                os.close(fd)
            status, pid = self.wait_call()
            if pid is None:  # killed or crashed: nothing of the session is kept
                self.ctrl.send(SESSION_ENDED)
                self.kill_others(())
                Slot.report(st_w, status)
                os._exit(0)
            self.kill_others((pid,))
            self.holder = pid
            self.drain()
            Slot.report(st_w, status)

    def wait_call(self):
        """Until the call ends: (wait status, pid of the next holder or None when it did not end normally)."""
        poller = select.poll()
        for fd in (self.ctrl.fileno(), self.hs.fileno()):
            poller.register(fd, select.POLLIN)
        h_fd = os.pidfd_open(self.holder)
        poller.register(h_fd, select.POLLIN)
        c_pid = c_fd = None
        hs_open = True
        try:
            while True:
                for fd, _ev in poller.poll():
                    if fd == self.ctrl.fileno():
                        msg = self.ctrl.recv(16)
                        if not msg:
                            os._exit(0)
                        if msg[:1] == KILL:
                            return signal.SIGKILL, None
                    elif fd == self.hs.fileno():
                        msg = self.hs.recv(64)
                        if not msg:  # holder and call both gone: their exits say how
                            poller.unregister(self.hs.fileno())
                            hs_open = False
                            continue
                        if len(msg) != SESSION_MSG.size:
                            return EXIT_SETUP << 8, None
                        tag, rc, pid = SESSION_MSG.unpack(msg)
                        if tag == CALL_DONE:
                            return rc << 8, pid
                        if tag == HOLDER_FORKED and c_fd is None:
                            c_pid, c_fd = pid, os.pidfd_open(pid)
                            poller.register(c_fd, select.POLLIN)
                    elif fd == h_fd:  # the holder exited: as planned once it has forked C
                        poller.unregister(h_fd)
                        try:
                            _pid, status = os.waitpid(self.holder, 0)
                        except ChildProcessError:
                            status = 9
                        if c_fd is None and not (hs_open and self.pending()):
                            return status, None
                    elif fd == c_fd:  # C ended without saying so: a crash or a kill
                        if hs_open and self.pending():
                            continue  # its "done" is on the way
                        try:
                            return os.waitpid(c_pid, 0)[1], None
                        except ChildProcessError:
                            return 9, None
        finally:
            for fd in (h_fd, c_fd):
                if fd is not None:
                    os.close(fd)

    def pending(self):
        return bool(select.select([self.hs], [], [], 0)[0])

    def drain(self):
        """Drop what the exited holder said after its child's report (its 'forked' message)."""
        while self.pending():
            if not self.hs.recv(64):
                break

    @staticmethod
    def kill_others(keep):
        """SIGKILL every process of the namespace but pid 1 and ``keep`` until none is left."""
        import time

        keep = {1, *keep}
        while True:
            others = [p for p in _live_pids() if p not in keep]
            if not others:
                break
            for p in others:
                _kill(p)
            _reap_nohang()
            time.sleep(0.0005)
        _reap_nohang()


def session_main(cfg):
    """pid 1 of a persistent interpreter's own sandbox."""
    set_name(b"r1ci-session")
    if cfg.get("setup") == "unshare":
        unshare_outer(cfg)
        opts = "size=%dk,nr_inodes=%d,mode=1777" % (cfg["scratch_kb"], cfg["scratch_inodes"])
        mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, opts)
        mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, opts)
        write_file("/proc/sys/user/max_user_namespaces", "0")
    ctrl = socket.socket(fileno=cfg["ctrl_fd"])
    default_signals()
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # pid 1: SIG_DFL signals from inside are ignored
    prctl(PR_SET_DUMPABLE, 0)
    if LIBC.unshare(CLONE_NEWNET) != 0:  # loopback down: no address at all is reachable
        raise _err("unshare net")
    drop_caps()
    prepare_seccomp()
    close_fds_except([0, 1, 2, ctrl.fileno()] + ([TRACE_FD] if TRACE_FD is not None else []))
    session = Session(ctrl)
    try:
        session.start()
    except BaseException as e:  # noqa: BLE001
        ctrl.send(ERROR + ("interpreter: %r" % (e,)).encode()[:2000])
        os._exit(EXIT_SUPERVISOR)
    null = os.open("/dev/null", os.O_RDWR)
    os.dup2(null, 1)
    os.dup2(null, 2)
    os.close(null)
    ctrl.send(SESSION_READY)
    session.serve()
