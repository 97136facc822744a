"""The task registry and the `r1ci tasks` subcommands."""

from __future__ import annotations

import argparse
import random

import pytest

import r1ci_core.tasks as tasks
from r1ci_core.tasks import clear_registry_cache, registry
from r1ci_core.tasks.base import Item, Task, Verdict
from r1ci_core.tasks.commands import add_tasks_parser


def test_exports():
    for name in ("registry", "load_symbench", "load_bbh", "Item", "Task", "Verdict", "extract_answer"):
        assert hasattr(tasks, name)
    assert callable(tasks.load_symbench)


def test_families_have_the_interface():
    fams = registry()
    assert len(fams) >= 100
    counts = {s: sum(f.source == s for f in fams.values()) for s in ("symbench", "bbh", "reasoning_gym")}
    assert counts["bbh"] == 20 and counts["reasoning_gym"] >= 84 and counts["symbench"] >= 1
    for name, fam in fams.items():
        assert fam.name == name
        assert fam.source in ("symbench", "bbh", "reasoning_gym", "custom")
        assert fam.split in ("train", "test")
        assert fam.available
        for attr in ("generate", "score", "check", "reference_solution"):
            assert callable(getattr(fam, attr))
        if fam.source == "bbh":
            assert name.startswith("bbh_")
        if fam.source == "reasoning_gym":
            assert name.startswith("rg_")


def test_registry_is_cached():
    assert registry() == registry()
    a, b = registry(), registry()
    assert all(a[n] is b[n] for n in a)


class _DupDate(Task):
    name = "date_understanding_dup"
    source = "symbench"
    duplicates_bbh = True

    def _generate_one(self, rng: random.Random) -> Item:
        return self.make_item("q", "a")

    def check(self, answer, item):
        return Verdict(float(answer == item.answer), answer is not None)

    def reference_solution(self, item):
        return "print('<<<a>>>')"


def test_duplicates_of_bbh_dropped_by_default(monkeypatch):
    import r1ci_core.tasks.symbench as symbench

    monkeypatch.setattr(symbench, "FAMILIES", [*symbench.FAMILIES, _DupDate])
    clear_registry_cache()
    try:
        assert "date_understanding_dup" not in registry()
        assert "date_understanding_dup" in registry(include_duplicates=True)
        real_dups = [c.name for c in symbench.FAMILIES if getattr(c, "duplicates_bbh", False) and c is not _DupDate]
        assert not set(real_dups) & set(registry())
    finally:
        clear_registry_cache()


def _cli(argv):
    parser = argparse.ArgumentParser(prog="r1ci")
    add_tasks_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_list(capsys):
    assert _cli(["tasks", "list"]) == 0
    out = capsys.readouterr().out
    assert "bbh_navigate" in out and "rg_gcd" in out and "reasoning_gym:" in out and "R1CI_BBH_DIR" in out
    assert _cli(["tasks", "list", "--source", "bbh", "--json"]) == 0
    assert '"bbh_snarks"' in capsys.readouterr().out


def test_cli_sample(capsys):
    assert _cli(["tasks", "sample", "bbh_web_of_lies", "-n", "2", "--seed", "3", "--solution"]) == 0
    out = capsys.readouterr().out
    assert out.count("=== bbh_web_of_lies") == 2 and "gold answer" in out and "<<<" in out


def test_cli_sample_unknown_family(capsys):
    assert _cli(["tasks", "sample", "bbh_navigat"]) == 2
    err = capsys.readouterr().err
    assert "unknown task family" in err and "bbh_navigate" in err and len(err.strip().splitlines()) == 1


def test_cli_sample_unavailable(capsys, monkeypatch):
    monkeypatch.delenv("R1CI_BBH_DIR", raising=False)
    clear_registry_cache()
    assert _cli(["tasks", "sample", "bbh_snarks"]) == 2
    assert "R1CI_BBH_DIR" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["bbh_boolean_expressions", "rg_gcd"])
def test_load_symbench_is_lazy(name):
    # registry works whether or not the SymBench importer exists yet
    assert name in registry()
