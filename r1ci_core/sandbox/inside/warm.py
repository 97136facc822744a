# ruff: noqa: UP031
"""Inside the sandbox, warm executors: the hub (pid 1 of a worker), its templates, their slots and each
slot's zygote, which forks one executor per call (see the package docstring)."""

import _signal
import fcntl
import gc
import json
import os
import select
import signal
import socket
import struct
import sys

from .executor import e_execute, e_prepare, measure_base_vm
from .outer import unshare_outer
from .protocol import (
    DONE,
    DONE_FD,
    DONE_TAG,
    ERROR,
    EXIT_SETUP,
    EXIT_SLOT,
    EXIT_TEMPLATE,
    EXIT_TEMPLATE_LOST,
    EXIT_ZYGOTE,
    FORK,
    FORKED,
    HUB_NEW_SLOT,
    HUB_PRELOADED,
    HUB_READY,
    KILL,
    QUIT,
    REAPED,
    REPLACE_SLOT,
    SLOT_MSG,
    SPARE,
    STATUS,
    STATUS_TAG,
    TEMPLATE_SLOT_MSG,
    ZMSG,
)
from .syscalls import (
    _SIGINT,
    CLONE_NEWIPC,
    CLONE_NEWNS,
    CLONE_NEWUSER,
    CLONE_PARENT,
    LIBC,
    MNT_DETACH,
    MS_NOATIME,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    PR_SET_DUMPABLE,
    PR_SET_NO_NEW_PRIVS,
    SLOT_FLAGS,
    TRACE_FD,
    _err,
    _keep_trace_fd,
    close_fds_except,
    default_signals,
    drop_caps,
    install_seccomp,
    lower_priority,
    mount,
    prctl,
    prepare_seccomp,
    raw_clone,
    set_name,
    tr,
    write_file,
)


def slot_user_namespace():
    """The slot's own user namespace (same uid inside), with a mount namespace it owns (so that it
    can still mount each call's scratch) and an IPC namespace.  The process count limit of its
    executors then counts one slot's processes only (the slot, its zygote and the call's), and nothing
    in it may create further namespaces.  Done once per slot, not per call."""
    uid, gid = os.getuid(), os.getgid()
    if LIBC.unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWIPC) != 0:
        raise _err("unshare user+mnt+ipc")
    write_file("/proc/self/uid_map", "%d %d 1" % (uid, uid))
    write_file("/proc/self/setgroups", "deny")
    write_file("/proc/self/gid_map", "%d %d 1" % (gid, gid))
    write_file("/proc/sys/user/max_user_namespaces", "0")




class Slot:
    """pid 1 of a set of namespaces; runs one executor at a time and cleans up after it."""

    def __init__(self, kind, sock, cfg):
        self.kind, self.sock, self.cfg = kind, sock, cfg
        self.opts = "size=%dk,nr_inodes=%d,mode=1777" % (cfg["scratch_kb"], cfg["scratch_inodes"])
        self.scratch = None  # what the mounted, still unused scratch looks like (see scratch_unused)
        self.reuse_scratch = None  # None: not probed yet
        self.poller = select.poll()  # the hub's socket, and each call's executor and done pipe
        self.poller.register(sock.fileno(), select.POLLIN)
        self.z_pid = self.z_sock = None  # the zygote (see zygote())

    def main(self):
        set_name(b"r1ci-slot")
        # pid 1: the kernel drops signals from inside the namespace that have no handler
        for s in range(1, signal.NSIG):
            if s not in (signal.SIGKILL, signal.SIGSTOP):
                try:
                    signal.signal(s, signal.SIG_IGN if s in (signal.SIGPIPE, signal.SIGXFSZ) else signal.SIG_DFL)
                except (OSError, ValueError, RuntimeError):
                    pass
        try:
            os.setsid()  # leave the template's low-priority autogroup: we are on the critical path
        except OSError:
            pass
        try:
            signal.set_wakeup_fd(-1)
        except (ValueError, OSError):
            pass
        close_fds_except([0, 1, 2, self.sock.fileno()] + ([TRACE_FD] if TRACE_FD is not None else []))
        mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        socket.sethostname("sandbox")
        slot_user_namespace()
        prctl(PR_SET_DUMPABLE, 0)  # executors (same uid) cannot ptrace us or read /proc/1/*
        # Inherited by every executor: no privilege gained through exec, and the seccomp filter.
        prctl(PR_SET_NO_NEW_PRIVS, 1)
        if self.cfg.get("seccomp", True):
            install_seccomp()
        measure_base_vm()  # once: each executor starts as a copy of this process
        failures = 0
        while True:
            t_start = _now()
            status, ready_ok = self.one_call()
            if ready_ok:
                failures = 0
            elif _now() - t_start < 2.0:  # the executor died while preparing: back off
                failures += 1
                if failures == 3:
                    self.sock.send(ERROR + ("executor setup keeps failing (status %d)" % status).encode())
                import time

                time.sleep(min(5.0, 0.01 * 2 ** min(failures, 9)))

    def zygote(self):
        """The slot's zygote Z: a copy of the slot that has dropped its capabilities and forks
        the executors, so that the slot itself never forks (every fork write-protects the
        forking process's memory, and its next writes are page faults: the slot's per-call work
        stays off that path).  A program can kill or stop Z (same uid): then it is made anew."""
        if self.z_pid is not None:
            return
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            try:
                a.detach()
                zygote_main(b)
            finally:
                os._exit(EXIT_ZYGOTE)
        b.close()
        self.z_sock, self.z_pid = a, pid
        self.poller.register(a.fileno(), select.POLLIN)

    def zygote_gone(self):
        if self.z_pid is None:
            return
        self.poller.unregister(self.z_sock.fileno())
        self.z_sock.close()
        try:
            os.waitpid(self.z_pid, 0)
        except ChildProcessError:
            pass
        self.z_pid = self.z_sock = None

    def spawn(self, fds):
        """Z forks an executor on these pipe ends; its pid, or None if Z is gone."""
        for _attempt in (1, 2):
            self.zygote()
            try:
                _cont(self.z_pid)  # a program may have stopped it
                socket.send_fds(self.z_sock, [FORK], fds)
                msg = self.z_sock.recv(16)
            except OSError:
                msg = b""
            if msg[:1] == FORKED and len(msg) == ZMSG.size:
                return ZMSG.unpack(msg)[1]
            self.zygote_gone()
        return None

    def one_call(self):
        """Prepare an executor, hand it to the host, supervise its call, clean up; (wait status, ok)."""
        self.mount_scratch()
        started = self.start_executor()
        if started is None:
            return EXIT_SETUP << 8, False
        pid, pidfd, done_r, st_w = started
        status, reported_rc, alone, st_w = self.supervise(pid, pidfd, done_r, st_w)
        tr("S reaped E")
        if not alone:
            self.kill_namespace()
        if st_w is not None:
            self.report(st_w, status if reported_rc is None else reported_rc << 8)
            tr("S status sent")
        self.recycle_scratch()
        ok = not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == EXIT_SETUP)
        return status, ok

    def mount_scratch(self):
        if self.scratch is None:
            # noatime: reading the scratch leaves no trace in it (see scratch_unused)
            mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOATIME, self.opts)
            mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME, self.opts)
            if self.reuse_scratch is None:
                self.reuse_scratch = self.fine_change_times()
            self.scratch = self.scratch_state()

    def start_executor(self):
        """Have Z fork the executor on fresh pipes and pass the host its ends; (pid, pidfd, done_r, st_w) or None.

        The pidfd is opened before the host gets the pipes: once it has them the program can run and end, and
        Z reap it, before we would look (pidfd_open would then fail, and the slot with it)."""
        code_r, code_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        ready_r, ready_w = os.pipe()
        st_r, st_w = os.pipe()
        done_r, done_w = os.pipe()
        for fd in (out_w, err_w):  # room for a program's whole output while the host sleeps
            try:
                fcntl.fcntl(fd, 1031, 256 << 10)  # F_SETPIPE_SZ
            except OSError:
                pass
        pid = self.spawn([code_r, out_w, err_w, ready_w, done_w])
        for fd in (code_r, out_w, err_w, ready_w, done_w):
            os.close(fd)
        if pid is None:
            for fd in (code_w, out_r, err_r, ready_r, st_r, st_w, done_r):
                os.close(fd)
            return None
        pidfd = os.pidfd_open(pid)
        fds = (code_w, out_r, err_r, ready_r, st_r)
        try:
            socket.send_fds(self.sock, [SPARE], list(fds))
        finally:
            for fd in fds:
                os.close(fd)
        return pid, pidfd, done_r, st_w

    def supervise(self, pid, pidfd, done_r, st_w):
        """Until the executor is reaped: kills from the host, its "done", its exit, Z's report.
        (wait status, exit code it reported or None, whether it was alone, st_w unless sent already)."""
        poller = self.poller
        poller.register(pidfd, select.POLLIN)
        poller.register(done_r, select.POLLIN)
        reported_rc = None
        done_open = pid_open = True
        alone = False  # nothing but the executor was left in the namespace when it finished
        status = None
        while status is None:
            events = poller.poll(None if pid_open else 200)
            if not events:  # the executor is gone but Z does not say so: a program stopped it again
                _kill(self.z_pid)
                self.zygote_gone()
                status = _wait_orphan(pid)
            for fd, _ev in events:
                if fd == self.sock.fileno():
                    self.from_host(pid)
                elif fd == done_r:
                    poller.unregister(done_r)
                    done_open = False
                    reported_rc = self.on_done(os.read(done_r, 64), pid)
                    if reported_rc is not None and self.alone_with(pid):
                        alone = True
                        self.report(st_w, reported_rc << 8)
                        st_w = None
                        tr("S status sent (fast)")
                elif fd == pidfd:  # the executor exited: Z reaps it and tells us how it ended
                    poller.unregister(pidfd)
                    pid_open = False
                    if self.z_pid is None:
                        status = _wait_orphan(pid)
                    else:
                        _cont(self.z_pid)  # in case the program stopped it
                elif self.z_sock is not None and fd == self.z_sock.fileno():
                    ended = self.from_zygote(pid, pid_open)
                    status = ended if ended is not None else status
        for fd, is_open in ((pidfd, pid_open), (done_r, done_open)):
            if is_open:
                poller.unregister(fd)
            os.close(fd)
        return status, reported_rc, alone, st_w

    def from_host(self, pid):
        msg = self.sock.recv(16)
        if not msg:
            os._exit(0)  # hub gone: our exit takes the namespace with it
        if msg[:1] == KILL:
            _kill(pid)

    @staticmethod
    def on_done(data, pid):
        """The executor's exit code, if this is its "done" (else None: wait for it to exit)."""
        if len(data) != DONE.size or data[:4] != DONE_TAG:
            return None  # not ours (or nothing)
        # The program finished and closed its pipes.  Kill it now (it can no longer run or fork).
        _kill(pid)
        return DONE.unpack(data)[1] & 0xFF

    def alone_with(self, pid):
        """Nothing but us, the executor and Z lives in the namespace: the result is final."""
        mine = ("1", str(pid), str(self.z_pid))
        return not [e for e in os.listdir("/proc") if e.isdigit() and e not in mine]

    def from_zygote(self, pid, pid_open):
        """How the executor ended (Z's report), or None while that is not known."""
        msg = self.z_sock.recv(64)
        if msg[:1] == REAPED and len(msg) == ZMSG.size:
            return ZMSG.unpack(msg)[1]
        self.zygote_gone()  # Z is gone (a program killed it): the executor is our child now
        return None if pid_open else _wait_orphan(pid)

    def kill_namespace(self):
        """Everything else in the namespace: SIGKILL again and again until none is left (not needed
        when the executor was alone: killed, it could start nothing more).  This takes Z too; the
        next call makes another."""
        while True:
            try:
                os.kill(-1, signal.SIGKILL)
            except OSError:
                pass
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                break
        if self.z_pid is not None:
            self.zygote_gone()

    def recycle_scratch(self):
        """Every process that could reach the scratch is gone.  The next executor gets a fresh one,
        unless this one is exactly as it was mounted (most programs write no file)."""
        if not self.scratch_unused():
            self.scratch = None
            for m in (b"/dev/shm", b"/tmp"):
                if LIBC.umount2(m, MNT_DETACH) != 0:
                    raise _err("umount %s" % m.decode())

    @staticmethod
    def fine_change_times():
        """Whether a change right after a stat() moves the change time here (tmpfs has
        fine-grained change times once they have been looked at, since Linux 6.13); with coarse
        ones an edit in the same clock tick as the mount could go unseen, so scratch_unused would
        not be safe and every call gets a fresh scratch."""
        before = os.stat("/tmp")
        os.chmod("/tmp", before.st_mode & 0o7777)
        return os.stat("/tmp").st_ctime_ns != before.st_ctime_ns

    @staticmethod
    def scratch_state():
        out = []
        for d in ("/tmp", "/dev/shm"):
            st = os.stat(d)
            out.append((st.st_dev, st.st_ino, st.st_mode, st.st_uid, st.st_gid, st.st_nlink, st.st_atime_ns,
                        st.st_mtime_ns, st.st_ctime_ns))
        return out

    def scratch_unused(self):
        """Nothing in it and nothing changed: no entry, no extended attribute, and the same inode,
        mode, owner and times as when it was mounted (making and removing a file, chmod, utime,
        an attribute or flag change all move the change time, which a program cannot set back);
        so it is indistinguishable from a fresh one and the next call may have it."""
        try:
            return (self.reuse_scratch and self.scratch is not None and self.scratch_state() == self.scratch
                    and not os.listdir("/tmp") and not os.listdir("/dev/shm")
                    and not os.listxattr("/tmp") and not os.listxattr("/dev/shm"))
        except OSError:
            return False

    @staticmethod
    def report(st_w, status):
        try:
            os.write(st_w, STATUS.pack(STATUS_TAG, status, -1, -1))
        except OSError:
            pass
        os.close(st_w)


FDS_SPACE = socket.CMSG_SPACE(5 * 4)


def _wait_orphan(pid):
    """The executor outlived its zygote: it is the slot's child now."""
    try:
        return os.waitpid(pid, 0)[1]
    except ChildProcessError:
        return 9  # reaped by the kill loop already: it was killed


def zygote_main(sock):
    """Z: fork an executor for each request of the slot, report its pid, reap it, report how it
    ended.  No capabilities (the executors inherit that); the slot's signal dispositions."""
    close_fds_except([0, 1, 2, sock.fileno()] + ([TRACE_FD] if TRACE_FD is not None else []))
    drop_caps()
    _signal.signal(_SIGINT, _signal.default_int_handler)  # for the executors (the slot's is SIG_DFL)
    gc.freeze()
    while True:
        # (recvmsg, not socket.recv_fds: fewer objects, fewer page faults per call)
        msg, anc, _f, _a = sock.recvmsg(16, FDS_SPACE)
        if not msg:
            os._exit(0)
        fds = struct.unpack("5i", anc[0][2]) if len(anc) == 1 and len(anc[0][2]) == 20 else ()
        if msg[:1] != FORK or not fds:
            for _lvl, _typ, data in anc:
                for fd in struct.unpack("%di" % (len(data) // 4), data[:len(data) - len(data) % 4]):
                    os.close(fd)
            continue
        code_r, out_w, err_w, ready_w, done_w = fds
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            try:
                _keep_trace_fd()
                if LIBC.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) != 0:  # an ordinary process (Z is not)
                    raise _err("dumpable")
                os.dup2(out_w, 1)
                os.dup2(err_w, 2)
                os.dup2(done_w, DONE_FD)  # far from the low numbers a program's own files get
                for fd in (sock.detach(), out_w, err_w, done_w):  # all but 0-2, code, ready, done
                    os.close(fd)
                # the slot and Z (same user namespace and uid) count against the process limit
                e_prepare(code_r, ready_w, nproc_extra=2, fresh=False)
            except BaseException:
                try:
                    import traceback

                    traceback.print_exc()
                finally:
                    os._exit(EXIT_SETUP)
            e_execute(code_r, ready_w, DONE_FD)
        for fd in fds:
            os.close(fd)
        sock.send(ZMSG.pack(FORKED, pid))
        sock.send(ZMSG.pack(REAPED, os.waitpid(pid, 0)[1]))


def _cont(pid):
    try:
        os.kill(pid, signal.SIGCONT)
    except OSError:
        pass


def _kill(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


def _now():
    import time

    return time.monotonic()


class Template:
    """Preloads its modules once, then keeps ``n`` slots alive (re-creating dead ones)."""

    def __init__(self, kind, sock, cfg):
        self.kind, self.sock, self.cfg = kind, sock, cfg

    def new_slot(self):
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            pid = raw_clone(SLOT_FLAGS | CLONE_PARENT)  # the hub reaps slots
        except OSError as e:
            a.close()
            b.close()
            self.sock.send(ERROR + ("clone failed: %s" % e).encode())
            return False
        if pid == 0:
            try:
                a.detach()
                self.sock.detach()
                Slot(self.kind, b, self.cfg).main()
            finally:
                os._exit(EXIT_SLOT)
        b.close()
        try:
            socket.send_fds(self.sock, [HUB_NEW_SLOT + TEMPLATE_SLOT_MSG.pack(pid, self.kind)], [a.fileno()])
        finally:
            a.close()
        return True

    def serve(self):
        import time

        failures = 0
        want = self.cfg["slots"]
        while True:
            while want > 0:
                if self.new_slot():
                    want -= 1
                    failures = 0
                else:
                    failures += 1
                    time.sleep(min(5.0, 0.05 * 2 ** min(failures, 7)))
            msg = self.sock.recv(64)
            if not msg:
                os._exit(0)
            want += msg.count(REPLACE_SLOT)  # the hub lost a slot: make another


def template_main(kind, sock, cfg):
    set_name(b"r1ci-tpl")
    lower_priority()  # making slots is background work
    preloaded = []
    for mod in cfg.get("preload_stdlib", []):
        try:
            __import__(mod)
        except Exception:  # noqa: BLE001
            pass
    if kind == 1:
        for mod in cfg.get("preload", []):
            try:
                __import__(mod)
                preloaded.append(mod)
            except Exception as e:  # noqa: BLE001
                print("r1ci sandbox: cannot preload %s: %r" % (mod, e), file=sys.stderr)
    import atexit  # noqa: F401  (used by the executor; imported once here)
    import io  # noqa: F401
    import resource  # noqa: F401
    import select  # noqa: F401
    import time  # noqa: F401
    import traceback  # noqa: F401
    import types  # noqa: F401

    prepare_seccomp()  # once here, inherited by every slot and executor
    # The first compile() in a process initialises the parser (about 1.5 ms): once here, not in
    # every executor.
    exec(compile("x = [1]\ny = len(x)\n", "<string>", "exec"), {})
    sock.send(HUB_PRELOADED + json.dumps(preloaded).encode())
    gc.collect()
    gc.freeze()
    Template(kind, sock, cfg).serve()


class Hub:
    """pid 1 of the worker: starts the templates, hands each new slot's socket to the host (which
    then talks to the slot directly: spares, kills), reaps slots and has dead ones replaced."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.ctrl = socket.socket(fileno=cfg["ctrl_fd"])
        self.templates = {}  # kind -> socket
        self.slots = {}  # pidfd -> (pid, kind)
        self.next_slot = 1

    def start_template(self, kind):
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:
            try:
                a.close()
                self.ctrl.close()
                for s in self.templates.values():
                    s.close()
                cfg = dict(self.cfg, slots=self.cfg["slots"])
                template_main(kind, b, cfg)
            finally:
                os._exit(EXIT_TEMPLATE)
        b.close()
        self.templates[kind] = a
        return pid

    def send_host(self, msg, fds=()):
        if fds:
            socket.send_fds(self.ctrl, [msg], list(fds))
        else:
            self.ctrl.send(msg)

    def serve(self):
        import select

        kinds = [0, 1] if self.cfg.get("preload") else [0]
        template_pids = [self.start_template(k) for k in kinds]
        # Ready as soon as the light template is: the preloading one (numpy, sympy: seconds on a
        # busy machine) announces itself, and its spares, when it gets there.
        msg = self.templates[0].recv(65536)
        if msg[:1] != HUB_PRELOADED:
            raise RuntimeError("template 0 failed to start")
        self.send_host(HUB_READY + json.dumps({
            "pid": os.getpid(), "python": sys.version.split()[0], "preload": self.cfg.get("preload", []),
            "uid": os.getuid(), "executable": sys.executable, "kinds": kinds,
        }).encode())
        poller = select.poll()
        ctrl_fd = self.ctrl.fileno()
        poller.register(ctrl_fd, select.POLLIN)
        tpl_fd = {}
        for kind in kinds:
            tpl_fd[self.templates[kind].fileno()] = kind
            poller.register(self.templates[kind].fileno(), select.POLLIN)
        for pid in template_pids:
            pfd = os.pidfd_open(pid)
            poller.register(pfd, select.POLLIN)
            tpl_fd[pfd] = -1  # a template died: give up, the host restarts the worker
        while True:
            for fd, _ev in poller.poll():
                if fd == ctrl_fd:
                    msg = self.ctrl.recv(256)
                    if not msg or msg[:1] == QUIT:
                        os._exit(0)  # host gone or asked to quit: pid 1 exit kills everything
                elif fd in tpl_fd:
                    kind = tpl_fd[fd]
                    if kind < 0:
                        os._exit(EXIT_TEMPLATE_LOST)
                    msg, fds, _f, _a = socket.recv_fds(self.templates[kind], 4096, 1)
                    if not msg:
                        os._exit(EXIT_TEMPLATE_LOST)
                    if msg[:1] in (ERROR, HUB_PRELOADED):  # L: what the preloading template could import
                        self.send_host(msg)
                    elif msg[:1] == HUB_NEW_SLOT and fds:
                        pid, k = TEMPLATE_SLOT_MSG.unpack_from(msg, 1)
                        try:  # the host talks to the slot directly from now on
                            self.send_host(HUB_NEW_SLOT + SLOT_MSG.pack(self.next_slot, k), fds)
                        finally:
                            os.close(fds[0])
                        self.next_slot += 1
                        pfd = os.pidfd_open(pid)
                        self.slots[pfd] = (pid, k)
                        poller.register(pfd, select.POLLIN)
                    else:
                        for x in fds:
                            os.close(x)
                else:  # a slot died (its namespace with it): reap it, have another made
                    pid, k = self.slots.pop(fd)
                    poller.unregister(fd)
                    os.close(fd)
                    try:
                        os.waitpid(pid, 0)
                    except ChildProcessError:
                        pass
                    self.templates[k].send(REPLACE_SLOT)


def hub_main(cfg):
    set_name(b"r1ci-hub")
    if cfg.get("setup") == "unshare":
        unshare_outer(cfg)
    default_signals()
    Hub(cfg).serve()
