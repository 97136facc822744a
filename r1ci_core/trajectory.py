"""The trajectory record shared by teacher data, GRPO rollouts and evaluation samples."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass
class Execution:
    """One executed code block and what the sandbox returned."""

    code: str
    stdout: str = ""
    stderr: str = ""
    exit_code: int | None = None
    timed_out: bool = False
    duration_s: float = 0.0
    truncated: bool = False
    infra_error: str | None = None

    @classmethod
    def of(cls, code: str, result: Any, **changes: Any) -> Execution:
        """The record of running `code`: the fields of its `sandbox.ExecResult` (any object with them), `changes` applied."""
        taken = {f.name: getattr(result, f.name) for f in fields(cls) if f.name != "code" and f.name not in changes}
        return cls(code=code, **taken, **changes)


@dataclass
class Trajectory:
    """A multi-turn conversation (OpenAI chat shape) with its executions, answer, score and provenance.

    `token_ids` / `mask` are set for policy rollouts: the ids the policy actually generated plus the
    prompt and interpreter ids, with mask 1 on policy tokens and 0 elsewhere. `prompt_len` counts the
    leading prompt tokens. `logprobs` (backends that report them, e.g. vLLM) is aligned with `token_ids`: the
    sampling log-probability of each policy token, None elsewhere; it is for GRPO only and not stored.
    """

    item_id: str
    family: str
    messages: list[dict[str, str]]
    final_answer: str | None = None
    score: float | None = None
    parseable: bool | None = None
    n_turns: int = 0
    n_code_calls: int = 0
    executions: list[Execution] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)
    token_ids: list[int] | None = None
    mask: list[int] | None = None
    prompt_len: int = 0
    logprobs: list[float | None] | None = None
    finish_reason: str = ""  # "answer", "no_answer", "max_turns", "max_tokens", "infra_error"
    gen_time_s: float = 0.0
    exec_time_s: float = 0.0

    @property
    def infra_error(self) -> bool:
        """True when any execution failed in the sandbox itself (exclude from rewards and metrics)."""
        return any(e.infra_error for e in self.executions)

    def to_row(self) -> dict[str, Any]:
        """A flat row for `datasets`/DuckDB (nested parts as JSON text)."""
        row = asdict(self)
        row.pop("logprobs")  # GRPO's importance-sampling input, not part of the stored record
        row["messages"] = json.dumps(self.messages)
        row["executions"] = json.dumps(row["executions"])
        row["provenance"] = json.dumps(self.provenance, sort_keys=True)
        row["infra_error"] = self.infra_error
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Trajectory:
        data = dict(row)
        data.pop("infra_error", None)
        for key in ("messages", "executions", "provenance"):
            if isinstance(data.get(key), str):
                data[key] = json.loads(data[key])
        data["executions"] = [Execution(**e) if isinstance(e, dict) else e for e in data.get("executions", [])]
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})
