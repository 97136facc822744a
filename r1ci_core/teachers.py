"""Teachers that write R1-CI trajectories for SFT.

* `ReferenceTeacher` (`teacher.kind: reference`, the embedded default, no model): each question's reference
  solution becomes a trajectory whose code is really executed. Variants, drawn per (seed, question,
  sample) so a resumed or re-sharded run gives the same ones:

  - plain (most): a short reasoning line, the reference program, its real output, "The answer is <<<X>>>.";
  - text_only (`text_only_share` of the questions of easy families): one turn answering in text, the
    answer being the (hidden, executed) reference's;
  - recovery (`recovery_share`): a first attempt that really fails (it raises, prints no answer, or prints
    a wrong one), its real output, then the reference program and the answer.

  Families without a reference solution, items `can_solve` rejects and (by default) families whose
  reference only prints the stored answer are skipped and counted.
* `ModelTeacher` (`teacher.kind: model`): any rollout backend (transformers, vLLM, an OpenAI-compatible
  endpoint) with the R1-CI system prompt, `samples_per_question` samples per question, via `run_rollouts`.

Every trajectory carries its provenance (teacher, model, backend, prompt version, sampling, seed).
"""

from __future__ import annotations

import ast
import hashlib
import io
import logging
import random
import re
import tokenize
from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from .chat import PROMPT_VERSION, exec_message, prompt_messages
from .config import RolloutConfig, TeacherConfig
from .rollout.engine import format_output
from .tasks import Item, Task, extract_answer
from .trajectory import Execution, Trajectory

log = logging.getLogger(__name__)

# --- format constants of the reference teacher (the plain format: REASONING, code, output, FINAL_ANSWER) ---
REASONING = (
    "I will compute this with code.",
    "Let me write Python code to solve it.",
    "I can solve this exactly with a short program.",
)
FINAL_ANSWER = "The answer is <<<{answer}>>>."
TEXT_ONLY_REASONING = (
    "This is simple enough to work out directly, without code.",
    "I can answer this directly.",
    "No code is needed for this one.",
)
BROKEN_PREFIX = "result = undefined_helper()\n"
# What the teacher says after a failed first attempt, by what was observed.
RECOVERY_TEXT = {
    "error": "The code failed. Let me fix it.",
    "no_answer": "The output does not show the answer: I did not print it. Let me fix it.",
    "wrong_answer": "That result does not look right: a number in my code is wrong. Let me fix it.",
}
RECOVERY_KINDS = ("error", "no_output", "wrong_value")

# Families a student should learn to answer in text when they are small (default `teacher.text_only_families`).
EASY_FAMILIES = frozenset({
    "bbh_boolean_expressions", "bbh_object_counting", "bbh_word_sorting", "bbh_navigate", "bbh_web_of_lies",
    "bbh_hyperbaton", "bbh_reasoning_about_colored_objects", "rg_basic_arithmetic", "rg_leg_counting",
    "rg_spell_backward", "rg_word_sorting", "rg_number_sorting", "rg_letter_counting", "rg_gcd", "rg_lcm",
    "rg_chain_sum",
})


# --- failing first attempts -----------------------------------------------------------------------------
def _with_error(code: str, rng: random.Random) -> str:
    return BROKEN_PREFIX + code


def _without_print(code: str, rng: random.Random) -> str | None:
    """The program with its last top-level `print(` turned into an assignment (so the answer is not shown)."""
    lines = code.splitlines(keepends=True)
    for i in range(len(lines) - 1, -1, -1):
        m = re.match(r"print\(", lines[i])
        if m:
            lines[i] = "result = (" + lines[i][m.end():]
            new = "".join(lines)
            try:
                ast.parse(new)
            except SyntaxError:
                return None
            return new
    return None


def _wrong_value(code: str, rng: random.Random) -> str | None:
    """The program with one integer literal (outside print lines) off by one."""
    try:
        toks = list(tokenize.generate_tokens(io.StringIO(code).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return None
    lines = code.splitlines(keepends=True)
    cands = [t for t in toks if t.type == tokenize.NUMBER and t.string.isdigit()
             and t.start[0] == t.end[0] and not lines[t.start[0] - 1].lstrip().startswith("print(")]
    if not cands:
        return None
    t = rng.choice(cands)
    row = t.start[0] - 1
    line = lines[row]
    lines[row] = line[: t.start[1]] + str(int(t.string) + 1) + line[t.end[1]:]
    return "".join(lines)


MUTATIONS = {"error": _with_error, "no_output": _without_print, "wrong_value": _wrong_value}


def failure_kind(res: Any, family: Task, item: Item) -> str | None:
    """How an executed attempt failed ("error", "no_answer", "wrong_answer"), or None when it succeeded."""
    if res.timed_out or res.exit_code not in (0, None):
        return "error"
    answer = extract_answer(res.stdout)
    if answer is None:
        return "no_answer"
    return None if family.check(answer, item).score >= 1.0 else "wrong_answer"


@dataclass
class _Plan:
    item: Item
    sample: int
    code: str
    reasoning: str
    variant: str  # "plain", "text_only", "recovery"
    kinds: list[str]
    rng: random.Random
    bad_code: str | None = None
    bad: Any = None
    failure: str | None = None


def _variant_rng(seed: int, item_id: str, sample: int) -> random.Random:
    return random.Random(f"{seed}:{item_id}" if sample == 0 else f"{seed}:{item_id}:{sample}")


def reference_trajectories(
    items: list[Item], families: Mapping[str, Task], sandbox: Any, *, seed: int = 0, samples: int = 1,
    recovery_share: float = 0.1, recovery_kinds: Collection[str] = RECOVERY_KINDS, text_only_share: float = 0.1,
    text_only_families: Collection[str] | None = None, force_text_only: Collection[str] = (),
    output_chars: int = 1000, output_tokens: int = 256, tokenizer: Any = None, stats: Counter | None = None,
) -> list[Trajectory]:
    """Turn each item's reference solution into `samples` R1-CI trajectories, executing the code for real.

    See the module doc for the variants. `force_text_only` families always get text-only answers.
    `stats` (if given) counts variants, recovery fallbacks and reference solutions that raised.
    """
    stats = stats if stats is not None else Counter()
    easy = EASY_FAMILIES if text_only_families is None else frozenset(text_only_families)
    kinds = [k for k in RECOVERY_KINDS if k in set(recovery_kinds)]
    plans: list[_Plan] = []
    codes: dict[str, str] = {}
    for item in items:
        try:
            code = families[item.family].reference_solution(item)
        except Exception as err:  # noqa: BLE001 - one bad item must not stop the shard
            log.warning("reference solution of %s (%s) failed: %s", item.id, item.family, err)
            stats["reference_error"] += 1
            continue
        codes[item.id] = code if code.endswith("\n") else code + "\n"
        for k in range(samples):
            rng = _variant_rng(seed, item.id, k)
            reasoning = rng.choice(REASONING)
            u = rng.random()
            t = text_only_share if item.family in easy else 0.0
            if item.family in force_text_only or u < t:
                variant = "text_only"
            elif u < t + recovery_share:
                variant = "recovery"
            else:
                variant = "plain"
            order = list(kinds)
            rng.shuffle(order)
            plans.append(_Plan(item, k, codes[item.id], reasoning, variant, order, rng))

    ids = list(codes)
    ref = dict(zip(ids, sandbox.run_many([codes[i] for i in ids]), strict=True))
    _run_failing_attempts([p for p in plans if p.variant == "recovery"], families, sandbox, stats)

    def _output(res: Any) -> str:
        return format_output(res, output_chars=output_chars, output_tokens=output_tokens, tokenizer=tokenizer)[0]

    sampling = {"recovery_share": recovery_share, "recovery_kinds": kinds, "text_only_share": text_only_share,
                "samples_per_question": samples}
    out = []
    for p in plans:
        item, family, res = p.item, families[p.item.family], ref[p.item.id]
        answer = extract_answer(res.stdout)
        if p.variant == "text_only" and (answer is None or res.infra_error):
            p.variant = "plain"  # the reference itself failed: show its execution
            stats["text_only_fallback"] += 1
        messages = prompt_messages(item.question)
        executions: list[Execution] = []
        if p.variant == "text_only":
            text = p.rng.choice(TEXT_ONLY_REASONING)
            messages.append({"role": "assistant", "content": f"{text}\n{FINAL_ANSWER.format(answer=answer)}"})
        else:
            reasoning = p.reasoning
            if p.variant == "recovery":
                messages += [{"role": "assistant", "content": f"{reasoning}\n```python\n{p.bad_code}```"},
                             exec_message(_output(p.bad))]
                executions.append(Execution.of(p.bad_code, p.bad))
                reasoning = RECOVERY_TEXT.get(p.failure or "error", RECOVERY_TEXT["error"])
            messages.append({"role": "assistant", "content": f"{reasoning}\n```python\n{p.code}```"})
            messages.append(exec_message(_output(res)))
            executions.append(Execution.of(p.code, res))
            messages.append({"role": "assistant", "content": FINAL_ANSWER.format(answer=answer)})
        stats[f"variant.{p.variant}"] += 1
        verdict = family.check(answer, item)
        provenance = {"teacher": "reference", "model": None, "backend": "reference_solution",
                      "prompt_version": PROMPT_VERSION, "sampling": sampling, "seed": seed, "sample": p.sample,
                      "variant": p.variant}
        if p.variant == "recovery":
            provenance["failure"] = p.failure
        infra = any(e.infra_error for e in executions) or bool(res.infra_error)
        out.append(Trajectory(
            item_id=item.id, family=item.family, messages=messages, final_answer=answer,
            score=None if infra else verdict.score, parseable=None if infra else verdict.parseable,
            n_turns=sum(m["role"] == "assistant" for m in messages), n_code_calls=len(executions),
            executions=executions, provenance=provenance, finish_reason="infra_error" if infra else "answer",
        ))
    return out


def _run_failing_attempts(plans: list[_Plan], families: Mapping[str, Task], sandbox: Any, stats: Counter) -> None:
    """Give each recovery plan a first attempt that really fails, trying its kinds in order (batched runs).

    A plan none of whose kinds fails becomes plain (counted as `recovery_fallback`).
    """
    pending = list(plans)
    while pending:
        batch = []
        for p in pending:
            while p.kinds:
                bad = MUTATIONS[p.kinds.pop(0)](p.code, p.rng)
                if bad is not None and bad != p.code:
                    batch.append((p, bad))
                    break
            else:
                p.variant = "plain"
                stats["recovery_fallback"] += 1
        results = sandbox.run_many([bad for _, bad in batch]) if batch else []
        pending = []
        for (p, bad), res in zip(batch, results, strict=True):
            failure = "infra_error" if res.infra_error else failure_kind(res, families[p.item.family], p.item)
            if failure is None:
                pending.append(p)  # this attempt happened to work: try the next kind
                continue
            p.bad_code, p.bad, p.failure = bad, res, failure
            stats[f"failure.{failure}"] += 1


# --- teachers for the stage -------------------------------------------------------------------------------
class ReferenceTeacher:
    """The reference-solver teacher configured by a `TeacherConfig`."""

    kind = "reference"

    def __init__(self, cfg: TeacherConfig, families: Mapping[str, Task], sandbox: Any, *,
                 output_chars: int = 1000, output_tokens: int = 256, tokenizer: Any = None):
        self.cfg, self.families, self.sandbox = cfg, families, sandbox
        self.output_chars, self.output_tokens, self.tokenizer = output_chars, output_tokens, tokenizer

    def provenance(self) -> dict[str, Any]:
        c = self.cfg
        return {"teacher": "reference", "model": None, "backend": "reference_solution",
                "prompt_version": PROMPT_VERSION, "seed": c.seed,
                "sampling": {"recovery_share": c.recovery_share, "recovery_kinds": list(c.recovery_kinds),
                             "text_only_share": c.text_only_share, "samples_per_question": c.samples_per_question}}

    def select(self, items: list[Item]) -> tuple[list[Item], Counter]:
        """The items this teacher can write, and the others counted by reason."""
        todo, skipped = [], Counter()
        for item in items:
            family = self.families.get(item.family)
            if family is None:
                skipped["unknown_family"] += 1
            elif not getattr(family, "has_reference_solution", True):
                skipped["no_reference_solution"] += 1
            elif getattr(family, "trivial_reference", False) and self.cfg.trivial_reference == "skip":
                skipped["trivial_reference"] += 1
            elif not _can_solve(family, item):
                skipped["cannot_solve"] += 1
            else:
                todo.append(item)
        return todo, skipped

    def generate(self, chunk: list[Item]) -> tuple[list[dict[str, Any]], dict[str, int]]:
        c = self.cfg
        force = [n for n, f in self.families.items() if getattr(f, "trivial_reference", False)] \
            if c.trivial_reference == "text_only" else []
        stats: Counter = Counter()
        trajs = reference_trajectories(
            chunk, self.families, self.sandbox, seed=c.seed, samples=c.samples_per_question,
            recovery_share=c.recovery_share, recovery_kinds=c.recovery_kinds, text_only_share=c.text_only_share,
            text_only_families=c.text_only_families, force_text_only=force, output_chars=self.output_chars,
            output_tokens=self.output_tokens, tokenizer=self.tokenizer, stats=stats)
        return [t.to_row() for t in trajs], dict(stats)

    def close(self) -> None:
        pass


def _can_solve(family: Task, item: Item) -> bool:
    can = getattr(family, "can_solve", None)
    if can is None:
        return True
    try:
        return bool(can(item))
    except Exception:  # noqa: BLE001 - a family that cannot even tell cannot solve it
        return False


class ModelTeacher:
    """A model teacher: `run_rollouts` with a backend built from the config (built on first use)."""

    kind = "model"

    def __init__(self, cfg: TeacherConfig, families: Mapping[str, Task], sandbox: Any, *,
                 rollout: RolloutConfig | None = None, backend: Any = None):
        self.cfg, self.families, self.sandbox = cfg, families, sandbox
        self.limits = (rollout or RolloutConfig()).model_copy(update={"temperature": cfg.temperature,
                                                                      "top_p": cfg.top_p})
        self._backend = backend

    @property
    def backend(self) -> Any:
        if self._backend is None:
            from .rollout import get_backend

            c = self.cfg
            if c.backend == "openai":
                self._backend = get_backend("openai", base_url=c.base_url, model=c.model)
            else:
                self._backend = get_backend(c.backend, model_path=c.model)
        return self._backend

    def provenance(self) -> dict[str, Any]:
        c = self.cfg
        return {"teacher": "model", "model": c.model, "backend": c.backend, "base_url": c.base_url,
                "prompt_version": PROMPT_VERSION, "seed": c.seed,
                "sampling": {"temperature": c.temperature, "top_p": c.top_p,
                             "samples_per_question": c.samples_per_question}}

    def select(self, items: list[Item]) -> tuple[list[Item], Counter]:
        todo = [it for it in items if it.family in self.families]
        n_unknown = len(items) - len(todo)
        return todo, Counter(unknown_family=n_unknown) if n_unknown else Counter()

    def shard_seed(self, chunk: list[Item]) -> int:
        """A seed fixed by the chunk's questions, so a resumed shard samples as the first try did."""
        digest = hashlib.sha256(f"{self.cfg.seed}:{chunk[0].id}".encode()).hexdigest()
        return int(digest[:8], 16) % (2**31 - 1)

    def generate(self, chunk: list[Item]) -> tuple[list[dict[str, Any]], dict[str, int]]:
        from .rollout import run_rollouts

        c = self.cfg
        seed = self.shard_seed(chunk)
        trajs = run_rollouts(self.backend, chunk, limits=self.limits, sandbox=self.sandbox,
                             samples_per_item=c.samples_per_question, seed=seed, progress=False,
                             families=self.families)
        stats: Counter = Counter()
        for t in trajs:
            t.provenance = {**t.provenance, "teacher": "model", "base_url": c.base_url, "seed": c.seed,
                            "shard_seed": seed, "variant": "model"}
            stats[f"finish.{t.finish_reason}"] += 1
        return [t.to_row() for t in trajs], dict(stats)

    def close(self) -> None:
        if self._backend is not None:
            close = getattr(self._backend, "close", None)
            if close:
                close()


def make_teacher(cfg: TeacherConfig, families: Mapping[str, Task], sandbox: Any, *,
                 rollout: RolloutConfig | None = None, backend: Any = None) -> ReferenceTeacher | ModelTeacher:
    """The teacher `cfg.kind` names; `backend` (model teacher) overrides building one from the config."""
    rollout = rollout or RolloutConfig()
    if cfg.kind == "reference":
        return ReferenceTeacher(cfg, families, sandbox, output_chars=rollout.output_chars,
                                output_tokens=rollout.output_tokens)
    return ModelTeacher(cfg, families, sandbox, rollout=rollout, backend=backend)
