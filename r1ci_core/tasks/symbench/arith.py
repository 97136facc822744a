"""SymBench arithmetic puzzles: New Operator, Logical Equation, Combinatorial Calculation."""

from __future__ import annotations

import random
import re
from fractions import Fraction

from ..base import Item, Verdict
from ._common import UNPARSEABLE, SymbenchTask, literal, numbers_close, parse_number, strip_wrappers, verdict

# ---------------------------------------------------------------- New Operator
OP_BODIES = ["3*a*b", "a*b+a", "2*a-b", "a+2*b", "a*a+b", "a*b-b", "(a+b)*a", "a*a-b*b", "a+b+a*b", "2*a*b-a",
             "a-b*2", "(a-b)*b", "a*(b+1)", "4*a+b*b"]


def evaluate_ops(expr: str, defs: dict[str, str]) -> float:
    """Evaluate `expr` with the custom binary operators `defs` (symbol -> body in a, b), left to right."""
    funcs = {sym: eval(f"lambda a, b: {body}") for sym, body in defs.items()}
    toks = re.findall(r"\d+\.?\d*|[()]|[^\s\d()]", expr)

    def atom(i: int) -> tuple[float, int]:
        if toks[i] == "(":
            v, i = chain(i + 1)
            return v, i + 1
        return float(toks[i]), i + 1

    def chain(i: int) -> tuple[float, int]:
        v, i = atom(i)
        while i < len(toks) and toks[i] in funcs:
            w, j = atom(i + 1)
            v, i = funcs[toks[i]](v, w), j
        return v, i

    return chain(0)[0]


class NewOperator(SymbenchTask):
    name = "new_operator"
    description = "Evaluate an expression built from newly defined binary operators."

    def _generate_one(self, rng: random.Random) -> Item:
        syms = rng.sample(["#", "&", "@", "$", "~"], rng.randint(1, 2))
        defs = {s: rng.choice(OP_BODIES) for s in syms}
        expr = str(rng.randint(1, 9))
        for _ in range(rng.randint(1, 3)):
            operand, op = str(rng.randint(1, 9)), rng.choice(syms)
            inner = f"({expr})" if not expr.isdigit() else expr
            expr = f"{inner}{op}{operand}" if rng.random() < 0.6 else f"{operand}{op}{inner}"
        value = evaluate_ops(expr, defs)
        return self.make(self.question(defs, expr), value, operator_definitions=defs, expression=expr)

    @staticmethod
    def question(defs: dict[str, str], expr: str) -> str:
        defined = " and ".join(f"a{s}b to be {body}" for s, body in defs.items())
        return (
            f"Let a and b be numbers. Define {defined}. Operators are evaluated from left to right unless "
            f"parentheses say otherwise.\nCalculate {expr}.\nReturn your answer with format <<<number>>>"
        )

    def check(self, answer: str | None, item: Item) -> Verdict:
        got = parse_number(answer)
        if got is None:
            return UNPARSEABLE
        return verdict(numbers_close(got, float(item.answer), rel=1e-6))

    def reference_solution(self, item: Item) -> str:
        md = item.metadata
        ops = ", ".join(f"'{s}': lambda a, b: {body}" for s, body in md["operator_definitions"].items())
        return (
            "import re\n"
            f"ops = {{{ops}}}\n"
            f"toks = re.findall(r'\\d+\\.?\\d*|[()]|[^\\s\\d()]', '{md['expression']}')\n"
            "def atom(i):\n"
            "    if toks[i] == '(':\n"
            "        v, i = chain(i + 1)\n"
            "        return v, i + 1\n"
            "    return float(toks[i]), i + 1\n"
            "def chain(i):  # left to right\n"
            "    v, i = atom(i)\n"
            "    while i < len(toks) and toks[i] in ops:\n"
            "        w, j = atom(i + 1)\n"
            "        v, i = ops[toks[i]](v, w), j\n"
            "    return v, i\n"
            "print(f'<<<{chain(0)[0]}>>>')\n"
        )


# ---------------------------------------------------------------- Logical Equation
LE_VALUE_SETS = [
    [1, 3, 4, 9, 16, 27, 36, 80, 121], [3, 6, 9, 20, 32, 36, 80, 121, 120],
    [3, 9, 16, 27, 36, 48, 75, 80, 121, 150, 225], [3, 9, 16, 20, 39, 48, 75, 80, 121, 150, 225],
    [1, 2, 3, 5, 7, 16, 15, 24, 10, 45, 28, 36, 50], [2, 3, 5, 7, 16, 15, 24, 10, 45, 28, 36, 50, 96],
]


def le_python(constraint: str) -> str:
    """'G = 4.0A' -> 'G == 4.0*A' (a Python condition over letter variables)."""
    expr = re.sub(r"(\d+(?:\.\d+)?)([A-Z])", r"\1*\2", constraint.strip())
    return re.sub(r"(?<![<>=!])=(?!=)", "==", expr)


def le_solve(letters: str, values: list[int], constraints: list[str], limit: int = 2) -> list[dict]:
    conds = [(compile(le_python(c), "<c>", "eval"), set(re.findall(r"[A-Z]", c))) for c in constraints]
    order: list[str] = []
    while len(order) < len(letters):  # greedily pick the letter that closes the most constraints
        order.append(max((x for x in letters if x not in order),
                         key=lambda x: (sum(v <= set(order) | {x} for _, v in conds),
                                        sum(x in v for _, v in conds))))
    sols: list[dict] = []

    def search(k: int, env: dict, left: list[int]) -> None:
        if len(sols) >= limit:
            return
        if k == len(order):
            sols.append(dict(env))
            return
        for v in left:
            env[order[k]] = v
            done = set(order[: k + 1])
            if all(eval(code, {}, env) for code, used in conds if order[k] in used and used <= done):
                search(k + 1, env, [w for w in left if w != v])
            del env[order[k]]

    search(0, {}, list(values))
    return sols


class LogicalEquation(SymbenchTask):
    name = "logical_equation"
    description = "Assign distinct numbers to letters so that a system of equations and inequalities holds."

    def _generate_one(self, rng: random.Random) -> Item:
        while True:
            values = sorted(rng.choice(LE_VALUE_SETS))
            n = len(values)
            letters = "ABCDEFGHIJKLMNO"[:n]
            assign = dict(zip(letters, rng.sample(values, n), strict=True))
            cons: list[str] = []
            for _ in range(3 * n):
                x, y = rng.sample(letters, 2)
                a, b = assign[x], assign[y]
                kind = rng.random()
                if kind < 0.4:
                    c = f"{x} + {y} = {a + b}"
                elif kind < 0.8:
                    c = f"{x} - {y} = {a - b}"
                elif kind < 0.9 and b and a % b == 0:
                    c = f"{x} = {a / b}{y}"
                else:
                    c = f"{x} > {y}" if a > b else f"{x} < {y}"
                if c not in cons:
                    cons.append(c)
                if len(cons) >= n - 3 and len(le_solve(letters, values, cons)) == 1:
                    break
            if len(le_solve(letters, values, cons)) == 1:
                break
        answer = str([assign[x] for x in letters])
        return self.make(self.question(letters, values, cons), answer, letters=letters, values=values,
                         constraints=cons)

    @staticmethod
    def question(letters: str, values: list[int], cons: list[str]) -> str:
        listed = "\n".join(f"{i + 1}. {c}" for i, c in enumerate(cons))
        return (
            "Calculate the number for each letter based on the range and set of inequalities that the given letter "
            f"represents. There are {len(letters)} letters {', '.join(letters)}, each representing one of the "
            f"numbers {', '.join(map(str, values))}. The system of inequalities is satisfied as follows:\n{listed}\n\n"
            "Return the answers in alphabetical order starting with A, and each element in the list represents the "
            "value of the corresponding letter. Return your answer with the format <<<list of values>>>, like "
            "<<<[1, 2, 3]>>> means that A represents 1, B represents 2, and C represents 3."
        )

    def check(self, answer: str | None, item: Item) -> Verdict:
        got = literal(answer)
        if not isinstance(got, (list, tuple)) or not all(isinstance(v, (int, float)) for v in got):
            return UNPARSEABLE
        md = item.metadata
        if len(got) != len(md["letters"]) or sorted(got) != sorted(md["values"]):
            return verdict(False)
        env = dict(zip(md["letters"], got, strict=True))
        return verdict(all(eval(le_python(c), {}, env) for c in md["constraints"]))

    def reference_solution(self, item: Item) -> str:
        md = item.metadata
        conds = [le_python(c) for c in md["constraints"]]
        return (
            "import re\n"
            f"letters = '{md['letters']}'\n"
            f"values = {md['values']}\n"
            f"conds = {conds}\n"
            "used = [set(re.findall('[A-Z]', c)) for c in conds]\n"
            "order = []  # assign first the letters that complete the most conditions\n"
            "while len(order) < len(letters):\n"
            "    order.append(max((x for x in letters if x not in order),\n"
            "                     key=lambda x: sum(u <= set(order) | {x} for u in used)))\n"
            "def search(k, env, left):\n"
            "    if k == len(order):\n"
            "        return env\n"
            "    for v in left:\n"
            "        env[order[k]] = v\n"
            "        done = set(order[:k + 1])\n"
            "        if all(eval(c, {}, env) for c, u in zip(conds, used) if order[k] in u and u <= done):\n"
            "            found = search(k + 1, env, [w for w in left if w != v])\n"
            "            if found:\n"
            "                return found\n"
            "        del env[order[k]]\n"
            "env = search(0, {}, values)\n"
            "print(f'<<<{[env[x] for x in letters]}>>>')\n"
        )


# ---------------------------------------------------------------- Combinatorial Calculation
def ordered_exprs(nums: list[int]) -> list[tuple[Fraction, list[str]]]:
    """Every value reachable by + - * / and parentheses over `nums` in the given order, with its tokens."""
    memo: dict[tuple[int, int], list[tuple[Fraction, list[str]]]] = {}

    def go(lo: int, hi: int) -> list[tuple[Fraction, list[str]]]:
        if (lo, hi) in memo:
            return memo[lo, hi]
        if hi - lo == 1:
            return [(Fraction(nums[lo]), [str(nums[lo])])]
        out = []
        for m in range(lo + 1, hi):
            for a, ta in go(lo, m):
                for b, tb in go(m, hi):
                    for op in "+-*/":
                        if op == "/" and b == 0:
                            continue
                        v = a + b if op == "+" else a - b if op == "-" else a * b if op == "*" else a / b
                        out.append((v, ["(", *ta, op, *tb, ")"] if hi - lo < len(nums) else [*ta, op, *tb]))
        memo[lo, hi] = out
        return out

    return go(0, len(nums))


def eval_tokens(toks: list[str]) -> Fraction | None:
    """Exact value of an arithmetic token list (numbers, + - * /, parentheses), else None."""
    if not toks or any(not re.fullmatch(r"\d+|[-+*/()]", t) for t in toks):
        return None
    expr = " ".join(f"F({t})" if t.isdigit() else t for t in toks)
    try:
        value = eval(expr, {"__builtins__": {}}, {"F": Fraction})
    except (SyntaxError, ZeroDivisionError, TypeError):
        return None
    return value if isinstance(value, Fraction) else None


class CombinatorialCalculation(SymbenchTask):
    name = "combinatorial_calculation"
    description = "Insert operators and parentheses between ordered numbers to reach a target."

    def _generate_one(self, rng: random.Random) -> Item:
        while True:
            nums = [rng.randint(1, 9) for _ in range(rng.choice((3, 3, 4, 4, 5)))]
            reachable = sorted({int(v) for v, _ in ordered_exprs(nums) if v.denominator == 1 and 1 <= v <= 60})
            if reachable:
                break
        target = 10 if 10 in reachable and rng.random() < 0.5 else rng.choice(reachable)
        sol = next(t for v, t in ordered_exprs(nums) if v == target)
        listed = ", ".join(map(str, nums))
        question = (
            f"Given {len(nums)} integers between 1 and 9, perform arithmetic operations (addition, subtraction, "
            "multiplication, division, and parentheses) between these integers. Each number must be used exactly "
            f"once and only once, and the final result should be {target}. Note: The order of the numbers is "
            "determined by the input, and you cannot change the order of the numbers. You can only insert arithmetic "
            "operations or parentheses between the numbers.\nReturn the answer with a list of values and calculation "
            "symbols. Return your answer with the format <<<list of values and symbols>>>, like <<<[1, +, 3]>>> "
            "means 1+3, <<<[4, -, (, 6, *, 9, )]>>> means 4-(6*9).Now the input numbers are: "
            f"{listed}, the target values is: {target}\n Your answer:\n"
        )
        return self.make(question, "[" + ", ".join(sol) + "]", numbers=nums, target=target)

    def check(self, answer: str | None, item: Item) -> Verdict:
        if answer is None:
            return UNPARSEABLE
        s = strip_wrappers(answer)
        if s.startswith("[") and s.endswith("]"):
            toks = [t.strip().strip("'\"") for t in s[1:-1].split(",") if t.strip().strip("'\"")]
        else:
            toks = re.findall(r"\d+|\S", s)
        value = eval_tokens(toks)
        if value is None:
            return UNPARSEABLE
        used = [int(t) for t in toks if t.isdigit()]
        return verdict(used == item.metadata["numbers"] and value == item.metadata["target"])

    def reference_solution(self, item: Item) -> str:
        md = item.metadata
        return f"from fractions import Fraction\nnums, target = {md['numbers']}, {md['target']}\n" + _COMBI_PROGRAM


# Up to 6 numbers: every bracketing (one expression per value of each interval). The release also has
# 15 and 20 numbers (targets 300 and 500), where every bracketing is out of reach: there, blocks of up
# to 3 numbers joined left to right, one expression per whole-number prefix value near the target.
_COMBI_PROGRAM = """\
memo = {}
def exprs(lo, hi):  # {value: tokens} of every way to combine nums[lo:hi] in order
    if (lo, hi) not in memo:
        if hi - lo == 1:
            memo[lo, hi] = {Fraction(nums[lo]): [str(nums[lo])]}
        else:
            out = {}
            for m in range(lo + 1, hi):
                for a, ta in exprs(lo, m).items():
                    for b, tb in exprs(m, hi).items():
                        for op, v in (('+', a + b), ('-', a - b), ('*', a * b), ('/', a / b if b else None)):
                            if v is not None and v not in out:
                                out[v] = ['(', *ta, op, *tb, ')']
            memo[lo, hi] = out
    return memo[lo, hi]
def solve():
    n = len(nums)
    if n <= 6:  # few numbers: try every bracketing
        return exprs(0, n).get(target)
    # many numbers: blocks of up to 3 numbers (each bracketed freely) joined left to right by + - * /,
    # keeping one expression per whole-number value of each prefix (values near the target only)
    bound = 2 * abs(target) + 100
    blocks = {(i, k): [(int(v), t) for v, t in exprs(i, k).items() if v.denominator == 1]
              for i in range(n) for k in range(i + 1, min(i + 3, n) + 1)}
    reach = [{} for _ in range(n + 1)]
    for k in range(1, 4):
        for v, t in blocks[0, k]:
            if abs(v) <= bound:
                reach[k].setdefault(v, t)
    for i in range(1, n):
        for s, ts in reach[i].items():
            for k in range(i + 1, min(i + 3, n) + 1):
                nxt = reach[k]
                for v, t in blocks[i, k]:
                    for op, w in ((('+', s + v), ('-', s - v), ('*', s * v))
                                  + ((('/', s // v),) if v and s % v == 0 else ())):
                        if abs(w) <= bound and w not in nxt:
                            nxt[w] = [*ts, op, *t] if op in '+-' else ['(', *ts, ')', op, *t]
    return reach[n].get(target)
toks = solve()
print('<<<[' + ', '.join(toks) + ']>>>' if toks else 'no expression reaches the target')
"""
