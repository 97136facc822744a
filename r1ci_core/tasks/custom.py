"""User-defined task families: JSONL files and Python classes registered as entry points.

JSONL: one question a line, `{"question", "answer", "scorer": "exact"|"numeric"|"set"|"regex"}` plus
optional `tolerance` (relative, numeric scorer; default 1e-6), `family` (default: the file's stem),
`split` ("train"/"test"), `id`, `metadata` (an object), `solution` (Python source of a reference program
that prints `<<<answer>>>`) and `example_answer` (an answer the regex matches). Files come from the
recipe key `custom_tasks` and the env var `R1CI_CUSTOM_TASKS` (colon-separated paths).

Entry points: a package declares `[project.entry-points."r1ci.tasks"] name = "pkg.module:MyTask"` where
`MyTask` subclasses `Task` (an instance or a list of classes/instances also works). Such a family keeps
the `source` it sets; one that sets none gets `source = "custom"`.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from .base import Item, Task, Verdict

CUSTOM_ENV = "R1CI_CUSTOM_TASKS"
ENTRY_POINT_GROUP = "r1ci.tasks"
SCORERS = ("exact", "numeric", "set", "regex")
_KEYS = {"question", "answer", "scorer", "tolerance", "family", "split", "id", "metadata", "solution",
         "example_answer"}
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")


def _norm(text: str) -> str:
    return " ".join(str(text).split()).strip().lower()


def _number(text: str) -> float | None:
    try:
        value = float(str(text).strip().replace(",", ""))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _elements(text: str) -> set[str] | None:
    text = str(text).strip()
    if text.startswith("["):
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = None
        if isinstance(value, list):
            return {_norm(v) for v in value}
    text = text.strip("{}()[]")
    parts = [p for p in re.split(r"[,;]", text) if p.strip()]
    return {_norm(p) for p in parts}


class JsonlTask(Task):
    """A family whose questions are the lines of JSONL files; `generate` samples them deterministically."""

    source = "custom"

    def __init__(self, name: str, rows: list[dict[str, Any]], split: str | None = None) -> None:
        self.name = name
        self.rows = rows
        self.description = f"Custom JSONL family {name!r} ({len(rows)} questions)."
        if split:
            self.split = split
        self.declared_split = split
        self.trivial_reference = not all(r.get("solution") for r in rows)

    def items(self) -> list[Item]:
        out = []
        for row in self.rows:
            meta = {"scorer": row["scorer"], "tolerance": row.get("tolerance"), "file": row["_file"],
                    "line": row["_line"], **(row.get("metadata") or {})}
            for key in ("solution", "example_answer"):
                if row.get(key) is not None:
                    meta[key] = row[key]
            out.append(Item(family=self.name, source=self.source, question=row["question"],
                            answer=str(row["answer"]), metadata=meta, id=str(row.get("id") or "")))
        return out

    def generate(self, n: int, seed: int, split: str | None = None) -> list[Item]:
        rng = random.Random(f"{self.name}:{seed}:{split or ''}")
        unique = list({it.id: it for it in self.items()}.values())
        chosen = rng.sample(unique, min(n, len(unique)))
        for it in chosen:
            it.split = split or ""
        return chosen

    def _generate_one(self, rng: random.Random) -> Item:
        return rng.choice(self.items())

    def check(self, answer: str | None, item: Item) -> Verdict:
        if answer is None or not str(answer).strip():
            return Verdict(0.0, False)
        scorer = item.metadata.get("scorer", "exact")
        if scorer == "numeric":
            got, gold = _number(answer), _number(item.answer)
            if got is None or gold is None:
                return Verdict(0.0, False)
            tol = item.metadata.get("tolerance")
            tol = 1e-6 if tol is None else float(tol)
            return Verdict(1.0 if math.isclose(got, gold, rel_tol=tol, abs_tol=1e-12) else 0.0, True)
        if scorer == "set":
            got_set, gold_set = _elements(answer), _elements(item.answer)
            if not got_set:
                return Verdict(0.0, False)
            return Verdict(1.0 if got_set == gold_set else 0.0, True)
        if scorer == "regex":
            return Verdict(1.0 if re.fullmatch(item.answer, str(answer).strip()) else 0.0, True)
        return Verdict(1.0 if _norm(answer) == _norm(item.answer) else 0.0, True)

    def reference_solution(self, item: Item) -> str:
        if item.metadata.get("solution"):
            return str(item.metadata["solution"])
        answer = item.metadata.get("example_answer", None if item.metadata.get("scorer") == "regex" else item.answer)
        if answer is None:
            raise ValueError(f"{self.name}: a regex item needs `example_answer` or `solution` for a reference")
        return f"# the gold answer given in the task file\nanswer = {str(answer)!r}\nprint(f'<<<{{answer}}>>>')\n"


def _problem(path: Path, line: int, msg: str) -> ValueError:
    return ValueError(f"{path}:{line}: {msg} (fix that line: one JSON object per line with question, answer, "
                      "scorer)")


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The validated rows of one custom-task file (ValueError names the file, line and problem)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"custom task file {str(path)!r} does not exist (from `custom_tasks` / {CUSTOM_ENV})")
    rows = []
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ValueError(f"{path}:{line}: not UTF-8 text (byte {data[e.start]:#04x}): save the file as UTF-8 "
                         "JSON lines") from None
    for n, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except json.JSONDecodeError as e:
            raise _problem(path, n, f"not valid JSON ({e.msg})") from e
        if not isinstance(row, dict):
            raise _problem(path, n, "each line must be a JSON object")
        unknown = sorted(set(row) - _KEYS)
        if unknown:
            raise _problem(path, n, f"unknown keys {unknown}; allowed: {sorted(_KEYS)}")
        for key in ("question", "answer", "scorer"):
            if key not in row:
                raise _problem(path, n, f"missing {key!r}")
        if not isinstance(row["question"], str) or not row["question"].strip():
            raise _problem(path, n, "'question' must be a non-empty string")
        if row["scorer"] not in SCORERS:
            raise _problem(path, n, f"'scorer' must be one of {list(SCORERS)}, got {row['scorer']!r}")
        if isinstance(row["answer"], (dict, bool)) or row["answer"] is None:
            raise _problem(path, n, "'answer' must be a string, number or list")
        if isinstance(row["answer"], list):
            row["answer"] = json.dumps(row["answer"])
        if row["scorer"] == "numeric" and _number(row["answer"]) is None:
            raise _problem(path, n, f"numeric scorer but answer {row['answer']!r} is not a number")
        if row["scorer"] == "regex":
            try:
                re.compile(str(row["answer"]))
            except re.error as e:
                raise _problem(path, n, f"answer is not a valid regex ({e})") from e
        tol = row.get("tolerance")
        if tol is not None and (isinstance(tol, bool) or not isinstance(tol, (int, float)) or tol < 0):
            raise _problem(path, n, f"'tolerance' must be a non-negative number, got {tol!r}")
        if row.get("split") not in (None, "train", "test"):
            raise _problem(path, n, f"'split' must be 'train' or 'test', got {row['split']!r}")
        family = row.get("family", path.stem)
        if not isinstance(family, str) or not _NAME_RE.match(family):
            raise _problem(path, n, f"'family' must be a name of letters, digits, '_', '.', '-', got {family!r}")
        if row.get("metadata") is not None and not isinstance(row["metadata"], dict):
            raise _problem(path, n, "'metadata' must be an object")
        rows.append({**row, "family": family, "_file": str(path), "_line": n})
    if not rows:
        raise ValueError(f"{path}: no questions")
    return rows


def custom_task_paths(paths: list[str] | tuple[str, ...] | None = None) -> tuple[str, ...]:
    """The recipe's paths followed by those of R1CI_CUSTOM_TASKS (colon-separated), without repeats."""
    out: list[str] = [str(p) for p in (paths or ())]
    out += [p for p in os.environ.get(CUSTOM_ENV, "").split(os.pathsep) if p.strip()]
    return tuple(dict.fromkeys(str(Path(p).expanduser()) for p in out))


def jsonl_families(paths: list[str] | tuple[str, ...]) -> list[JsonlTask]:
    by_family: dict[str, list[dict[str, Any]]] = {}
    for path in paths:
        for row in read_jsonl(path):
            by_family.setdefault(row["family"], []).append(row)
    families = []
    for name, rows in by_family.items():
        splits = {r["split"] for r in rows if r.get("split")}
        if len(splits) > 1:
            where = ", ".join(f"{r['_file']}:{r['_line']}" for r in rows if r.get("split"))
            raise ValueError(f"custom family {name!r} declares both splits ({where})")
        families.append(JsonlTask(name, rows, splits.pop() if splits else None))
    return families


def entry_point_families() -> tuple[list[Task], dict[str, str]]:
    """Families from the `r1ci.tasks` entry points, and {entry point: error} for those that failed."""
    families: list[Task] = []
    errors: dict[str, str] = {}
    for ep in importlib_metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
            objs = obj if isinstance(obj, (list, tuple)) else [obj]
            for o in objs:
                task = o() if isinstance(o, type) else o
                if not isinstance(task, Task):
                    raise TypeError(f"{o!r} is not a Task subclass or instance")
                if not getattr(task, "source", None):
                    task.source = "custom"
                if not getattr(task, "name", None):
                    raise TypeError(f"{o!r} has no name")
                families.append(task)
        except Exception as e:  # noqa: BLE001 - reported by unavailable_families()
            errors[f"entry point {ep.name} ({ep.value})"] = f"{type(e).__name__}: {e}"
    return families, errors
