"""Persistent interpreters (`persistent: true`): state kept within a trajectory, isolated between them."""

from __future__ import annotations

import os
import threading

import pytest

from r1ci_core.config import RecipeError, RolloutConfig, load_recipe
from r1ci_core.rollout import run_rollouts
from r1ci_core.rollout.backends.base import Backend, GenResult, first_code_block
from r1ci_core.sandbox import Sandbox, SandboxSettings
from r1ci_core.sandbox.session import STATE_LOST, Session, StatelessSession
from r1ci_core.tasks import Item

from .conftest import BWRAP_MISSING, descendants, needs_unshare

LOST = STATE_LOST.split("(")[0]


@pytest.fixture(scope="module")
def psb():
    if BWRAP_MISSING:
        pytest.skip(f"bwrap isolation unavailable: {BWRAP_MISSING}")
    with Sandbox(isolation="bwrap", persistent=True, workers=2, timeout_s=10) as s:
        yield s


def test_state_is_kept_across_the_calls_of_a_session(psb):
    with psb.session() as sess:
        assert isinstance(sess, Session)
        first = sess.run("import math\nx = 41\ndef f(v):\n    return v + 1\nprint('set')")
        assert first.ok and first.stdout == "set\n"
        r = sess.run("print(f(x), math.pi > 3)")
        assert r.ok and r.stdout == "42 True\n", r
        # an exception ends the call, not the interpreter: what ran before it stays
        r = sess.run("y = 5\nraise ValueError('boom')")
        assert r.exit_code == 1 and "ValueError: boom" in r.stderr and LOST not in r.stderr
        r = sess.run("import random\nrandom.seed(3)\nfirst = random.random()\nopen('/tmp/kept', 'w').write('f')")
        assert r.ok
        # random's stream goes on where it was (not reseeded per call); files in the scratch stay too
        r = sess.run("import random\nrandom.seed(3)\nrandom.random()\n"
                     "print(y, random.random() == random.Random(3).random() or 'next', open('/tmp/kept').read())")
        assert r.stdout == "5 next f\n", r
        assert sess.starts == 1


def test_default_is_stateless(sb):
    assert not sb.settings.persistent
    sess = sb.session()
    assert isinstance(sess, StatelessSession) and not sess.persistent
    assert sess.run("x = 1").ok
    r = sess.run("print(x)")
    assert r.exit_code == 1 and "NameError" in r.stderr


def test_sessions_are_isolated_and_concurrent(psb):
    """Two trajectories, same variable name, different values, calls interleaved on two threads."""
    barrier = threading.Barrier(2)
    seen: dict[str, list[str]] = {}

    def trajectory(name: str, value: int) -> None:
        with psb.session() as sess:
            out = [sess.run(f"x = {value}\nimport os\npid = os.getpid()").stdout]
            for _ in range(4):
                barrier.wait(30)
                out.append(sess.run("x += 1\nprint(x)").stdout.strip())
            seen[name] = out

    threads = [threading.Thread(target=trajectory, args=(n, v)) for n, v in (("a", 100), ("b", 200))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert seen == {"a": ["", "101", "102", "103", "104"], "b": ["", "201", "202", "203", "204"]}


def test_state_is_dropped_when_the_session_ends(psb):
    before = descendants(os.getpid())
    sess = psb.session()
    assert sess.run("secret = 7").ok
    proc = sess._proc
    assert proc is not None and descendants(os.getpid()) - before  # its own sandbox is running
    sess.close()
    assert proc.poll() is not None and not descendants(os.getpid()) - before
    assert sess.run("print(secret)").infra_error == "sandbox session closed"
    with psb.session() as other:
        r = other.run("print(secret)")
        assert r.exit_code == 1 and "NameError" in r.stderr


@pytest.mark.parametrize("kill", ["timeout", "crash"])
def test_a_killed_interpreter_loses_only_its_own_state(psb, kill):
    with psb.session() as a, psb.session() as b:
        assert a.run("x = 'a'").ok and b.run("x = 'b'").ok
        if kill == "timeout":
            r = a.run("print('started', flush=True)\nwhile True:\n    pass", timeout_s=1)
            assert r.timed_out and r.exit_code is None and r.stdout == "started\n"
            assert f"{LOST}(time limit)" in r.stderr
        else:
            r = a.run("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
            assert r.exit_code == -9 and not r.timed_out and f"{LOST}(it crashed)" in r.stderr
        assert r.infra_error is None  # the program's fault, not the sandbox's
        again = a.run("print(x)")  # a fresh interpreter, never another trajectory's state
        assert again.exit_code == 1 and "NameError" in again.stderr and a.starts == 2
        assert b.run("print(x)").stdout == "b\n" and b.starts == 1


def test_limits_still_apply_and_count_the_state(psb):
    with psb.session() as sess:
        # the memory limit is on the whole interpreter, the state kept included
        assert sess.run("keep = bytearray(150 << 20)", memory_mb=256).ok
        r = sess.run("more = bytearray(150 << 20)", memory_mb=256)
        assert r.exit_code == 1 and "MemoryError" in r.stderr
        r = sess.run("del keep\nmore = bytearray(150 << 20)\nprint(len(more) >> 20)", memory_mb=256)
        assert r.stdout == "150\n", r
        # the sandbox's identity, network and process cleanup are those of every call
        r = sess.run("import os, socket, subprocess\nprint(os.getuid())\n"
                     "child = subprocess.Popen(['sleep', '60'])\nchild_pid = child.pid\n"
                     "try:\n    socket.create_connection(('1.1.1.1', 53), timeout=1)\nexcept OSError:\n"
                     "    print('no network')")
        assert r.stdout == f"{psb.settings.uid}\nno network\n", r
        r = sess.run("print(os.path.exists(f'/proc/{child_pid}'))")  # what a call started ends with it
        assert r.stdout == "False\n", r
        r = sess.run("print(input())", stdin="hello\n")
        assert r.stdout == "hello\n"
        r = sess.run("try:\n    input()\nexcept EOFError:\n    print('eof')")  # stdin is per call
        assert r.stdout == "eof\n"


def test_output_limit_stops_the_interpreter():
    if BWRAP_MISSING:
        pytest.skip(f"bwrap isolation unavailable: {BWRAP_MISSING}")
    with Sandbox(isolation="bwrap", persistent=True, max_output_bytes=1000) as box, box.session() as sess:
        assert sess.run("x = 1").ok
        r = sess.run("while True:\n    print('y' * 100)")
        assert r.truncated and len(r.stdout) == 1000 and f"{LOST}(output limit)" in r.stderr
        assert "NameError" in sess.run("print(x)").stderr


@needs_unshare
def test_persistent_under_unshare_isolation():
    with Sandbox(isolation="unshare", persistent=True) as box, box.session() as sess:
        assert sess.run("x = 6 * 7").ok
        assert sess.run("print(x)").stdout == "42\n"


def test_persistent_needs_isolation(tmp_path):
    with pytest.raises(ValueError, match="persistent: true needs isolation"):
        SandboxSettings(isolation="none", persistent=True)
    recipe = tmp_path / "r.yaml"
    recipe.write_text("sandbox:\n  persistent: true\n  isolation: none\n")
    with pytest.raises(RecipeError, match="persistent: true needs isolation"):
        load_recipe(str(recipe))
    recipe.write_text("sandbox:\n  persistent: true\n")
    assert load_recipe(str(recipe)).sandbox.persistent


# --------------------------------------------------------------------------- through the rollout engine

class TurnScript(Backend):
    """A message-level backend that writes fixed turns: two code turns, then an answer from turn 2's output."""

    name = "turn-script"
    token_level = False

    def __init__(self, turns):
        self.turns = turns

    def generate(self, requests, sampling, *, preempt_below=0):
        out = []
        for r in requests:
            n = sum(m["role"] == "assistant" for m in r.messages)
            text = self.turns[n](r.messages)
            out.append(GenResult(text=text, finish="code" if first_code_block(text) else "answer"))
        return out


def _answer_from_output(messages):
    last = messages[-1]["content"]
    return f"The code printed it: <<<{last.strip().splitlines()[-1]}>>>"


def test_engine_turn_two_uses_a_variable_of_turn_one(psb, sb):
    items = [Item(family="arith", source="test", question=f"q{k}", answer=str(k * 7)) for k in (3, 5)]
    turns = [lambda m: f"```python\nx = {m[1]['content'][1:]} * 7\n```",  # turn 1: define x (no output)
             lambda m: "```python\nprint(x)\n```",  # turn 2: use it
             _answer_from_output]
    before = descendants(os.getpid())
    trajs = run_rollouts(TurnScript(turns), items, limits=RolloutConfig(max_turns=4), sandbox=psb,
                         progress=False, score=False)
    assert [t.executions[1].stdout for t in trajs] == ["21\n", "35\n"]  # each its own x
    assert [t.final_answer for t in trajs] == ["21", "35"]
    assert not descendants(os.getpid()) - before  # every trajectory's interpreter ended with it
    # the default (stateless, as in R1-CI): turn 2 does not see turn 1's variable
    (t,) = run_rollouts(TurnScript(turns), items[:1], limits=RolloutConfig(max_turns=4), sandbox=sb,
                        progress=False, score=False)
    assert "NameError: name 'x' is not defined" in t.executions[1].stderr
