"""BBH boolean_expressions and multistep_arithmetic_two: evaluate a generated expression."""

from __future__ import annotations

import random
from typing import Any

from ..base import Item
from .common import BBHTask


def _bool_expr(rng: random.Random, operands: int) -> str:
    def atom() -> str:
        text = rng.choice(["True", "False"])
        for _ in range(rng.choice([0, 0, 0, 1, 1, 2, 3])):
            text = f"not {text}"
        if rng.random() < 0.2:
            text = f"( {text} )"
        return text

    parts = [atom()]
    for _ in range(operands - 1):
        parts += [rng.choice(["and", "or"]), atom()]
    if operands > 2 and rng.random() < 0.5:  # group two neighbouring operands
        i = rng.randrange(0, len(parts) - 2, 2)
        parts[i : i + 3] = [f"( {parts[i]} {parts[i + 1]} {parts[i + 2]} )"]
        if rng.random() < 0.3:
            parts[i] = f"not {parts[i]}"
    return " ".join(parts)


class BooleanExpressions(BBHTask):
    task = "boolean_expressions"
    description = "Evaluate a Boolean expression of True, False, not, and, or and parentheses."
    answer_kind = "label"
    labels = ("True", "False")

    def _generate_one(self, rng: random.Random) -> Item:
        expr = _bool_expr(rng, rng.randint(2, 4))
        return self.item(f"{expr} is", eval(expr), {"expression": expr})  # noqa: S307 - literals only

    def parse(self, question: str) -> dict[str, Any]:
        expr = question.strip()
        return {"expression": expr[:-3] if expr.endswith(" is") else expr}

    def program(self, values: dict[str, Any]) -> str:
        return f"expression = {values['expression']!r}\nprint(f'<<<{{eval(expression)}}>>>')\n"


class MultistepArithmetic(BBHTask):
    task = "multistep_arithmetic_two"
    description = "Evaluate a two-level arithmetic expression of small signed integers."
    answer_kind = "numeric"

    def _generate_one(self, rng: random.Random) -> Item:
        def group() -> str:
            nums = [rng.randint(-9, 9) for _ in range(4)]
            ops = [rng.choice("+-*") for _ in range(3)]
            return "(" + " ".join(f"{n} {o}" for n, o in zip(nums, ops, strict=False)) + f" {nums[-1]})"

        expr = f"({group()} {rng.choice('+-*')} {group()})"
        return self.item(f"{expr} =", eval(expr), {"expression": expr})  # noqa: S307 - literals only

    def parse(self, question: str) -> dict[str, Any]:
        expr = question.strip()
        return {"expression": expr[:-1].strip() if expr.endswith("=") else expr}

    def program(self, values: dict[str, Any]) -> str:
        return f"expression = {values['expression']!r}\nprint(f'<<<{{eval(expression)}}>>>')\n"
