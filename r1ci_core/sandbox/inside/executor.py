# ruff: noqa: UP031
"""Inside the sandbox: the executor E, which reads one request, applies its limits and runs the code as
``__main__``."""

import os
import sys

from .protocol import DONE, DONE_TAG, EXIT_SETUP, LIMIT_NAMES, READY_PREPARED, READY_RUNNING, REQUEST
from .syscalls import TRACE_FD, close_fds_except, default_signals, read_exact, tr

_BASE_VM = None  # address space of the prepared executor: the memory limit is on top of it
_NPROC_EXTRA = 0  # processes outside the call that share its process count (warm: the slot and its zygote)


def set_nproc_extra(n):
    """How many processes outside the call share its process count (warm: the slot and its zygote)."""
    global _NPROC_EXTRA
    _NPROC_EXTRA = n


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
    os.write(ready_fd, READY_PREPARED)
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
        os.write(ready_fd, READY_RUNNING)
        os.close(ready_fd)
    except BaseException:
        os._exit(EXIT_SETUP)
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
            os.write(done_fd, DONE.pack(DONE_TAG, rc))
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
