"""Task families: `registry()` lists every family by name; loaders import official files.

Sources: SymBench (`symbench`, minus the families that duplicate BBH), BIG-Bench-Hard (`bbh_*`),
Reasoning-Gym (`rg_*`) and custom families (JSONL files and `r1ci.tasks` entry points). Each family's
`split` is the default family split of `split.default_family_split`, computed over every known family
(available or not) so that providing the BBH files or adding a custom family moves no other family.
"""

from __future__ import annotations

import functools
import os
import warnings
from typing import Any

from .base import Item, Task, Verdict, extract_answer, item_id

SOURCES = ("symbench", "bbh", "reasoning_gym", "custom")


def load_symbench(*args: Any, **kwargs: Any) -> Any:
    """`r1ci_core.tasks.symbench.importer.load_symbench` (imported on first use)."""
    from .symbench.importer import load_symbench as _load

    return _load(*args, **kwargs)


def load_bbh(folder: str | os.PathLike[str], tasks: list[str] | None = None) -> list[Item]:
    """Items of the official BIG-Bench-Hard files in `folder` (see `bbh.load_bbh`)."""
    from .bbh import load_bbh as _load

    return _load(folder, tasks)


def _symbench_families(include_duplicates: bool) -> list[Task]:
    from .symbench import FAMILIES

    return [cls() for cls in FAMILIES if include_duplicates or not getattr(cls, "duplicates_bbh", False)]


@functools.lru_cache(maxsize=16)
def _build(bbh_dir: str | None, custom_paths: tuple[str, ...], include_duplicates: bool,
           entry_points: bool, split_seed: int | str) -> tuple[dict[str, Task], dict[str, str]]:
    """(every known family by name, {name: why unavailable}) — cached per argument set."""
    from .bbh import bbh_families
    from .custom import entry_point_families, jsonl_families
    from .reasoning_gym import rg_families
    from .split import default_family_split

    families: dict[str, Task] = {}
    problems: dict[str, str] = {}

    def add(task: Task) -> None:
        if task.name in families:
            raise ValueError(f"two task families are named {task.name!r} "
                             f"(sources {families[task.name].source!r} and {task.source!r})")
        families[task.name] = task

    for task in _symbench_families(include_duplicates):
        add(task)
    for task in bbh_families(bbh_dir):
        add(task)
    for task in rg_families():
        add(task)
    customs = jsonl_families(custom_paths) if custom_paths else []
    if entry_points:
        plugged, errors = entry_point_families()
        customs += plugged
        for where, err in errors.items():
            warnings.warn(f"task {where} failed to load: {err}", stacklevel=2)
            problems[where] = f"failed to load: {err}"
    for task in customs:
        add(task)
    fixed = {n: t.declared_split for n, t in families.items() if getattr(t, "declared_split", None)}
    split = default_family_split({n: t.source for n, t in families.items()}, seed=split_seed, fixed=fixed)
    for name, task in families.items():
        task.split = split[name]
        if not getattr(task, "available", True):
            problems[name] = getattr(task, "unavailable_hint", "") or "unavailable"
    return families, problems


def _resolve(bbh_dir: str | os.PathLike[str] | None, custom_tasks: Any) -> tuple[str | None, tuple[str, ...]]:
    from .bbh import resolve_bbh_dir
    from .custom import custom_task_paths

    if isinstance(custom_tasks, (str, os.PathLike)):
        custom_tasks = [custom_tasks]
    return resolve_bbh_dir(bbh_dir), custom_task_paths(tuple(str(p) for p in (custom_tasks or ())))


def registry(
    *,
    bbh_dir: str | os.PathLike[str] | None = None,
    custom_tasks: list[str] | tuple[str, ...] | str | None = None,
    include_unavailable: bool = False,
    include_duplicates: bool = False,
    entry_points: bool = True,
    split_seed: int | str = 0,
) -> dict[str, Task]:
    """Every available family by name: SymBench (minus `duplicates_bbh` ones unless
    `include_duplicates`), BBH, Reasoning-Gym and custom families.

    `bbh_dir` (else env var R1CI_BBH_DIR) makes the official-only BBH families available;
    `custom_tasks` (plus env var R1CI_CUSTOM_TASKS) lists JSONL task files. Unavailable families are
    left out unless `include_unavailable`; `unavailable_families()` says how to provide them.
    Cached: repeated calls with the same arguments and environment cost nothing.
    """
    bbh, custom = _resolve(bbh_dir, custom_tasks)
    families, _ = _build(bbh, custom, include_duplicates, entry_points, split_seed)
    return {n: t for n, t in sorted(families.items()) if include_unavailable or getattr(t, "available", True)}


def resolve_families(cfg: Any) -> dict[str, Task]:
    """Every available family for a recipe's `tasks` section (`config.TasksConfig`): its `bbh_dir` and
    `custom_tasks` (plus the environment's, as `registry` reads them). The one lookup every stage uses."""
    return registry(bbh_dir=cfg.bbh_dir, custom_tasks=cfg.custom_tasks or None)


def unavailable_families(
    *,
    bbh_dir: str | os.PathLike[str] | None = None,
    custom_tasks: list[str] | tuple[str, ...] | str | None = None,
    entry_points: bool = True,
) -> dict[str, str]:
    """{family or entry point: one-line hint of how to provide it} for what `registry()` leaves out."""
    bbh, custom = _resolve(bbh_dir, custom_tasks)
    return dict(sorted(_build(bbh, custom, False, entry_points, 0)[1].items()))


def skipped_datasets() -> dict[str, str]:
    """Reasoning-Gym datasets that are not families, with the reason."""
    from .reasoning_gym import SKIPPED

    return dict(SKIPPED)


def clear_registry_cache() -> None:
    _build.cache_clear()


__all__ = ["SOURCES", "Item", "Task", "Verdict", "clear_registry_cache", "extract_answer", "item_id", "load_bbh",
           "load_symbench", "registry", "resolve_families", "skipped_datasets", "unavailable_families"]
