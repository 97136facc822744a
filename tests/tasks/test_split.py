"""Family split and question pools."""

from __future__ import annotations

import pytest

from r1ci_core.tasks import registry
from r1ci_core.tasks.base import Item
from r1ci_core.tasks.split import (
    TEST_FRACTION,
    UNSEEN_SYMBENCH,
    assign_pools,
    default_family_split,
    family_split,
    pool_overlaps,
)


def _paper_sources() -> dict[str, str]:
    sources = {n: "symbench" for n in UNSEEN_SYMBENCH}
    sources.update({f"sym_{i}": "symbench" for i in range(33 - len(UNSEEN_SYMBENCH))})
    sources.update({f"bbh_{i}": "bbh" for i in range(27)})
    sources.update({f"rg_{i}": "reasoning_gym" for i in range(84)})
    return sources


def test_paper_proportions_and_forced_unseen():
    split = default_family_split(_paper_sources())
    assert sum(s == "test" for s in split.values()) == 37
    assert sum(s == "train" for s in split.values()) == 107
    assert all(split[n] == "test" for n in UNSEEN_SYMBENCH)
    for source in ("symbench", "bbh", "reasoning_gym"):
        got = {split[n] for n, s in _paper_sources().items() if s == source}
        assert got == {"train", "test"}


def test_deterministic_and_seeded():
    src = _paper_sources()
    assert default_family_split(src) == default_family_split(dict(reversed(list(src.items()))))
    assert default_family_split(src, seed=1) != default_family_split(src, seed=2)
    assert sum(s == "test" for s in default_family_split(src, seed=7).values()) == 37


@pytest.mark.parametrize("sizes", [(10, 8, 20), (33, 20, 103), (5, 27, 0), (3, 2, 2)])
def test_fewer_families_same_proportion(sizes):
    sources = {f"s{i}": "symbench" for i in range(sizes[0])}
    sources.update({f"b{i}": "bbh" for i in range(sizes[1])})
    sources.update({f"r{i}": "reasoning_gym" for i in range(sizes[2])})
    split = default_family_split(sources)
    n_test = sum(s == "test" for s in split.values())
    # every source with two or more families has one in test, even where that exceeds the proportion
    needed = sum(1 for src in set(sources.values()) if sum(s == src for s in sources.values()) >= 2)
    assert n_test == max(round(len(sources) * TEST_FRACTION), needed)
    for source in {s for s in sources.values()}:
        members = [split[n] for n, s in sources.items() if s == source]
        if len(members) >= 2:
            assert set(members) == {"train", "test"}


def test_fixed_and_overrides():
    split = default_family_split(_paper_sources(), fixed={"rg_0": "test", "bbh_0": "train"})
    assert split["rg_0"] == "test" and split["bbh_0"] == "train"
    fams = registry()
    some = sorted(fams)[:2]
    got = family_split(fams, {some[0]: "test", some[1]: "train"})
    assert got[some[0]] == "test" and got[some[1]] == "train"
    assert all(got[n] == f.split for n, f in fams.items() if n not in some)
    with pytest.raises(ValueError, match="unknown families"):
        family_split(fams, {"no_such_family": "test"})
    with pytest.raises(ValueError, match="'train' or 'test'"):
        family_split(fams, {some[0]: "validation"})


def test_registry_split_has_every_source_in_both_and_unseen_in_test():
    fams = registry(include_unavailable=True)
    for source in {f.source for f in fams.values()}:
        assert {f.split for f in fams.values() if f.source == source} == {"train", "test"}
    for name in UNSEEN_SYMBENCH:
        if name in fams:
            assert fams[name].split == "test"
    n_test = sum(f.split == "test" for f in fams.values())
    assert n_test == round(len(fams) * TEST_FRACTION)


def _items(family: str, n: int, prefix: str = "q") -> list[Item]:
    return [Item(family=family, source="custom", question=f"{prefix} {family} {i}?", answer=str(i)) for i in range(n)]


def test_pools_disjoint_and_cover_splits():
    items = _items("fam_a", 200) + _items("fam_b", 50)
    pooled = assign_pools(items, {"fam_a": "train", "fam_b": "test"}, seed=3)
    a = [i for i in pooled if i.family == "fam_a"]
    assert {i.pool for i in a} == {"sft", "grpo", "test_seen"}
    assert {i.pool for i in pooled if i.family == "fam_b"} == {"test_unseen"}
    assert all(i.split == {"fam_a": "train", "fam_b": "test"}[i.family] for i in pooled)
    counts = {p: sum(i.pool == p for i in a) for p in ("sft", "grpo", "test_seen")}
    assert 50 <= counts["sft"] <= 110 and 50 <= counts["grpo"] <= 110 and 15 <= counts["test_seen"] <= 65
    assert pool_overlaps(pooled) == []
    again = assign_pools(_items("fam_a", 200) + _items("fam_b", 50), {"fam_a": "train", "fam_b": "test"}, seed=3)
    assert [i.pool for i in again] == [i.pool for i in pooled]


def test_assign_pools_drops_repeated_questions():
    items = _items("fam_a", 5)
    dup = Item(family="fam_a", source="custom", question="Q  FAM_A 1?", answer="1")  # same text, other id
    pooled = assign_pools(items + [dup, items[0]], {"fam_a": "train"})
    assert len(pooled) == 5 and pool_overlaps(pooled) == []
    with pytest.raises(ValueError, match="no split"):
        assign_pools(_items("other", 1), {"fam_a": "train"})


def test_pool_overlaps_detects_planted_duplicates():
    pooled = assign_pools(_items("fam_a", 40), {"fam_a": "train"})
    rows = [i.to_row() for i in pooled]
    sft = next(r for r in rows if r["pool"] == "sft")
    grpo = next(r for r in rows if r["pool"] == "grpo")
    planted_text = {**grpo, "id": "fresh-id", "question": "  " + sft["question"].upper() + "\n", "pool": "grpo"}
    planted_id = {**sft, "question": "something new", "pool": "test_seen"}
    problems = pool_overlaps(rows + [planted_text])
    assert len(problems) == 1 and "question" in problems[0] and "grpo" in problems[0] and "sft" in problems[0]
    problems = pool_overlaps(rows + [planted_id])
    assert len(problems) == 1 and sft["id"] in problems[0] and "test_seen" in problems[0]
    assert pool_overlaps(rows) == []
