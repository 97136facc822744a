# ruff: noqa: E402, UP031
"""Code that runs INSIDE the isolation (passed to the sandbox interpreter with ``-c``).

Self-contained and standard-library only: it runs under the *sandbox* interpreter (by default
Debian's /usr/bin/python3), never under the host's.  Roles (``sys.argv[1]``):

``hub``     The warm executor of one worker: pid 1 of a long-lived bwrap (or of its own
            ``unshare`` namespaces + pivot_root), small, never forked per call.  It forks two
            *cloners*: ``lite`` (nothing preloaded) and ``sci`` (the ``preload`` modules, e.g.
            numpy and sympy, imported once).  A cloner keeps a few *spares* ready: each is one
            ``clone(CLONE_PARENT | CLONE_NEWUSER | NEWPID | NEWNS | NEWNET | NEWIPC | NEWUTS |
            NEWCGROUP)`` of the cloner, so the executor E is pid 1 of fresh namespaces and a child
            of the hub.  E maps its ids, mounts a fresh /proc and size-limited tmpfs scratch on
            /tmp and /dev/shm, forbids nested namespaces, drops every capability, pre-touches its
            copy-on-write pages and blocks reading its request.  The host writes the request and
            reads stdout/stderr straight from E's pipes (the hub hands them over with SCM_RIGHTS),
            so a call costs no fork and two hops.  When E exits the kernel kills every other
            process of its pid namespace and frees its mounts *before* the hub can reap E; the hub
            then writes E's wait status to the call's status pipe.  So when the host has the status,
            nothing the code started is left and its scratch is gone.
``cold``    One call per interpreter start (inside a per-call bwrap): pid 1 forks the executor,
            waits, kills and reaps the rest of the namespace and reports.
``plain``   ``isolation="none"``: no namespaces, the process is the executor (rlimits only).
"""

import ctypes
import gc
import json
import os
import platform
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
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS = 1, 4, 38
PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
SYS_CLONE = {"x86_64": 56, "aarch64": 220}.get(platform.machine())
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}.get(platform.machine())
# Per-call namespaces.  No new user namespace: the hub and cloners hold CAP_SYS_ADMIN in the
# sandbox's own user namespace (never on the host) and nested user namespaces are disabled.
NS_FLAGS = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP

LIBC = ctypes.CDLL(None, use_errno=True)
PYLIBC = ctypes.PyDLL(None, use_errno=True)  # keeps the GIL held across clone()
LIBC.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
LIBC.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
LIBC.unshare.argtypes = [ctypes.c_int]
LIBC.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
PYLIBC.syscall.restype = ctypes.c_long

STATUS = struct.Struct("<2siqq")  # b"ST", wait status, user+sys cpu in us, max rss kB
SPARE = struct.Struct("<BI")  # kind (0 lite, 1 sci), pid


def _err(what):
    e = ctypes.get_errno()
    return OSError(e, "%s: %s" % (what, os.strerror(e)))


def mount(src, tgt, fstype, flags, data=None):
    enc = lambda s: s.encode() if isinstance(s, str) else s  # noqa: E731
    if LIBC.mount(enc(src), enc(tgt), enc(fstype), flags, enc(data)) != 0:
        raise _err("mount %s" % tgt)


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
    """Background work (making spares) yields to running programs: its own session's
    autogroup at nice 19.  An executor leaves it with setsid() when its request arrives."""
    try:
        os.setsid()
    except OSError:
        pass
    try:
        write_file("/proc/self/autogroup", "19")
    except OSError:
        pass


# --------------------------------------------------------------------------- E: the executor

_WARMUP = compile(
    "import sys\n"
    "def f(n):\n    return [i * i for i in range(n)]\n"
    "d = {str(k): f(k) for k in range(20)}\n"
    "s = '%s %d %.3f' % ('x', 1, 2.5) + f'{d!r:.10}'\n"
    "try:\n    1 / 0\nexcept ZeroDivisionError as e:\n    r = repr(e)\n"
    "print(s, r, sorted(d)[:3], file=out)\n",
    "<warmup>", "exec")


def ns_setup(cfg):
    """In fresh namespaces (right after clone): a fresh /proc, scratch tmpfs on /tmp and /dev/shm."""
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    opts = "size=%dk,nr_inodes=%d,mode=1777" % (cfg["scratch_kb"], cfg["scratch_inodes"])
    mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, opts)
    mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, opts)
    socket.sethostname("sandbox")


def e_prepare(code_fd, out_fd, err_fd, ready_fd, cwd="/tmp"):
    """Everything the executor does before its request arrives (off the critical path)."""
    import io

    default_signals()
    if out_fd is not None:
        os.dup2(out_fd, 1)
        os.dup2(err_fd, 2)
    close_fds_except([0, 1, 2, code_fd, ready_fd])
    if cwd:
        os.chdir(cwd)
    # Pre-touch the pages a typical program writes (refcounts, allocator pools), so their
    # copy-on-write faults are paid now rather than after the request arrives.
    exec(_WARMUP, {"out": io.StringIO(), "__name__": "__warmup__"})
    npr = sys.modules.get("numpy.random")
    if npr is not None:
        npr.seed()  # fresh entropy per call, like a cold interpreter
    rnd = sys.modules.get("random")
    if rnd is not None:
        rnd.seed()
    try:
        os.setsid()  # own session and scheduler autogroup, away from the (low priority) spare makers
    except OSError:
        pass
    os.write(ready_fd, b"P")


def e_execute(code_fd, ready_fd):
    """Read the request, apply the limits, run the code as __main__; never returns."""
    try:
        code = _e_request(code_fd)
        os.write(ready_fd, b"R")
        os.close(ready_fd)
    except BaseException:
        os._exit(71)
    _e_run(code)


def _e_request(code_fd):
    import resource

    hl, cl = struct.unpack("<II", read_exact(code_fd, 8))
    req = json.loads(read_exact(code_fd, hl))
    code = read_exact(code_fd, cl).decode("utf-8", "surrogateescape")
    os.close(code_fd)
    stdin = req.get("stdin")
    if stdin:
        mfd = os.memfd_create("stdin")
        os.write(mfd, stdin.encode())
        os.lseek(mfd, 0, 0)
        os.dup2(mfd, 0)
        os.close(mfd)

    def lim(res, soft, hard=None):
        hard = soft if hard is None else hard
        cur_hard = resource.getrlimit(res)[1]
        if cur_hard != resource.RLIM_INFINITY:
            hard = min(hard, cur_hard)
            soft = min(soft, hard)
        resource.setrlimit(res, (soft, hard))

    lim(resource.RLIMIT_CORE, 0)
    if req.get("mem"):
        try:
            with open("/proc/self/statm") as f:
                base = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            base = 256 << 20
        lim(resource.RLIMIT_AS, base + int(req["mem"]))
    if req.get("cpu"):
        # soft == hard: as pid 1 the executor ignores SIGXCPU, the kernel's SIGKILL still works
        lim(resource.RLIMIT_CPU, int(req["cpu"]), int(req["cpu"]))
    if req.get("nproc"):
        lim(resource.RLIMIT_NPROC, int(req["nproc"]))
    if req.get("fsize"):
        lim(resource.RLIMIT_FSIZE, int(req["fsize"]))
    if req.get("nofile"):
        lim(resource.RLIMIT_NOFILE, int(req["nofile"]))
    return code


def _e_run(code):
    import atexit
    import types

    atexit._clear()
    main = types.ModuleType("__main__")
    main.__dict__["__builtins__"] = __builtins__
    sys.modules["__main__"] = main
    sys.argv[:] = ["-c"]
    if sys.path[:1] != [""]:
        sys.path.insert(0, "")
    rc = 0
    try:
        exec(compile(code, "<string>", "exec"), main.__dict__)
    except SystemExit as e:
        rc = _exit_code(e)
    except BaseException as e:  # noqa: BLE001 - report like the interpreter does
        rc = 1
        try:
            tb = e.__traceback__.tb_next if e.__traceback__ is not None else None
            sys.excepthook(type(e), e.with_traceback(tb), tb)
        except BaseException:
            pass
    rc = _finish(rc)
    os._exit(rc & 0xFF)


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


def spare_main(cfg, code_r, out_w, err_w, ready_w):
    """Body of a warm executor right after clone(): pid 1 of its namespaces.  Never returns."""
    try:
        close_fds_except([0, 1, 2, code_r, out_w, err_w, ready_w])
        ns_setup(cfg)
        drop_caps()
        e_prepare(code_r, out_w, err_w, ready_w)
    except BaseException:
        try:
            import traceback

            traceback.print_exc()
        finally:
            os._exit(71)
    e_execute(code_r, ready_w)


# --------------------------------------------------------------------------- cloner

class Cloner:
    """Keeps ``target`` spares of one kind ready; each is a CLONE_PARENT child (of the hub)."""

    def __init__(self, kind, sock, cfg):
        self.kind, self.sock, self.cfg = kind, sock, cfg
        self.idle = 0
        self.target = cfg["spares"]
        self.lost_in_a_row = 0  # spares that died before use, consecutively

    def make_spare(self):
        code_r, code_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        ready_r, ready_w = os.pipe()
        st_r, st_w = os.pipe()
        try:
            pid = raw_clone(NS_FLAGS | CLONE_PARENT)
        except OSError as e:
            for fd in (code_r, code_w, out_r, out_w, err_r, err_w, ready_r, ready_w, st_r, st_w):
                os.close(fd)
            self.sock.send(b"E" + ("clone failed: %s" % e).encode())
            return False
        if pid == 0:
            try:
                self.sock.detach()
            except BaseException:
                os._exit(72)
            spare_main(self.cfg, code_r, out_w, err_w, ready_w)
            os._exit(73)
        for fd in (code_r, out_w, err_w, ready_w):
            os.close(fd)
        fds = (code_w, out_r, err_r, ready_r, st_r, st_w)
        try:
            socket.send_fds(self.sock, [b"S" + SPARE.pack(self.kind, pid)], list(fds))
        finally:
            for fd in fds:
                os.close(fd)
        self.idle += 1
        return True

    def serve(self):
        import select
        import time

        poller = select.poll()
        poller.register(self.sock.fileno(), select.POLLIN)
        failures = 0
        next_try = 0.0
        told = False
        while True:
            timeout = None
            if self.idle < self.target:
                if time.monotonic() >= next_try:
                    failures = 0 if self.make_spare() else failures + 1
                    bad = max(failures, self.lost_in_a_row - 2)  # spares dying unused count too
                    next_try = time.monotonic() + (min(5.0, 0.01 * 2 ** min(bad, 9)) if bad > 0 else 0.0)
                    if self.lost_in_a_row >= 3 and not told:
                        told = True
                        self.sock.send(b"E" + b"executors die before use; retrying with backoff")
                timeout = max(0.0, (next_try - time.monotonic()) * 1000.0) if self.idle < self.target else None
            for _fd, _ev in poller.poll(timeout):
                msg = self.sock.recv(64)
                if not msg:
                    os._exit(0)
                for b in msg:  # one byte per used (T) or lost (D) spare
                    self.idle -= 1
                    self.lost_in_a_row = self.lost_in_a_row + 1 if b == ord("D") else 0
                    told = told and self.lost_in_a_row > 0


def cloner_main(kind, sock, cfg):
    if not os.environ.get("R1CI_NO_NICE"):
        lower_priority()
    preloaded = []
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
    import traceback  # noqa: F401
    import types  # noqa: F401

    sock.send(b"L" + json.dumps(preloaded).encode())
    gc.collect()
    gc.freeze()
    Cloner(kind, sock, cfg).serve()


# --------------------------------------------------------------------------- hub

class Hub:
    def __init__(self, cfg):
        self.cfg = cfg
        self.ctrl = socket.socket(fileno=cfg["ctrl_fd"])
        self.cfg_e = {
            "scratch_kb": cfg["scratch_kb"], "scratch_inodes": cfg["scratch_inodes"], "spares": cfg["spares"],
            "preload": cfg.get("preload", []),
        }
        self.cloners = {}  # kind -> (pid, sock)
        self.spares = {}  # sid -> [pid, st_w, kind, taken]
        self.by_pid = {}  # pid -> sid
        self.next_sid = 1

    def start_cloner(self, kind):
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:
            try:
                a.close()
                self.ctrl.close()
                for _pid, s in self.cloners.values():
                    s.close()
                cloner_main(kind, b, self.cfg_e)
            finally:
                os._exit(74)
        b.close()
        self.cloners[kind] = (pid, a)
        return a

    def send_host(self, msg, fds=()):
        if fds:
            socket.send_fds(self.ctrl, [msg], list(fds))
        else:
            self.ctrl.send(msg)

    def serve(self):
        import select

        kinds = [0, 1] if self.cfg.get("preload") else [0]
        poller = select.poll()
        cloner_of_fd = {}
        for kind in kinds:
            s = self.start_cloner(kind)
            poller.register(s.fileno(), select.POLLIN)
            cloner_of_fd[s.fileno()] = kind
        preloaded = []
        for kind in kinds:
            msg = self.cloners[kind][1].recv(65536)
            if msg[:1] != b"L":
                raise RuntimeError("cloner %d failed to start" % kind)
            if kind == 1:
                preloaded = json.loads(msg[1:].decode())
        self.send_host(b"R" + json.dumps({
            "pid": os.getpid(), "python": sys.version.split()[0], "preloaded": preloaded,
            "uid": os.getuid(), "executable": sys.executable, "kinds": kinds,
        }).encode())
        ctrl_fd = self.ctrl.fileno()
        poller.register(ctrl_fd, select.POLLIN)
        pidfds = {}  # pidfd -> pid
        cloner_pids = {pid: kind for kind, (pid, _s) in self.cloners.items()}
        for pid in cloner_pids:
            pfd = os.pidfd_open(pid)
            pidfds[pfd] = pid
            poller.register(pfd, select.POLLIN)
        while True:
            for fd, _ev in poller.poll():
                if fd == ctrl_fd:
                    msg = self.ctrl.recv(256)
                    if not msg or msg[:1] == b"Q":
                        os._exit(0)  # host gone or asked to quit: pid 1 exit kills everything
                    kind, sid = msg[:1], struct.unpack_from("<I", msg, 1)[0]
                    sp = self.spares.get(sid)
                    if sp is None:
                        continue
                    if kind == b"T" and not sp[3]:
                        sp[3] = True
                        self.cloners[sp[2]][1].send(b"T")
                    elif kind == b"K":
                        try:
                            os.kill(sp[0], signal.SIGKILL)
                        except OSError:
                            pass
                elif fd in cloner_of_fd:
                    kind = cloner_of_fd[fd]
                    msg, fds, _f, _a = socket.recv_fds(self.cloners[kind][1], 4096, 6)
                    if not msg:
                        os._exit(3)  # a cloner died: the host restarts the whole worker
                    if msg[:1] == b"E":
                        self.send_host(msg)
                        continue
                    _k, pid = SPARE.unpack_from(msg, 1)
                    code_w, out_r, err_r, ready_r, st_r, st_w = fds
                    sid = self.next_sid
                    self.next_sid += 1
                    self.spares[sid] = [pid, st_w, kind, False]
                    self.by_pid[pid] = sid
                    pfd = os.pidfd_open(pid)  # a zombie still has a pidfd: only we reap it
                    pidfds[pfd] = pid
                    poller.register(pfd, select.POLLIN)
                    try:
                        self.send_host(b"S" + struct.pack("<IB", sid, kind), (code_w, out_r, err_r, st_r, ready_r))
                    finally:
                        for x in (code_w, out_r, err_r, st_r, ready_r):
                            os.close(x)
                else:
                    pid = pidfds.pop(fd)
                    poller.unregister(fd)
                    os.close(fd)
                    if pid in cloner_pids:
                        os._exit(3)
                    _p, status, ru = os.wait4(pid, 0)
                    sid = self.by_pid.pop(pid)
                    _pid, st_w, kind, taken = self.spares.pop(sid)
                    cpu = int((ru.ru_utime + ru.ru_stime) * 1e6)
                    try:
                        os.write(st_w, STATUS.pack(b"ST", status, cpu, ru.ru_maxrss))
                    except OSError:
                        pass
                    os.close(st_w)
                    if not taken:  # died before use: tell both sides
                        self.cloners[kind][1].send(b"D")
                        self.send_host(b"X" + struct.pack("<Ii", sid, status))


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
    write_file("/proc/sys/user/max_user_namespaces", "0")  # like bwrap --disable-userns
    # keeps its capabilities inside its own user namespace, like bwrap --cap-add CAP_SYS_ADMIN


def hub_main(cfg):
    if cfg.get("setup") == "unshare":
        unshare_outer(cfg)
    default_signals()
    Hub(cfg).serve()


# --------------------------------------------------------------------------- cold / plain

def cold_main(cfg):
    """pid 1 of a per-call bwrap: fork the executor, wait, kill and reap the rest, report."""
    st_fd, code_fd = cfg["st_fd"], cfg["code_fd"]
    default_signals()
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # pid 1: SIG_DFL signals from inside are ignored
    prctl(PR_SET_DUMPABLE, 0)
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(st_fd)
            os.close(ready_r)
            prctl(PR_SET_DUMPABLE, 1)
            drop_caps()
            e_prepare(code_fd, None, None, ready_w)
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
        e_prepare(code_fd, None, None, ready_fd, cwd=None)
    except BaseException:
        os._exit(71)
    e_execute(code_fd, ready_fd)


if __name__ == "__main__":
    _role, _cfg = sys.argv[1], json.loads(sys.argv[2])
    {"hub": hub_main, "cold": cold_main, "plain": plain_main}[_role](_cfg)
