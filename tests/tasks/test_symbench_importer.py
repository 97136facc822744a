"""`load_symbench` on small fixtures written in the official release's layouts (not copied from it)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from r1ci_core.tasks.base import extract_answer
from r1ci_core.tasks.symbench import FAMILIES
from r1ci_core.tasks.symbench.importer import family_of, load_symbench, scan_symbench

FIXTURE = Path(__file__).parent / "fixtures" / "symbench" / "dataset_gather"
FAMILY = {cls.name: cls() for cls in FAMILIES}
# families of the release that have no folder in it (generated only)
NOT_IN_RELEASE = {"path_plan", "date_understanding", "web_of_lies", "logical_deduction", "navigation"}


@pytest.fixture(scope="module")
def scanned():
    return scan_symbench(FIXTURE)


def test_every_release_family_is_loaded(scanned):
    items, _ = scanned
    assert {i.family for i in items} == set(FAMILY) - NOT_IN_RELEASE
    for item in items:
        assert item.source == "symbench" and item.question.strip() and item.id
        assert "<<<" in item.question


def test_stored_golds_score_one(scanned):
    items, _ = scanned
    with_gold = [i for i in items if i.answer]
    assert len(with_gold) >= 25
    for item in with_gold:
        assert FAMILY[item.family].score(item.answer, item) == 1.0, (item.family, item.answer)
    # layouts that store no answer are loaded with an empty gold
    assert {i.family for i in items if not i.answer} >= {"blocksworld", "boxlift", "boxnet", "game24", "letters"}


def test_reference_solutions_solve_imported_items(scanned):
    items, _ = scanned

    def run(item):
        src = FAMILY[item.family].reference_solution(item)
        out = subprocess.run([sys.executable, "-c", src], capture_output=True, text=True, timeout=30).stdout
        return item, extract_answer(out)

    with ThreadPoolExecutor(2) as pool:
        for item, answer in pool.map(run, items):
            assert FAMILY[item.family].check(answer, item).score == 1.0, (item.family, answer)


def test_unknown_and_inconsistent_entries_are_reported(scanned, caplog):
    _, skipped = scanned
    text = "\n".join(skipped)
    assert "minesweeper (unknown folder)" in text
    assert "MATH/train/algebra" in text
    assert "constrained_linear_arrangement/sample_1" in text  # a game type we do not model
    assert "logic_puzzle_dataset/sample_1" in text  # stored solution breaks its own rule
    with caplog.at_level(logging.WARNING):
        items = load_symbench(FIXTURE)
    assert len(items) == len(scanned[0])
    assert any("minesweeper" in r.getMessage() for r in caplog.records)
    bad = next(i for i in items if i.family == "logic_puzzle" and "official_answer" in i.metadata)
    assert bad.answer == "" and bad.metadata["official_answer"] == "0 1, 1 0, 0 0"


def test_specific_layouts(scanned):
    items, _ = scanned
    by_family = {}
    for item in items:
        by_family.setdefault(item.family, []).append(item)
    assert sorted(i.metadata["numbers"] for i in by_family["game24"]) == [[1, 3, 4, 6], [4, 4, 6, 8]]
    assert by_family["letters"][0].metadata == {"word": "possibilities", "letter": "s"}
    assert by_family["gsm_hard"][0].answer == repr(21011004.0)
    geometry = {i.answer for i in by_family["math_geometry"]}
    assert geometry == {"12", "\\sqrt{3}"}
    assert FAMILY["math_geometry"].score("1.7320", next(i for i in by_family["math_geometry"] if "sqrt" in i.answer)) == 1.0
    choice = next(i for i in by_family["math_counting_probability"] if "text" in i.answer)
    assert FAMILY["math_counting_probability"].score("\\text{(B)}", choice) == 1.0
    assert FAMILY["math_counting_probability"].score("(A)", choice) == 0.0
    syn = by_family["synthesis_decomposition"][0]
    assert len(syn.metadata["keys"]) == 3 and syn.answer.count(",") == 2  # 5 stored values -> [A, B, X]


def test_folder_names_map_to_families():
    assert family_of("eight_queens_dataset_hard") == "eight_queens"
    assert family_of("eight_queens_dataset_varied_complexity") == "eight_queens"
    assert family_of("number_multiply_varied_complexity") == "number_multiply"
    assert family_of("BoxLift_dataset_SFT") == "boxlift"
    assert family_of("BoxNet1_dataset") == "boxnet"
    assert family_of("2048_dataset") == "game_2048"
    assert family_of("mahjong_pattern_dataset") == "mahjong"
    assert family_of("gsmhardv2.jsonl") == "gsm_hard"
    assert family_of("minesweeper") is None


def test_missing_folder_raises(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError) as err:
        load_symbench(missing)
    message = str(err.value)
    assert str(missing) in message and "dataset_gather" in message and "\n" not in message


def _write_sample(root: Path, folder: str, question: str, solution: str) -> None:
    sample = root / folder / "sample_0"
    sample.mkdir(parents=True)
    (sample / "question.txt").write_text(question)
    (sample / "solution.json").write_text(solution)


def test_malformed_solution_json_names_the_file(tmp_path):
    good = {"numbers": [4, 1, 7], "target": 10, "solution": ["4", "-", "1", "+", "7"], "complexity": 1}
    _write_sample(tmp_path, "combinatorial_calculation", "Given 3 integers ... <<<[1, +, 3]>>>", json.dumps(good))
    assert len(load_symbench(tmp_path)) == 1
    bad = tmp_path / "combinatorial_calculation" / "sample_0" / "solution.json"
    bad.write_text('{"numbers": [4, 1, 7], "target": 10,')  # cut short
    for load in (load_symbench, scan_symbench):
        with pytest.raises(ValueError) as err:
            load(tmp_path)
        message = str(err.value)
        assert str(bad) in message and "not valid JSON" in message and "\n" not in message
    bad.write_bytes(b'{"numbers": [4, 1, 7], "target": "\xff"}')
    with pytest.raises(ValueError, match="solution.json is not UTF-8"):
        load_symbench(tmp_path)


def test_nothing_loaded_is_an_error(tmp_path):
    _write_sample(tmp_path, "combinatorial_calculation", "Given 3 integers ...", json.dumps({"numbers": [1, 2, 3]}))
    (tmp_path / "minesweeper").mkdir()
    _, skipped = scan_symbench(tmp_path)
    assert any("sample_0 (its solution.json has no key 'solution')" in why for why in skipped)
    with pytest.raises(ValueError, match=r"no SymBench instance could be loaded from .* \(2 skipped; first skipped: "):
        load_symbench(tmp_path)


def _solve(item) -> str | None:
    src = FAMILY[item.family].reference_solution(item)
    # 5 s: the sandbox timeout of the tiny recipe
    return extract_answer(subprocess.run([sys.executable, "-c", src], capture_output=True, text=True,
                                         timeout=5).stdout)


def test_blocksworld_task_already_at_its_goal(tmp_path):
    """The release has tasks whose goal is the initial state (goal with fewer stacks, as in 2_3_2_*): the
    official validator refuses an empty plan, so the reference moves a block away and back."""
    task = tmp_path / "Blocksworld_dataset" / "2_3_2_2"
    task.mkdir(parents=True)
    (task / "blocksworld_task.txt").write_text(
        "Initial State:\nstack1: B\nstack2: A\nstack3: \n\nGoal State:\nstack1: B\nstack2: A\n")
    (item,) = load_symbench(tmp_path)
    fam = FAMILY["blocksworld"]
    assert fam.check("", item).score == 0.0  # no move is no answer (as in the release's validator)
    answer = _solve(item)
    assert answer and len(answer.splitlines()) == 2 and fam.check(answer, item).score == 1.0
    assert fam.check("Move A from 2 to 3\nMove A from 3 to 2", item).score == 1.0
    assert fam.check("Move A from 2 to 3", item).score == 0.0


@pytest.mark.parametrize("numbers,target", [
    ([3, 8, 2, 5, 9, 1, 4, 6, 7, 2, 3, 5, 8, 1, 6], 300),
    ([2, 1, 4, 3, 1, 6, 2, 5, 1, 1, 3, 2, 7, 1, 4, 2, 1, 3, 2, 5], 500),
    ([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2], 500),
    ([6, 2, 9, 4, 3, 8], 100),
    ([8, 3, 8, 3], 24),  # needs fractions: 8 / (3 - 8 / 3)
])
def test_combinatorial_calculation_of_many_numbers(tmp_path, numbers, target):
    """The release's varied-complexity folders have 15 numbers (target 300) and 20 (target 500): trying
    every bracketing never finished there; the reference must answer within the sandbox's timeout."""
    listed = ", ".join(map(str, numbers))
    question = (f"Given {len(numbers)} integers between 1 and 9, ... Now the input numbers are: {listed}, "
                f"the target values is: {target}\n Your answer:")
    solution = {"numbers": numbers, "target": target, "solution": [], "complexity": 9}
    _write_sample(tmp_path / "combinatorial_calculation_varied_complexity", "combinatorial_calculation_complexity9",
                  question, json.dumps(solution))
    (item,) = load_symbench(tmp_path)
    assert item.metadata["numbers"] == numbers and item.metadata["target"] == target
    answer = _solve(item)
    assert FAMILY["combinatorial_calculation"].check(answer, item).score == 1.0, answer
