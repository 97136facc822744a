# ruff: noqa: UP031
"""Inside the sandbox: system calls Python does not wrap (clone, mount, pivot_root, capabilities, prctl),
the seccomp filter, and small process helpers."""

import ctypes
import os
import platform
import signal
import struct
import sys

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


# --- seccomp

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
