# ruff: noqa: UP031
"""Inside the sandbox, ``unshare`` isolation (no bwrap): own namespaces and a minimal read-only root."""

import ctypes
import os
import signal

from .syscalls import (
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUSER,
    CLONE_NEWUTS,
    LIBC,
    MNT_DETACH,
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
    PR_SET_NO_NEW_PRIVS,
    PR_SET_PDEATHSIG,
    PYLIBC,
    SYS_PIVOT_ROOT,
    _err,
    mount,
    prctl,
    write_file,
)


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
