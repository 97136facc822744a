"""The rollout engine: token/mask bookkeeping on real rollouts, limits, modes, infra errors, scoring."""

from __future__ import annotations

import pytest
from rollout_doubles import FakeSandbox, InfraFailSandbox, NoSandbox, ScriptedBackend

from r1ci_core.chat import EXEC_PREFIX, system_prompt
from r1ci_core.config import RolloutConfig
from r1ci_core.rollout import (
    DISABLED_MESSAGE,
    TRUNCATION_MARK,
    format_output,
    get_backend,
    run_rollouts,
)
from r1ci_core.rollout.backends.transformers import TransformersBackend
from r1ci_core.sandbox import ExecResult

CODE_TURN = "Let me compute.\n```python\nprint(6*7)\n```"


def runs_of(ids, mask):
    runs: list[tuple[int, list[int]]] = []
    for t, m in zip(ids, mask, strict=True):
        if runs and runs[-1][0] == m:
            runs[-1][1].append(t)
        else:
            runs.append((m, [t]))
    return runs


def render(tok, messages, gen=False):
    return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)


def check_token_record(tok, traj):
    """Mask-1 tokens decode to exactly the assistant texts; the rest to prompt + interpreter + template."""
    ids, mask = traj.token_ids, traj.mask
    assert len(ids) == len(mask)
    full = render(tok, traj.messages)
    assert tok.decode(ids) == full
    assert traj.prompt_len > 0 and not any(mask[: traj.prompt_len])
    assert tok.decode(ids[: traj.prompt_len]) == render(tok, traj.messages[:2], gen=True)
    decoded = [(m, tok.decode(r)) for m, r in runs_of(ids, mask)]
    contents = [m["content"] for m in traj.messages if m["role"] == "assistant"]
    policy = [text for m, text in decoded if m == 1]
    assert [p.removesuffix("<|im_end|>") for p in policy] == contents
    # Everything else, in order, is the conversation rendered with the assistant texts left out.
    expected, k = "", 0
    for i, message in enumerate(traj.messages):
        piece = render(tok, traj.messages[: i + 1])[len(render(tok, traj.messages[:i])) if i else 0:]
        if message["role"] == "assistant":
            start = piece.index("\n") + 1  # after the assistant header
            piece = piece[:start] + piece[start + len(policy[k]):]
            k += 1
        expected += piece
    assert "".join(text for m, text in decoded if m == 0) == expected
    assert sum(mask) <= traj.provenance["limits"]["max_new_tokens"]


def test_mask_boundaries_on_real_rollout(tiny_policy, items, sandbox):
    _, model, tok = tiny_policy
    backend = TransformersBackend(model, tok)
    trajs = run_rollouts(backend, items, limits=RolloutConfig(max_new_tokens=256, batch_size=4),
                         sandbox=sandbox, progress=False)
    assert len(trajs) == len(items)
    executed = [t for t in trajs if t.n_code_calls >= 1 and t.n_turns >= 2]
    assert executed, [t.messages for t in trajs]
    for t in trajs:
        check_token_record(tok, t)
        tools = [m for m in t.messages if m["role"] == "tool"]
        assert len(tools) == t.n_code_calls == len(t.executions)
        assert all(m["content"].startswith(EXEC_PREFIX) for m in tools)
        assert t.provenance["backend"] == "transformers" and t.provenance["prompt_version"]
        assert t.score is not None and t.parseable is not None
    # the taught questions are solved through the interpreter
    assert any(t.score == 1.0 and t.executions and t.executions[0].exit_code == 0 for t in executed)


def test_batched_equals_one_at_a_time(tiny_policy, items):
    _, model, tok = tiny_policy
    backend = TransformersBackend(model, tok)
    lim = RolloutConfig(max_new_tokens=160)
    sb = FakeSandbox("123\n")
    batched = run_rollouts(backend, items[:4], limits=lim.model_copy(update={"batch_size": 4}), sandbox=sb,
                           progress=False, score=False)
    single = [run_rollouts(backend, [it], limits=lim.model_copy(update={"batch_size": 1}), sandbox=sb,
                           progress=False, score=False)[0] for it in items[:4]]
    assert [t.messages for t in batched] == [t.messages for t in single]
    assert [t.token_ids for t in batched] == [t.token_ids for t in single]


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_decode_loop_matches_generate_on_mixed_lengths(tiny_policy, items, attn):
    """r1ci's decode loop (rows leave the batch, shared padding dropped, a ready 4-D mask per attention
    implementation) gives, for each row of a batch of different prompt lengths, a prefix of what
    `model.generate` gives greedily for that prompt alone."""
    _, model, tok = tiny_policy
    before = model.config._attn_implementation
    model.set_attn_implementation(attn)
    try:
        _check_decode_loop(model, tok, items)
    finally:
        model.set_attn_implementation(before)


def _check_decode_loop(model, tok, items):
    import torch

    from r1ci_core.rollout.backends.base import GenRequest, SamplingParams

    backend = TransformersBackend(model, tok)
    prompts = [backend.prompt_ids([{"role": "user", "content": it.question}]) for it in items[:4]]
    prompts[1] = prompts[1] + prompts[2][-7:]  # lengths differ: left padding, rows ending at different steps
    assert len({len(p) for p in prompts}) > 1
    requests = [GenRequest(messages=[], max_new_tokens=40, prompt_ids=p) for p in prompts]
    requests[1].max_new_tokens = 3  # the longest prompt leaves first: the others' shared padding is dropped
    out = backend.generate(requests, SamplingParams())
    assert out[1].finish == "length" and len(out[1].token_ids) == 3
    assert {r.finish for r in out} <= {"code", "answer", "eos", "length"}
    for p, r in zip(prompts, out, strict=True):
        with torch.no_grad():
            ref = model.generate(torch.tensor([p]), attention_mask=torch.ones(1, len(p), dtype=torch.long),
                                 max_new_tokens=40, do_sample=False, pad_token_id=backend.pad_id)
        ref_ids = ref[0, len(p):].tolist()
        assert r.token_ids and ref_ids[: len(r.token_ids)] == r.token_ids


def test_code_runs_while_other_rows_still_generate(tiny_policy, items, sandbox):
    """A turn's code starts in the (real) sandbox as soon as its row ends the turn, before the batch's
    generate call returns; the trajectories are the same as one at a time."""
    import dataclasses
    import threading

    _, model, tok = tiny_policy
    backend = TransformersBackend(model, tok)
    assert backend.streams_turns
    generating = threading.Event()
    seen: list[bool] = []

    class Recording:
        def run_many(self, codes, **kw):
            seen.append(generating.is_set())
            return sandbox.run_many(codes, **kw)

    orig = backend.generate

    def spy(requests, sampling, **kw):
        generating.set()
        try:
            return orig(requests, sampling, **kw)
        finally:
            generating.clear()

    backend.generate = spy
    lim = RolloutConfig(max_new_tokens=160, batch_size=6)
    batch = [items[0], items[1], items[2]]
    # one row rambles to the budget (an unanswerable question), the others write code early
    odd = dataclasses.replace(items[3], question="zq " * 40, id="odd")
    trajs = run_rollouts(backend, [*batch, odd], limits=lim, sandbox=Recording(), progress=False, score=False)
    assert any(t.n_code_calls for t in trajs)
    assert any(seen), "no code ran while the batch was still generating"
    single = [run_rollouts(backend, [it], limits=lim.model_copy(update={"batch_size": 1}), sandbox=sandbox,
                           progress=False, score=False)[0] for it in [*batch, odd]]
    assert [t.token_ids for t in trajs] == [t.token_ids for t in single]


def test_live_training_model_mode_is_restored(tiny_policy, items):
    _, model, tok = tiny_policy
    model.train()
    try:
        run_rollouts(get_backend("transformers", model=model, tokenizer=tok), items[:1],
                     limits=RolloutConfig(max_new_tokens=8, temperature=1.0), sandbox=FakeSandbox(),
                     progress=False, score=False)
        assert model.training
    finally:
        model.eval()


def test_sampling_is_seeded(tiny_policy, items):
    _, model, tok = tiny_policy
    backend = TransformersBackend(model, tok)
    lim = RolloutConfig(max_new_tokens=40, temperature=1.0, top_p=0.9)
    a = run_rollouts(backend, items[:2], limits=lim, sandbox=FakeSandbox(), seed=3, samples_per_item=2,
                     progress=False, score=False)
    b = run_rollouts(backend, items[:2], limits=lim, sandbox=FakeSandbox(), seed=3, samples_per_item=2,
                     progress=False, score=False)
    assert [t.token_ids for t in a] == [t.token_ids for t in b]
    assert [t.item_id for t in a] == [items[0].id, items[0].id, items[1].id, items[1].id]
    assert [t.provenance["sample"] for t in a] == [0, 1, 0, 1]


def test_policy_ids_are_never_retokenised(tiny_policy, items):
    _, _, tok = tiny_policy
    # One token per character: a valid but non-canonical tokenisation of the same text.
    odd = [i for ch in CODE_TURN for i in tok(ch, add_special_tokens=False)["input_ids"]]
    assert len(odd) > len(tok(CODE_TURN, add_special_tokens=False)["input_ids"])
    backend = ScriptedBackend(tok, lambda i, r: odd if i == 0 else "So <<<42>>>")
    (t,) = run_rollouts(backend, items[:1], limits=RolloutConfig(), sandbox=FakeSandbox(), progress=False)
    first = runs_of(t.token_ids, t.mask)[1]
    assert first == (1, odd)
    check_token_record(tok, t)
    assert t.final_answer == "42" and t.finish_reason == "answer" and t.n_turns == 2 and t.n_code_calls == 1


def test_turn_stops_after_closing_fence_and_after_answer(tiny_policy, items):
    _, _, tok = tiny_policy
    script = {0: CODE_TURN + "\nand then text that must not be kept", 1: "It is <<<42>>> trailing words"}
    backend = ScriptedBackend(tok, lambda i, r: script[i])
    (t,) = run_rollouts(backend, items[:1], limits=RolloutConfig(), sandbox=FakeSandbox(), progress=False)
    assert t.messages[2]["content"] == CODE_TURN
    assert t.messages[4]["content"] == "It is <<<42>>>"
    # the engine closed both turns with the template's end tokens, as non-policy tokens
    end = tok.convert_tokens_to_ids("<|im_end|>")
    closes = [k for k, i in enumerate(t.token_ids) if i == end and k >= t.prompt_len]
    assert closes and all(t.mask[k] == 0 for k in closes)
    check_token_record(tok, t)


def test_answer_printed_inside_code_does_not_stop_the_turn(tiny_policy, items):
    _, _, tok = tiny_policy
    code = "```python\nprint('<<<7>>>')\n```"
    backend = ScriptedBackend(tok, lambda i, r: code if i == 0 else "Done: <<<7>>>")
    (t,) = run_rollouts(backend, items[:1], limits=RolloutConfig(), sandbox=FakeSandbox("<<<7>>>\n"),
                        progress=False)
    assert t.executions[0].code == "print('<<<7>>>')\n"
    assert t.final_answer == "7" and t.n_turns == 2


def test_model_eos_is_a_policy_token(tiny_policy, items):
    _, _, tok = tiny_policy
    end = tok.convert_tokens_to_ids("<|im_end|>")
    ids = tok("No idea.", add_special_tokens=False)["input_ids"] + [end]
    (t,) = run_rollouts(ScriptedBackend(tok, lambda i, r: ids), items[:1], limits=RolloutConfig(),
                        sandbox=NoSandbox(), progress=False)
    assert t.finish_reason == "no_answer" and t.final_answer is None
    assert t.messages[-1]["content"] == "No idea."
    assert t.token_ids[t.prompt_len: t.prompt_len + len(ids)] == ids and t.mask[t.prompt_len + len(ids) - 1] == 1
    assert t.parseable is False and t.score == 0.0
    check_token_record(tok, t)


def test_max_code_calls_then_max_turns(tiny_policy, items):
    _, _, tok = tiny_policy
    sb = FakeSandbox()
    backend = ScriptedBackend(tok, lambda i, r: CODE_TURN)
    lim = RolloutConfig(max_code_calls=2, max_turns=5)
    (t,) = run_rollouts(backend, items[:1], limits=lim, sandbox=sb, progress=False)
    assert len(sb.codes) == 2 and t.n_code_calls == 2 and len(t.executions) == 2
    assert t.n_turns == 5 and t.finish_reason == "max_turns"
    tools = [m["content"] for m in t.messages if m["role"] == "tool"]
    assert len(tools) == 4 and "limit reached" in tools[2] and "limit reached" in tools[3]
    assert sum(1 for m in t.messages if m["role"] == "assistant") == 5
    check_token_record(tok, t)


def test_max_turns(tiny_policy, items):
    _, _, tok = tiny_policy
    backend = ScriptedBackend(tok, lambda i, r: CODE_TURN)
    (t,) = run_rollouts(backend, items[:1], limits=RolloutConfig(max_turns=3), sandbox=FakeSandbox(),
                        progress=False)
    assert t.n_turns == 3 and t.n_code_calls == 2 and t.finish_reason == "max_turns"


def test_total_token_budget(tiny_policy, items):
    _, _, tok = tiny_policy
    n_code = len(tok(CODE_TURN, add_special_tokens=False)["input_ids"])
    budget = 2 * n_code + 3
    backend = ScriptedBackend(tok, lambda i, r: CODE_TURN)
    (t,) = run_rollouts(backend, items[:1], limits=RolloutConfig(max_new_tokens=budget), sandbox=FakeSandbox(),
                        progress=False)
    assert t.finish_reason == "max_tokens" and sum(t.mask) == budget and t.n_turns == 3
    assert all(r.max_new_tokens <= budget for r in backend.calls)
    (long,) = run_rollouts(ScriptedBackend(tok, lambda i, r: "word " * 300), items[:1],
                           limits=RolloutConfig(max_new_tokens=50), sandbox=NoSandbox(), progress=False)
    assert long.finish_reason == "max_tokens" and sum(long.mask) == 50 and long.n_turns == 1
    check_token_record(tok, long)


def test_output_budget_chars_and_tokens(tiny_policy, items):
    _, _, tok = tiny_policy
    backend = ScriptedBackend(tok, lambda i, r: CODE_TURN if i == 0 else "<<<1>>>")
    (t,) = run_rollouts(backend, items[:1], limits=RolloutConfig(output_chars=300), sandbox=FakeSandbox("x" * 5000),
                        progress=False)
    out = t.messages[3]["content"]
    assert out.endswith(TRUNCATION_MARK) and len(out) <= len(EXEC_PREFIX) + 1 + 300 + 1 + len(TRUNCATION_MARK)
    assert t.executions[0].truncated
    words = " ".join(f"w{i}" for i in range(400))
    (t,) = run_rollouts(ScriptedBackend(tok, lambda i, r: CODE_TURN if i == 0 else "<<<1>>>"), items[:1],
                        limits=RolloutConfig(output_chars=100_000, output_tokens=20), sandbox=FakeSandbox(words),
                        progress=False)
    body = t.messages[3]["content"].removeprefix(EXEC_PREFIX + "\n").removesuffix("\n" + TRUNCATION_MARK)
    assert len(tok(body, add_special_tokens=False)["input_ids"]) <= 20 and body and words.startswith(body)
    # small outputs are untouched; stderr and timeouts are shown
    text, cut = format_output(ExecResult(stdout="1\n", stderr="Traceback: boom\n", exit_code=1),
                              output_chars=100, output_tokens=100, tokenizer=tok)
    assert text == "1\nTraceback: boom" and not cut
    text, _ = format_output(ExecResult(timed_out=True), output_chars=100, output_tokens=100)
    assert "TimeoutError" in text


def test_real_sandbox_output_budget(tiny_policy, items, sandbox):
    _, _, tok = tiny_policy
    code = "```python\nprint('y' * 5000)\n```"
    backend = ScriptedBackend(tok, lambda i, r: code if i == 0 else "<<<1>>>")
    (t,) = run_rollouts(backend, items[:1], limits=RolloutConfig(output_chars=200, output_tokens=64),
                        sandbox=sandbox, progress=False)
    assert t.executions[0].exit_code == 0 and t.messages[3]["content"].endswith(TRUNCATION_MARK)
    assert len(t.messages[3]["content"]) < 300


def test_infra_error_is_marked_not_scored_as_wrong(tiny_policy, items):
    _, _, tok = tiny_policy
    sb = InfraFailSandbox()
    backend = ScriptedBackend(tok, lambda i, r: CODE_TURN)
    trajs = run_rollouts(backend, items[:2], limits=RolloutConfig(), sandbox=sb, progress=False)
    assert sb.calls == 2
    for t in trajs:
        assert t.infra_error and t.finish_reason == "infra_error"
        assert t.score is None and t.parseable is None
        assert t.n_turns == 1 and t.n_code_calls == 0 and t.executions[0].infra_error
        assert t.to_row()["infra_error"] is True
        assert t.messages[-1]["role"] == "assistant"


def test_text_only_mode_executes_nothing(tiny_policy, items):
    _, _, tok = tiny_policy
    backend = ScriptedBackend(tok, lambda i, r: CODE_TURN if i == 0 else "<<<3>>>")
    (t,) = run_rollouts(backend, items[:1], limits=RolloutConfig(), sandbox=NoSandbox(), mode="text_only",
                        progress=False)
    assert t.messages[0]["content"] == system_prompt("text_only")
    assert t.messages[3]["content"] == f"{EXEC_PREFIX}\n{DISABLED_MESSAGE}"
    assert t.n_code_calls == 0 and not t.executions and t.final_answer == "3" and t.finish_reason == "answer"
    (t,) = run_rollouts(ScriptedBackend(tok, lambda i, r: "<<<3>>>"), items[:1], limits=RolloutConfig(),
                        mode="text_only", progress=False)  # no sandbox needed at all
    assert t.finish_reason == "answer"


def test_code_first_mode_prompt(tiny_policy, items):
    _, _, tok = tiny_policy
    (t,) = run_rollouts(ScriptedBackend(tok, lambda i, r: "<<<1>>>"), items[:1], limits=RolloutConfig(),
                        sandbox=NoSandbox(), mode="code_first", progress=False)
    assert t.messages[0]["content"] == system_prompt("code_first")
    with pytest.raises(ValueError, match="autonomous"):
        run_rollouts(ScriptedBackend(tok, lambda i, r: ""), items[:1], sandbox=NoSandbox(), mode="nope")


def test_scores_from_the_family_verifier(tiny_policy, items):
    _, _, tok = tiny_policy
    item = items[0]
    answers = {0: f"<<<{item.answer}>>>", 1: "<<<-1>>>", 2: "I give up."}
    backend = ScriptedBackend(tok, lambda i, r: answers[i])
    trajs = run_rollouts(backend, [item], samples_per_item=3, limits=RolloutConfig(batch_size=1),
                         sandbox=NoSandbox(), progress=False)
    assert [(t.score, t.parseable) for t in trajs] == [(1.0, True), (0.0, True), (0.0, False)]
    assert [t.finish_reason for t in trajs] == ["answer", "answer", "no_answer"]


def test_preempted_turns_continue_exactly(tiny_policy, items):
    """Stragglers stopped mid-turn continue next round; the record is the same as without preemption."""
    _, model, tok = tiny_policy
    backend = TransformersBackend(model, tok)
    calls = []
    orig = backend.generate

    def spy(requests, sampling, *, preempt_below=0, on_turn=None):
        out = orig(requests, sampling, preempt_below=preempt_below, on_turn=on_turn)
        calls.append([r.finish for r in out])
        return out

    backend.generate = spy
    lim = RolloutConfig(max_new_tokens=200, batch_size=6)
    eager = run_rollouts(backend, items, limits=lim, sandbox=FakeSandbox("7\n"), progress=False,
                         preempt_fraction=0.9)
    assert any("preempted" in finishes for finishes in calls)
    plain = run_rollouts(backend, items, limits=lim, sandbox=FakeSandbox("7\n"), progress=False,
                         preempt_fraction=0.0)
    for a, b in zip(eager, plain, strict=True):
        check_token_record(tok, a)
        assert a.messages == b.messages and a.token_ids == b.token_ids and a.mask == b.mask
        assert a.finish_reason == b.finish_reason and a.n_turns == b.n_turns
