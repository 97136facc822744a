"""BBH tracking_shuffled_objects_{three,five,seven}_objects: follow a sequence of pairwise swaps."""

from __future__ import annotations

import random
import re
from typing import Any

from ..base import Item
from .common import BBHTask, NoReferenceSolution, letter_of, parse_options, render_options

PLAYERS = ["Alice", "Bob", "Claire", "Dave", "Eve", "Fred", "Gertrude"]
COUNT_WORDS = {3: "three", 5: "five", 7: "seven"}
# (setting sentence, what each holds, "has a X" phrasing, swap verb, final phrase)
SCENARIOS = [
    ("are playing a game. At the start of the game, they are each holding a ball",
     ["yellow", "blue", "pink", "red", "green", "white", "black", "orange", "purple", "brown"],
     "{} ball", "As the game progresses, pairs of players trade balls.", "swap balls",
     "At the end of the game, {} has the"),
    ("are friends and avid readers who occasionally trade books. At the start of the semester, "
     "they each buy one new book",
     ["Ulysses", "Frankenstein", "Moby Dick", "The Odyssey", "Catch-22", "Hound of the Baskervilles",
      "The Great Gatsby", "Lolita", "The Fellowship of the Ring", "The Pearl"],
     "{}", "As the semester proceeds, they start trading around the new books.", "swap books",
     "At the end of the semester, {} has"),
    ("are dancers at a square dance. At the start of a song, they each have a partner",
     ["Patrick", "Sam", "Jamie", "Rodrigo", "Karl", "Ophelia", "Lola", "Melissa", "Izzi", "Helga"],
     "{}", "Throughout the song, the dancers often trade partners.", "switch partners",
     "At the end of the dance, {} is dancing with"),
    ("are holding a white elephant gift exchange. At the start of the event, they are each holding "
     "a present of a different color",
     ["red", "blue", "green", "purple", "orange", "yellow", "white", "black", "brown", "pink"],
     "{} present", "As the event progresses, pairs of people swap gifts.", "swap their gifts",
     "At the end of the event, {} has the"),
]


_HOLD_VERB = ["has", "gets", "is dancing with", "has"]


def _article(text: str, kind: int) -> str:
    if kind in (1, 2):  # books and partners take no article
        return text
    return f"{'an' if text[0] in 'aeiou' else 'a'} {text}"


class TrackingShuffledObjects(BBHTask):
    answer_kind = "choice"
    n: int = 3

    def _generate_one(self, rng: random.Random) -> Item:
        n = self.n
        kind = rng.randrange(len(SCENARIOS))
        setting, pool, fmt, progress, verb, final = SCENARIOS[kind]
        players = PLAYERS[:n]
        things = [fmt.format(x) for x in rng.sample(pool, n)]
        verb_hold = _HOLD_VERB[kind]
        holds = ", ".join(f"{p} {verb_hold} {_article(t, kind)}"
                          for p, t in zip(players[:-1], things, strict=False))
        holds += f", and {players[-1]} {verb_hold} {_article(things[-1], kind)}"
        swaps = [rng.sample(players, 2) for _ in range(n)]
        orders = ["First"] + ["Then"] * (n - 2) + ["Finally"]
        swap_text = " ".join(f"{o}, {a} and {b} {verb}." for o, (a, b) in zip(orders, swaps, strict=False))
        asked = rng.choice(players)
        names = ", ".join(players[:-1]) + f", and {players[-1]}"
        text = (f"{names} {setting}: {holds}.\n{progress} {swap_text} {final.format(asked)}\n"
                f"{render_options(things)}")
        state = dict(zip(players, things, strict=True))
        for a, b in swaps:
            state[a], state[b] = state[b], state[a]
        values = {"start": [[p, t] for p, t in zip(players, things, strict=True)], "swaps": swaps,
                  "asked": asked, "options": things}
        return self.item(text, letter_of(things, state[asked]), values)

    def parse(self, question: str) -> dict[str, Any]:
        head, _, rest = question.partition(":")
        players = re.findall(r"[A-Z][a-z]+", head.split(" are ")[0])
        holds = rest.split("\n")[0]
        start = []
        for p in players:
            m = re.search(rf"{p} (?:has|is holding|gets|is playing|is dancing with) (?:a |an |the )?(.+?)(?:,|\.|$)",
                          holds)
            if not m:
                raise NoReferenceSolution(f"cannot find what {p} holds")
            start.append([p, m.group(1).strip()])
        swaps = re.findall(rf"({'|'.join(players)}) and ({'|'.join(players)}) (?:swap|switch|trade)", question)
        asked = re.search(rf"({'|'.join(players)}) (?:has|is dancing with|is playing|gets)(?: the)?\s*\nOptions",
                          question)
        options = [t for _, t in parse_options(question)]
        if not swaps or not asked or not options:
            raise NoReferenceSolution("cannot parse the swaps")
        return {"start": start, "swaps": [list(s) for s in swaps], "asked": asked.group(1), "options": options}

    def program(self, values: dict[str, Any]) -> str:
        return (
            f"holding = dict({values['start']!r})\n"
            f"swaps = {values['swaps']!r}\n"
            f"options = {values['options']!r}\n"
            "for a, b in swaps:\n"
            "    holding[a], holding[b] = holding[b], holding[a]\n"
            f"final = holding[{values['asked']!r}]\n"
            "letter = next(chr(65 + i) for i, o in enumerate(options) if o == final or o.endswith(final) or final.endswith(o))\n"
            "print(f'<<<({letter})>>>')\n"
        )


def _make(n: int) -> type[TrackingShuffledObjects]:
    word = COUNT_WORDS[n]
    return type(f"TrackingShuffledObjects{word.title()}", (TrackingShuffledObjects,), {
        "task": f"tracking_shuffled_objects_{word}_objects", "n": n,
        "description": f"Track which object each of {word} people holds after a series of swaps.",
        "__module__": __name__})


TRACKING = [_make(n) for n in (3, 5, 7)]
