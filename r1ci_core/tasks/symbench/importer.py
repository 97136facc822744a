"""`load_symbench`: read the official SymBench release (`dataset_gather/`) into `Item`s of our families.

Each official instance becomes an `Item` with the official question text, the stored gold answer (or "" where the
release stores none) and the metadata our verifier and reference solution need, parsed from its files. Folders we
do not know, and instances whose files we cannot parse consistently (the parsed puzzle must reproduce the stored
gold with our rules), are skipped and reported, never guessed.
"""

from __future__ import annotations

import csv
import json
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..base import Item
from . import FAMILIES
from ._common import last_boxed
from .arith import evaluate_ops
from .constraints import parse_pc_constraints
from .grids import MatrixTransformation, reversi_play, rotate
from .planning import blocksworld_prompt, boxlift_greedy, boxlift_prompt, boxnet_prompt, parse_blocksworld
from .strings import (
    DELETION_BY_TEXT,
    SPLIT_METHODS,
    SPLIT_TEXT,
    Letters,
    crypt_candidates,
    mahjong_result,
    parse_crypt_feedback,
    parse_syndecom,
    parse_synth_method,
    run_cycle,
    run_deletion,
    run_synthesis,
)

log = logging.getLogger(__name__)

HINT = ("get the official SymBench release (the dataset_gather/ folder of the CodeSteer-v1.0 repository) and pass "
        "the path of that folder")

# top-level folder (or file) name pattern -> family
FOLDERS: list[tuple[str, str]] = [
    (r"2048_dataset.*", "game_2048"), (r"Blocksworld_dataset.*", "blocksworld"), (r"BoxLift_dataset.*", "boxlift"),
    (r"BoxNet1?_dataset.*", "boxnet"), (r"Letters.*", "letters"), (r"MATH", "MATH"),
    (r"combinatorial_calculation.*", "combinatorial_calculation"),
    (r"constrained_linear_arrangement.*", "constrained_linear_arrangement"), (r"cryptanalysis.*", "cryptanalysis"),
    (r"eight_queens_dataset.*", "eight_queens"), (r"game24_dataset.*", "game24"), (r"gsm.*\.jsonl", "gsm_hard"),
    (r"letter_logic_diagram.*", "letter_logic_diagram"), (r"light_puzzles_dataset.*", "light_puzzles"),
    (r"logic_puzzle_dataset.*", "logic_puzzle"), (r"logical_equation.*", "logical_equation"),
    (r"mahjong_pattern_dataset.*", "mahjong"), (r"matrix_transformation_dataset.*", "matrix_transformation"),
    (r"new_operator_dataset.*", "new_operator"), (r"number_multiply.*", "number_multiply"),
    (r"pattern_recognition.*", "pattern_recognition"),
    (r"permutations_and_combinations.*", "permutations_and_combinations"), (r"pooling_dataset.*", "pooling"),
    (r"reversi_dataset.*", "reversi"), (r"standard_sudoku.*", "standard_sudoku"),
    (r"statistical_counting_dataset.*", "statistical_counting"),
    (r"string_deletion_and_modification.*", "string_deletion_and_modification"),
    (r"string_insertion.*", "string_insertion"), (r"string_splitting.*", "string_splitting"),
    (r"string_synthesis.*", "string_synthesis"), (r"synthesis_decomposition_dataset.*", "synthesis_decomposition"),
]
MATH_SUBJECTS = {"geometry": "math_geometry", "counting_and_probability": "math_counting_probability"}

Parsed = tuple[str, str, dict[str, Any]]  # question, gold answer ("" if none), metadata


class Skip(ValueError):
    """An instance that cannot be read consistently (reported, not loaded)."""


class MalformedFile(ValueError):
    """A release file that is not valid JSON / UTF-8: a damaged copy, never skipped (loading stops)."""


def _json(path: Path, text: str | None = None, where: str = "") -> Any:
    """`path`'s JSON (or `text`, a line of it); a damaged file raises MalformedFile naming it."""
    try:
        return json.loads(path.read_text(encoding="utf-8") if text is None else text)
    except UnicodeDecodeError as exc:
        raise MalformedFile(f"{path}{where} is not UTF-8 text ({exc.reason} at byte {exc.start}): "
                            "copy that file again from the SymBench release, or delete its instance") from None
    except json.JSONDecodeError as exc:
        raise MalformedFile(f"{path}{where} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}): "
                            "copy that file again from the SymBench release, or delete its instance") from None


def family_of(name: str) -> str | None:
    for pattern, family in FOLDERS:
        if re.fullmatch(pattern, name):
            return family
    return None


def _ensure(cond: bool, why: str) -> None:
    if not cond:
        raise Skip(why)


def _with_format(question: str, line: str) -> str:
    return question if "<<<" in question else question.rstrip() + "\n" + line


# ---------------------------------------------------------------- per-family parsers of `sample_*` folders
def _p_2048(q: str, s: dict) -> Parsed:
    return q, s["solution"], {"grid": s["grid"], "moves": s["moves"], "start_pos": s["start_pos"]}


def _p_combi(q: str, s: dict) -> Parsed:
    return q, "[" + ", ".join(map(str, s["solution"])) + "]", {"numbers": s["numbers"], "target": s["target"]}


def _p_constrained(q: str, s: dict) -> Parsed:
    _ensure(s.get("game_type") == "animal", f"game type {s.get('game_type')!r} (only the animal game is supported)")
    return q, ",".join(s["solution"]), {"game_type": "animal", "player_moves": s["player_moves"],
                                         "results": s["results"]}


def _p_crypt(q: str, s: dict) -> Parsed:
    guesses = []
    for g, fb in re.findall(r"Guess: (\w{4}), Feedback: (.*)", q):
        parsed = parse_crypt_feedback(fb)
        _ensure(parsed is not None, f"feedback not understood: {fb!r}")
        guesses.append([g, *parsed])
    answer = [str(x) for x in s["answer"]]
    _ensure(bool(guesses) and crypt_candidates(guesses) == ["".join(answer)], "guesses do not single out the gold")
    return q, str(answer).replace("'", '"'), {"guesses": guesses}


def _p_queens(q: str, s: dict) -> Parsed:
    board = s["initial_board"]
    return q, ", ".join(f"{r} {c}" for r, c in s["solution"]), {
        "initial_board": board, "board_size": len(board), "blocked_positions": s.get("blocked_positions", []),
        "placed_queens": s.get("placed_queens", [])}


def _p_lld(q: str, s: dict) -> Parsed:
    return q, "\n".join(",".join(r) for r in s["solution"]), {"grid": s["grid"]}


def _p_light(q: str, s: dict) -> Parsed:
    buttons = {b: [[int(r), int(c)] for r, c in cells] for b, cells in s["buttons"].items()}
    return q, ",".join(map(str, s["solution"])), {"n": s["n"], "initial_state": s["initial_state"],
                                                   "buttons": buttons, "operations": s["operations"]}


def _p_logic(q: str, s: dict) -> Parsed:
    m = re.search(r"\((\d+),\s*(\d+)\)\s*as the first selected number", q)
    first = [int(m.group(1)), int(m.group(2))] if m else list(s["solution"][0])
    return q, ", ".join(f"{r} {c}" for r, c in s["solution"]), {
        "grid": s["grid"], "count": len(s["solution"]), "first": first, "constraints": s["constraints"]}


def _p_logical_eq(q: str, s: Any) -> Parsed:
    m = re.search(r"There are (\d+) letters ([A-Z, ]+), each representing one of the numbers ([\d, ]+)\.", q)
    _ensure(m is not None, "letters and values not found")
    letters = "".join(re.findall(r"[A-Z]", m.group(2)))
    values = [int(v) for v in re.findall(r"\d+", m.group(3))]
    constraints = re.findall(r"^\d+\. (.+)$", q, re.MULTILINE)
    gold = s if isinstance(s, list) else s.get("solution")
    return q, str(list(gold)), {"letters": letters, "values": values, "constraints": constraints}


def _p_mahjong(q: str, s: dict) -> Parsed:
    rounds = [[r["add"], r.get("remove")] for r in s["rounds"]]
    rounds[-1][1] = None  # the final round only adds a card
    _ensure(mahjong_result(s["initial_cards"], rounds) == int(s["solution"]), "rules beyond Peng/Pass")
    return q, str(s["solution"]), {"initial_cards": s["initial_cards"], "rounds": rounds}


def _p_matrix(q: str, s: dict) -> Parsed:
    gold = s["formatted_solution"].replace(" ", "")
    degrees = next((d for d in (90, 180, 270) if MatrixTransformation.flat(rotate(s["matrix"], d)) == gold), None)
    _ensure(degrees is not None, "not a rotation")
    return q, gold, {"matrix": s["matrix"], "degrees": degrees}


def _p_newop(q: str, s: dict) -> Parsed:
    m = re.search(r"Calculate (.+?)\.?\s*\n", q)
    _ensure(m is not None, "expression not found")
    expr, defs = m.group(1).strip(), s["operator_definitions"]
    try:
        value = evaluate_ops(expr, defs)
    except Exception as exc:  # noqa: BLE001 - unknown syntax in an official definition
        raise Skip(f"cannot evaluate {expr!r}: {exc}") from exc
    _ensure(abs(value - float(s["solution"])) <= 1e-6 * max(1.0, abs(value)), "operator semantics differ")
    return q, str(s["solution"]), {"operator_definitions": defs, "expression": expr}


def _p_pattern(q: str, s: dict) -> Parsed:
    body = q.split("If the matrix is", 1)[-1].split("Please provide", 1)[0]
    rows = ["".join(line.split()) for line in body.strip().splitlines() if line.strip()]
    _ensure(bool(rows) and len({len(r) for r in rows}) == 1, "matrix not found")
    return q, f"[{s['row']}, {s['column']}]", {"matrix": rows, "row": s["row"], "column": s["column"]}


def _p_perm(q: str, s: dict) -> Parsed:
    cons = parse_pc_constraints(s["constraints_text"])
    _ensure(cons is not None, "unknown constraint wording")
    return q, str(list(s["correct_solution"])).replace("'", '"'), {
        "items": s["items"], "constraints": cons, "constraints_text": s["constraints_text"]}


def _p_pooling(q: str, s: dict) -> Parsed:
    _ensure(s.get("pooling_type", "max") == "max", f"pooling type {s.get('pooling_type')!r}")
    return q, ",".join(str(x) for r in s["solution"] for x in r), {
        "matrix": s["matrix"], "window_size": s["window_size"], "pooling_type": "max"}


def _p_reversi(q: str, s: dict) -> Parsed:
    body = q.split("The previous round of the game was:", 1)[-1].strip().split("\n\n")[0]
    board = [line.strip() for line in body.splitlines() if line.strip()]
    you = "0" if re.search(r"you play black", q) else "1"
    other = "1" if you == "0" else "0"
    moves = [[int(r), int(c), you if who.startswith("Your") else other]
             for who, r, c in re.findall(r"Round \d+: (Your's|The opponent's) landing position is \((\d+),\s*(\d+)\)", q)]
    _ensure(bool(board) and bool(moves), "board or moves not found")
    got = ",".join(x for r in reversi_play(board, moves) for x in r)
    _ensure(got == s["solution"].replace(" ", ""), "moves do not reproduce the gold board")
    return q, s["solution"], {"board": board, "moves": moves, "board_size": len(board)}


def _p_sudoku(q: str, s: dict) -> Parsed:
    return q, str(s["solution"]), {"puzzle": s["puzzle"]}


def _p_stat(q: str, s: dict) -> Parsed:
    return q, str(s["solution"]), {"sequence": s["sequence"], "rules": s["rules"]}


def _p_deletion(q: str, s: dict) -> Parsed:
    ids = [DELETION_BY_TEXT.get(t) for t in s["selected_rules"]]
    _ensure(None not in ids, "unknown rule text")
    _ensure(run_deletion(s["initial_string"], ids) == s["final_string"], "rules do not reproduce the gold")
    return q, s["final_string"], {"initial_string": s["initial_string"], "rule_ids": ids,
                                  "selected_rules": s["selected_rules"]}


def _p_insertion(q: str, s: dict) -> Parsed:
    return q, s["modified_string"], {"original_string": s["original_string"]}


def _p_splitting(q: str, s: dict) -> Parsed:
    m = re.search(r"(\d+) units? of Machine A, (\d+) units? of Machine B, and (\d+) units? of Machine C", q)
    _ensure(m is not None and all(line in q for line in SPLIT_TEXT.splitlines()), "unknown methods or counts")
    a, b, c = (int(x) for x in m.groups())
    final = run_cycle({"A": a, "B": b, "C": c}, [list(x) for x in SPLIT_METHODS])
    gold = [str(x) for x in s["expected_answer"]]
    _ensure([str(final.get(k, 0)) for k in "ABCXYZ"] == gold, "methods do not reproduce the gold")
    return q, str(gold).replace("'", '"'), {"initial": [a, b, c]}


def _p_synthesis(q: str, s: dict) -> Parsed:
    methods = []
    for line in re.findall(r"^\d+\. (.*can be combined to form.*)$", q, re.MULTILINE):
        parsed = parse_synth_method(line)
        _ensure(parsed is not None, f"method not understood: {line!r}")
        methods.append(list(parsed))
    a, b, c = s["A_count"], s["B_count"], s["C_count"]
    order = ["[A]", "[B]", "[C]", "{A}", "{B}", "{C}", "(A)", "(B)", "(C)"]
    final = run_synthesis({"[A]": a, "[B]": b, "[C]": c}, methods)
    _ensure(bool(methods) and [final.get(k, 0) for k in order] == list(s["final_counts"]), "rules differ")
    return q, " ".join(map(str, s["final_counts"])), {"counts": [a, b, c], "methods": methods}


def _p_syndecom(q: str, s: dict) -> Parsed:
    parsed = parse_syndecom(q)
    _ensure(parsed is not None, "methods not found")
    initial, methods, keys = parsed
    stored = dict(zip("ABCXY", s["solution"]["answer"], strict=False))
    gold = [int(stored[k]) for k in keys]
    final = run_cycle(initial, methods)
    _ensure([final.get(k, 0) for k in keys] == gold, "methods do not reproduce the gold")
    return q, "[" + ", ".join(map(str, gold)) + "]", {"initial": initial, "methods": methods, "keys": keys}


SAMPLE_PARSERS: dict[str, Callable[[str, Any], Parsed]] = {
    "game_2048": _p_2048, "combinatorial_calculation": _p_combi, "constrained_linear_arrangement": _p_constrained,
    "cryptanalysis": _p_crypt, "eight_queens": _p_queens, "letter_logic_diagram": _p_lld,
    "light_puzzles": _p_light, "logic_puzzle": _p_logic, "logical_equation": _p_logical_eq, "mahjong": _p_mahjong,
    "matrix_transformation": _p_matrix, "new_operator": _p_newop, "pattern_recognition": _p_pattern,
    "permutations_and_combinations": _p_perm, "pooling": _p_pooling, "reversi": _p_reversi,
    "standard_sudoku": _p_sudoku, "statistical_counting": _p_stat, "string_deletion_and_modification": _p_deletion,
    "string_insertion": _p_insertion, "string_splitting": _p_splitting, "string_synthesis": _p_synthesis,
    "synthesis_decomposition": _p_syndecom,
}


def _sort_key(p: Path) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(p))]


# ---------------------------------------------------------------- folders with their own layouts
def _read_number_multiply(root: Path) -> list[tuple[str, Parsed]]:
    out = []
    for pfile in sorted(root.rglob("input_prompt_1.txt"), key=_sort_key):
        nums = _json(pfile.with_name("input_value_list.txt"))
        gold = pfile.with_name("target_answer.txt").read_text().strip()
        question = _with_format(pfile.read_text(encoding="utf-8"), "Return the answer with the format <<<number>>>.")
        out.append((str(pfile.parent), (question, gold, {"numbers": nums})))
    return out


def _read_blocksworld(root: Path) -> list[tuple[str, Parsed]]:
    out = []
    for f in sorted(root.rglob("blocksworld_task.txt"), key=_sort_key):
        initial, goal = parse_blocksworld(f.read_text(encoding="utf-8"))
        out.append((str(f.parent), (blocksworld_prompt(initial, goal), "",
                                    {"initial_state": initial, "goal_state": goal})))
    return out


def _read_boxlift(root: Path) -> list[tuple[str, Parsed]]:
    out = []
    for f in sorted(root.rglob("BoxLift.json"), key=_sort_key):
        d = _json(f)
        steps = len(boxlift_greedy(d["boxes"], d["lifters"]))
        out.append((str(f.parent), (boxlift_prompt(d["boxes"], d["lifters"], steps), "",
                                    {"boxes": d["boxes"], "lifters": d["lifters"], "estimated_steps": steps})))
    return out


def _read_boxnet(root: Path) -> list[tuple[str, Parsed]]:
    out = []
    for f in sorted(root.rglob("pg_state*.json"), key=_sort_key):
        cells = _json(f)
        rows = int(max(float(k.split("_")[0]) for k in cells) + 0.5)
        cols = int(max(float(k.split("_")[1]) for k in cells) + 0.5)
        for i in range(rows):
            for j in range(cols):
                cells.setdefault(f"{i + 0.5}_{j + 0.5}", [])
        out.append((str(f.parent), (boxnet_prompt(rows, cols, cells), "", {"rows": rows, "cols": cols, "cells": cells})))
    return out


def _read_letters(root: Path) -> list[tuple[str, Parsed]]:
    out = []
    for f in sorted(root.rglob("test_words.json"), key=_sort_key):
        m = re.fullmatch(r"([a-z])_\d+_\d+", f.parent.name)
        if not m:
            raise Skip(f"{f.parent}: letter folder name not understood")
        word = _json(f)
        word = word[0] if isinstance(word, list) else word
        out.append((str(f.parent), (Letters.question(word, m.group(1)), "", {"word": word, "letter": m.group(1)})))
    return out


def _read_game24(root: Path) -> list[tuple[str, Parsed]]:
    out = []
    for f in sorted(root.rglob("*.csv"), key=_sort_key):
        with f.open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                nums = [int(x) for x in row["Puzzles"].split()]
                listed = ", ".join(map(str, nums))
                question = (f"Use the numbers {listed} exactly once each, with + - * / and parentheses, to make 24.\n"
                            "Return the expression with the format <<<expression>>>.")
                out.append((f"{f}:{row.get('Rank', '')}", (question, "", {"numbers": nums})))
    return out


def _read_gsm(path: Path) -> list[tuple[str, Parsed]]:
    out = []
    for k, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        if not line.strip():
            continue
        d = _json(path, line, f" line {k + 1}")
        question = d["input"] + "\nReturn your final answer as a number with the format <<<answer>>>."
        out.append((f"{path}:{k + 1}", (question, repr(float(d["target"])), {"code": d["code"]})))
    return out


def _read_math(root: Path, skipped: list[str]) -> list[tuple[str, str, Parsed]]:
    out = []
    for subject_dir in sorted(p for p in root.rglob("*") if p.is_dir() and not any(p.glob("*/"))):
        family = MATH_SUBJECTS.get(subject_dir.name)
        if family is None:
            if any(subject_dir.glob("*.json")):
                skipped.append(f"{subject_dir} (MATH subject not in SymBench)")
            continue
        for f in sorted(subject_dir.glob("*.json"), key=_sort_key):
            d = _json(f)
            boxed = last_boxed(d["solution"]) or ""
            question = d["problem"] + "\nReturn your final answer in LaTeX with the format <<<answer>>>."
            md = {"solution": d["solution"], "level": d.get("level", ""), "type": d.get("type", ""), "boxed": boxed,
                  "trivial_reference": True}  # no program derives an arbitrary MATH answer
            out.append((family, str(f), (question, boxed, md)))
    return out


def scan_symbench(folder: str | Path) -> tuple[list[Item], list[str]]:
    """(items, skipped) for an official `dataset_gather/` folder; `skipped` names what was not loaded and why."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"SymBench folder not found: {root} ({HINT})")
    families = {cls.name: cls() for cls in FAMILIES}
    items: list[Item] = []
    skipped: list[str] = []
    for entry in sorted(root.iterdir(), key=_sort_key):
        family = family_of(entry.name)
        if family is None:
            skipped.append(f"{entry} (unknown folder)")
            continue
        try:
            if family == "MATH":
                found = [(fam, where, parsed) for fam, where, parsed in _read_math(entry, skipped)]
            else:
                reader = {"number_multiply": _read_number_multiply, "blocksworld": _read_blocksworld,
                          "boxlift": _read_boxlift, "boxnet": _read_boxnet, "letters": _read_letters,
                          "game24": _read_game24, "gsm_hard": _read_gsm}.get(family)
                pairs = reader(entry) if reader else _read_samples_safe(entry, family, skipped)
                found = [(family, where, parsed) for where, parsed in pairs]
        except MalformedFile:
            raise
        except (Skip, OSError, ValueError, KeyError, TypeError) as exc:
            skipped.append(f"{entry} ({exc})")
            continue
        for fam_name, where, (question, answer, md) in found:
            fam = families[fam_name]
            item = Item(family=fam_name, source="symbench", question=question, answer=answer, metadata=md)
            if answer and fam.check(answer, item).score != 1.0:
                skipped.append(f"{where} (the stored answer {answer!r} fails our checker; loaded without a gold)")
                item.metadata = {**md, "official_answer": answer}
                item.answer = ""
            items.append(item)
    return items, skipped


def _read_samples_safe(root: Path, family: str, skipped: list[str]) -> list[tuple[str, Parsed]]:
    """Like `_read_samples`, but an unreadable sample is reported and the others are kept."""
    out = []
    for qfile in sorted(root.rglob("question.txt"), key=_sort_key):
        try:
            out += _read_samples_one(qfile, family)
        except MalformedFile:
            raise
        except KeyError as exc:
            skipped.append(f"{qfile.parent} (its solution.json has no key {exc})")
        except (Skip, OSError, ValueError, TypeError, IndexError) as exc:
            skipped.append(f"{qfile.parent} ({exc})")
    return out


def _read_samples_one(qfile: Path, family: str) -> list[tuple[str, Parsed]]:
    sfile = qfile.with_name("solution.json")
    if not sfile.exists():
        raise Skip("solution.json missing")
    question = qfile.read_text(encoding="utf-8")
    return [(str(qfile.parent), SAMPLE_PARSERS[family](question, _json(sfile)))]


def load_symbench(folder: str | Path) -> list[Item]:
    """Items of the official SymBench release at `folder` (its `dataset_gather/`); what is skipped is logged.

    Raises MalformedFile (a ValueError) naming a damaged file, and ValueError when nothing could be loaded."""
    items, skipped = scan_symbench(folder)
    for why in skipped:
        log.warning("symbench: skipped %s", why)
    if not items:
        first = f"; first skipped: {skipped[0]}" if skipped else ""
        raise ValueError(f"no SymBench instance could be loaded from {folder} ({len(skipped)} skipped{first}): {HINT}")
    return items

