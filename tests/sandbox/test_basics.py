"""API, program semantics and the executor's life cycle."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from r1ci_core.sandbox import ExecResult, Sandbox, SandboxSettings, SandboxUnavailableError, execute


def test_execute_default_api():
    r = execute("print(1)")
    assert isinstance(r, ExecResult)
    assert (r.stdout, r.stderr, r.exit_code, r.timed_out, r.truncated, r.infra_error) == ("1\n", "", 0, False, False, None)
    assert r.ok and r.duration_s < 5


def test_exit_codes_and_tracebacks(sb):
    assert sb.run("import sys; sys.exit(3)").exit_code == 3
    assert sb.run("import os; os._exit(42)").exit_code == 42
    assert sb.run("raise SystemExit").exit_code == 0
    r = sb.run("import sys; sys.exit('bad input')")
    assert r.exit_code == 1 and "bad input" in r.stderr
    r = sb.run("x = 1\n1 / 0")
    assert r.exit_code == 1 and r.infra_error is None
    assert 'File "<string>", line 2, in <module>' in r.stderr and "ZeroDivisionError" in r.stderr
    assert "_inside" not in r.stderr and "_e_run" not in r.stderr  # no sandbox frames
    r = sb.run("def f(:\n  pass")
    assert r.exit_code == 1 and "SyntaxError" in r.stderr


def test_main_semantics(sb):
    code = ("import sys, atexit, threading, time\n"
            "print(__name__, sys.argv)\n"
            "atexit.register(lambda: print('atexit ran'))\n"
            "threading.Thread(target=lambda: (time.sleep(0.2), print('thread done'))).start()\n"
            "print('end of main', file=sys.stderr)\n")
    r = sb.run(code)
    assert r.exit_code == 0
    assert r.stdout.splitlines() == ["__main__ ['-c']", "thread done", "atexit ran"]
    assert r.stderr == "end of main\n"


def test_input_gets_eof_at_once(sb):
    t = time.monotonic()
    r = sb.run("x = input()")
    assert time.monotonic() - t < 3
    assert r.exit_code == 1 and "EOFError" in r.stderr
    r = sb.run("import sys; print(sys.stdin.read() == '')")
    assert r.stdout == "True\n"
    r = sb.run("a = input(); b = input(); print(int(a) + int(b))", stdin="2\n40\n")
    assert r.stdout == "42\n"


def test_unicode_and_binary_output(sb):
    r = sb.run("print('héllo ✓ 😀'); import sys; sys.stdout.flush(); sys.stdout.buffer.write(b'\\xff\\n')")
    assert r.stdout.startswith("héllo ✓ 😀\n") and r.exit_code == 0


def test_numpy_and_sympy_available(sb):
    r = sb.run("import numpy as np, sympy as sp\n"
               "print(int(np.arange(10).sum()), sp.factorint(360), sp.simplify('sin(x)**2+cos(x)**2'))")
    assert r.exit_code == 0, r.stderr
    assert r.stdout == "45 {2: 3, 3: 2, 5: 1} 1\n"


def test_start_can_wait_for_the_preloading_executors():
    with Sandbox(isolation="bwrap", workers=2) as box:
        assert box.start(wait_preload=True) is box
        assert [sorted(w["preloaded"]) for w in box.describe()["workers"]] == [["numpy", "sympy"]] * 2


def test_every_call_is_fresh(sb):
    assert sb.run("import builtins; builtins.leak = 1; import os; os.environ['LEAK'] = '1'").exit_code == 0
    r = sb.run("import builtins, os; print(hasattr(builtins, 'leak'), 'LEAK' in os.environ)")
    assert r.stdout == "False False\n"
    rnd = {sb.run("import random; print(random.random())").stdout for _ in range(4)}
    assert len(rnd) == 4  # reseeded per call, like a cold interpreter
    nps = {sb.run("import numpy; print(numpy.random.rand())").stdout for _ in range(4)}
    assert len(nps) == 4


def test_run_many_keeps_order_and_uses_workers(sb):
    codes = [f"print({i} * {i})" for i in range(60)]
    results = sb.run_many(codes)
    assert [r.stdout for r in results] == [f"{i * i}\n" for i in range(60)]
    assert all(r.exit_code == 0 and r.infra_error is None for r in results)


def test_programs_that_end_at_once_never_lose_their_slot(sb):
    """A program can run and end, and Z reap it, as soon as the host has its pipes: the slot must already
    hold the executor's pidfd (opened after the hand-over, 2-8 of these 600 calls came back as the infra
    error "sandbox slot died" on a loaded 2-core machine)."""
    codes = ["pass", "print(1)", "import sys; sys.exit(3)", "raise ValueError('x')"] * 300
    results = sb.run_many(codes)
    lost = [r.infra_error for r in results if r.infra_error]
    assert not lost, f"{len(lost)} of {len(codes)} calls lost: {set(lost)}"
    assert [r.exit_code for r in results[:4]] == [0, 0, 3, 1]


def test_thread_safety(sb):
    out: dict[int, ExecResult] = {}

    def work(i: int) -> None:
        out[i] = sb.run(f"import time; time.sleep(0.05); print({i})")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {i: r.stdout for i, r in out.items()} == {i: f"{i}\n" for i in range(12)}


def test_warm_is_fast(sb):
    sb.run("pass")
    ts = []
    for _ in range(20):
        t = time.perf_counter()
        assert sb.run("print(1)").stdout == "1\n"
        ts.append(time.perf_counter() - t)
        time.sleep(0.005)
    assert sorted(ts)[10] < 0.05  # a cold interpreter start alone is ~10-25 ms here


def test_settings_mapping_and_errors():
    s = SandboxSettings.from_mapping({"timeout_s": 3, "memory_mb": 256, "isolation": "none", "preload": ["math"]})
    assert s.timeout_s == 3 and s.preload == ("math",) and s.isolation == "none"
    with pytest.raises(ValueError, match="unknown sandbox settings"):
        SandboxSettings.from_mapping({"timeout": 3})
    with pytest.raises(ValueError):
        SandboxSettings(isolation="docker")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        SandboxSettings(memory_mb=0)
    with Sandbox.from_settings(s, workers=1) as box:
        assert box.settings.workers == 1 and box.isolation == "none"


def test_isolation_none_warns_on_every_run(caplog):
    with Sandbox(isolation="none") as box, caplog.at_level(logging.WARNING, logger="r1ci.sandbox"):
        for _ in range(2):
            assert box.run("print(7)").stdout == "7\n"
    assert sum("WITHOUT isolation" in r.getMessage() for r in caplog.records) == 2


def test_refuses_without_isolation(monkeypatch):
    from r1ci_core.sandbox import isolation as iso

    monkeypatch.setattr(iso, "_probe_cache", {})
    monkeypatch.setattr(iso, "_probe_bwrap", lambda s: "bwrap not found")
    monkeypatch.setattr(iso, "_probe_unshare", lambda s: "unshare(CLONE_NEWUSER) failed")
    with pytest.raises(SandboxUnavailableError) as e:
        Sandbox()
    msg = str(e.value)
    assert "apt-get install bubblewrap" in msg and "isolation: none" in msg and "\n" not in msg
    r = Sandbox(isolation="none").run("print(1)")  # the explicit opt-out still works
    assert r.stdout == "1\n"


def test_unusable_interpreter_is_refused():
    with pytest.raises(SandboxUnavailableError, match="No such file"):
        Sandbox(python="/nonexistent/python3")
    import os
    import sys

    if os.geteuid() == 0 and sys.executable.startswith("/root/"):
        with pytest.raises(SandboxUnavailableError, match="not accessible"):
            Sandbox(python=sys.executable)  # a venv under a 0700 home folder


def test_injected_infra_failures(monkeypatch):
    with Sandbox(isolation="none", fail_rate=1.0) as box:
        r = box.run("print(1)")
        assert r.infra_error == "injected" and r.exit_code is None and not r.ok
    a = [Sandbox(isolation="none", fail_rate=0.5, fail_seed=7).run("pass").infra_error for _ in range(1)]
    box1 = Sandbox(isolation="none", fail_rate=0.5, fail_seed=7)
    box2 = Sandbox(isolation="none", fail_rate=0.5, fail_seed=7)
    seq1 = [box1.run("pass").infra_error for _ in range(12)]
    seq2 = [box2.run("pass").infra_error for _ in range(12)]
    assert seq1 == seq2 and "injected" in seq1 and None in seq1 and a
    monkeypatch.setenv("R1CI_SANDBOX_FAIL_RATE", "1")
    assert Sandbox(isolation="none").run("print(1)").infra_error == "injected"


def test_worker_death_is_an_infra_error_and_recovers():
    with Sandbox(isolation="bwrap", mode="warm", workers=1, preload=()) as box:
        box.start()
        res: list[ExecResult] = []
        t = threading.Thread(target=lambda: res.append(box.run("import time; time.sleep(5); print('done')")))
        t.start()
        time.sleep(0.5)
        w = box._pool._workers[0]
        import os
        import signal

        os.kill(w.inner_pid, signal.SIGKILL)  # the hub (pid 1 of the worker) dies mid-call
        t.join(10)
        assert res and res[0].infra_error and res[0].exit_code is None and not res[0].timed_out
        deadline = time.monotonic() + 20
        while True:
            r = box.run("print('back')")
            if r.infra_error is None or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert r.stdout == "back\n" and r.infra_error is None


def test_cold_mode(cold_sb):
    r = cold_sb.run("import os; print(os.getuid(), os.getcwd())")
    assert r.stdout == "65534 /tmp\n" and r.exit_code == 0
    assert cold_sb.run("import os; os._exit(9)").exit_code == 9
    r = cold_sb.run("import time; time.sleep(30)", timeout_s=1)
    assert r.timed_out and r.exit_code is None and r.duration_s < 5
    r = cold_sb.run("import socket; socket.create_connection(('127.0.0.1', 9), timeout=2)")
    assert r.exit_code == 1 and "unreachable" in r.stderr


def test_unshare_isolation(unshare_sb):
    r = unshare_sb.run("import os; print(os.getuid(), sorted(os.listdir('/')))")
    assert r.exit_code == 0, r.stderr
    uid, listing = r.stdout.split(" ", 1)
    assert uid == "65534" and "work" not in listing and "root" not in listing and "home" not in listing
    r = unshare_sb.run("import socket; socket.create_connection(('127.0.0.1', 9), timeout=2)")
    assert r.exit_code == 1 and "unreachable" in r.stderr
    r = unshare_sb.run("open('/usr/evil', 'w')")
    assert r.exit_code == 1 and ("Read-only" in r.stderr or "Permission" in r.stderr)


def test_forked_caller_gets_its_own_executors(sb):
    import os

    assert sb.run("print(1)").stdout == "1\n"
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            res = sb.run("print(2)")
            os.write(w, (res.stdout or repr(res.infra_error)).encode())
            sb.close()  # the child's own executors (the parent's are not ours to stop)
        finally:
            os._exit(0)
    os.close(w)
    _, status = os.waitpid(pid, 0)
    got = os.read(r, 1000)
    os.close(r)
    assert got == b"2\n"
    assert sb.run("print(3)").stdout == "3\n"  # the parent's executors are untouched


def test_configurable_packages_env_and_interpreter():
    import os
    import shutil
    import tempfile

    with pytest.raises(ValueError, match="outside /tmp"):
        SandboxSettings(python_path=("/tmp/pkgs",))
    d = tempfile.mkdtemp(prefix="r1ci-sbx-pkg-", dir="/var/tmp")
    try:
        os.chmod(d, 0o755)
        with open(os.path.join(d, "helper_mod.py"), "w") as f:
            f.write("def answer():\n    return 42\n")
        os.chmod(os.path.join(d, "helper_mod.py"), 0o644)
        for mode in ("warm", "cold"):
            with Sandbox(isolation="bwrap", mode=mode, workers=1, preload=("math",), python_path=(d,),
                         env={"TASK_SEED": "7"}) as box:
                r = box.run("import helper_mod, os, sys\n"
                            "print(helper_mod.answer(), os.environ['TASK_SEED'], sys.executable)")
                assert r.stdout == "42 7 /usr/bin/python3\n", r
                r = box.run("import os; print(sum(1 for l in open('/proc/self/mountinfo') if l.split()[4] == '/tmp'))")
                assert r.stdout == "1\n"  # one scratch, never a pile of old ones
    finally:
        shutil.rmtree(d)
