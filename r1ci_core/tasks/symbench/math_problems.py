"""SymBench's fixed math sets, generated procedurally: GSM-Hard word problems, MATH Geometry and MATH Counting &
Probability (exact answers; numbers judged with relative tolerance 1e-3, LaTeX/boxed answers normalised)."""

from __future__ import annotations

import random
import re

from ..base import Item, Verdict
from ._common import (
    UNPARSEABLE,
    SymbenchTask,
    last_boxed,
    numbers_close,
    parse_number,
    strip_wrappers,
    verdict,
)


def latex_value(text: str | None) -> float | None:
    """Numeric value of a (LaTeX) answer such as 12, 3.5, \\frac{3}{4}, 7\\sqrt{2}, 49\\pi, $1,200; else None."""
    if text is None:
        return None
    simple = parse_number(text)
    if simple is not None:
        return float(simple)
    s = strip_wrappers(text)
    s = last_boxed(s) or s
    s = re.sub(r"\\text\{[^}]*\}|\\mbox\{[^}]*\}|\^\\circ|\^\{\\circ\}|\\%|\\\$|\$|\\!|,(?=\d{3})", "", s)
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("\\left", "").replace("\\right", "")
    s = s.replace("\\cdot", "*").replace("\\times", "*").replace("\\pi", " pi ").replace("π", " pi ")
    for _ in range(5):
        s = re.sub(r"\\frac\{([^{}]*)\}\{([^{}]*)\}", r"((\1)/(\2))", s)
        s = re.sub(r"\\sqrt\{([^{}]*)\}", r"sqrt(\1)", s)
    s = re.sub(r"\\sqrt(\d+)", r"sqrt(\1)", s).replace("{", "(").replace("}", ")").replace("^", "**").strip()
    if not s or re.search(r"[^0-9a-z+\-*/(). ]", s) or re.search(r"[a-z]+", s.replace("sqrt", "").replace("pi", "")):
        return None
    try:
        from sympy.parsing.sympy_parser import (
            implicit_multiplication_application,
            parse_expr,
            standard_transformations,
        )

        value = parse_expr(s, transformations=(*standard_transformations, implicit_multiplication_application))
        return float(value.evalf())
    except Exception:  # noqa: BLE001 - any parse failure means "not a number"
        return None


class _NumericAnswer(SymbenchTask):
    """Shared checker: the answer's value against the gold's, relative tolerance 1e-3."""

    def check(self, answer: str | None, item: Item) -> Verdict:
        got, want = latex_value(answer), latex_value(item.answer)
        if want is None and answer is not None and answer.strip():
            # a non-numeric official answer (expression, interval, choice): compare normalised text
            return verdict(normalise_latex(answer) == normalise_latex(item.answer))
        if got is None:
            return UNPARSEABLE
        return verdict(want is not None and numbers_close(got, want, rel=1e-3))


def normalise_latex(text: str) -> str:
    """Whitespace-, delimiter- and wrapper-insensitive form of a LaTeX answer."""
    s = strip_wrappers(text)
    s = last_boxed(s) or s
    s = re.sub(r"\\text\{([^}]*)\}|\\mbox\{([^}]*)\}", lambda m: m.group(1) or m.group(2) or "", s)
    for a, b in (("\\dfrac", "\\frac"), ("\\tfrac", "\\frac"), ("\\left", ""), ("\\right", ""), ("\\!", ""),
                 ("$", ""), ("\\,", ""), ("^\\circ", ""), ("^{\\circ}", "")):
        s = s.replace(a, b)
    return re.sub(r"\s+", "", s).rstrip(".")


# ---------------------------------------------------------------- GSM-Hard
# (question template, variables: name -> (low, high) or list of choices, result expression)
GSM_TEMPLATES: list[tuple[str, dict, str]] = [
    ("{name}'s rate per hour for the first 40 hours she works each week is ${rate}. She also receives an overtime "
     "pay of {mult} times her regular hourly rate. If {name} worked for {hours} hours this week, how much are her "
     "earnings for this week?", {"rate": (10, 2_000_000), "mult": [1.2, 1.5, 2], "hours": (41, 60)},
     "rate * 40 + rate * mult * (hours - 40)"),
    ("A new program had {first} downloads in the first month. The number of downloads in the second month was "
     "{k} times as many as the downloads in the first month, but then reduced by {pct}% in the third month. How "
     "many downloads did the program have total over the three months?",
     {"first": (50, 900_000), "k": (2, 5), "pct": [10, 20, 25, 30, 40, 50]},
     "first + k * first + k * first * (1 - pct / 100)"),
    ("{name} buys {a} notebooks at ${p} each and {b} pens at ${q} each. She pays with ${paid}. How much change "
     "does she get?", {"a": (2, 50), "p": (1, 90_000), "b": (2, 40), "q": (1, 5_000), "paid": (5_000_000, 9_000_000)},
     "paid - (a * p + b * q)"),
    ("A farm has {cows} cows. Each cow gives {liters} liters of milk a day, and the milk sells for ${price} per "
     "liter. How much money does the farm make from milk in {days} days?",
     {"cows": (3, 500_000), "liters": (2, 30), "price": [1, 2, 3, 4, 5], "days": [7, 14, 30]},
     "cows * liters * price * days"),
    ("A train travels at {v} miles per hour for {t1} hours and then at {u} miles per hour for {t2} hours. How many "
     "miles does it travel in total?", {"v": (20, 900_000), "t1": (1, 12), "u": (20, 300), "t2": (1, 12)},
     "v * t1 + u * t2"),
    ("A bakery bakes {per} cookies in each batch and bakes {batches} batches a day. It sells {pct}% of the cookies "
     "and gives away {gift} cookies. How many cookies are left at the end of the day?",
     {"per": (12, 600_000), "batches": (2, 10), "pct": [25, 50, 75, 80], "gift": (1, 20)},
     "per * batches * (1 - pct / 100) - gift"),
    ("{name} has ${total}. She keeps ${keep} for herself and shares the rest equally among {k} friends. How much "
     "money does each friend get?", {"total": (100_000, 9_000_000), "keep": (100, 50_000), "k": (2, 9)},
     "(total - keep) / k"),
    ("{name} saves ${save} every week for {weeks} weeks. Then she spends {pct}% of her savings on a trip. How much "
     "money does she have left?", {"save": (5, 800_000), "weeks": (4, 52), "pct": [10, 20, 25, 40, 50]},
     "save * weeks * (1 - pct / 100)"),
]
NAMES = ["Eliza", "Janet", "Maria", "Aisha", "Sofia", "Mei", "Olga", "Priya", "Lena", "Grace"]


class GSMHard(_NumericAnswer):
    name = "gsm_hard"
    description = "Grade-school word problems with large numbers (GSM-Hard style), numeric answer."

    def _generate_one(self, rng: random.Random) -> Item:
        k = rng.randrange(len(GSM_TEMPLATES))
        text, spec, expr = GSM_TEMPLATES[k]
        values = {v: (rng.randint(*r) if isinstance(r, tuple) else rng.choice(r)) for v, r in spec.items()}
        result = eval(expr, {}, dict(values))
        question = text.format(name=rng.choice(NAMES), **values)
        question += "\nReturn your final answer as a number with the format <<<answer>>>."
        return self.make(question, repr(float(result)), template=k, values=values, expression=expr)

    def reference_solution(self, item: Item) -> str:
        md = item.metadata
        if "code" in md:  # imported GSM-Hard item: the official program computes the answer
            return f"{md['code'].strip()}\n\nprint(f'<<<{{solution()}}>>>')\n"
        lines = "".join(f"{k} = {v!r}\n" for k, v in md["values"].items())
        return f"{lines}result = {md['expression']}\nprint(f'<<<{{result}}>>>')\n"


# ---------------------------------------------------------------- MATH Geometry
def _fmt(value) -> str:
    """sympy value as a MATH-style LaTeX answer."""
    import sympy

    return sympy.latex(sympy.nsimplify(value))


GEOMETRY: list[tuple[str, dict, str]] = [
    ("The measure of each exterior angle of a regular polygon is ${ext}$ degrees. What is the sum of the measures of "
     "the interior angles, in degrees?", {"ext": [10, 12, 15, 18, 20, 24, 30, 36, 40, 45, 60, 72, 90, 120]},
     "180 * (360 / ext - 2)"),
    ("A right triangle has legs of length ${a}$ and ${b}$. What is the length of its hypotenuse? Express your "
     "answer in simplest radical form.", {"a": (1, 30), "b": (1, 30)}, "sqrt(a**2 + b**2)"),
    ("A circle has a diameter of ${d}$ units. What is its area, in square units? Express your answer in terms of "
     "$\\pi$.", {"d": (2, 40)}, "pi * (Rational(d, 2))**2"),
    ("A cylinder has radius ${r}$ cm and height ${h}$ cm. What is its volume, in cubic centimeters? Express your "
     "answer in terms of $\\pi$.", {"r": (1, 15), "h": (1, 30)}, "pi * r**2 * h"),
    ("A sphere has radius ${r}$ inches. What is the volume of the sphere, in cubic inches? Express your answer in "
     "terms of $\\pi$.", {"r": (1, 12)}, "Rational(4, 3) * pi * r**3"),
    ("A trapezoid has parallel sides of length ${a}$ and ${b}$ units and a height of ${h}$ units. What is its area, "
     "in square units?", {"a": (2, 40), "b": (2, 40), "h": (1, 30)}, "Rational(a + b, 2) * h"),
    ("An equilateral triangle has side length ${s}$. What is its area? Express your answer in simplest radical "
     "form.", {"s": (2, 24)}, "sqrt(3) / 4 * s**2"),
    ("Triangle $ABC$ is similar to triangle $DEF$. If $AB = {ab}$, $BC = {bc}$ and $DE = {de}$, what is the length "
     "of $EF$? Express your answer as a common fraction if necessary.", {"ab": (2, 20), "bc": (2, 30), "de": (2, 40)},
     "Rational(bc * de, ab)"),
    ("A rectangle has length ${l}$ and width ${w}$. What is the length of its diagonal? Express your answer in "
     "simplest radical form.", {"l": (1, 25), "w": (1, 25)}, "sqrt(l**2 + w**2)"),
    ("The interior angles of a triangle are in the ratio ${a}:{b}:{c}$. What is the measure, in degrees, of the "
     "largest angle?", {"a": (1, 9), "b": (1, 9), "c": (1, 9)}, "Rational(180 * max(a, b, c), a + b + c)"),
]


class _SympyTemplates(_NumericAnswer):
    templates: list[tuple[str, dict, str]] = []

    def _draw(self, rng: random.Random) -> tuple[int, dict]:
        k = rng.randrange(len(self.templates))
        spec = self.templates[k][1]
        return k, {v: (rng.randint(*r) if isinstance(r, tuple) else rng.choice(r)) for v, r in spec.items()}

    def _item(self, k: int, values: dict) -> Item:
        import sympy

        text, _, expr = self.templates[k]
        env = {v: (sympy.Integer(x) if isinstance(x, int) else x) for v, x in values.items()}
        env |= {"Rational": sympy.Rational, "binomial": sympy.binomial, "factorial": sympy.factorial,
                "sqrt": sympy.sqrt, "pi": sympy.pi}
        builtins = {"abs": abs, "len": len, "set": set, "max": max, "__import__": __import__}
        value = eval(expr, {"__builtins__": builtins, **env})
        question = text.format(**values) + "\nReturn your final answer in LaTeX with the format <<<answer>>>."
        return self.make(question, _fmt(value), template=k, values=values, expression=expr)

    def reference_solution(self, item: Item) -> str:
        md = item.metadata
        if "expression" not in md:  # imported MATH item: no program computes it; print the official answer
            return f"answer = {md['boxed']!r}  # from the official worked solution\nprint(f'<<<{{answer}}>>>')\n"
        lines = "".join(f"{k} = {v!r}\n" for k, v in md["values"].items())
        return ("from sympy import Rational, binomial, factorial, latex, nsimplify, pi, sqrt\n"
                f"{lines}answer = {md['expression']}\nprint(f'<<<{{latex(nsimplify(answer))}}>>>')\n")


class MathGeometry(_SympyTemplates):
    name = "math_geometry"
    description = "MATH-style geometry problems (polygons, triangles, circles, solids) with exact answers."
    templates = GEOMETRY

    def _generate_one(self, rng: random.Random) -> Item:
        return self._item(*self._draw(rng))


COUNTING: list[tuple[str, dict, str]] = [
    ("In how many ways can a committee of ${k}$ people be chosen from a group of ${n}$ people?",
     {"n": (5, 20), "k": (2, 5)}, "binomial(n, k)"),
    ("A committee of ${a}$ men and ${b}$ women is to be formed from ${m}$ men and ${w}$ women. How many different "
     "committees are possible?", {"a": (1, 3), "b": (1, 3), "m": (4, 10), "w": (4, 10)},
     "binomial(m, a) * binomial(w, b)"),
    ("Two fair six-sided dice are rolled. What is the probability that the sum of the numbers rolled is ${s}$? "
     "Express your answer as a common fraction.", {"s": (2, 12)}, "Rational(6 - abs(s - 7), 36)"),
    ("A bag has ${r}$ red marbles and ${b}$ blue marbles. Two marbles are drawn at random without replacement. What "
     "is the probability that both are red? Express your answer as a common fraction.",
     {"r": (2, 12), "b": (1, 12)}, "Rational(r * (r - 1), (r + b) * (r + b - 1))"),
    ("A fair coin is flipped ${n}$ times. What is the probability of getting at least one head? Express your answer "
     "as a common fraction.", {"n": (2, 10)}, "1 - Rational(1, 2**n)"),
    ("How many of the positive integers less than or equal to ${N}$ are divisible by ${a}$ or ${b}$?",
     {"N": (50, 1000), "a": (2, 9), "b": (2, 13)}, "N // a + N // b - N // (a * b // __import__('math').gcd(a, b))"),
    ("In how many ways can ${n}$ people sit in a row of ${n}$ chairs if two of them, Alice and Bob, insist on "
     "sitting next to each other?", {"n": (3, 9)}, "2 * factorial(n - 1)"),
    ("How many distinct arrangements of the letters in the word ${word}$ are there?",
     {"word": ["BANANA", "LETTER", "ALABAMA", "PEPPER", "BOOKKEEPER", "COMMITTEE", "MISSISSIPPI", "BALLOON",
               "GAMMA", "TOOTH", "STREET", "PIZZA", "RADAR", "LEVEL", "ELEVEN"]},
     "factorial(len(word)) / __import__('math').prod(factorial(word.count(c)) for c in set(word))"),
    ("How many ways are there to put ${n}$ indistinguishable balls into ${k}$ distinguishable boxes?",
     {"n": (2, 12), "k": (2, 6)}, "binomial(n + k - 1, k - 1)"),
    ("What is the probability that a randomly chosen integer from 1 to ${N}$ inclusive is a multiple of ${a}$? "
     "Express your answer as a common fraction.", {"N": (10, 200), "a": (2, 12)}, "Rational(N // a, N)"),
]


class MathCountingProbability(_SympyTemplates):
    name = "math_counting_probability"
    description = "MATH-style counting and probability problems with exact answers."
    templates = COUNTING

    def _generate_one(self, rng: random.Random) -> Item:
        while True:
            k, values = self._draw(rng)
            if k == 5 and values["a"] == values["b"]:
                continue
            return self._item(k, values)
