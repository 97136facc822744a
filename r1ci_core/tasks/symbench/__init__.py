"""SymBench families, written by r1ci (generators, verifiers, reference solutions)."""

from __future__ import annotations

from ..base import Task
from .game24 import Game24
from .number_multiply import NumberMultiply
from .string_insertion import StringInsertion

FAMILIES: list[type[Task]] = [Game24, NumberMultiply, StringInsertion]
