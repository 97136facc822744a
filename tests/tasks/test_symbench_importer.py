"""`load_symbench` on small fixtures written in the official release's layouts (not copied from it)."""

from __future__ import annotations

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
