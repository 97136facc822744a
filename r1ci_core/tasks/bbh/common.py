"""Shared pieces of the BIG-Bench-Hard families: answer kinds, option parsing, the `BBHTask` base."""

from __future__ import annotations

import math
import re
from typing import Any, ClassVar

from ..base import Item, Task, Verdict

CHOICE_SUFFIX = "\n\nAnswer with the option's letter in the format <<<(X)>>>."
ANSWER_SUFFIX = "\n\nGive your final answer in the format <<<answer>>>."
SUFFIXES = (CHOICE_SUFFIX, ANSWER_SUFFIX)
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_OPTION_RE = re.compile(r"^\(([A-Z])\)\s*(.*?)\s*$")
_LETTER_RE = re.compile(r"\(?([A-Z])\)?")


class NoReferenceSolution(ValueError):
    """The family cannot write a program for this item (e.g. an official question it cannot parse)."""


def body(question: str) -> str:
    """The question without the answer-format line the families append."""
    for suffix in SUFFIXES:
        if question.endswith(suffix):
            return question[: -len(suffix)]
    return question


def norm(text: str) -> str:
    """Lowercase, collapse whitespace, strip surrounding quotes and a final period."""
    text = " ".join(str(text).split()).strip().strip("\"'`").strip()
    if text.endswith("."):
        text = text[:-1].strip()
    return text.lower()


def parse_options(question: str) -> list[tuple[str, str]]:
    """The `(A) text` option lines of a question, in order."""
    out = []
    for line in body(question).splitlines():
        m = _OPTION_RE.match(line.strip())
        if m:
            out.append((m.group(1), m.group(2)))
    return out


def gold_letter(options: list[tuple[str, str]], target: str) -> str | None:
    """The option letter a gold `target` stands for.  Official targets are "(X)", except a few whose
    option text holds commas: the official file split that option into consecutive options and gives
    the whole text as the target (movie_recommendation "Monsters, Inc" = "(A) Monsters" + "(B) Inc").
    Such a target stands for the option whose text it is, else for the first option of the run of
    consecutive options that, joined with ", ", spell it; None if neither exists."""
    target = target.strip()
    m = _LETTER_RE.fullmatch(target)
    if m:
        return m.group(1)
    want = norm(target)
    texts = [norm(t) for _, t in options]
    for i in range(len(options)):
        for j in range(i + 1, len(options) + 1):
            if ", ".join(texts[i:j]) == want:
                return options[i][0]
    return None


def render_options(options: list[str]) -> str:
    return "Options:\n" + "\n".join(f"({LETTERS[i]}) {opt}" for i, opt in enumerate(options))


def letter_of(options: list[str], correct: str) -> str:
    return f"({LETTERS[options.index(correct)]})"


def parse_number(text: str) -> float | None:
    text = text.strip().replace(",", "").replace("−", "-")
    try:
        return float(text)
    except ValueError:
        return None


class BBHTask(Task):
    """A BBH family. `task` is the official file stem; answers are judged by `answer_kind`:

    - "choice": the gold is "(X)"; "X", "(X)", "(X) text" or the option's text are accepted;
    - "label": one of `labels` (case-insensitive);
    - "numeric": relative tolerance 1e-3;
    - "text": normalised exact match (`normalise_text`).

    Generated items keep the values the reference program needs in `metadata["values"]`; for an
    imported official item `parse` recovers them from the question or raises `NoReferenceSolution`.
    """

    source = "bbh"
    task: ClassVar[str]
    answer_kind: ClassVar[str] = "text"
    labels: ClassVar[tuple[str, ...]] = ()
    procedural: ClassVar[bool] = True

    def __init__(self) -> None:
        self.name = f"bbh_{self.task}"

    # --- verifier -------------------------------------------------------------------------------
    def normalise_text(self, text: str) -> str:
        return norm(text)

    def check(self, answer: str | None, item: Item) -> Verdict:
        if answer is None or not str(answer).strip():
            return Verdict(0.0, False)
        answer = str(answer).strip()
        kind = self.answer_kind
        if kind == "choice":
            return self._check_choice(answer, item)
        if kind == "label":
            got = norm(answer)
            allowed = {lab.lower() for lab in self.labels}
            if got not in allowed:
                return Verdict(0.0, False)
            return Verdict(1.0 if got == norm(item.answer) else 0.0, True)
        if kind == "numeric":
            got, gold = parse_number(answer), parse_number(item.answer)
            if got is None or gold is None:
                return Verdict(0.0, False)
            return Verdict(1.0 if math.isclose(got, gold, rel_tol=1e-3, abs_tol=1e-9) else 0.0, True)
        return Verdict(1.0 if self.normalise_text(answer) == self.normalise_text(item.answer) else 0.0, True)

    def _check_choice(self, answer: str, item: Item) -> Verdict:
        options = parse_options(item.question)
        gold = gold_letter(options, item.answer)
        text = answer.strip().strip("\"'`").strip()
        if text.endswith("."):
            text = text[:-1].strip()
        named = [L for L, t in options if norm(t) == norm(text)]
        letter = named[0] if len(named) == 1 else None  # a text two options share names neither
        if letter is None:
            m = re.fullmatch(r"\(?([A-Z])\)?(?:\s+.*)?", text, re.DOTALL)
            if m and (len(text) == 1 or text[0] == "(" or text[1] == ")"):
                letter = m.group(1)
        if letter is None:
            if not _LETTER_RE.fullmatch(item.answer.strip()) and norm(text) == norm(item.answer):
                return Verdict(1.0, True)  # an official target given as text, answered with that text
            return Verdict(0.0, False)
        return Verdict(1.0 if letter == gold else 0.0, True)

    # --- reference solution -------------------------------------------------------------------
    def parse(self, question: str) -> dict[str, Any]:
        """Values of an official question (overridden where the wording is formulaic)."""
        raise NoReferenceSolution(f"{self.name}: cannot derive the values of this question")

    def values(self, item: Item) -> dict[str, Any]:
        if "values" in item.metadata:
            return item.metadata["values"]
        return self.parse(body(item.question))

    def program(self, values: dict[str, Any]) -> str:
        raise NotImplementedError

    def reference_solution(self, item: Item) -> str:
        return self.program(self.values(item))

    def can_solve(self, item: Item) -> bool:
        """Whether `reference_solution(item)` can write a program for this item."""
        try:
            self.values(item)
        except NoReferenceSolution:
            return False
        return True

    # --- helpers --------------------------------------------------------------------------------
    def item(self, text: str, answer: Any, values: dict[str, Any]) -> Item:
        suffix = CHOICE_SUFFIX if self.answer_kind == "choice" else ANSWER_SUFFIX
        return self.make_item(text + suffix, answer, values=values)
