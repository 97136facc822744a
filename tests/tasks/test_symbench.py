"""Every SymBench family: deterministic generation, reference solutions that verify, wrong/unparseable answers."""

from __future__ import annotations

import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from r1ci_core.tasks.base import Item, Task, extract_answer
from r1ci_core.tasks.symbench import FAMILIES

N_SOLVED = 20
TIMEOUT_S = 20


def _run(src: str) -> str:
    """stdout of `src` run as a fresh interpreter (plain subprocess: independent of the sandbox's state)."""
    try:
        proc = subprocess.run([sys.executable, "-c", src], capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return ""
    return proc.stdout


def _bump(ch: str, pool: str) -> str:
    if ch.isdigit():
        others = sorted(set(c for c in pool if c.isdigit()) - {ch})
        return others[0] if others else str((int(ch) + 1) % 10)
    others = sorted(set(c for c in pool if c.isalpha() and c.isupper() == ch.isupper()) - {ch})
    return others[0] if others else chr((ord(ch.lower()) - 96) % 26 + 97)


def mutate(answer: str) -> str:
    """`answer` with its last letter or digit changed (a parseable, almost surely wrong answer)."""
    for i in range(len(answer) - 1, -1, -1):
        if answer[i].isalnum():
            return answer[:i] + _bump(answer[i], answer) + answer[i + 1 :]
    raise ValueError(f"cannot mutate {answer!r}")


# family -> a parseable wrong answer for an item, where changing the last character is not enough
WRONG = {
    "eight_queens": lambda it: ", ".join(f"{r} 0" for r in range(len(it.metadata["initial_board"]))),
    "logic_puzzle": lambda it: ", ".join(["0 0"] * it.metadata["count"]),
    "constrained_linear_arrangement": lambda it: ",".join(["A"] * len(it.metadata["results"])),
    "permutations_and_combinations": lambda it: str(it.metadata["items"][:-1]),
    "game24": lambda it: "+".join(map(str, it.metadata["numbers"])) + "+1",
    "combinatorial_calculation": lambda it: "[" + ", +, ".join(map(str, it.metadata["numbers"])) + ", +, 1]",
    "logical_equation": lambda it: str(sorted(it.metadata["values"])[::-1]) if sorted(it.metadata["values"])[::-1]
    != [int(x) for x in re.findall(r"-?\d+", it.answer)] else str(sorted(it.metadata["values"])),
    "standard_sudoku": lambda it: str([[1] * 9] * 9),
    "letter_logic_diagram": lambda it: "\n".join([",".join("abcdefg")] * 7),
    "boxlift": lambda it: "Step 1: []",
    "boxnet": lambda it: "[]",
    "path_plan": lambda it: "[(9.0, 9.0)]",
    "blocksworld": lambda it: "Move Z from stack1 to stack2",
    "gsm_hard": lambda it: str(float(it.answer) * 2 + 1),
    "math_geometry": lambda it: it.answer + "+1",
    "math_counting_probability": lambda it: it.answer + "+1",
    "web_of_lies": lambda it: "No" if it.answer == "Yes" else "Yes",
    "navigation": lambda it: "No" if it.answer == "Yes" else "Yes",
    "date_understanding": lambda it: "(A)" if it.answer != "(A)" else "(B)",
    "logical_deduction": lambda it: "(A)" if it.answer != "(A)" else "(B)",
}


def wrong_answer(family: Task, item: Item) -> str:
    return WRONG[family.name](item) if family.name in WRONG else mutate(item.answer)


@pytest.fixture(params=FAMILIES, ids=lambda cls: cls.name)
def family(request) -> Task:
    return request.param()


def test_families_are_named_and_unique():
    names = [cls.name for cls in FAMILIES]
    assert len(names) == len(set(names))
    for cls in FAMILIES:
        assert re.fullmatch(r"[a-z0-9_]+", cls.name) and cls.source == "symbench" and cls.description


def test_generation_is_deterministic(family: Task):
    a = family.generate(6, seed=3)
    b = family.generate(6, seed=3)
    c = family.generate(6, seed=4)
    assert [(i.question, i.answer, i.metadata) for i in a] == [(i.question, i.answer, i.metadata) for i in b]
    assert [i.question for i in a] != [i.question for i in c]
    for item in a:
        assert item.family == family.name and item.source == "symbench"
        assert "<<<" in item.question and ">>>" in item.question
        assert Item.from_row(item.to_row()).metadata == item.metadata  # JSON-serialisable metadata


def test_reference_solutions_verify(family: Task):
    items = family.generate(N_SOLVED, seed=11)
    assert len(items) == N_SOLVED
    sources = [family.reference_solution(item) for item in items]
    with ThreadPoolExecutor(2) as pool:
        outputs = list(pool.map(_run, sources))
    for item, src, out in zip(items, sources, outputs, strict=True):
        answer = extract_answer(out)
        verdict = family.check(answer, item)
        assert verdict.score == 1.0, f"{family.name}: {answer!r} vs gold {item.answer!r}\n{src}"
        assert family.score(item.answer, item) == 1.0, f"{family.name}: gold fails {item.answer!r}"


def test_wrong_and_unparseable_answers(family: Task):
    for item in family.generate(5, seed=7):
        wrong = family.check(wrong_answer(family, item), item)
        assert wrong.parseable and wrong.score == 0.0, (family.name, wrong_answer(family, item), item.answer)
        assert family.check(None, item) == family.check("???", item)
        assert not family.check(None, item).parseable and family.check(None, item).score == 0.0
