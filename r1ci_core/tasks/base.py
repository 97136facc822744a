"""The task-family interface: items, verdicts and the `Task` base class every family implements."""

from __future__ import annotations

import hashlib
import json
import random
import re
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Literal

Source = Literal["symbench", "bbh", "reasoning_gym", "custom"]
Split = Literal["train", "test"]

ANSWER_RE = re.compile(r"<<<(.*?)>>>(?!>)", re.DOTALL)  # (?!>): "<<<] >>>>" gives "] >"


def item_id(family: str, question: str) -> str:
    """Stable id of a question: a hash of the family name and the question text."""
    return hashlib.sha256(f"{family}\x00{question}".encode()).hexdigest()[:16]


def extract_answer(text: str | None) -> str | None:
    """The last `<<<...>>>` in `text`, stripped; None when there is none."""
    if not text:
        return None
    found = ANSWER_RE.findall(text)
    return found[-1].strip() if found else None


@dataclass
class Item:
    """One question of a family (a row of the task corpus)."""

    family: str
    source: str
    question: str
    answer: str
    metadata: dict[str, Any] = field(default_factory=dict)
    id: str = ""
    split: str = ""  # the family's split: "train" or "test"
    pool: str = ""  # the question pool: "sft", "grpo", "test_seen" or "test_unseen"

    def __post_init__(self) -> None:
        if not self.id:
            self.id = item_id(self.family, self.question)

    def to_row(self) -> dict[str, Any]:
        """A flat row for `datasets` (metadata as JSON text)."""
        row = asdict(self)
        row["metadata"] = json.dumps(self.metadata, sort_keys=True)
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Item:
        meta = row.get("metadata") or {}
        if isinstance(meta, str):
            meta = json.loads(meta)
        return cls(
            family=row["family"], source=row["source"], question=row["question"], answer=str(row["answer"]),
            metadata=meta, id=row.get("id", ""), split=row.get("split", ""), pool=row.get("pool", ""),
        )


@dataclass(frozen=True)
class Verdict:
    """A verifier's judgement: score in [0, 1] and whether the answer could be parsed at all."""

    score: float
    parseable: bool


class Task(ABC):
    """A task family: seeded generator, verifier and reference solution.

    Subclasses set `name`, `source`, `description` (and `split`, the default family split, which the
    recipe's split may override) and implement `_generate_one`, `check` and `reference_solution`.
    """

    name: ClassVar[str]
    source: ClassVar[str]
    description: ClassVar[str] = ""
    split: str = "train"
    # False for a family that needs files the machine lacks (e.g. official-only BBH tasks without the
    # BBH folder); `unavailable_hint` then says in one line how to provide them.
    available: bool = True
    unavailable_hint: str = ""
    # False where no program can compute the answer (official-only BBH tasks): the teacher skips these.
    has_reference_solution: ClassVar[bool] = True
    # True where the reference solution only prints the stored gold answer instead of deriving it.
    trivial_reference: ClassVar[bool] = False
    # SymBench families that duplicate a BBH family; `registry()` drops them by default.
    duplicates_bbh: ClassVar[bool] = False

    def generate(self, n: int, seed: int, split: str | None = None) -> list[Item]:
        """`n` distinct items, deterministic for (`seed`, `split`)."""
        rng = random.Random(f"{self.name}:{seed}:{split or ''}")
        items: dict[str, Item] = {}
        attempts = 0
        while len(items) < n and attempts < n * 50:
            attempts += 1
            item = self._generate_one(rng)
            item.split = split or ""
            items.setdefault(item.id, item)
        return list(items.values())

    @abstractmethod
    def _generate_one(self, rng: random.Random) -> Item:
        """One random item drawn with `rng`."""

    @abstractmethod
    def check(self, answer: str | None, item: Item) -> Verdict:
        """Judge `answer` (the text inside `<<<>>>`, or None if absent) against `item`."""

    def score(self, answer: str | None, item: Item) -> float:
        """Score in [0, 1] of `answer` for `item`."""
        return self.check(answer, item).score

    @abstractmethod
    def reference_solution(self, item: Item) -> str:
        """Python source that computes the answer and prints it last as `<<<answer>>>`."""

    def make_item(self, question: str, answer: Any, **metadata: Any) -> Item:
        return Item(family=self.name, source=self.source, question=question, answer=str(answer),
                    metadata=metadata)


_BATCH_RUNNER = r"""
import contextlib, io, json, sys
out = []
for src in json.load(sys.stdin):
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            exec(compile(src, "<reference>", "exec"), {"__name__": "__main__"})
    except SystemExit:
        pass
    except BaseException as e:
        buf.write(f"\n[error] {type(e).__name__}: {e}")
    out.append(buf.getvalue())
sys.stdout.write(json.dumps(out))
"""


def run_programs(sources: list[str], timeout_s: float = 60.0) -> list[str | None]:
    """Stdout of each program, run together in one fresh interpreter (`sys.executable`); a batch that
    fails or times out falls back to one subprocess per program. None for a program that timed out.

    For trusted code only (reference solutions); model-written code goes through `r1ci_core.sandbox`.
    """
    import subprocess
    import sys

    if not sources:
        return []
    try:
        proc = subprocess.run([sys.executable, "-c", _BATCH_RUNNER], input=json.dumps(sources), text=True,
                              capture_output=True, timeout=timeout_s)
        if proc.returncode == 0:
            outs = json.loads(proc.stdout)
            if len(outs) == len(sources):
                return outs
    except (subprocess.TimeoutExpired, json.JSONDecodeError):
        pass
    results: list[str | None] = []
    for src in sources:
        try:
            p = subprocess.run([sys.executable, "-c", src], text=True, capture_output=True, timeout=timeout_s)
            results.append(p.stdout)
        except subprocess.TimeoutExpired:
            results.append(None)
    return results
