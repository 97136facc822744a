"""Shared helpers of the SymBench families: answer parsing, verdicts and small numeric tools."""

from __future__ import annotations

import ast
import json
import re
from fractions import Fraction
from typing import Any

from ..base import Item, Task, Verdict

UNPARSEABLE = Verdict(0.0, False)


def verdict(ok: bool) -> Verdict:
    """A parseable answer's verdict: 1.0 when `ok`, else 0.0."""
    return Verdict(1.0 if ok else 0.0, True)


def strip_wrappers(text: str) -> str:
    """Drop surrounding whitespace, quotes and code ticks."""
    return text.strip().strip("`").strip().strip("'\"").strip()


def parse_int(text: str | None) -> int | None:
    """An integer written plainly (commas, spaces and a trailing .0 allowed), else None."""
    if text is None:
        return None
    cleaned = strip_wrappers(text).replace(",", "").replace(" ", "")
    try:
        return int(cleaned)
    except ValueError:
        try:
            value = float(cleaned)
        except ValueError:
            return None
        return int(value) if value.is_integer() else None


def parse_number(text: str | None) -> Fraction | None:
    """A number (int, decimal, fraction a/b, LaTeX \\frac{a}{b}, percent, $ and commas stripped), else None."""
    if text is None:
        return None
    s = strip_wrappers(text)
    boxed = last_boxed(s)
    if boxed is not None:
        s = boxed
    s = s.replace("\\$", "").replace("$", "").replace(",", "").replace("\\!", "").replace(" ", "")
    s = s.replace("\\left", "").replace("\\right", "").replace("^\\circ", "").replace("^{\\circ}", "")
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = re.sub(r"\\text\{[^}]*\}", "", s).rstrip(".").strip()
    if s.endswith("%"):
        s = s[:-1]
    m = re.fullmatch(r"(-?)\\frac\{(-?\d+)\}\{(-?\d+)\}", s) or re.fullmatch(r"(-?)\\frac(\d)(\d)", s)
    if m:
        value = Fraction(int(m.group(2)), int(m.group(3))) if int(m.group(3)) else None
        return -value if value is not None and m.group(1) else value
    m = re.fullmatch(r"(-?\d+)/(-?\d+)", s)
    if m:
        return Fraction(int(m.group(1)), int(m.group(2))) if int(m.group(2)) else None
    try:
        return Fraction(s)
    except (ValueError, ZeroDivisionError):
        return None


def numbers_close(a: Fraction | float, b: Fraction | float, rel: float = 1e-3) -> bool:
    """Equal within relative tolerance `rel` (absolute 1e-9 near zero)."""
    a, b = float(a), float(b)
    return abs(a - b) <= max(rel * max(abs(a), abs(b)), 1e-9)


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} (balanced braces) in `text`, else None."""
    start = text.rfind("\\boxed")
    if start < 0:
        return None
    i = text.find("{", start)
    if i < 0:
        return None
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j]
    return None


def literal(text: str | None) -> Any:
    """`text` as a Python/JSON literal, else None."""
    if text is None:
        return None
    s = strip_wrappers(text) if not text.strip().startswith(("'", '"')) else text.strip()
    for loader in (json.loads, ast.literal_eval):
        try:
            return loader(s)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
    return None


def tokens(text: str | None) -> list[str] | None:
    """The items of a flat list written with commas, spaces, newlines and optional brackets/quotes."""
    if text is None:
        return None
    s = re.sub(r"[\[\]()'\"`]", " ", text)
    parts = [p for p in re.split(r"[,\s;]+", s) if p]
    return parts or None


def int_tokens(text: str | None) -> list[int] | None:
    """The integers of a flat list (see `tokens`), else None when any item is not an integer."""
    parts = tokens(text)
    if parts is None:
        return None
    out = []
    for p in parts:
        v = parse_int(p)
        if v is None:
            return None
        out.append(v)
    return out


def int_grid(text: str | None) -> list[list[int]] | None:
    """A grid of integers written as a nested list or as rows on lines, else None."""
    if text is None:
        return None
    value = literal(text)
    if isinstance(value, (list, tuple)) and value and all(isinstance(r, (list, tuple)) for r in value):
        try:
            return [[int(x) for x in row] for row in value]
        except (TypeError, ValueError):
            return None
    rows = [r for r in re.split(r"\]\s*,?\s*\[|\n", text.strip()) if r.strip(" []")]
    grid = []
    for row in rows:
        nums = int_tokens(row)
        if nums is None:
            return None
        grid.append(nums)
    return grid or None


def letter_grid(text: str | None) -> list[list[str]] | None:
    """A grid of single letters written as a nested list or as rows on lines, else None."""
    if text is None:
        return None
    value = literal(text)
    if isinstance(value, (list, tuple)) and value and all(isinstance(r, (list, tuple)) for r in value):
        return [[str(x).strip() for x in row] for row in value]
    rows = [r for r in re.split(r"\]\s*,?\s*\[|\n", text.strip()) if r.strip(" []")]
    grid = [tokens(r) or [] for r in rows]
    return grid or None


def pairs(text: str | None) -> list[tuple[int, int]] | None:
    """Pairs 'r c, r c, ...' (also '(r, c), ...' or '[[r, c], ...]'), else None."""
    if text is None:
        return None
    nums = re.findall(r"-?\d+", text)
    if not nums or len(nums) % 2 or re.search(r"[^\d\s,;()\[\]\-]", text):
        return None
    vals = [int(x) for x in nums]
    return [(vals[i], vals[i + 1]) for i in range(0, len(vals), 2)]


class SymbenchTask(Task):
    """A SymBench family (shared `source`)."""

    source = "symbench"
    duplicates_bbh = False

    def make(self, question: str, answer: Any, **metadata: Any) -> Item:
        return self.make_item(question, answer, **metadata)
