"""Cold paths: one bwrap per call (the fallback) and ``isolation: none`` (plain subprocess)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time

from . import isolation as iso
from ._pump import decode, pump, send_request
from .inside.protocol import READY_PREPARED, READY_RUNNING
from .result import ExecResult
from .settings import SandboxSettings


def _read_all(fd: int) -> bytes:
    data = b""
    try:
        while chunk := os.read(fd, 4096):
            data += chunk
    except OSError:
        pass
    return data


def run_cold(s: SandboxSettings, request: bytes, *, timeout_s: float, cap: int) -> ExecResult:
    """One fresh bwrap (all namespaces, tmpfs scratch) per call; our script is its pid 1."""
    t0 = time.monotonic()
    code_r, code_w = os.pipe()
    st_r, st_w = os.pipe()
    info_r, info_w = os.pipe()
    pairs, data_fds = iso.data_fds({k: v for k, v in iso.etc_files(s).items() if k != "hostname"})
    cfg = {"code_fd": code_r, "st_fd": st_w}
    argv = iso.bwrap_argv(s, "cold", cfg, info_fd=info_w, data=pairs)
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                pass_fds=(code_r, st_w, info_w, *data_fds), cwd="/", start_new_session=True,
                                **iso.popen_user_kwargs(s))
    except OSError as e:
        for fd in (code_r, code_w, st_r, st_w, info_r, info_w, *data_fds):
            os.close(fd)
        return ExecResult(exit_code=None, duration_s=time.monotonic() - t0, infra_error=f"cannot start bwrap: {e}")
    for fd in (code_r, st_w, info_w, *data_fds):
        os.close(fd)
    info: dict = {}

    def read_info() -> None:
        raw = _read_all(info_r)
        os.close(info_r)
        try:
            info.update(json.loads(raw.decode() or "{}"))
        except ValueError:
            pass

    reader = threading.Thread(target=read_info, daemon=True)
    reader.start()

    def kill(_reason: str = "") -> None:
        reader.join(2.0)
        for pid in (info.get("child-pid"), proc.pid):
            if pid:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except OSError:
                    pass

    deadline = time.monotonic() + timeout_s
    send_request(code_w, request)  # if the sandbox did not start, its stderr says why (below)
    assert proc.stdout is not None and proc.stderr is not None
    res = pump(proc.stdout.fileno(), proc.stderr.fileno(), st_r, deadline=deadline, cap=cap, kill=kill,
               close=False)
    os.close(st_r)
    if res.hung:
        kill()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        kill()
        proc.wait()
    proc.stdout.close()
    proc.stderr.close()
    reader.join(1.0)
    stdout, stderr = decode(res.out), decode(res.err)
    dur = time.monotonic() - t0
    if res.status_complete:
        return ExecResult(stdout, stderr, os.waitstatus_to_exitcode(res.wait_status()), False, dur,
                          res.truncated, None)
    if res.killed_for is not None:
        return ExecResult(stdout, stderr, None, res.killed_for == "timeout", dur, res.truncated, None)
    why = res.infra_message() or f"bwrap exited {proc.returncode} without a status: {stderr.strip()[-500:]}"
    return ExecResult(stdout, "", None, False, dur, res.truncated, why)


def run_plain(s: SandboxSettings, request: bytes, *, timeout_s: float, cap: int) -> ExecResult:
    """``isolation: none``: a subprocess in its own session with rlimits, env scrubbed, fresh cwd."""
    t0 = time.monotonic()
    scratch = tempfile.mkdtemp(prefix="r1ci-sandbox-")
    user = iso.popen_user_kwargs(s)  # as root: still not root in the program
    if user:
        os.chown(scratch, s.uid, s.gid)
    code_r, code_w = os.pipe()
    ready_r, ready_w = os.pipe()
    env = iso.sandbox_env(s)
    env.update(HOME=scratch, TMPDIR=scratch)
    try:
        proc = subprocess.Popen(iso.python_argv(s, "plain", {"code_fd": code_r, "ready_fd": ready_w}),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                pass_fds=(code_r, ready_w), cwd=scratch, env=env, process_group=0, **user)
    except OSError as e:
        for fd in (code_r, code_w, ready_r, ready_w):
            os.close(fd)
        shutil.rmtree(scratch, ignore_errors=True)
        return ExecResult(exit_code=None, duration_s=time.monotonic() - t0, infra_error=f"cannot start {s.python}: {e}")
    os.close(code_r)
    os.close(ready_w)

    def kill(_reason: str = "") -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass

    deadline = time.monotonic() + timeout_s
    send_request(code_w, request)
    assert proc.stdout is not None and proc.stderr is not None
    res = pump(proc.stdout.fileno(), proc.stderr.fileno(), None, deadline=deadline, cap=cap, kill=kill,
               close=False)
    try:
        rc = proc.wait(timeout=max(0.0, deadline - time.monotonic()) + 0.1)
    except subprocess.TimeoutExpired:
        res.killed_for = res.killed_for or "timeout"
        kill()
        rc = proc.wait()
    kill()  # whatever is left in its process group
    ready = _read_all(ready_r)
    os.close(ready_r)
    proc.stdout.close()
    proc.stderr.close()
    shutil.rmtree(scratch, ignore_errors=True)
    stdout, stderr = decode(res.out), decode(res.err)
    dur = time.monotonic() - t0
    if res.killed_for is not None:
        return ExecResult(stdout, stderr, None, res.killed_for == "timeout", dur, res.truncated, None)
    if ready != READY_PREPARED + READY_RUNNING:
        return ExecResult(stdout, stderr, None, False, dur, res.truncated, "executor failed before running the code")
    return ExecResult(stdout, stderr, rc, False, dur, res.truncated, None)
