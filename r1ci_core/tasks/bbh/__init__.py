"""BIG-Bench-Hard families (27 tasks): procedural generators with verifiers and reference programs for
the 20 tasks that can be generated, and official-data-only families for the other 7.

Official-only families (`OFFICIAL_ONLY`) are `available=False` until the official files are given
(recipe key `bbh_dir` or env var `R1CI_BBH_DIR`); they have `has_reference_solution = False`: no program
computes their answers, so the teacher/SFT stage must skip them (their items serve evaluation and GRPO).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..base import Item, Task
from .colored_objects import ReasoningAboutColoredObjects
from .common import BBHTask, NoReferenceSolution
from .date_understanding import DateUnderstanding
from .expressions import BooleanExpressions, MultistepArithmetic
from .formal_fallacies import FormalFallacies
from .geometric_shapes import GeometricShapes
from .hyperbaton import Hyperbaton
from .logical_deduction import LOGICAL_DEDUCTION
from .navigate import Navigate
from .object_counting import ObjectCounting
from .official import BBH_DIR_ENV, HINT, OFFICIAL_ONLY, OfficialBBHTask, official_item, read_official
from .penguins import PenguinsInATable
from .sequences import DyckLanguages, WordSorting
from .temporal_sequences import TemporalSequences
from .tracking import TRACKING
from .web_of_lies import WebOfLies

PROCEDURAL: list[type[BBHTask]] = [
    BooleanExpressions, DateUnderstanding, DyckLanguages, FormalFallacies, GeometricShapes, Hyperbaton,
    *LOGICAL_DEDUCTION, MultistepArithmetic, Navigate, ObjectCounting, PenguinsInATable,
    ReasoningAboutColoredObjects, TemporalSequences, *TRACKING, WebOfLies, WordSorting,
]
BBH_TASKS: list[str] = sorted([cls.task for cls in PROCEDURAL] + list(OFFICIAL_ONLY))


def resolve_bbh_dir(bbh_dir: str | os.PathLike[str] | None = None) -> str | None:
    """The BBH folder: the argument, else env var R1CI_BBH_DIR, else None."""
    value = bbh_dir if bbh_dir is not None else os.environ.get(BBH_DIR_ENV) or None
    return str(Path(value).expanduser()) if value else None


def bbh_families(bbh_dir: str | os.PathLike[str] | None = None) -> list[BBHTask]:
    """One family per BBH task; official-only ones are available only when `bbh_dir` is given."""
    official = read_official(bbh_dir) if bbh_dir else {}
    families: list[BBHTask] = [cls() for cls in PROCEDURAL]
    for task in OFFICIAL_ONLY:
        hint = HINT if not bbh_dir else (f"needs the official BIG-Bench-Hard file {task}.json, which the BBH folder "
                                         f"{bbh_dir!r} lacks")
        families.append(OfficialBBHTask(task, official.get(task), hint))
    return sorted(families, key=lambda f: f.name)


def load_bbh(folder: str | os.PathLike[str], tasks: list[str] | None = None) -> list[Item]:
    """Items (`family` = `bbh_<task>`, answer = target) from the official files in `folder`.

    Files whose stem is not a BBH task are ignored. Raises FileNotFoundError when `folder` is missing.
    """
    official = read_official(folder)
    by_task: dict[str, BBHTask] = {f.task: f for f in bbh_families(None)}
    items: list[Item] = []
    for task, examples in sorted(official.items()):
        if task not in by_task or (tasks is not None and task not in tasks):
            continue
        items += [official_item(by_task[task], ex, i) for i, ex in enumerate(examples)]
    return items


__all__ = ["BBH_DIR_ENV", "BBH_TASKS", "HINT", "OFFICIAL_ONLY", "PROCEDURAL", "BBHTask", "NoReferenceSolution",
           "OfficialBBHTask", "Task", "bbh_families", "load_bbh", "read_official", "resolve_bbh_dir"]
