"""SymBench's four BIG-Bench-Hard tasks, generated procedurally: Date Understanding, Web of Lies, Logical
Deduction (seven objects) and Navigation. They duplicate the BBH families (`duplicates_bbh = True`)."""

from __future__ import annotations

import datetime as dt
import itertools
import random
import re

from ..base import Item, Verdict
from ._common import UNPARSEABLE, SymbenchTask, strip_wrappers, verdict

SUFFIX = "\n\nOutput final answer with the format <<<answer>>>."
LETTERS = "ABCDEFG"


def option_letter(answer: str | None, options: list[str]) -> str | None:
    """The option letter an answer picks: '(B)', 'B', 'B) text' or the option's own text; else None."""
    if answer is None:
        return None
    s = strip_wrappers(answer)
    m = re.fullmatch(r"\(?([A-Ga-g])\)?(?:[.:]?\s.*)?", s, re.DOTALL)
    if m and m.group(1).upper() in LETTERS[: len(options)]:
        return m.group(1).upper()
    for i, text in enumerate(options):
        if s.lower().rstrip(".") == text.lower().rstrip("."):
            return LETTERS[i]
    return None


class _Choice(SymbenchTask):
    duplicates_bbh = True

    def check(self, answer: str | None, item: Item) -> Verdict:
        got = option_letter(answer, item.metadata["options"])
        if got is None:
            return UNPARSEABLE
        return verdict(f"({got})" == item.answer)


class _YesNo(SymbenchTask):
    duplicates_bbh = True

    def check(self, answer: str | None, item: Item) -> Verdict:
        if answer is None:
            return UNPARSEABLE
        s = strip_wrappers(answer).rstrip(".").lower()
        if s not in ("yes", "no"):
            return UNPARSEABLE
        return verdict(s == item.answer.lower())


# ---------------------------------------------------------------- Date Understanding
EVENTS = [
    ("Today is {d}. What is the date {n} days ago in MM/DD/YYYY?", lambda d, n: d - dt.timedelta(days=n)),
    ("Today is {d}. What is the date {n} days from today in MM/DD/YYYY?", lambda d, n: d + dt.timedelta(days=n)),
    ("Yesterday was {d}. What is the date one week from today in MM/DD/YYYY?",
     lambda d, n: d + dt.timedelta(days=8)),
    ("Tomorrow is {d}. What is the date {n} weeks ago in MM/DD/YYYY?", lambda d, n: d - dt.timedelta(days=7 * n + 1)),
    ("The concert was scheduled for {d}, but was delayed by {n} days to today. What is the date tomorrow in "
     "MM/DD/YYYY?", lambda d, n: d + dt.timedelta(days=n + 1)),
]


class DateUnderstanding(_Choice):
    name = "date_understanding"
    description = "Date arithmetic with multiple-choice answers (BBH style)."

    def _generate_one(self, rng: random.Random) -> Item:
        k = rng.randrange(len(EVENTS))
        base = dt.date(rng.randint(1900, 2030), 1, 1) + dt.timedelta(days=rng.randint(0, 364))
        n = rng.randint(1, 40)
        target = EVENTS[k][1](base, n)
        shifts = rng.sample([1, -1, 7, -7, 30, -30, 365, -365, 10, -10, 2], 5)
        dates = {target} | {target + dt.timedelta(days=s) for s in shifts}
        opts = sorted(dates, key=lambda _: rng.random())[:6]
        if target not in opts:
            opts[0] = target
        options = [d.strftime("%m/%d/%Y") for d in opts]
        listed = "\n".join(f"({LETTERS[i]}) {o}" for i, o in enumerate(options))
        question = EVENTS[k][0].format(d=base.strftime("%m/%d/%Y"), n=n) + f"\nOptions:\n{listed}" + SUFFIX
        answer = f"({LETTERS[options.index(target.strftime('%m/%d/%Y'))]})"
        return self.make(question, answer, event=k, date=base.isoformat(), n=n, options=options)

    def reference_solution(self, item: Item) -> str:
        md = item.metadata
        rule = ["base - timedelta(days=n)", "base + timedelta(days=n)", "base + timedelta(days=8)",
                "base - timedelta(days=7 * n + 1)", "base + timedelta(days=n + 1)"][md["event"]]
        return (
            "from datetime import date, timedelta\n"
            f"base, n = date.fromisoformat('{md['date']}'), {md['n']}  # the date named in the question\n"
            f"options = {md['options']}\n"
            f"target = ({rule}).strftime('%m/%d/%Y')\n"
            "print(f\"<<<({'ABCDEFG'[options.index(target)]})>>>\")\n"
        )


# ---------------------------------------------------------------- Web of Lies
PEOPLE = ["Fidel", "Jerry", "Vina", "Millicent", "Raymond", "Sherrie", "Kristian", "Helene", "Alexis", "Ka",
          "Shenna", "Jamey", "Delfina", "Teressa", "Gwenn", "Leda", "Rashida", "Elanor", "Osvaldo", "Tamika"]


class WebOfLies(_YesNo):
    name = "web_of_lies"
    description = "Follow a chain of who-tells-the-truth statements (BBH style)."

    def _generate_one(self, rng: random.Random) -> Item:
        people = rng.sample(PEOPLE, rng.randint(3, 6))
        first = rng.random() < 0.5
        says = [rng.random() < 0.5 for _ in people[1:]]  # True: "says X tells the truth"
        truth = first
        for s in says:
            truth = truth if s else not truth
        parts = [f"{people[0]} {'tells the truth' if first else 'lies'}."]
        parts += [f"{p} says {q} {'tells the truth' if s else 'lies'}."
                  for p, q, s in zip(people[1:], people, says, strict=False)]
        question = f"Question: {' '.join(parts)} Does {people[-1]} tell the truth?" + SUFFIX
        return self.make(question, "Yes" if truth else "No", people=people, first_truthful=first, says_truth=says)

    def reference_solution(self, item: Item) -> str:
        md = item.metadata
        return (
            f"truthful = {md['first_truthful']}  # does {md['people'][0]} tell the truth?\n"
            f"says_truth = {md['says_truth']}  # each next person says the previous one tells the truth (True) or lies\n"
            "for s in says_truth:\n"
            "    truthful = truthful if s else not truthful\n"
            "print('<<<' + ('Yes' if truthful else 'No') + '>>>')\n"
        )


# ---------------------------------------------------------------- Logical Deduction (seven objects)
SCENES = [
    ("On a shelf, there are seven books: {objs}.", "book", ["white", "red", "gray", "purple", "green", "blue",
                                                              "orange", "yellow", "brown", "black"], "left"),
    ("In a golf tournament, there were seven golfers: {objs}.", "", ["Ana", "Eve", "Ada", "Dan", "Rob", "Amy", "Joe",
                                                                     "Mel", "Eli", "Mya"], "rank"),
    ("In an antique car show, there are seven vehicles: {objs}.", "", ["the bus", "the truck", "the motorcyle",
     "the sedan", "the convertible", "the hatchback", "the limousine", "the minivan", "the tractor", "the station wagon"],
     "age"),
]
ORD = ["first", "second", "third", "fourth", "fifth", "sixth", "seventh"]


def _pos_text(kind: str, i: int) -> str:
    if kind == "left":
        return "the leftmost" if i == 0 else "the rightmost" if i == 6 else f"the {ORD[i]} from the left"
    if kind == "rank":
        return "first" if i == 0 else "last" if i == 6 else f"{ORD[i]}"
    return "the newest" if i == 0 else "the oldest" if i == 6 else f"the {ORD[i]}-newest"


class LogicalDeduction(_Choice):
    name = "logical_deduction"
    description = "Order seven objects from clues and pick the true statement (BBH style)."

    def _generate_one(self, rng: random.Random) -> Item:
        k = rng.randrange(len(SCENES))
        text, noun, pool, kind = SCENES[k]
        objs = rng.sample(pool, 7)
        name = (lambda o: f"the {o} {noun}") if noun else (lambda o: o)
        order = rng.sample(objs, 7)
        rel = {"left": ("to the left of", "to the right of"), "rank": ("above", "below"),
               "age": ("newer than", "older than")}[kind]
        clues: list[list] = []
        sols = list(itertools.permutations(objs))
        while len(sols) > 1:
            if rng.random() < 0.3:
                o = rng.choice(objs)
                clue = ["at", o, order.index(o)]
            else:
                a, b = rng.sample(objs, 2)
                clue = ["before", a, b] if order.index(a) < order.index(b) else ["before", b, a]
            kept = [p for p in sols if _clue_ok(p, clue)]
            if len(kept) < len(sols):  # only informative clues
                clues.append(clue)
                sols = kept
        sentences = []
        for c in clues:
            if c[0] == "at":
                sentences.append(f"{name(c[1])[0].upper() + name(c[1])[1:]} {'finished ' if kind == 'rank' else 'is '}"
                                 f"{_pos_text(kind, c[2])}.")
            else:
                sentences.append(f"{name(c[1])[0].upper() + name(c[1])[1:]} "
                                 f"{'finished ' if kind == 'rank' else 'is '}{rel[0]} {name(c[2])}.")
        pos = rng.randrange(7)
        options = [f"{name(o)[0].upper() + name(o)[1:]} {'finished ' if kind == 'rank' else 'is '}{_pos_text(kind, pos)}"
                   for o in objs]
        intro = ("The following paragraphs each describe a set of seven objects arranged in a fixed order. The "
                 "statements are logically consistent within each paragraph. ")
        listed = "\n".join(f"({LETTERS[i]}) {o}" for i, o in enumerate(options))
        objs_text = ", ".join(name(o) for o in objs[:-1]) + f", and {name(objs[-1])}"
        question = intro + text.format(objs=objs_text) + " " + " ".join(sentences) + f"\nOptions:\n{listed}" + SUFFIX
        answer = f"({LETTERS[objs.index(order[pos])]})"
        return self.make(question, answer, objects=objs, clues=clues, position=pos, options=options)

    def reference_solution(self, item: Item) -> str:
        md = item.metadata
        clues = [tuple(c) for c in md["clues"]]
        return (
            "from itertools import permutations\n"
            f"objects = {md['objects']}  # option (A) is about objects[0], (B) objects[1], ...\n"
            f"clues = {clues}  # ('at', x, index) or ('before', x, y); index 0 = first in the order\n"
            f"asked = {md['position']}  # every option places its object at this index\n"
            "for order in permutations(objects):\n"
            "    if all(order.index(c[1]) == c[2] if c[0] == 'at' else order.index(c[1]) < order.index(c[2])\n"
            "           for c in clues):\n"
            "        print(f\"<<<({'ABCDEFG'[objects.index(order[asked])]})>>>\")\n"
            "        break\n"
        )


def _clue_ok(p: tuple, c: list) -> bool:
    return p.index(c[1]) == c[2] if c[0] == "at" else p.index(c[1]) < p.index(c[2])


# ---------------------------------------------------------------- Navigation
class Navigation(_YesNo):
    name = "navigation"
    description = "Follow step instructions and say whether you return to the start (BBH style)."

    def _generate_one(self, rng: random.Random) -> Item:
        face = rng.random() < 0.5  # "Always face forward." variant
        steps: list[list] = []
        for _ in range(rng.randint(3, 8)):
            if face:
                steps.append([rng.choice(["forward", "backward", "left", "right"]), rng.randint(1, 10)])
            else:
                steps.append(rng.choice([["turn", rng.choice(["left", "right", "around"])],
                                         ["forward", rng.randint(1, 10)], ["forward", rng.randint(1, 10)]]))
        if rng.random() < 0.5:  # close the loop half of the time
            x, y = self._walk(steps)
            if face and (x or y):
                steps += [["right" if x < 0 else "left", abs(x)]] if x else []
                steps += [["forward" if y < 0 else "backward", abs(y)]] if y else []
        x, y = self._walk(steps)
        text = ["Always face forward."] if face else []
        for a, b in steps:
            if a == "turn":
                text.append(f"Turn {b}.")
            else:
                word = "step" if b == 1 else "steps"
                text.append(f"Take {b} {word}" + ("." if a == "forward" and not face else f" {a}."))
        question = ("If you follow these instructions, do you return to the starting point? " + " ".join(text)
                    + "\nOptions:\n- Yes\n- No" + SUFFIX)
        return self.make(question, "Yes" if (x, y) == (0, 0) else "No", steps=steps)

    @staticmethod
    def _walk(steps: list[list]) -> tuple[int, int]:
        x = y = 0
        dx, dy = 0, 1
        for a, b in steps:
            if a == "turn":
                dx, dy = {"left": (-dy, dx), "right": (dy, -dx), "around": (-dx, -dy)}[b]
            else:
                mx, my = {"forward": (dx, dy), "backward": (-dx, -dy), "left": (-dy, dx), "right": (dy, -dx)}[a]
                x, y = x + mx * b, y + my * b
        return x, y

    def reference_solution(self, item: Item) -> str:
        steps = [tuple(s) for s in item.metadata["steps"]]
        return (
            f"steps = {steps}  # ('turn', side) or (direction relative to facing, count)\n"
            "x = y = dx = 0\n"
            "dy = 1  # facing north\n"
            "for a, b in steps:\n"
            "    if a == 'turn':\n"
            "        dx, dy = {'left': (-dy, dx), 'right': (dy, -dx), 'around': (-dx, -dy)}[b]\n"
            "    else:\n"
            "        mx, my = {'forward': (dx, dy), 'backward': (-dx, -dy), 'left': (-dy, dx), 'right': (dy, -dx)}[a]\n"
            "        x, y = x + mx * b, y + my * b\n"
            "print('<<<' + ('Yes' if (x, y) == (0, 0) else 'No') + '>>>')\n"
        )
