# ruff: noqa: E402, UP031
"""Code that runs INSIDE the isolation (passed to the sandbox interpreter with ``-c``).

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
"""

import _signal
import ctypes
import fcntl
import gc
import json
import os
import platform
import select
import signal
import socket
import struct
import sys

# --------------------------------------------------------------------------- low level

CLONE_NEWNS = 0x00020000
CLONE_PARENT = 0x00008000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_NOATIME, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1024, 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS = 1, 4, 38
PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
SYS_CLONE = {"x86_64": 56, "aarch64": 220}.get(platform.machine())
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}.get(platform.machine())
# Namespaces of a slot (reused call after call, cleaned in between); each executor also gets its
# own user and IPC namespaces.  The hub, templates and slots hold CAP_SYS_ADMIN in the sandbox's
# own user namespace (never on the host); executors drop every capability.
SLOT_FLAGS = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWUTS | CLONE_NEWCGROUP

LIBC = ctypes.CDLL(None, use_errno=True)
PYLIBC = ctypes.PyDLL(None, use_errno=True)  # keeps the GIL held across clone()
LIBC.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
LIBC.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
LIBC.unshare.argtypes = [ctypes.c_int]
LIBC.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
PYLIBC.syscall.restype = ctypes.c_long

STATUS = struct.Struct("<2siqq")  # b"ST", wait status, user+sys cpu in us, max rss kB (warm: -1, -1)
# A request: limits (0: none) mem (bytes on top of the interpreter), cpu s, processes, file size
# bytes, open files; then stdin length and code length, then stdin and code (UTF-8).
REQUEST = struct.Struct("<5qII")
LIMIT_NAMES = ("mem", "cpu", "nproc", "fsize", "nofile")
DONE = struct.Struct("<4si")  # executor -> slot: b"DONE", exit code
DONE_FD = 1000
SLOT_MSG = struct.Struct("<IB")  # hub -> host with a new slot's socket: slot number, kind
_SIGINT = int(signal.SIGINT)
TRACE_FD = 2 if os.environ.get("R1CI_SANDBOX_TRACE") else None


def tr(msg):
    """Timestamped debug trace to the hub's stderr (the host logs it at DEBUG level)."""
    if TRACE_FD is not None:
        import time

        try:
            os.write(TRACE_FD, ("TRACE %.6f %d %s\n" % (time.monotonic(), os.getpid(), msg)).encode())
        except OSError:
            pass


def _keep_trace_fd():
    """Tracing: keep the hub's stderr open under another number before fd 2 is redirected."""
    global TRACE_FD
    if TRACE_FD == 2:
        TRACE_FD = os.dup(2)


def _err(what):
    e = ctypes.get_errno()
    return OSError(e, "%s: %s" % (what, os.strerror(e)))


def mount(src, tgt, fstype, flags, data=None):
    enc = lambda s: s.encode() if isinstance(s, str) else s  # noqa: E731
    if LIBC.mount(enc(src), enc(tgt), enc(fstype), flags, enc(data)) != 0:
        raise _err("mount %s" % tgt)


def set_name(name):
    """The process name ps/top show (comm): r1ci-hub, r1ci-tpl, r1ci-slot (executors keep their
    zygote's, a copy of its slot's)."""
    buf = ctypes.create_string_buffer(name)
    LIBC.prctl(15, ctypes.addressof(buf), 0, 0, 0)  # PR_SET_NAME


def prctl(opt, a=0, b=0, c=0, d=0):
    if LIBC.prctl(opt, a, b, c, d) != 0:
        raise _err("prctl %d" % opt)


def write_file(path, data):
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, data.encode())
    finally:
        os.close(fd)


class _CapHdr(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("eff", ctypes.c_uint32), ("perm", ctypes.c_uint32), ("inh", ctypes.c_uint32)]


_CAP_HDR = _CapHdr(0x20080522, 0)
_CAP_NONE = (_CapData * 2)()


def drop_caps():
    """No capabilities left, ambient included; no_new_privs keeps exec from regaining any."""
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    if LIBC.capset(ctypes.byref(_CAP_HDR), _CAP_NONE) != 0:
        raise _err("capset")
    prctl(PR_SET_NO_NEW_PRIVS, 1)


def raw_clone(flags):
    """fork() with clone flags (new namespaces).  The caller must be single-threaded."""
    if SYS_CLONE is None:
        raise OSError(38, "clone: unsupported architecture %s" % platform.machine())
    sys.stdout.flush()
    sys.stderr.flush()
    pid = PYLIBC.syscall(ctypes.c_long(SYS_CLONE), ctypes.c_ulong(flags | signal.SIGCHLD),
                         ctypes.c_void_p(0), ctypes.c_void_p(0), ctypes.c_void_p(0), ctypes.c_ulong(0))
    if pid < 0:
        raise _err("clone")
    return pid


def default_signals():
    try:
        signal.set_wakeup_fd(-1)
    except (ValueError, OSError):
        pass
    for s in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(s, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def read_exact(fd, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            raise EOFError("request truncated")
        buf += chunk
    return bytes(buf)


def close_fds_except(keep):
    keep = sorted(set(keep))
    lo = 0
    for fd in keep:
        if fd > lo:
            os.closerange(lo, fd)
        lo = fd + 1
    os.closerange(lo, 1 << 20)


def lower_priority():
    """Background work (making slots) yields to running programs: its own session's
    autogroup at nice 19.  Slots and executors leave it with setsid()."""
    try:
        os.setsid()
    except OSError:
        pass
    try:
        write_file("/proc/self/autogroup", "19")
    except OSError:
        pass


# --------------------------------------------------------------------------- E: the executor

_BASE_VM = None  # address space of the prepared executor: the memory limit is on top of it
_NPROC_EXTRA = 0  # processes outside the call that share its process count (warm: the slot and its zygote)


def measure_base_vm():
    global _BASE_VM
    _BASE_VM = _vm_size()


def _vm_size():
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 256 << 20


def e_prepare(code_fd, ready_fd, cwd="/tmp", nproc_extra=0, fresh=True):
    """Everything the executor does before its request arrives (off the critical path).
    ``fresh``: a new interpreter (cold, plain), not a fork of a warm zygote, which has already
    set the signals, closed every other descriptor and measured the address space."""
    import resource

    global _BASE_VM, _NPROC_EXTRA
    _NPROC_EXTRA = nproc_extra
    if fresh:
        default_signals()
        close_fds_except([0, 1, 2, code_fd, ready_fd] + ([TRACE_FD] if TRACE_FD is not None else []))
    if cwd:
        os.chdir(cwd)
    # Dry run of the request path: its copy-on-write faults and lazy initialisations are paid now rather
    # than after the request arrives. (A warm-up program here cost more CPU per call than it saved.)
    _parse_request(REQUEST.pack(0, 0, 0, 0, 0, 0, 8) + b"print(1)")
    for res in _LIMITS.values():
        resource.getrlimit(res)
    _new_main()
    compile("x = 1", "<string>", "exec")  # the parser's copy-on-write pages
    npr = sys.modules.get("numpy.random")
    if npr is not None:
        npr.seed()  # fresh entropy per call, like a cold interpreter (`random` reseeds itself at fork)
    if _BASE_VM is None:
        _BASE_VM = _vm_size()
    # Not a session or group leader, so a program may setsid(); its killpg() reaches only itself,
    # pid 1 (which, as init, ignores it) and, when warm, its zygote (which its slot then replaces).
    os.write(ready_fd, b"P")
    tr("E prepared")


def e_execute(code_fd, ready_fd, done_fd=None):
    """Read the request, apply the limits, run the code as __main__; never returns."""
    try:
        head = read_exact(code_fd, REQUEST.size)
        tr("E woke")
        *limits, sl, cl = REQUEST.unpack(head)
        limits, stdin, code = _parse_request(head + read_exact(code_fd, sl + cl))
        os.close(code_fd)
        _apply_limits(limits, stdin)
        tr("E request")
        os.write(ready_fd, b"R")
        os.close(ready_fd)
    except BaseException:
        os._exit(71)
    _e_run(code, done_fd)


def _parse_request(data):
    *limits, sl, cl = REQUEST.unpack_from(data)
    n = REQUEST.size
    return limits, data[n:n + sl], data[n + sl:n + sl + cl].decode("utf-8", "surrogateescape")


def _lim_table():
    import resource

    return {"cpu": resource.RLIMIT_CPU, "nproc": resource.RLIMIT_NPROC, "fsize": resource.RLIMIT_FSIZE,
            "nofile": resource.RLIMIT_NOFILE, "mem": resource.RLIMIT_AS, "core": resource.RLIMIT_CORE}


_LIMITS = _lim_table()


def _apply_limits(limits, stdin):
    import resource

    if stdin:
        mfd = os.memfd_create("stdin")
        os.write(mfd, stdin)
        os.lseek(mfd, 0, 0)
        os.dup2(mfd, 0)
        os.close(mfd)
    want = {"core": 0}
    for k, v in zip(LIMIT_NAMES, limits, strict=True):
        if v > 0:
            want[k] = v
    if "nproc" in want:
        want["nproc"] += _NPROC_EXTRA
    if "mem" in want:
        want["mem"] += _BASE_VM or _vm_size()
    for k, v in want.items():
        res = _LIMITS[k]
        hard = v
        cur_hard = resource.getrlimit(res)[1]
        if cur_hard != resource.RLIM_INFINITY:
            hard = min(hard, cur_hard)
        # cpu: soft == hard, SIGKILL at the limit (as in a plain `prlimit --cpu=N`)
        resource.setrlimit(res, (min(v, hard), hard))


def _new_main():
    import types

    main = types.ModuleType("__main__")
    main.__dict__["__builtins__"] = __builtins__
    return main


def _e_run(code, done_fd=None):
    import atexit

    atexit._clear()
    main = _new_main()
    sys.modules["__main__"] = main
    sys.argv[:] = ["-c"]
    if sys.path[:1] != [""]:
        sys.path.insert(0, "")
    rc = _finish(_run_code(code, main.__dict__)) & 0xFF
    tr("E exit")
    if done_fd is not None:
        # Let go of every pipe to the host, then tell the slot our exit code: it kills us and,
        # when nothing else runs in the namespace, reports without waiting for our teardown.
        try:
            os.closerange(0, done_fd)
            os.closerange(done_fd + 1, 1 << 20)
            # Our teardown (unmapping the whole interpreter, a millisecond) must not hold up the
            # slot's report when the slot wakes on this CPU: it yields to the slot.
            os.setpriority(os.PRIO_PROCESS, 0, 19)
            os.write(done_fd, DONE.pack(b"DONE", rc))
        except BaseException:
            pass
    os._exit(rc)


def _run_code(code, namespace):
    """Run ``code`` in ``namespace`` as the interpreter runs a script; its exit code."""
    try:
        exec(compile(code, "<string>", "exec"), namespace)
    except SystemExit as e:
        return _exit_code(e)
    except BaseException as e:  # noqa: BLE001 - report like the interpreter does
        try:
            tb = e.__traceback__.tb_next if e.__traceback__ is not None else None
            sys.excepthook(type(e), e.with_traceback(tb), tb)
        except BaseException:
            pass
        return 1
    return 0


def _exit_code(e):
    c = e.code
    if c is None:
        return 0
    if isinstance(c, int):
        return c
    try:
        print(c, file=sys.stderr)
    except BaseException:
        pass
    return 1


def _finish(rc):
    import atexit

    try:
        th = sys.modules.get("threading")
        if th is not None:
            th._shutdown()
    except SystemExit as e:
        rc = _exit_code(e)
    except BaseException:
        pass
    try:
        atexit._run_exitfuncs()
    except BaseException:
        pass
    for s in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            s.flush()
        except BaseException:
            pass
    return rc


# --------------------------------------------------------------------------- seccomp

# Denied with EPERM: kernel keyrings and System V / POSIX message-queue IPC objects (a slot's
# calls share its user and IPC namespaces: these would be channels from one call to the next), and
# interfaces that only widen the kernel attack surface.
_DENY = {
    "x86_64": (0xC000003E, {"add_key": 248, "request_key": 249, "keyctl": 250, "perf_event_open": 298,
                            "bpf": 321, "userfaultfd": 323, "io_uring_setup": 425, "kexec_load": 246,
                            "shmget": 29, "semget": 64, "msgget": 68, "mq_open": 240}),
    "aarch64": (0xC00000B7, {"add_key": 217, "request_key": 218, "keyctl": 219, "perf_event_open": 241,
                             "bpf": 280, "userfaultfd": 282, "io_uring_setup": 425, "kexec_load": 104,
                             "shmget": 194, "semget": 190, "msgget": 186, "mq_open": 180}),
}
_SECCOMP_PROG = None


def _seccomp_prog():
    arch = _DENY.get(platform.machine())
    if arch is None:
        return None
    audit_arch, nrs = arch
    ld, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06
    ins = [(ld, 0, 0, 4), (jeq, 1, 0, audit_arch), (ret, 0, 0, 0x80000000),  # other arch: kill
           (ld, 0, 0, 0)]
    nrs = sorted(nrs.values())
    n = len(nrs)
    for i, nr in enumerate(nrs):
        ins.append((jeq, n - i + 1, 0, nr))  # -> errno
    if platform.machine() == "x86_64":
        ins.append((jge, 1, 0, 0x40000000))  # x32 ABI: errno
    else:
        ins.append((jeq, 1, 0, 0xFFFFFFFF))
    ins.append((ret, 0, 0, 0x7FFF0000))  # allow
    ins.append((ret, 0, 0, 0x00050000 | 1))  # errno EPERM
    buf = b"".join(struct.pack("<HBBI", *x) for x in ins)

    class Prog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]

    return Prog(len(ins), buf), buf


def prepare_seccomp():
    """Build the filter once, before forking executors: building it (ctypes) costs more than installing it."""
    global _SECCOMP_PROG
    if _SECCOMP_PROG is None:
        _SECCOMP_PROG = _seccomp_prog() or False


def install_seccomp():
    prepare_seccomp()
    if _SECCOMP_PROG:
        prog = _SECCOMP_PROG[0]
        if LIBC.prctl(22, 2, ctypes.addressof(prog), 0, 0) != 0:  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
            raise _err("seccomp")


# --------------------------------------------------------------------------- slot, template, hub

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
                    self.sock.send(b"E" + ("executor setup keeps failing (status %d)" % status).encode())
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
                os._exit(72)
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
                socket.send_fds(self.z_sock, [b"F"], fds)
                msg = self.z_sock.recv(16)
            except OSError:
                msg = b""
            if msg[:1] == b"P" and len(msg) == ZMSG.size:
                return ZMSG.unpack(msg)[1]
            self.zygote_gone()
        return None

    def one_call(self):
        """Prepare an executor, hand it to the host, supervise its call, clean up; (wait status, ok)."""
        self.mount_scratch()
        started = self.start_executor()
        if started is None:
            return 71 << 8, False
        pid, done_r, st_w = started
        status, reported_rc, alone, st_w = self.supervise(pid, done_r, st_w)
        tr("S reaped E")
        if not alone:
            self.kill_namespace()
        if st_w is not None:
            self.report(st_w, status if reported_rc is None else reported_rc << 8)
            tr("S status sent")
        self.recycle_scratch()
        ok = not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 71)
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
        """Have Z fork the executor on fresh pipes and pass the host its ends; (pid, done_r, st_w) or None."""
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
        fds = (code_w, out_r, err_r, ready_r, st_r)
        try:
            socket.send_fds(self.sock, [b"S"], list(fds))
        finally:
            for fd in fds:
                os.close(fd)
        return pid, done_r, st_w

    def supervise(self, pid, done_r, st_w):
        """Until the executor is reaped: kills from the host, its "done", its exit, Z's report.
        (wait status, exit code it reported or None, whether it was alone, st_w unless sent already)."""
        pidfd = os.pidfd_open(pid)
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
        if msg[:1] == b"K":
            _kill(pid)

    @staticmethod
    def on_done(data, pid):
        """The executor's exit code, if this is its "done" (else None: wait for it to exit)."""
        if len(data) != DONE.size or data[:4] != b"DONE":
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
        if msg[:1] == b"X" and len(msg) == ZMSG.size:
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
            os.write(st_w, STATUS.pack(b"ST", status, -1, -1))
        except OSError:
            pass
        os.close(st_w)


# Z -> slot: b"P" and the executor's pid once forked, b"X" and its wait status once reaped.
ZMSG = struct.Struct("<ci")
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
        if msg[:1] != b"F" or not fds:
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
                    os._exit(71)
            e_execute(code_r, ready_w, DONE_FD)
        for fd in fds:
            os.close(fd)
        sock.send(ZMSG.pack(b"P", pid))
        sock.send(ZMSG.pack(b"X", os.waitpid(pid, 0)[1]))


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
            self.sock.send(b"E" + ("clone failed: %s" % e).encode())
            return False
        if pid == 0:
            try:
                a.detach()
                self.sock.detach()
                Slot(self.kind, b, self.cfg).main()
            finally:
                os._exit(75)
        b.close()
        try:
            socket.send_fds(self.sock, [b"N" + struct.pack("<iB", pid, self.kind)], [a.fileno()])
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
            want += msg.count(b"R")  # the hub lost a slot: make another


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
    sock.send(b"L" + json.dumps(preloaded).encode())
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
                os._exit(74)
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
        if msg[:1] != b"L":
            raise RuntimeError("template 0 failed to start")
        self.send_host(b"R" + json.dumps({
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
                    if not msg or msg[:1] == b"Q":
                        os._exit(0)  # host gone or asked to quit: pid 1 exit kills everything
                elif fd in tpl_fd:
                    kind = tpl_fd[fd]
                    if kind < 0:
                        os._exit(3)
                    msg, fds, _f, _a = socket.recv_fds(self.templates[kind], 4096, 1)
                    if not msg:
                        os._exit(3)
                    if msg[:1] in (b"E", b"L"):  # L: what the preloading template could import
                        self.send_host(msg)
                    elif msg[:1] == b"N" and fds:
                        pid, k = struct.unpack_from("<iB", msg, 1)
                        try:  # the host talks to the slot directly from now on
                            self.send_host(b"N" + SLOT_MSG.pack(self.next_slot, k), fds)
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
                    self.templates[k].send(b"R")


# --------------------------------------------------------------------------- outer isolation without bwrap

def build_root(cfg):
    """``unshare`` isolation: a minimal read-only root like bwrap's, then pivot_root into it."""
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    root = "/tmp"
    mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1024k,mode=0755")
    for d in ("usr", "etc", "dev", "proc", "tmp", "oldroot"):
        os.mkdir(root + "/" + d, 0o755)

    def bind(src, dev=False):
        dst = root + src
        if os.path.isdir(src):
            os.makedirs(dst, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            if not os.path.exists(dst):
                open(dst, "w").close()
        mount(src, dst, None, MS_BIND | MS_REC)
        if not dev:
            mount(None, dst, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)

    bind("/usr")
    for link in ("bin", "lib", "lib64", "sbin", "lib32", "libx32"):
        if os.path.exists("/usr/" + link):
            os.symlink("usr/" + link, root + "/" + link)
    for p in cfg["etc_binds"] + cfg["ro_binds"]:
        if os.path.exists(p):
            bind(p)
    for name, text in cfg["etc_files"].items():
        with open(root + "/etc/" + name, "w") as f:
            f.write(text)
    for dev in ("null", "zero", "full", "random", "urandom"):
        bind("/dev/" + dev, dev=True)
    os.mkdir(root + "/dev/shm", 0o755)
    for fd, name in ((0, "stdin"), (1, "stdout"), (2, "stderr")):
        os.symlink("/proc/self/fd/%d" % fd, root + "/dev/" + name)
    mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    os.chdir(root)
    if PYLIBC.syscall(ctypes.c_long(SYS_PIVOT_ROOT), b".", b"oldroot") != 0:
        raise _err("pivot_root")
    os.chdir("/")
    if LIBC.umount2(b"/oldroot", MNT_DETACH) != 0:
        raise _err("umount oldroot")
    os.rmdir("/oldroot")
    mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def unshare_outer(cfg):
    """``unshare`` isolation: own user/mount/pid/net/ipc/uts namespaces and a minimal root; the
    forked child carries on as pid 1 (like bwrap --as-pid-1), the parent just relays its exit."""
    uid, gid = os.geteuid(), os.getegid()
    if LIBC.unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS
                    | CLONE_NEWNET) != 0:
        raise _err("unshare")
    write_file("/proc/self/uid_map", "%d %d 1" % (cfg["uid"], uid))
    write_file("/proc/self/setgroups", "deny")
    write_file("/proc/self/gid_map", "%d %d 1" % (cfg["gid"], gid))
    pid = os.fork()
    if pid:
        os.close(cfg["ctrl_fd"])
        _, st = os.waitpid(pid, 0)
        os._exit(os.waitstatus_to_exitcode(st) & 0xFF)
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    build_root(cfg)
    os.chdir("/")
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    # keeps its capabilities inside its own user namespace, like bwrap --cap-add CAP_SYS_ADMIN


def hub_main(cfg):
    set_name(b"r1ci-hub")
    if cfg.get("setup") == "unshare":
        unshare_outer(cfg)
    default_signals()
    Hub(cfg).serve()


# --------------------------------------------------------------------------- session: a persistent interpreter

# A trajectory's own sandbox (``persistent: true``): pid 1 (S) of its own bwrap (or of its own
# ``unshare`` namespaces) supervises a *holder* H, a Python process whose ``__main__`` keeps the
# trajectory's variables.  Per call, H forks the call's process C (a copy of H: every variable,
# fresh CPU time) and exits; C runs the code within the call's limits and, when it ends normally,
# becomes the next holder.  S then kills whatever else the code started and reports.  A call that
# does not end normally (killed for time or output, a crash) ends the session: S kills everything
# and exits, and the host starts the next call in a fresh one.
# S -> H: b"C" + the call's pipe ends (code, stdout, stderr, ready); H -> S: b"H" once prepared,
# b"P" + C's pid once forked; C -> S: b"D" + exit code + its pid once done.
SESSION_MSG = struct.Struct("<cii")  # tag, exit code, pid


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

    global _NPROC_EXTRA
    _NPROC_EXTRA = 2  # S and the exiting holder count against a call's process limit
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
    sock.send(b"H")
    while True:
        msg, fds, _f, _a = socket.recv_fds(sock, 16, 4)
        if msg[:1] != b"C" or len(fds) != 4:
            os._exit(0)  # S gone (or confused): nothing to hold the state for
        _reap_nohang()  # what the previous call started (S killed it)
        rnd = sys.modules.get("random")
        rstate = rnd.getstate() if rnd is not None else None  # `random` reseeds itself at fork
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid:
            sock.send(SESSION_MSG.pack(b"P", 0, pid))
            os._exit(0)  # the state lives on in the child
        if rstate is not None:
            rnd.setstate(rstate)
        rc = session_call(fds, main)
        try:
            sock.send(SESSION_MSG.pack(b"D", rc, os.getpid()))
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
        os.write(ready_w, b"R")
        os.close(ready_w)
    except BaseException:
        os._exit(71)
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
                os._exit(71)
        b.close()
        self.hs, self.holder = a, pid
        if a.recv(16) != b"H":
            raise RuntimeError("the interpreter did not start")

    def serve(self):
        while True:
            msg, fds, _f, _a = socket.recv_fds(self.ctrl, 16, 5)
            if not msg or msg[:1] == b"Q":
                os._exit(0)  # host gone or done: pid 1 exit ends the namespace
            if msg[:1] != b"C" or len(fds) != 5:
                for fd in fds:
                    os.close(fd)
                continue  # a late kill of a call that had ended already
            st_w = fds[4]
            socket.send_fds(self.hs, [b"C"], fds[:4])
            for fd in fds[:4]:
                os.close(fd)
            status, pid = self.wait_call()
            if pid is None:  # killed or crashed: nothing of the session is kept
                self.ctrl.send(b"X")
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
                        if msg[:1] == b"K":
                            return signal.SIGKILL, None
                    elif fd == self.hs.fileno():
                        msg = self.hs.recv(64)
                        if not msg:  # holder and call both gone: their exits say how
                            poller.unregister(self.hs.fileno())
                            hs_open = False
                            continue
                        if len(msg) != SESSION_MSG.size:
                            return 71 << 8, None
                        tag, rc, pid = SESSION_MSG.unpack(msg)
                        if tag == b"D":
                            return rc << 8, pid
                        if tag == b"P" and c_fd is None:
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
        ctrl.send(b"E" + ("interpreter: %r" % (e,)).encode()[:2000])
        os._exit(70)
    null = os.open("/dev/null", os.O_RDWR)
    os.dup2(null, 1)
    os.dup2(null, 2)
    os.close(null)
    ctrl.send(b"R")
    session.serve()


# --------------------------------------------------------------------------- cold / plain

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
            os._exit(71)
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
        if got != b"PR":
            raise RuntimeError("executor failed before running the code (%r, status %d)" % (got, status))
        cpu = int((ru.ru_utime + ru.ru_stime) * 1e6)
        os.write(st_fd, STATUS.pack(b"ST", status, cpu, ru.ru_maxrss))
        os._exit(0)
    except BaseException as e:  # noqa: BLE001
        try:
            os.write(st_fd, b"ER" + ("supervisor: %r" % (e,)).encode()[:2000])
        finally:
            os._exit(70)


def plain_main(cfg):
    code_fd, ready_fd = cfg["code_fd"], cfg["ready_fd"]
    try:
        e_prepare(code_fd, ready_fd, cwd=None)
    except BaseException:
        os._exit(71)
    e_execute(code_fd, ready_fd)


if __name__ == "__main__":
    _role, _cfg = sys.argv[1], json.loads(sys.argv[2])
    sys.path[0:0] = _cfg.get("sys_path", [])
    {"hub": hub_main, "cold": cold_main, "plain": plain_main, "session": session_main}[_role](_cfg)
