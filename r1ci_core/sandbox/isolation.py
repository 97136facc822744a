"""Which isolation works here, and the command lines that set it up."""

from __future__ import annotations

import glob
import json
import logging
import os
import shutil
import signal
import socket
import stat
import subprocess
import threading
from pathlib import Path

from . import inside
from .settings import SandboxSettings, SandboxUnavailableError

log = logging.getLogger("r1ci.sandbox")

INSIDE_SRC = inside.source()

FIX_HINT = ("install bubblewrap (apt-get install bubblewrap) and allow unprivileged user namespaces, "
            "or set isolation: none to run code without isolation")

ETC_BINDS = ("/etc/alternatives", "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime")

_probe_lock = threading.Lock()
_probe_cache: dict[tuple, str | None] = {}


def _cached_probe(kind: str, s: SandboxSettings, fn) -> str | None:
    key = (kind, s.python, s.uid, s.gid, s.ro_binds, s.scratch_mb)
    if key not in _probe_cache:
        _probe_cache[key] = fn(s)
    return _probe_cache[key]


def etc_binds() -> list[str]:
    return [p for p in (*ETC_BINDS, *sorted(glob.glob("/etc/python3*"))) if os.path.exists(p)]


def etc_files(s: SandboxSettings) -> dict[str, str]:
    return {
        "passwd": f"root:x:0:0:root:/nonexistent:/usr/sbin/nologin\nsandbox:x:{s.uid}:{s.gid}:sandbox:/tmp:/usr/sbin/nologin\n",
        "group": f"root:x:0:\nsandbox:x:{s.gid}:\n",
        "hostname": "sandbox\n",
    }


def sandbox_env(s: SandboxSettings) -> dict[str, str]:
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": "/tmp",
        "TMPDIR": "/tmp",
        "LANG": "C.UTF-8",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "NUMEXPR_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
    }
    env.update({str(k): str(v) for k, v in s.env.items()})
    return env


def python_binds(s: SandboxSettings) -> list[str]:
    """Host folders the interpreter needs besides /usr (a venv, a /opt install)."""
    out: list[str] = []
    for p in (os.path.abspath(s.python), os.path.realpath(s.python)):
        root = os.path.dirname(os.path.dirname(p))
        if not (root == "/usr" or root.startswith("/usr/")) and root not in out and root != "/":
            out.append(root)
    return out + [p for p in (*s.python_path, *s.ro_binds) if p not in out]


def drops_privileges() -> bool:
    return os.geteuid() == 0


def popen_user_kwargs(s: SandboxSettings) -> dict:
    """Start the sandbox's outer process as the unprivileged uid when we are root: the kernel
    does not enforce RLIMIT_NPROC for root, and root in the caller must not be root inside."""
    if drops_privileges():
        return {"user": s.uid, "group": s.gid, "extra_groups": []}
    return {}


def check_readable(path: str, uid: int) -> str | None:
    """Why ``uid`` (as 'other') cannot reach ``path``, or None."""
    if not drops_privileges():
        return None if os.access(path, os.R_OK) else f"{path} is not readable"
    p = Path(os.path.abspath(path))
    for parent in [*reversed(p.parents), p]:
        try:
            st = os.stat(parent)
        except OSError as e:
            return f"{parent}: {e.strerror}"
        need = stat.S_IXOTH if stat.S_ISDIR(st.st_mode) else stat.S_IROTH
        if st.st_uid != uid and not st.st_mode & need:
            return f"{parent} is not accessible to uid {uid} (mode {stat.filemode(st.st_mode)})"
    return None


def data_fds(files: dict[str, str]) -> tuple[list[tuple[int, str]], list[int]]:
    """One pipe per file, already filled and closed for writing: (fd, name) for bwrap."""
    pairs, fds = [], []
    for name, text in files.items():
        r, w = os.pipe()
        os.write(w, text.encode())
        os.close(w)
        pairs.append((r, name))
        fds.append(r)
    return pairs, fds


def bwrap_argv(s: SandboxSettings, role: str, cfg: dict, *, info_fd: int, data: list[tuple[int, str]]) -> list[str]:
    bwrap = shutil.which("bwrap") or "/usr/bin/bwrap"
    a = [bwrap, "--unshare-all", "--unshare-user", "--as-pid-1", "--new-session",
         "--uid", str(s.uid), "--gid", str(s.gid), "--hostname", "sandbox",
         "--ro-bind", "/usr", "/usr"]
    for link in ("bin", "lib", "lib64", "lib32", "libx32", "sbin"):
        if os.path.exists(f"/usr/{link}"):
            a += ["--symlink", f"usr/{link}", f"/{link}"]
    for p in etc_binds():
        a += ["--ro-bind-try", p, p]
    for p in python_binds(s):
        a += ["--ro-bind", p, p]
    for fd, name in data:
        a += ["--perms", "0644", "--ro-bind-data", str(fd), f"/etc/{name}"]
    a += ["--dev", "/dev", "--proc", "/proc"]
    scratch = str(s.scratch_mb << 20)
    if role == "hub":
        # each executor mounts its own scratch tmpfs and /proc: CAP_SYS_ADMIN within the sandbox's
        # user namespace (never on the host); executors drop every capability before running code
        # (executors take their own user namespace and forbid any further one themselves)
        a += ["--dir", "/tmp", "--cap-add", "CAP_SYS_ADMIN"]
    else:  # cold: pid 1 only uses it to take a fresh network namespace (loopback down), then drops it
        a += ["--size", scratch, "--tmpfs", "/tmp", "--size", scratch, "--tmpfs", "/dev/shm",
              "--cap-add", "CAP_SYS_ADMIN", "--disable-userns"]
    a += ["--remount-ro", "/dev", "--remount-ro", "/", "--clearenv"]
    for k, v in sandbox_env(s).items():
        a += ["--setenv", k, v]
    a += ["--chdir", "/tmp" if role != "hub" else "/", "--info-fd", str(info_fd), "--"]
    return a + python_argv(s, role, cfg)


def start_outer(s: SandboxSettings, isolation: str, role: str, cfg: dict) -> tuple[subprocess.Popen, socket.socket, int]:
    """Start ``role`` as pid 1 of a sandbox of its own (bwrap, or its own ``unshare`` namespaces), talking
    on a SOCK_SEQPACKET socket (``cfg["ctrl_fd"]`` inside); (its process, our end, bwrap's info pipe)."""
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    info_r, info_w = os.pipe()
    cfg = {**cfg, "ctrl_fd": child.fileno(), "uid": s.uid, "gid": s.gid, "scratch_kb": s.scratch_mb * 1024,
           "scratch_inodes": max(1024, s.scratch_mb * 256)}
    fds = [child.fileno()]
    files: list[int] = []
    try:
        if isolation == "bwrap":
            pairs, files = data_fds({k: v for k, v in etc_files(s).items() if k != "hostname"})
            argv = bwrap_argv(s, role, cfg, info_fd=info_w, data=pairs)
            fds += [info_w, *files]
            env = None
        elif isolation == "unshare":  # the process builds its own namespaces and root
            cfg.update(setup="unshare", etc_binds=etc_binds(), ro_binds=python_binds(s), etc_files=etc_files(s))
            argv = python_argv(s, role, cfg)
            env = sandbox_env(s)
        else:
            raise RuntimeError(f"{role} needs isolation, not {isolation!r}")
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                pass_fds=fds, env=env, cwd="/", start_new_session=True, **popen_user_kwargs(s))
    except BaseException:
        os.close(info_r)
        parent.close()
        raise
    finally:
        child.close()
        os.close(info_w)
        for fd in files:
            os.close(fd)
    return proc, parent, info_r


def stop_outer(p: subprocess.Popen, inner_pid: int | None, *, graceful: bool, what: str) -> None:
    """End a sandbox started by :func:`start_outer`: (after ``graceful``'s 2 s for it to exit by itself) kill
    its pid 1 ``inner_pid`` first, so that bwrap reaps it (no orphan is left to the host's init), then its group."""
    if graceful:
        try:
            p.wait(timeout=2)
        except subprocess.TimeoutExpired:
            pass
    if p.poll() is None and inner_pid:
        try:
            os.kill(inner_pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            log.error("%s (pid %d) did not exit", what, p.pid)


def python_argv(s: SandboxSettings, role: str, cfg: dict) -> list[str]:
    cfg = {**cfg, "sys_path": list(s.python_path)}
    return [s.python, "-I", "-B", "-c", INSIDE_SRC, role, json.dumps(cfg)]


def _probe_bwrap(s: SandboxSettings) -> str | None:
    if not (shutil.which("bwrap") or os.path.exists("/usr/bin/bwrap")):
        return "bwrap not found"
    r, w = os.pipe()
    pairs, fds = data_fds(etc_files(s))
    try:
        argv = bwrap_argv(s, "probe", {}, info_fd=w, data=pairs)
        argv = argv[: argv.index("--") + 1] + [s.python, "-I", "-B", "-c", "import os; print(os.getuid())"]
        p = subprocess.run(argv, capture_output=True, timeout=30, pass_fds=(w, *fds), stdin=subprocess.DEVNULL,
                           **popen_user_kwargs(s))
    except (OSError, subprocess.SubprocessError) as e:
        return f"bwrap failed: {e}"
    finally:
        for fd in (r, w, *fds):
            os.close(fd)
    if p.returncode != 0 or p.stdout.strip() != str(s.uid).encode():
        return f"bwrap failed (exit {p.returncode}): {p.stderr.decode(errors='replace').strip()[-300:]}"
    return None


def _probe_unshare(s: SandboxSettings) -> str | None:
    code = ("import ctypes,os; l=ctypes.CDLL(None,use_errno=True); "
            "r=l.unshare(0x10000000|0x20000); print(r, ctypes.get_errno())")
    try:
        p = subprocess.run([s.python, "-I", "-B", "-c", code], capture_output=True, timeout=30, env={},
                           stdin=subprocess.DEVNULL, **popen_user_kwargs(s))
    except (OSError, subprocess.SubprocessError) as e:
        return f"unshare failed: {e}"
    if p.returncode != 0 or not p.stdout.startswith(b"0 "):
        return f"unshare(CLONE_NEWUSER) failed: {p.stdout.decode(errors='replace').strip()} " \
               f"{p.stderr.decode(errors='replace').strip()[-200:]}"
    return None


def resolve_isolation(s: SandboxSettings) -> str:
    """The isolation to use: 'bwrap', 'unshare' or 'none'; raises SandboxUnavailableError."""
    if s.isolation == "none":
        return "none"
    why = check_readable(s.python, s.uid)
    if why is None and not os.path.exists(s.python):
        why = f"{s.python} does not exist"
    if why:
        raise SandboxUnavailableError(
            f"sandbox interpreter {s.python} unusable by the sandbox user: {why}; "
            "set python to an interpreter in a world-readable place (e.g. /usr/bin/python3)")
    with _probe_lock:
        reasons = []
        if s.isolation in ("auto", "bwrap"):
            why = _cached_probe("bwrap", s, _probe_bwrap)
            if why is None:
                return "bwrap"
            reasons.append(why)
        if s.isolation in ("auto", "unshare"):
            why = _cached_probe("unshare", s, _probe_unshare)
            if why is None:
                return "unshare"
            reasons.append(why)
    raise SandboxUnavailableError(f"no sandbox isolation available ({'; '.join(reasons)}): {FIX_HINT}")
