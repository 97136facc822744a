"""The multi-turn rollout engine: all questions advance together, turn by turn.

Each round, every unfinished trajectory gets one assistant turn, in batches of at most
`limits.batch_size` conversations of similar length. A turn ends at EOS, right after the closing fence
of a ```python block, or right after an ``<<<answer>>>`` outside code. The code blocks closed by a batch
run through `sandbox.run_many` (in parallel, overlapping the next batch's generation), their outputs
come back as interpreter turns (``Code Execution Results:``), and only trajectories that wrote code
continue. Optionally (``preempt_fraction`` > 0), when few rows of a batch are still generating they are
stopped mid-turn and finish the turn in the next round's batch: their ids so far stay in the record exactly
as generated, so the result is the same as without preemption, only the batches are fuller. Off by default:
the transformers backend drops finished rows from its batch, so stragglers no longer pay for them.

Policy decisions (documented contract):

* The assistant turn is closed by the engine with the template's end tokens (``<|im_end|>\\n``) as
  NON-policy tokens (mask 0) when the turn stopped at a fence/answer; when the model wrote EOS itself,
  that EOS token is a policy token (mask 1) and only the trailing template text is added with mask 0.
* ``max_turns`` caps assistant turns: a code block written in the last allowed turn is not executed and
  the trajectory ends with ``finish_reason="max_turns"``.
* ``max_code_calls``: once reached, a further block is not executed; the interpreter turn says so
  (`LIMIT_MESSAGE`) and the model may still answer (up to ``max_turns``).
* ``mode="text_only"``: code is never executed; a block gets the interpreter turn `DISABLED_MESSAGE`.
* ``max_new_tokens`` is the total policy-token budget of a trajectory (all turns): when spent, the
  trajectory ends with ``finish_reason="max_tokens"`` (a block closed with the last tokens is not run).
* An execution whose sandbox failed (``infra_error``) ends the trajectory with
  ``finish_reason="infra_error"`` and ``score=None``/``parseable=None``: callers must exclude it from
  rewards and metrics (``Trajectory.infra_error`` is True), never count it as wrong.
* Output budget: stdout (+ stderr, + a timeout note) is cut to ``output_chars`` characters and then
  ``output_tokens`` tokens, with ``TRUNCATION_MARK`` appended when anything was cut.
* ``persistent`` sandbox: a trajectory's code calls share one interpreter (variables of turn 1 are there in
  turn 2), its own, dropped when the trajectory ends; default: every call starts fresh, as in R1-CI.
* Other finish reasons: ``"answer"`` (the last turn has ``<<<...>>>`` and no pending code),
  ``"no_answer"`` (the model ended its turn without an answer or code).
* Returned order: item-major, ``samples_per_item`` consecutive samples per item.
* Sampling (temperature > 0) is seeded per generate call from ``seed``: a run is reproducible for the
  same inputs and settings, but changes with the batching (one random stream per batch).
* A backend that reports sampling log-probabilities (vLLM) fills ``Trajectory.logprobs``, aligned with
  ``token_ids`` (None on prompt, template and interpreter tokens), for GRPO's importance-sampling correction.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..chat import PROMPT_VERSION, exec_message, prompt_messages
from ..config import RolloutConfig
from ..tasks import Item, extract_answer
from ..trajectory import Execution, Trajectory
from .backends.base import Backend, GenRequest, GenResult, SamplingParams, first_code_block

log = logging.getLogger(__name__)

TRUNCATION_MARK = "... [truncated]"
DISABLED_MESSAGE = "Code execution is disabled in this mode: answer in text only."
LIMIT_MESSAGE = "Code execution limit reached ({n} calls): this code was not run. Give the final answer."
MODES = ("autonomous", "text_only", "code_first")
TURN_TOKENS_GUESS = 64  # expected new tokens of a turn, for sizing batches
EXEC_THREADS = max(2, os.cpu_count() or 1)  # concurrent sandbox calls while streaming turns


def format_output(result: Any, *, output_chars: int, output_tokens: int, tokenizer: Any = None) -> tuple[str, bool]:
    """The interpreter's text for one execution (stdout, then stderr) within the output budget.

    Returns the text and whether it was truncated (here or already by the sandbox).
    """
    parts = [p.rstrip("\n") for p in (result.stdout, result.stderr) if p and p.strip()]
    if result.timed_out:
        parts.append("TimeoutError: the code did not finish within the time limit.")
    text = "\n".join(parts)
    truncated = bool(getattr(result, "truncated", False))
    if len(text) > output_chars:
        text, truncated = text[:output_chars], True
    if tokenizer is not None and text:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) > output_tokens:
            text, truncated = tokenizer.decode(ids[:output_tokens], skip_special_tokens=False), True
    if truncated:
        text = f"{text}\n{TRUNCATION_MARK}" if text else TRUNCATION_MARK
    return text, truncated


@dataclass
class _State:
    item: Item
    traj: Trajectory
    remaining: int
    done: bool = False
    messages: list[dict[str, str]] = field(default_factory=list)
    partial_ids: list[int] = field(default_factory=list)  # current turn's ids from preempted calls
    session: Any = None  # its persistent interpreter (sandbox `persistent: true`), opened by its first code


class _Renderer:
    """Renders the chat template as TEXT and tokenizes only what a new turn adds (prefix deltas)."""

    def __init__(self, tokenizer: Any):
        self.tok = tokenizer

    def text(self, messages: list[dict[str, str]], gen: bool) -> str:
        return self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)

    def ids(self, text: str) -> list[int]:
        return list(self.tok(text, add_special_tokens=False)["input_ids"]) if text else []

    def prompt_ids(self, messages: list[dict[str, str]]) -> list[int]:
        out = self.tok.apply_chat_template(messages, tokenize=True, add_generation_prompt=True, return_dict=True)
        return list(out["input_ids"])

    def delta(self, before: str, after: str) -> str:
        if not after.startswith(before):
            raise ValueError("the chat template does not render conversations prefix-consistently; "
                             "use a template whose rendering of a conversation extends that of its prefix")
        return after[len(before):]

    def assistant_suffix(self, messages: list[dict[str, str]], content: str, eos_text: str | None) -> str:
        """Template text after the assistant content (e.g. '<|im_end|>\\n'); minus the EOS the model wrote."""
        head = self.text(messages[:-1], gen=True)
        body = self.delta(head, self.text(messages, gen=False))
        if not body.startswith(content):
            raise ValueError("the chat template alters assistant content; cannot close the turn exactly")
        suffix = body[len(content):]
        if eos_text and suffix.startswith(eos_text):
            suffix = suffix[len(eos_text):]
        return suffix


def run_rollouts(
    backend: Backend,
    items: Sequence[Item],
    *,
    limits: RolloutConfig | None = None,
    sandbox: Any = None,
    mode: str = "autonomous",
    samples_per_item: int = 1,
    seed: int = 0,
    progress: bool = True,
    score: bool = True,
    families: Mapping[str, Any] | None = None,
    preempt_fraction: float = 0.0,
    batch_overhead_tokens: int | None = None,
) -> list[Trajectory]:
    """Roll out `samples_per_item` multi-turn trajectories per item with `backend`; see the module doc.

    `sandbox` is any object with `run_many(codes) -> list[ExecResult]` (default: a new `Sandbox()`,
    closed at the end); one whose `settings.persistent` is true also has `session()`, and each trajectory's
    code then runs in its own session (`run_many(codes, sessions=...)`), closed when the trajectory ends. `families` maps family names to verifiers (default: `tasks.registry()`).
    `preempt_fraction`: a batch stops once at most this fraction of its rows is still generating; those
    rows continue their turn in the next round's batch (0 disables; token backends only).
    `batch_overhead_tokens`: how many padded row-tokens one extra batch is worth; conversations are split
    into length-similar batches when that saves more padding (default: the backend's own estimate; a
    huge value gives plain `batch_size` chunks).
    """
    limits = limits or RolloutConfig()
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {list(MODES)}")
    if samples_per_item < 1:
        raise ValueError("samples_per_item must be >= 1")
    own_sandbox = False
    if sandbox is None and mode != "text_only":
        from ..sandbox import Sandbox

        sandbox, own_sandbox = Sandbox(), True
    try:
        return _Engine(backend, limits, sandbox, mode, seed, progress, preempt_fraction, batch_overhead_tokens).run(
            items, samples_per_item, score, families
        )
    finally:
        if own_sandbox:
            sandbox.close()


class _Engine:
    def __init__(self, backend: Backend, limits: RolloutConfig, sandbox: Any, mode: str, seed: int, progress: bool,
                 preempt_fraction: float = 0.0, batch_overhead_tokens: int | None = None):
        self.preempt_fraction = preempt_fraction
        # cost of one more batch, in padded row-tokens (per-step fixed cost / per-row-token cost)
        if batch_overhead_tokens is None:
            batch_overhead_tokens = getattr(backend, "batch_overhead_tokens", 1 << 30)
        self.batch_overhead_tokens = batch_overhead_tokens
        self.backend = backend
        self.limits = limits
        self.sandbox = sandbox
        self.mode = mode
        self.seed = seed
        self.progress = progress
        self.token_level = bool(backend.token_level)
        self.tokenizer = getattr(backend, "tokenizer", None)
        if self.token_level and self.tokenizer is None:
            raise ValueError(f"backend {backend.name!r} is token-level but has no tokenizer")
        self.render = _Renderer(self.tokenizer) if self.token_level else None
        self.stream = bool(getattr(backend, "streams_turns", False))
        # `persistent: true`: each trajectory's code runs in its own interpreter (Sandbox.session())
        self.persistent = bool(getattr(getattr(sandbox, "settings", None), "persistent", False))

    # ------------------------------------------------------------------ setup
    def _provenance(self, sample: int) -> dict[str, Any]:
        lim = self.limits
        return {
            "backend": self.backend.name,
            "model": self.backend.model_name,
            "prompt_version": PROMPT_VERSION,
            "mode": self.mode,
            "sampling": {"temperature": lim.temperature, "top_p": lim.top_p},
            "limits": {k: getattr(lim, k) for k in ("max_code_calls", "max_turns", "max_new_tokens",
                                                      "output_chars", "output_tokens", "batch_size")},
            "seed": self.seed,
            "sample": sample,
        }

    def _new_state(self, item: Item, sample: int) -> _State:
        messages = prompt_messages(item.question, self.mode)
        traj = Trajectory(item_id=item.id, family=item.family, messages=messages,
                          provenance=self._provenance(sample))
        if self.token_level:
            traj.token_ids = self.render.prompt_ids(messages)
            traj.mask = [0] * len(traj.token_ids)
            traj.logprobs = [None] * len(traj.token_ids)
            traj.prompt_len = len(traj.token_ids)
        return _State(item=item, traj=traj, remaining=self.limits.max_new_tokens, messages=messages)

    # ------------------------------------------------------------------ main loop
    def run(self, items: Sequence[Item], samples: int, score: bool, families: Mapping[str, Any] | None) -> list[Trajectory]:
        from tqdm.auto import tqdm

        states = [self._new_state(item, k) for item in items for k in range(samples)]
        bar = tqdm(total=len(states), desc=f"rollouts ({self.mode})", unit="traj", disable=not self.progress,
                   dynamic_ncols=True)
        self._gen_s = self._exec_s = 0.0
        # Code runs while generation goes on: a streaming backend hands each finished turn over at once (its
        # code starts in the sandbox while other rows still generate); otherwise a batch's code runs while
        # the next batch generates.
        pool = ThreadPoolExecutor(max_workers=EXEC_THREADS if self.stream else 1, thread_name_prefix="r1ci-exec")
        try:
            rnd = 0
            while True:
                active = [s for s in states if not s.done]
                if not active:
                    break
                pending: list[tuple[list[tuple[_State, str]], Future]] = []
                for c, chunk in enumerate(self._chunks(active)):
                    runs = self._generate_chunk(chunk, rnd, c, pool, pending)
                    bar.update(sum(1 for s in chunk if s.done))
                    if runs:
                        pending.append((runs, pool.submit(self._execute, runs)))
                for runs, fut in pending:
                    results, wall = fut.result()
                    self._exec_s += wall
                    for (s, code), res in zip(runs, results, strict=True):
                        s.traj.exec_time_s += wall / len(runs)
                        self._after_execution(s, code, res)
                        if s.done:
                            bar.update(1)
                bar.set_postfix(round=rnd, gen_s=f"{self._gen_s:.1f}", exec_s=f"{self._exec_s:.1f}", refresh=False)
                rnd += 1
        finally:
            pool.shutdown(wait=True)
            bar.close()
            for s in states:
                self._close_session(s)
        trajs = [s.traj for s in states]
        for t in trajs:  # sampling logprobs only where the backend reported them (vLLM)
            if t.logprobs is not None and all(x is None for x in t.logprobs):
                t.logprobs = None
        if score:
            self._score(states, families)
        return trajs

    def _chunks(self, active: list[_State]) -> list[list[_State]]:
        """Batches of at most `batch_size` conversations of similar length (shortest first).

        Token backends left-pad a batch to its longest conversation; the split minimises
        sum(pad_overhead + rows * width) over batches (a dynamic programme over the length-sorted rows),
        so one very long conversation does not make every row of the round attend over padding.
        """
        bs = self.limits.batch_size
        if not self.token_level:
            return [active[i:i + bs] for i in range(0, len(active), bs)]
        active = sorted(active, key=lambda s: len(s.traj.token_ids))
        width = [len(s.traj.token_ids) + min(s.remaining, TURN_TOKENS_GUESS) for s in active]
        n = len(active)
        best = [0.0] + [float("inf")] * n
        cut = [0] * (n + 1)
        for j in range(1, n + 1):
            for i in range(max(0, j - bs), j):
                cost = best[i] + self.batch_overhead_tokens + (j - i) * max(width[i:j])
                if cost < best[j]:
                    best[j], cut[j] = cost, i
        bounds, j = [], n
        while j > 0:
            bounds.append((cut[j], j))
            j = cut[j]
        return [active[i:j] for i, j in reversed(bounds)]

    def _execute(self, runs: list[tuple[_State, str]]) -> tuple[list[Any], float]:
        t0 = time.perf_counter()
        codes = [code for _, code in runs]
        if self.persistent:
            results = self.sandbox.run_many(codes, sessions=[self._session(s) for s, _ in runs])
        else:
            results = self.sandbox.run_many(codes)
        if len(results) != len(codes):
            raise RuntimeError(f"sandbox.run_many returned {len(results)} results for {len(codes)} codes")
        return results, time.perf_counter() - t0

    def _sampling(self, rnd: int, chunk: int) -> SamplingParams:
        return SamplingParams(temperature=self.limits.temperature, top_p=self.limits.top_p,
                              seed=(self.seed * 1_000_003 + rnd * 1009 + chunk) % (2**31 - 1))

    def _generate_chunk(self, chunk: list[_State], rnd: int, c: int, pool: ThreadPoolExecutor,
                        pending: list[tuple[list[tuple[_State, str]], Future]]) -> list[tuple[_State, str]]:
        """Generate one turn for each conversation of `chunk`; return the code still to run.

        With a streaming backend each turn is recorded as it ends and its code submitted to `pool` at once
        (appended to `pending`); nothing is left to return then."""
        requests = [
            GenRequest(messages=list(s.messages), max_new_tokens=max(1, s.remaining),
                       prompt_ids=list(s.traj.token_ids) if self.token_level else None,
                       turn_text=self._decode(s.partial_ids) if s.partial_ids else "")
            for s in chunk
        ]
        # Preempt stragglers only when they can join other work next round (else they would run alone anyway).
        preempt = int(len(chunk) * self.preempt_fraction) if self.token_level and len(chunk) >= 4 else 0
        recorded: set[int] = set()

        def on_turn(i: int, r: GenResult) -> None:
            recorded.add(i)
            code = self._after_turn(chunk[i], r)
            if code is not None:
                pending.append(([(chunk[i], code)], pool.submit(self._execute, [(chunk[i], code)])))

        t0 = time.perf_counter()
        kwargs: dict[str, Any] = {"preempt_below": preempt}
        if self.stream:
            kwargs["on_turn"] = on_turn
        results = self.backend.generate(requests, self._sampling(rnd, c), **kwargs)
        dt = time.perf_counter() - t0
        self._gen_s += dt
        if len(results) != len(chunk):
            raise RuntimeError(f"backend {self.backend.name!r} returned {len(results)} turns for {len(chunk)} requests")
        runs = []
        for i, (s, r) in enumerate(zip(chunk, results, strict=True)):
            s.traj.gen_time_s += dt / len(chunk)
            if i in recorded:
                continue
            code = self._after_turn(s, r)
            if code is not None:
                runs.append((s, code))
        return runs

    # ------------------------------------------------------------------ turn bookkeeping
    def _n_tokens(self, r: GenResult) -> int:
        if r.token_ids is not None:
            return len(r.token_ids)
        if r.n_tokens is not None:
            return r.n_tokens
        if self.tokenizer is not None:
            return len(self.tokenizer(r.text, add_special_tokens=False)["input_ids"])
        return max(1, len(r.text) // 4)

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    def _after_turn(self, s: _State, r: GenResult) -> str | None:
        """Record an assistant turn; return the code to execute, or None (finished or answered by a note)."""
        traj = s.traj
        s.remaining -= self._n_tokens(r)
        if self.token_level:
            ids = list(r.token_ids or [])
            traj.token_ids.extend(ids)
            traj.mask.extend([1] * len(ids))
            traj.logprobs.extend(r.logprobs if r.logprobs is not None else [None] * len(ids))
            if r.finish == "preempted":
                s.partial_ids.extend(ids)
                if s.remaining > 0:
                    return None  # the turn continues in the next round
                r = GenResult(text=r.text, finish="length", token_ids=ids)
            if s.partial_ids:  # the turn spans several calls: its text is that of all its ids
                turn = s.partial_ids + ids
                s.partial_ids = []
                r = GenResult(text=self._decode(turn[:-1] if r.ended_with_eos else turn), finish=r.finish,
                              token_ids=turn, ended_with_eos=r.ended_with_eos)
        traj.n_turns += 1
        s.messages.append({"role": "assistant", "content": r.text})
        if self.token_level:
            eos_text = self._decode(r.token_ids[-1:]) if r.ended_with_eos else None
            suffix = self.render.assistant_suffix(s.messages, r.text, eos_text)
            self._append_template(traj, self.render.ids(suffix))

        if r.finish == "code":
            code = first_code_block(r.text)
            if code is None:  # defensive: a backend said "code" without a closed block
                return self._finish(s, "no_answer")
            if traj.n_turns >= self.limits.max_turns:
                return self._finish(s, "max_turns")
            if s.remaining <= 0:
                return self._finish(s, "max_tokens")
            if self.mode == "text_only":
                self._append_tool(s, DISABLED_MESSAGE)
                return None
            if traj.n_code_calls >= self.limits.max_code_calls:
                self._append_tool(s, LIMIT_MESSAGE.format(n=self.limits.max_code_calls))
                return None
            return code
        if r.finish == "length":
            return self._finish(s, "max_tokens")
        return self._finish(s, "answer" if extract_answer(r.text) is not None else "no_answer")

    def _after_execution(self, s: _State, code: str, res: Any) -> None:
        traj = s.traj
        text, truncated = format_output(res, output_chars=self.limits.output_chars,
                                        output_tokens=self.limits.output_tokens, tokenizer=self.tokenizer)
        traj.executions.append(Execution.of(code, res, truncated=truncated))
        if res.infra_error:
            self._finish(s, "infra_error")
            return
        traj.n_code_calls += 1
        self._append_tool(s, text)

    def _append_template(self, traj: Trajectory, ids: list[int]) -> None:
        traj.token_ids.extend(ids)
        traj.mask.extend([0] * len(ids))
        traj.logprobs.extend([None] * len(ids))

    def _append_tool(self, s: _State, output: str) -> None:
        message = exec_message(output)
        if self.token_level:
            before = self.render.text(s.messages, gen=False)
            s.messages.append(message)
            after = self.render.text(s.messages, gen=True)
            self._append_template(s.traj, self.render.ids(self.render.delta(before, after)))
        else:
            s.messages.append(message)

    def _session(self, s: _State) -> Any:
        if s.session is None:
            s.session = self.sandbox.session()
        return s.session

    def _close_session(self, s: _State) -> None:
        """The trajectory's interpreter state is dropped when it ends."""
        session, s.session = s.session, None
        if session is not None:
            session.close()

    def _finish(self, s: _State, reason: str) -> None:
        self._close_session(s)
        s.done = True
        s.traj.finish_reason = reason
        last = next((m["content"] for m in reversed(s.messages) if m["role"] == "assistant"), None)
        s.traj.final_answer = extract_answer(last)
        return None

    def _score(self, states: list[_State], families: Mapping[str, Any] | None) -> None:
        if families is None:
            from ..tasks import registry

            families = registry()
        for s in states:
            traj = s.traj
            if traj.infra_error:
                traj.score, traj.parseable = None, None
                continue
            family = families.get(s.item.family)
            if family is None:
                log.warning("no verifier for family %r: trajectory left unscored", s.item.family)
                continue
            verdict = family.check(traj.final_answer, s.item)
            traj.score, traj.parseable = float(verdict.score), bool(verdict.parseable)
