"""BBH logical_deduction_{three,five,seven}_objects: order objects from ordering clues."""

from __future__ import annotations

import itertools
import random
from typing import Any

from ..base import Item
from .common import BBHTask, letter_of, render_options

COUNT_WORDS = {3: "three", 5: "five", 7: "seven"}
ORDINALS = ["first", "second", "third", "fourth", "fifth", "sixth", "seventh"]


def _ord_phrase(k: int, n: int, low: str, high: str, low_suffix: str, high_suffix: str) -> str:
    """Phrase for position k (0 = lowest end) e.g. 'the leftmost', 'the second from the right'."""
    if k == 0:
        return low
    if k == n - 1:
        return high
    if k <= (n - 1) // 2:
        return f"the {ORDINALS[k]}{low_suffix}"
    return f"the {ORDINALS[n - 1 - k]}{high_suffix}"


class _Scenario:
    def __init__(self, intro, pool, noun, is_, rel_low, rel_high, low, high, low_suffix, high_suffix):
        self.intro, self.pool, self.noun, self.is_ = intro, pool, noun, is_
        self.rel_low, self.rel_high = rel_low, rel_high
        self.low, self.high, self.low_suffix, self.high_suffix = low, high, low_suffix, high_suffix

    def pos(self, k: int, n: int) -> str:
        return _ord_phrase(k, n, self.low, self.high, self.low_suffix, self.high_suffix)


SCENARIOS = [
    _Scenario("On a shelf, there are {n} books: {items}.",
              ["red", "gray", "white", "blue", "green", "orange", "yellow", "brown", "black", "purple"],
              "The {} book", "is", "to the left of", "to the right of", "the leftmost", "the rightmost",
              " from the left", " from the right"),
    _Scenario("On a branch, there are {n} birds: {items}.",
              ["quail", "owl", "raven", "falcon", "robin", "hawk", "crow", "cardinal", "hummingbird", "blue jay"],
              "The {}", "is", "to the left of", "to the right of", "the leftmost", "the rightmost",
              " from the left", " from the right"),
    _Scenario("In a golf tournament, there were {n} golfers: {items}.",
              ["Rob", "Eve", "Eli", "Amy", "Dan", "Joe", "Mel", "Ana", "Ada", "Mya"],
              "{}", "finished", "above", "below", "first", "last", "", "-to-last"),
    _Scenario("A fruit stand sells {n} fruits: {items}.",
              ["mangoes", "kiwis", "plums", "pears", "watermelons", "apples", "oranges", "peaches", "loquats",
               "cantaloupes"],
              "The {}", "are", "less expensive than", "more expensive than", "the cheapest", "the most expensive",
              "-cheapest", "-most expensive"),
    _Scenario("In an antique car show, there are {n} vehicles: {items}.",
              ["motorcyle", "limousine", "convertible", "sedan", "tractor", "truck", "bus", "minivan",
               "hatchback", "station wagon"],
              "The {}", "is", "older than", "newer than", "the oldest", "the newest", "-oldest", "-newest"),
]
_ARTICLED = {0: "a {} book", 1: "{art} {}", 2: "{}", 3: "{}", 4: "{art} {}"}


def _fix_golf(phrase: str) -> str:  # golf uses "finished second", "finished second-to-last"
    return phrase.replace("the ", "") if phrase.startswith("the ") else phrase


def satisfies(order: tuple[str, ...], constraints: list[list[Any]]) -> bool:
    idx = {o: i for i, o in enumerate(order)}
    for kind, a, b in constraints:
        if kind == "pos" and idx[a] != b:
            return False
        if kind == "before" and not idx[a] < idx[b]:
            return False
    return True


class LogicalDeduction(BBHTask):
    answer_kind = "choice"
    n: int = 3

    def _generate_one(self, rng: random.Random) -> Item:
        n = self.n
        si = rng.randrange(len(SCENARIOS))
        sc = SCENARIOS[si]
        objects = rng.sample(sc.pool, n)
        truth = objects[:]
        rng.shuffle(truth)  # truth[0] is the lowest end (leftmost, first, cheapest, oldest)
        clues: list[list[Any]] = []
        perms = list(itertools.permutations(objects))
        while sum(satisfies(p, clues) for p in perms) > 1:
            if rng.random() < 0.3:
                o = rng.choice(objects)
                clue = ["pos", o, truth.index(o)]
            else:
                a, b = rng.sample(objects, 2)
                clue = ["before", a, b] if truth.index(a) < truth.index(b) else ["before", b, a]
            if clue not in clues:
                clues.append(clue)
        for clue in list(clues):  # drop redundant clues
            rest = [c for c in clues if c is not clue]
            if sum(satisfies(p, rest) for p in perms) == 1:
                clues = rest
        rng.shuffle(clues)

        def subj(o: str) -> str:
            return sc.noun.format(o)

        def sentence(c: list[Any]) -> str:
            kind, a, b = c
            if kind == "pos":
                phrase = sc.pos(b, n)
                return f"{subj(a)} {sc.is_} {_fix_golf(phrase) if si == 2 else phrase}."
            if rng.random() < 0.5:
                return f"{subj(a)} {sc.is_} {sc.rel_low} {subj(b).replace('The ', 'the ')}."
            return f"{subj(b)} {sc.is_} {sc.rel_high} {subj(a).replace('The ', 'the ')}."

        def listed(o: str) -> str:
            tmpl = _ARTICLED[si]
            return tmpl.format(o, art="an" if o[0] in "aeiou" else "a")

        items = ", ".join(listed(o) for o in objects[:-1]) + f", and {listed(objects[-1])}"
        if n == 2:
            items = items.replace(", and", " and")
        k = rng.randrange(n)
        phrase = _fix_golf(sc.pos(k, n)) if si == 2 else sc.pos(k, n)
        options = [f"{subj(o)} {sc.is_} {phrase}" for o in objects]
        text = ("The following paragraphs each describe a set of "
                f"{COUNT_WORDS[n]} objects arranged in a fixed order. The statements are logically consistent "
                f"within each paragraph. {sc.intro.format(n=COUNT_WORDS[n], items=items)} "
                f"{' '.join(sentence(c) for c in clues)}\n{render_options(options)}")
        values = {"objects": objects, "constraints": clues, "position": k}
        return self.item(text, letter_of(options, options[objects.index(truth[k])]), values)

    def program(self, values: dict[str, Any]) -> str:
        return (
            "from itertools import permutations\n"
            f"objects = {values['objects']!r}  # option order\n"
            f"constraints = {values['constraints']!r}  # ('pos', x, index) or ('before', x, y); index 0 = low end\n"
            f"asked_position = {values['position']!r}\n"
            "def ok(order):\n"
            "    idx = {o: i for i, o in enumerate(order)}\n"
            "    return all(idx[a] == b if kind == 'pos' else idx[a] < idx[b] for kind, a, b in constraints)\n"
            "solutions = [p for p in permutations(objects) if ok(p)]\n"
            "assert len(solutions) == 1\n"
            "answer = solutions[0][asked_position]\n"
            "print(f'<<<({chr(65 + objects.index(answer))})>>>')\n"
        )


def _make(n: int) -> type[LogicalDeduction]:
    word = COUNT_WORDS[n]
    return type(f"LogicalDeduction{word.title()}", (LogicalDeduction,), {
        "task": f"logical_deduction_{word}_objects", "n": n,
        "description": f"Order {word} objects from clues and pick the true statement.",
        "__module__": __name__})


LOGICAL_DEDUCTION = [_make(n) for n in (3, 5, 7)]
