"""The task corpus: questions of every selected family, split into disjoint pools, stored with `datasets`."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

from .config import TasksConfig
from .io import atomic_dir
from .tasks import Item, Task, resolve_families
from .tasks.split import family_split, normalise_question, pool_overlaps

log = logging.getLogger(__name__)

POOLS = ("sft", "grpo", "test_seen", "test_unseen")


def select_families(cfg: TasksConfig) -> dict[str, Task]:
    """The recipe's families (all available ones when the list is empty)."""
    available = resolve_families(cfg)
    if not cfg.families:
        return available
    unknown = [name for name in cfg.families if name not in available]
    if unknown:
        raise ValueError(f"unknown task families {unknown}: see `r1ci tasks list` for the available names")
    return {name: available[name] for name in cfg.families}


def build_items(cfg: TasksConfig) -> list[Item]:
    """Generate every pool's questions; train families give sft/grpo/test_seen, test families test_unseen."""
    families = select_families(cfg)
    splits = family_split(families, cfg.split_overrides)
    items: list[Item] = []
    seen: set[str] = set()
    for name, family in sorted(families.items()):
        if splits[name] == "train":
            wanted = [("sft", cfg.n_sft), ("grpo", cfg.n_grpo), ("test_seen", cfg.n_test_seen)]
        else:
            wanted = [("test_unseen", cfg.n_test_unseen)]
        total = sum(n for _, n in wanted)
        generated = [it for it in family.generate(total, seed=cfg.seed) if normalise_question(it.question) not in seen]
        if len(generated) < total:
            log.warning("family %s gave %d distinct questions of %d asked", name, len(generated), total)
        start = 0
        for pool, n in wanted:
            for item in generated[start : start + n]:
                item.split, item.pool = splits[name], pool
                seen.add(normalise_question(item.question))
                items.append(item)
            start += n
    return items


def fresh_items(cfg: TasksConfig, exclude: list[Item], seed: int) -> list[Item]:
    """New held-out questions (as many per family as the recipe's test pools) drawn with `seed`, none of
    them in `exclude` (the corpus, every pool): train families give test_seen, test families test_unseen.

    A family that cannot give enough new questions (a fixed dataset already used up) gives fewer, with a
    warning; `seed` equal to the corpus' seed is refused (it would draw the corpus' questions again).
    """
    if seed == cfg.seed:
        raise ValueError(f"fresh questions need a seed other than the corpus' tasks.seed ({cfg.seed})")
    families = select_families(cfg)
    splits = family_split(families, cfg.split_overrides)
    used = {normalise_question(it.question) for it in exclude}
    items: list[Item] = []
    for name, family in sorted(families.items()):
        pool, n = ("test_seen", cfg.n_test_seen) if splits[name] == "train" else ("test_unseen", cfg.n_test_unseen)
        drawn = family.generate(n + sum(1 for it in exclude if it.family == name), seed=seed)
        new = [it for it in drawn if normalise_question(it.question) not in used][:n]
        if len(new) < n:
            log.warning("family %s gave %d fresh questions of %d asked", name, len(new), n)
        for item in new:
            item.split, item.pool = splits[name], pool
            used.add(normalise_question(item.question))
        items.extend(new)
    return items


def save_corpus(items: list[Item], out_dir: Path) -> Path:
    """Store the items as a `datasets.DatasetDict` with one split per pool (atomically)."""
    from datasets import Dataset, DatasetDict, Features, Value

    rows: dict[str, list[dict[str, Any]]] = {pool: [] for pool in POOLS}
    for item in items:
        rows[item.pool].append(item.to_row())
    features = Features({c: Value("string") for c in Item.__dataclass_fields__})
    columns = list(features)
    dd = DatasetDict({
        pool: Dataset.from_dict({c: [row[c] for row in r] for c in columns}, features=features)
        for pool, r in rows.items()
    })
    with atomic_dir(out_dir) as tmp:
        dd.save_to_disk(str(tmp), num_shards={pool: 1 for pool in dd})  # an empty pool still gets a file
    return out_dir


def load_corpus(path: Path, pool: str | None = None) -> list[Item]:
    from datasets import load_from_disk

    dd = load_from_disk(str(path))
    pools = [pool] if pool else list(dd)
    return [Item.from_row(row) for p in pools for row in dd[p]]


def corpus_counts(items: list[Item]) -> dict[str, dict[str, int]]:
    """Counts per family and pool."""
    counts: dict[str, Counter] = {}
    for item in items:
        counts.setdefault(item.family, Counter())[item.pool] += 1
    return {family: dict(c) for family, c in sorted(counts.items())}


__all__ = ["POOLS", "build_items", "corpus_counts", "fresh_items", "load_corpus", "pool_overlaps", "save_corpus",
           "select_families"]
