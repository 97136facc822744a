"""Test doubles of the rollout engine's collaborators (a scripted backend, fake sandboxes)."""

from __future__ import annotations

from r1ci_core.rollout.backends.base import Backend, GenRequest, GenResult, SamplingParams, cut_token_turn
from r1ci_core.sandbox import ExecResult


class ScriptedBackend(Backend):
    """A token-level test double: returns fixed turns through the real backend interface.

    `script(call_index, request) -> str | list[int]`; text is tokenized with the real tokenizer, ids are
    returned as given (then cut where a real backend would stop).
    """

    name = "scripted"
    token_level = True

    def __init__(self, tokenizer, script):
        self.tokenizer = tokenizer
        self.script = script
        self.calls: list[GenRequest] = []
        self.eos_ids = {tokenizer.convert_tokens_to_ids("<|im_end|>")}

    def generate(self, requests: list[GenRequest], sampling: SamplingParams, *,
                 preempt_below: int = 0) -> list[GenResult]:
        out = []
        for r in requests:
            turn = self.script(len(self.calls), r)
            self.calls.append(r)
            ids = turn if isinstance(turn, list) else self.tokenizer(turn, add_special_tokens=False)["input_ids"]
            out.append(cut_token_turn(
                list(ids), r, eos_ids=self.eos_ids,
                piece=lambda t: self.tokenizer.decode([t], skip_special_tokens=False),
                decode=lambda x: self.tokenizer.decode(x, skip_special_tokens=False),
            ))
        return out


class InfraFailSandbox:
    """A sandbox whose every execution fails in the infrastructure (not the program)."""

    def __init__(self):
        self.calls = 0

    def run_many(self, codes, **kw):
        self.calls += len(codes)
        return [ExecResult(infra_error="worker crashed") for _ in codes]

    def close(self):
        pass


class NoSandbox:
    def run_many(self, codes, **kw):
        raise AssertionError("code must not be executed here")


class FakeSandbox:
    """Returns a fixed stdout for every code (fast; no subprocess)."""

    def __init__(self, stdout="42\n"):
        self.stdout = stdout
        self.codes: list[str] = []

    def run_many(self, codes, **kw):
        self.codes += codes
        return [ExecResult(stdout=self.stdout, exit_code=0) for _ in codes]
