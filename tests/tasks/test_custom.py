"""Custom families: JSONL files and `r1ci.tasks` entry points."""

from __future__ import annotations

import json
import textwrap

import pytest

from r1ci_core.tasks import clear_registry_cache, registry, unavailable_families
from r1ci_core.tasks.base import extract_answer, run_programs
from r1ci_core.tasks.custom import entry_point_families, jsonl_families, read_jsonl

ROWS = [
    {"question": "What is 6 * 7?", "answer": "42", "scorer": "numeric"},
    {"question": "Pi to two decimals?", "answer": 3.14, "scorer": "numeric", "tolerance": 0.01},
    {"question": "Capital of France?", "answer": "Paris", "scorer": "exact"},
    {"question": "Primes below 10?", "answer": ["2", "3", "5", "7"], "scorer": "set"},
    {"question": "A date in ISO form?", "answer": r"\d{4}-\d{2}-\d{2}", "scorer": "regex",
     "example_answer": "2024-01-31"},
    {"question": "Square of 12?", "answer": "144", "scorer": "numeric",
     "solution": "print(f'<<<{12 ** 2}>>>')"},
]


def _write(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


@pytest.fixture
def clean_registry():
    clear_registry_cache()
    yield
    clear_registry_cache()


def test_jsonl_family_in_registry(tmp_path, clean_registry):
    path = _write(tmp_path / "my_quiz.jsonl", ROWS)
    fams = registry(custom_tasks=[str(path)])
    fam = fams["my_quiz"]
    assert fam.source == "custom" and fam.split in ("train", "test") and fam.trivial_reference
    items = fam.generate(10, seed=1)
    assert len(items) == len(ROWS)
    assert [i.id for i in items] == [i.id for i in fam.generate(10, seed=1)]
    outputs = run_programs([fam.reference_solution(i) for i in items])
    for item, out in zip(items, outputs, strict=True):
        assert fam.score(extract_answer(out), item) == 1.0, (item.question, out)


def test_scorers(tmp_path):
    (fam,) = jsonl_families([str(_write(tmp_path / "q.jsonl", ROWS))])
    by_q = {i.question: i for i in fam.items()}
    num, pi, cap, primes, date, _ = (by_q[r["question"]] for r in ROWS)
    assert fam.score("42.0", num) == 1.0 and fam.score("43", num) == 0.0
    assert not fam.check("forty-two", num).parseable and not fam.check(None, num).parseable
    assert fam.score("3.15", pi) == 1.0 and fam.score("3.3", pi) == 0.0
    assert fam.score("  paris ", cap) == 1.0 and fam.score("Lyon", cap) == 0.0
    assert fam.score("7, 5, 3, 2", primes) == 1.0 and fam.score('["2","3","5","7"]', primes) == 1.0
    assert fam.score("2, 3, 5", primes) == 0.0
    assert fam.score("2023-12-01", date) == 1.0 and fam.score("Dec 1", date) == 0.0


def test_env_var_and_split_declared(tmp_path, monkeypatch, clean_registry):
    a = _write(tmp_path / "a.jsonl", [{**ROWS[0], "family": "alpha", "split": "test"}, {**ROWS[2], "family": "alpha"}])
    b = _write(tmp_path / "b.jsonl", [ROWS[2]])
    monkeypatch.setenv("R1CI_CUSTOM_TASKS", f"{a}:{b}")
    fams = registry()
    assert fams["alpha"].split == "test" and fams["alpha"].source == "custom" and "b" in fams
    assert len(fams["alpha"].generate(5, seed=0)) == 2


@pytest.mark.parametrize(("line", "problem"), [
    ("{not json", "not valid JSON"),
    ('["a"]', "JSON object"),
    ('{"question": "q", "scorer": "exact"}', "missing 'answer'"),
    ('{"question": "q", "answer": "a", "scorer": "fuzzy"}', "'scorer' must be one of"),
    ('{"question": "q", "answer": "abc", "scorer": "numeric"}', "not a number"),
    ('{"question": "q", "answer": "(", "scorer": "regex"}', "not a valid regex"),
    ('{"question": "q", "answer": "1", "scorer": "numeric", "tolerance": "big"}', "tolerance"),
    ('{"question": "q", "answer": "a", "scorer": "exact", "split": "dev"}', "'split'"),
    ('{"question": "q", "answer": "a", "scorer": "exact", "scorrer": 1}', "unknown keys"),
    ('{"question": "", "answer": "a", "scorer": "exact"}', "non-empty"),
])
def test_malformed_jsonl_names_file_line_and_problem(tmp_path, line, problem):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n\n" + line + "\n")
    with pytest.raises(ValueError) as err:
        read_jsonl(path)
    assert f"{path}:3:" in str(err.value) and problem in str(err.value)


def test_missing_jsonl_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.jsonl"):
        read_jsonl(tmp_path / "nothere.jsonl")


def _install_plugin(tmp_path, monkeypatch, target: str):
    pkg = tmp_path / "r1ci_plugin_demo.py"
    pkg.write_text(textwrap.dedent('''
        import random
        from r1ci_core.tasks.base import Task, Verdict

        class Parity(Task):
            name = "plugin_parity"
            source = "custom"
            description = "Is a number even?"

            def _generate_one(self, rng: random.Random):
                n = rng.randint(0, 10**6)
                return self.make_item(f"Is {n} even? Answer yes or no as <<<answer>>>.",
                                      "yes" if n % 2 == 0 else "no", n=n)

            def check(self, answer, item):
                if answer is None or answer.strip().lower() not in ("yes", "no"):
                    return Verdict(0.0, False)
                return Verdict(float(answer.strip().lower() == item.answer), True)

            def reference_solution(self, item):
                return f"n = {item.metadata['n']}\\nprint('<<<' + ('yes' if n % 2 == 0 else 'no') + '>>>')\\n"

        class OwnSource(Parity):
            name = "plugin_own_source"
            source = "myorg"

        class Broken:
            pass
    '''))
    dist = tmp_path / "r1ci_plugin_demo-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: r1ci-plugin-demo\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[r1ci.tasks]\n{target}\n")
    monkeypatch.syspath_prepend(str(tmp_path))


def test_entry_point_task(tmp_path, monkeypatch, clean_registry):
    _install_plugin(tmp_path, monkeypatch, "parity = r1ci_plugin_demo:Parity\nown = r1ci_plugin_demo:OwnSource")
    fams = registry()
    fam = fams["plugin_parity"]
    assert fam.source == "custom" and fam.split in ("train", "test")
    assert fams["plugin_own_source"].source == "myorg"
    items = fam.generate(20, seed=4)
    assert [i.id for i in items] == [i.id for i in fam.generate(20, seed=4)]
    outputs = run_programs([fam.reference_solution(i) for i in items])
    assert all(fam.score(extract_answer(o), i) == 1.0 for i, o in zip(items, outputs, strict=True))
    assert fam.score("yes" if items[0].answer == "no" else "no", items[0]) == 0.0
    assert not fam.check("maybe", items[0]).parseable


def test_broken_entry_point_is_reported(tmp_path, monkeypatch, clean_registry):
    _install_plugin(tmp_path, monkeypatch, "broken = r1ci_plugin_demo:Broken")
    fams, errors = entry_point_families()
    assert not fams and any("broken" in k for k in errors)
    with pytest.warns(UserWarning, match="broken"):
        registry()
    assert any("broken" in k for k in unavailable_families())


def test_name_clash_is_an_error(tmp_path, clean_registry):
    path = _write(tmp_path / "x.jsonl", [{**ROWS[0], "family": "game24"}])
    with pytest.raises(ValueError, match="game24"):
        registry(custom_tasks=[str(path)])
