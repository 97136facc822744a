"""Deterministic family split (train / test) and question pools.

The family split follows R1-Code-Interpreter: 107 train / 37 test families out of 144 (a test share of
37/144, about 26%, kept for any number of families), every source present in both splits, and the nine
"unseen" SymBench families of R1-CI/CodeSteer always in test. Within train families the questions are
divided into disjoint `sft` and `grpo` pools plus held-out `test_seen` questions; test families give
`test_unseen` questions.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from .base import Item, Task

POOLS = ("sft", "grpo", "test_seen", "test_unseen")
TEST_FRACTION = 37 / 144
# The SymBench families R1-CI / CodeSteer hold out as unseen test tasks.
UNSEEN_SYMBENCH = ("cryptanalysis", "string_deletion_and_modification", "synthesis_decomposition",
                   "standard_sudoku", "permutations_and_combinations", "eight_queens", "reversi",
                   "letter_logic_diagram", "mahjong")


def _rank(seed: int | str, name: str) -> str:
    return hashlib.sha256(f"{seed}\x00{name}".encode()).hexdigest()


def default_family_split(
    sources: Mapping[str, str],
    *,
    seed: int | str = 0,
    test_fraction: float = TEST_FRACTION,
    forced_test: Iterable[str] = UNSEEN_SYMBENCH,
    fixed: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Family name -> "train"/"test" for `sources` (family name -> source).

    `round(N * test_fraction)` families go to test, shared among the sources by largest remainder
    (each source with two or more families gets at least one in each split); `forced_test` names that
    exist are in test; `fixed` pins some families (e.g. a custom family's declared split). The rest is
    chosen by a hash of (`seed`, name): deterministic and stable when families are added.
    """
    fixed = dict(fixed or {})
    forced = {n for n in forced_test if n in sources and n not in fixed}
    free_by_source: dict[str, list[str]] = {}
    for name, src in sources.items():
        if name not in fixed:
            free_by_source.setdefault(src, []).append(name)
    total_test = round(len(sources) * test_fraction) - sum(1 for s in fixed.values() if s == "test")
    # quota per source, at least the forced names, at least 1 and at most n-1 where n >= 2
    quotas: dict[str, float] = {s: len(ns) * test_fraction for s, ns in free_by_source.items()}
    counts: dict[str, int] = {}
    for src, names in free_by_source.items():
        low = max(sum(1 for n in names if n in forced), 1 if len(names) >= 2 else 0)
        counts[src] = min(max(math.floor(quotas[src]), low), len(names) - (1 if len(names) >= 2 else 0))
        counts[src] = max(counts[src], sum(1 for n in names if n in forced))
    remaining = total_test - sum(counts.values())
    order = sorted(free_by_source, key=lambda s: (-(quotas[s] - math.floor(quotas[s])), s))
    for src in order:
        if remaining <= 0:
            break
        cap = len(free_by_source[src]) - (1 if len(free_by_source[src]) >= 2 else 0)
        if counts[src] < cap and counts[src] < math.ceil(quotas[src]):
            counts[src] += 1
            remaining -= 1
    split = dict(fixed)
    for src, names in free_by_source.items():
        ranked = sorted(names, key=lambda n: (n not in forced, _rank(seed, n)))
        chosen = set(ranked[: counts[src]])
        split.update({n: "test" if n in chosen else "train" for n in names})
    return split


def family_split(families: dict[str, Task], overrides: dict[str, str] | None = None) -> dict[str, str]:
    """Family name -> "train" or "test": each family's default split, unless `overrides` names it."""
    overrides = overrides or {}
    unknown = sorted(set(overrides) - set(families))
    if unknown:
        raise ValueError(f"split overrides name unknown families {unknown}; known: {sorted(families)}")
    bad = sorted(n for n, s in overrides.items() if s not in ("train", "test"))
    if bad:
        raise ValueError(f"split overrides must be 'train' or 'test'; got {[(n, overrides[n]) for n in bad]}")
    return {name: overrides.get(name, fam.split) for name, fam in families.items()}


# --- question pools ----------------------------------------------------------------------------------
def normalise_question(text: str) -> str:
    """Lowercased, whitespace-collapsed question text (what `pool_overlaps` compares)."""
    return re.sub(r"\s+", " ", str(text)).strip().lower()


def assign_pools(
    items: Iterable[Item],
    splits: Mapping[str, str],
    *,
    fractions: Mapping[str, float] | None = None,
    seed: int | str = 0,
) -> list[Item]:
    """Give every item of a train family a pool among `sft`, `grpo` and `test_seen` (by `fractions`,
    default 0.4 / 0.4 / 0.2) and every item of a test family `test_unseen`; the item's `split` is set too.

    Assignment hashes (`seed`, family, normalised question), so it is deterministic and a question
    repeated under another id lands in the same pool; duplicates of a question already seen (by id or
    normalised text) are dropped, so the pools are disjoint.
    """
    fractions = dict(fractions or {"sft": 0.4, "grpo": 0.4, "test_seen": 0.2})
    if set(fractions) - {"sft", "grpo", "test_seen"} or not fractions:
        raise ValueError(f"pool fractions must name sft, grpo and/or test_seen; got {sorted(fractions)}")
    total = sum(fractions.values())
    bounds, acc = [], 0.0
    for pool, frac in fractions.items():
        acc += frac / total
        bounds.append((acc, pool))
    out: list[Item] = []
    seen_ids: set[str] = set()
    seen_text: set[str] = set()
    for item in items:
        text = normalise_question(item.question)
        if item.id in seen_ids or text in seen_text:
            continue
        seen_ids.add(item.id)
        seen_text.add(text)
        split = splits.get(item.family)
        if split is None:
            raise ValueError(f"no split for family {item.family!r}")
        item.split = split
        if split == "test":
            item.pool = "test_unseen"
        else:
            u = int(_rank(seed, f"{item.family}\x00{text}")[:13], 16) / 16**13
            item.pool = next((pool for bound, pool in bounds if u < bound), bounds[-1][1])
        out.append(item)
    return out


def pool_overlaps(rows: Iterable[Item | Mapping[str, Any]]) -> list[str]:
    """Every question id or normalised question text that appears in more than one pool, one line each.

    `rows` are Items or row dicts with `id`, `question` and `pool` (and optionally `family`).
    """
    by_id: dict[str, set[str]] = {}
    by_text: dict[str, set[str]] = {}
    for row in rows:
        get = row.get if isinstance(row, Mapping) else lambda k, r=row: getattr(r, k, None)
        pool = str(get("pool") or "")
        by_id.setdefault(str(get("id")), set()).add(pool)
        by_text.setdefault(normalise_question(get("question") or ""), set()).add(pool)
    problems = [f"id {k} is in pools {sorted(v)}" for k, v in sorted(by_id.items()) if len(v) > 1]
    problems += [f"question {k[:80]!r} is in pools {sorted(v)}" for k, v in sorted(by_text.items()) if len(v) > 1]
    return problems
