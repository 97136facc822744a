"""BBH temporal_sequences: find the free time slot between sightings of a person."""

from __future__ import annotations

import random
import re
from typing import Any

from ..base import Item
from .common import BBHTask, NoReferenceSolution, letter_of, parse_options, render_options

PEOPLE = ["Emily", "Elizabeth", "Jessica", "Leslie", "William", "Sarah", "Andrew", "David", "Hannah",
          "Betty", "Tiffany", "Mary", "Sean", "Nancy", "James", "Susan", "Richard", "Jason", "Kimberly", "Lisa"]
PLACES = [("the museum", "museum"), ("the park", "park"), ("the beach", "beach"), ("the gym", "gym"),
          ("the bakery", "bakery"), ("the coffee shop", "coffee shop"), ("the swimming pool", "swimming pool"),
          ("the art studio", "art studio"), ("the soccer field", "soccer field"), ("the bookstore", "bookstore")]
ACTIVITIES = ["reading at the library", "watching a movie at the theater", "waiting at the airport",
              "buying clothes at the mall", "working at the office", "taking photos near the Eiffel Tower",
              "sitting on a rooftop", "getting a coffee at the cafe", "walking in the garden",
              "buying lunch at the deli", "stretching at a yoga studio", "playing tennis at the tennis court",
              "waiting at the train station", "fixing their computer at the electronic store"]


def _h(hour: int) -> str:
    return f"{(hour - 1) % 12 + 1}{'am' if hour < 12 else 'pm'}"


def _hour(text: str) -> int:
    m = re.fullmatch(r"(\d+)(am|pm)", text.strip())
    if not m:
        raise NoReferenceSolution(f"bad time {text!r}")
    return int(m.group(1)) % 12 + (12 if m.group(2) == "pm" else 0)


class TemporalSequences(BBHTask):
    task = "temporal_sequences"
    description = "From when a person was seen where, deduce when they could have gone somewhere."
    answer_kind = "choice"

    def _generate_one(self, rng: random.Random) -> Item:
        person, *witnesses = rng.sample(PEOPLE, 7)
        place, short = rng.choice(PLACES)
        wake = rng.randint(5, 12)
        cuts, t = [wake], wake
        for _ in range(rng.randint(3, 5)):
            t += rng.choice([1, 1, 2, 3])
            cuts.append(t)
        close = min(cuts[-1], 22)
        cuts = [c for c in cuts if c < close] + [close]
        if len(cuts) < 4:
            return self._generate_one(rng)
        slots = list(zip(cuts, cuts[1:], strict=False))
        free = rng.randrange(len(slots))
        acts = rng.sample(ACTIVITIES, len(slots))
        lines = [f"{person} woke up at {_h(wake)}."]
        for i, (a, b) in enumerate(slots):
            if i != free:
                lines.append(f"{witnesses[i % len(witnesses)]} saw {person} {acts[i]} from {_h(a)} to {_h(b)}.")
        lines.append(f"The {short} was closed after {_h(close)}.")
        opts = [f"{_h(a)} to {_h(b)}" for a, b in slots]
        answer = opts[free]
        others = [o for o in opts if o != answer]
        rng.shuffle(others)
        options = others[:3] + [answer]
        rng.shuffle(options)
        text = (f"Today, {person} went to {place}. Between what times could they have gone?\nWe know that:\n"
                + "\n".join(lines) + f"\nBetween what times could {person} have gone to {place}?\n"
                + render_options(options))
        return self.item(text, letter_of(options, answer), {"wake": wake, "close": close,
                                                            "busy": [[a, b] for i, (a, b) in enumerate(slots)
                                                                     if i != free],
                                                            "options": options})

    def parse(self, question: str) -> dict[str, Any]:
        wake = re.search(r"woke up at (\d+(?:am|pm))", question)
        close = re.search(r"closed after (\d+(?:am|pm))", question)
        if not wake or not close:
            raise NoReferenceSolution("not a temporal_sequences question")
        busy = [[_hour(a), _hour(b)] for a, b in re.findall(r"from (\d+(?:am|pm)) to (\d+(?:am|pm))", question)]
        return {"wake": _hour(wake.group(1)), "close": _hour(close.group(1)), "busy": busy,
                "options": [t for _, t in parse_options(question)]}

    def program(self, values: dict[str, Any]) -> str:
        return (
            f"wake, close = {values['wake']}, {values['close']}  # hours, 24h clock\n"
            f"busy = {values['busy']!r}  # seen elsewhere [from, to)\n"
            f"options = {values['options']!r}\n"
            "def hour(t):\n"
            "    n, half = int(t[:-2]), t[-2:]\n"
            "    return n % 12 + (12 if half == 'pm' else 0)\n"
            "for i, opt in enumerate(options):\n"
            "    a, b = (hour(x) for x in opt.split(' to '))\n"
            "    if wake <= a < b <= close and all(b <= s or a >= e for s, e in busy):\n"
            "        print(f'<<<({chr(65 + i)})>>>')\n"
            "        break\n"
        )
