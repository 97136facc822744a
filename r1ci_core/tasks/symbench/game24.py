"""SymBench Game24: combine four numbers with + - * / and parentheses to make 24."""

from __future__ import annotations

import ast
import itertools
import random
import re
from fractions import Fraction

from ..base import Item, Task, Verdict

_OPS = "+-*/"


def solve24(nums: list[int]) -> str | None:
    """An expression over `nums` (each used once) that equals 24, or None."""

    def search(vals: list[tuple[Fraction, str]]) -> str | None:
        if len(vals) == 1:
            return vals[0][1] if vals[0][0] == 24 else None
        for i, j in itertools.permutations(range(len(vals)), 2):
            (a, ea), (b, eb) = vals[i], vals[j]
            rest = [vals[k] for k in range(len(vals)) if k not in (i, j)]
            for op in _OPS:
                if op == "/" and b == 0:
                    continue
                v = {"+": a + b, "-": a - b, "*": a * b, "/": a / b if b else None}[op]
                found = search(rest + [(v, f"({ea}{op}{eb})")])
                if found:
                    return found
        return None

    expr = search([(Fraction(n), str(n)) for n in nums])
    return expr[1:-1] if expr and expr.startswith("(") and expr.endswith(")") else expr


def _evaluate(expr: str) -> Fraction | None:
    def ev(node: ast.AST) -> Fraction:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return Fraction(node.value)
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
            a, b = ev(node.left), ev(node.right)
            if isinstance(node.op, ast.Add):
                return a + b
            if isinstance(node.op, ast.Sub):
                return a - b
            if isinstance(node.op, ast.Mult):
                return a * b
            return a / b
        raise ValueError("unsupported expression")

    try:
        return ev(ast.parse(expr, mode="eval"))
    except (SyntaxError, ValueError, ZeroDivisionError, RecursionError):
        return None


class Game24(Task):
    name = "game24"
    source = "symbench"
    description = "Use four numbers exactly once with + - * / and parentheses to reach 24."

    def _generate_one(self, rng: random.Random) -> Item:
        while True:
            nums = sorted(rng.randint(1, 13) for _ in range(4))
            if solve24(nums):
                break
        listed = ", ".join(map(str, nums))
        question = (
            f"Use the numbers {listed} exactly once each, with + - * / and parentheses, to make 24.\n"
            "Return the expression with the format <<<expression>>>."
        )
        return self.make_item(question, solve24(nums), numbers=nums)

    def check(self, answer: str | None, item: Item) -> Verdict:
        if answer is None:
            return Verdict(0.0, False)
        expr = answer.replace("×", "*").replace("÷", "/").split("=")[0].strip()
        value = _evaluate(expr)
        if value is None:
            return Verdict(0.0, False)
        used = sorted(int(x) for x in re.findall(r"\d+", expr))
        ok = value == 24 and used == sorted(item.metadata["numbers"])
        return Verdict(1.0 if ok else 0.0, True)

    def reference_solution(self, item: Item) -> str:
        nums = item.metadata["numbers"]
        return (
            "from itertools import permutations, product\n"
            f"nums = {nums}\n"
            "for a, b, c, d in permutations(nums):\n"
            "    for x, y, z in product('+-*/', repeat=3):\n"
            "        for e in (f'(({a}{x}{b}){y}{c}){z}{d}', f'({a}{x}{b}){y}({c}{z}{d})',\n"
            "                  f'({a}{x}({b}{y}{c})){z}{d}', f'{a}{x}(({b}{y}{c}){z}{d})', f'{a}{x}({b}{y}({c}{z}{d}))'):\n"
            "            try:\n"
            "                if abs(eval(e) - 24) < 1e-9:\n"
            "                    print(f'<<<{e}>>>')\n"
            "                    raise SystemExit\n"
            "            except ZeroDivisionError:\n"
            "                pass\n"
        )
