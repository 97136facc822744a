"""SymBench families, written by r1ci (generators, verifiers, reference solutions)."""

from __future__ import annotations

from ..base import Task
from .arith import CombinatorialCalculation, LogicalEquation, NewOperator
from .bbh import DateUnderstanding, LogicalDeduction, Navigation, WebOfLies
from .constraints import (
    ConstrainedLinearArrangement,
    EightQueens,
    LetterLogicDiagram,
    LogicPuzzle,
    PermutationsAndCombinations,
    StandardSudoku,
)
from .game24 import Game24
from .grids import Game2048, LightPuzzles, MatrixTransformation, PatternRecognition, Pooling, Reversi
from .math_problems import GSMHard, MathCountingProbability, MathGeometry
from .number_multiply import NumberMultiply
from .planning import Blocksworld, BoxLift, BoxNet, PathPlan
from .string_insertion import StringInsertion
from .strings import (
    Cryptanalysis,
    Letters,
    Mahjong,
    StatisticalCounting,
    StringDeletionModification,
    StringSplitting,
    StringSynthesis,
    SynthesisDecomposition,
)

FAMILIES: list[type[Task]] = [
    Game24, NumberMultiply, StringInsertion,
    MatrixTransformation, Pooling, LightPuzzles, Reversi, Game2048, PatternRecognition,
    StringDeletionModification, StringSynthesis, StringSplitting, SynthesisDecomposition, StatisticalCounting,
    Mahjong, Letters, Cryptanalysis,
    EightQueens, StandardSudoku, LetterLogicDiagram, LogicPuzzle, PermutationsAndCombinations,
    ConstrainedLinearArrangement, NewOperator, LogicalEquation, CombinatorialCalculation,
    PathPlan, BoxLift, BoxNet, Blocksworld,
    GSMHard, MathGeometry, MathCountingProbability,
    DateUnderstanding, WebOfLies, LogicalDeduction, Navigation,
]
