"""Teachers that write R1-CI trajectories for SFT: the reference-solver teacher (no model needed)."""

from __future__ import annotations

import random
from typing import Any

from .chat import PROMPT_VERSION, exec_message, prompt_messages
from .rollout.engine import format_output
from .tasks import Item, Task, extract_answer
from .trajectory import Execution, Trajectory

REASONING = (
    "I will compute this with code.",
    "Let me write Python code to solve it.",
    "I can solve this exactly with a short program.",
)
BROKEN_PREFIX = "result = undefined_helper()\n"


def _execution(code: str, res: Any) -> Execution:
    return Execution(code=code, stdout=res.stdout, stderr=res.stderr, exit_code=res.exit_code,
                     timed_out=res.timed_out, duration_s=res.duration_s, truncated=res.truncated,
                     infra_error=res.infra_error)


def reference_trajectories(
    items: list[Item], families: dict[str, Task], sandbox: Any, *, seed: int = 0,
    recovery_rate: float = 0.1, output_chars: int = 1000, output_tokens: int = 256, tokenizer: Any = None,
) -> list[Trajectory]:
    """Turn each item's reference solution into an R1-CI trajectory, executing the code for real.

    Most trajectories are: short reasoning + code, the real output, the answer. A `recovery_rate`
    share first run a broken attempt, see the error, then run the correct program.
    """
    plans = []
    for item in items:
        rng = random.Random(f"{seed}:{item.id}")
        code = families[item.family].reference_solution(item)
        plans.append((item, code, rng.choice(REASONING), rng.random() < recovery_rate))
    broken = [(i, BROKEN_PREFIX + code) for i, (_, code, _, recover) in enumerate(plans) if recover]
    broken_results = dict(zip([i for i, _ in broken], sandbox.run_many([c for _, c in broken])))
    results = sandbox.run_many([code for _, code, _, _ in plans])
    provenance = {"teacher": "reference", "model": None, "backend": "reference_solution",
                  "prompt_version": PROMPT_VERSION, "sampling": None, "seed": seed}

    def _output(res: Any) -> str:
        return format_output(res, output_chars=output_chars, output_tokens=output_tokens, tokenizer=tokenizer)[0]

    out = []
    for i, ((item, code, reasoning, recover), res) in enumerate(zip(plans, results)):
        messages = prompt_messages(item.question)
        executions = []
        if recover:
            bad_code, bad = BROKEN_PREFIX + code, broken_results[i]
            messages += [{"role": "assistant", "content": f"{reasoning}\n```python\n{bad_code}```"},
                         exec_message(_output(bad))]
            executions.append(_execution(bad_code, bad))
            reasoning = "The code failed. Let me fix it."
        messages.append({"role": "assistant", "content": f"{reasoning}\n```python\n{code}```"})
        messages.append(exec_message(_output(res)))
        executions.append(_execution(code, res))
        answer = extract_answer(res.stdout)
        messages.append({"role": "assistant", "content": f"The answer is <<<{answer}>>>."})
        verdict = families[item.family].check(answer, item)
        out.append(Trajectory(
            item_id=item.id, family=item.family, messages=messages, final_answer=answer,
            score=None if any(e.infra_error for e in executions) else verdict.score, parseable=verdict.parseable,
            n_turns=sum(m["role"] == "assistant" for m in messages), n_code_calls=len(executions),
            executions=executions, provenance=dict(provenance), finish_reason="answer",
        ))
    return out
