"""Backend registry, the OpenAI-compatible backend against `r1ci_core.serve`, and the vLLM cut logic."""

from __future__ import annotations

import importlib.util
import socket
import threading
import time

import pytest

from r1ci_core.config import RolloutConfig
from r1ci_core.rollout import get_backend, run_rollouts
from r1ci_core.rollout.backends import BACKENDS, GenRequest, cut_token_turn
from r1ci_core.rollout.backends.openai import OpenAIBackend, cut_turn


def test_get_backend_unknown_name_lists_choices():
    with pytest.raises(ValueError) as err:
        get_backend("nope")
    for name in ("transformers", "vllm", "openai"):
        assert name in str(err.value)
    assert set(BACKENDS) == {"transformers", "vllm", "openai"}


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed")
def test_vllm_missing_gives_one_line_error():
    with pytest.raises(ImportError) as err:
        get_backend("vllm", model_path="x")
    assert "pip install 'r1ci[vllm]'" in str(err.value) and "\n" not in str(err.value)


def test_transformers_backend_needs_a_model():
    with pytest.raises(ValueError, match="model"):
        get_backend("transformers")


def test_openai_cut_turn():
    # the server dropped the "```\n" stop string: the fence is restored
    assert cut_turn("Hi\n```python\nprint(1)\n", "stop") == ("Hi\n```python\nprint(1)\n```", "code")
    assert cut_turn("```python\nprint('<<<1>>>')\n```\nThen <<<2>>>", "stop")[1] == "code"
    assert cut_turn("So <<<5>>> more", "stop") == ("So <<<5>>>", "answer")
    assert cut_turn("no answer", "stop") == ("no answer", "eos")
    assert cut_turn("```python\nwhile True:", "length") == ("```python\nwhile True:", "length")


def test_cut_token_turn_keeps_a_prefix_of_the_ids(tiny_policy):
    _, _, tok = tiny_policy
    text = "a\n```python\nprint(2)\n```\nmore text <<<3>>>"
    ids = tok(text, add_special_tokens=False)["input_ids"]

    def cut(req, **kw):
        return cut_token_turn(ids, req, piece=lambda t: tok.decode([t]), decode=tok.decode, eos_ids={-1}, **kw)

    r = cut(GenRequest(messages=[], max_new_tokens=100))
    assert r.finish == "code" and r.text.endswith("```") and r.token_ids == ids[: len(r.token_ids)]
    assert cut(GenRequest(messages=[], max_new_tokens=3)).finish == "length"
    r = cut(GenRequest(messages=[], max_new_tokens=100, stop_on_turn=False, stop=["more"]))
    assert r.finish == "stop" and r.text == "a\n```python\nprint(2)\n```\n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server_url(tiny_policy):
    from r1ci_core.rollout.backends.transformers import TransformersBackend
    from r1ci_core.serve import make_server

    path, model, tok = tiny_policy
    port = _free_port()
    server = make_server(path, host="127.0.0.1", port=port, backend=TransformersBackend(model, tok))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/v1"
    server.should_exit = True
    thread.join(timeout=10)
    assert not thread.is_alive()


def test_serve_models_and_completion_params(server_url):
    from openai import OpenAI

    client = OpenAI(base_url=server_url, api_key="EMPTY", timeout=30, max_retries=0)
    (model,) = [m.id for m in client.models.list()]
    assert model == "tiny"
    msgs = [{"role": "user", "content": "What is the result of 2*3?"}]
    r = client.chat.completions.create(model=model, messages=msgs, max_tokens=5, temperature=0.0)
    assert r.choices[0].finish_reason in ("length", "stop") and r.usage.completion_tokens <= 5
    r = client.chat.completions.create(model=model, messages=msgs, max_tokens=40, temperature=0.0, stop=["python"])
    assert "python" not in (r.choices[0].message.content or "")


def test_openai_backend_multi_turn_against_serve(server_url, items, sandbox):
    backend = OpenAIBackend(base_url=server_url, api_key="EMPTY", timeout_s=60, max_retries=0)
    trajs = run_rollouts(backend, items[:3], limits=RolloutConfig(max_new_tokens=200), sandbox=sandbox,
                         progress=False)
    backend.close()
    for t in trajs:
        assert t.token_ids is None and t.mask is None
        assert t.provenance["backend"] == "openai" and t.provenance["model"] == "tiny"
    done = [t for t in trajs if t.n_code_calls >= 1 and t.n_turns >= 2]
    assert done, [t.messages for t in trajs]
    t = done[0]
    assert [m["role"] for m in t.messages[:5]] == ["system", "user", "assistant", "tool", "assistant"]
    assert t.executions[0].exit_code == 0 and t.messages[3]["content"].startswith("Code Execution Results:")
    assert any(x.score == 1.0 for x in done)
