"""BBH object_counting: count the things of one category in a list of possessions."""

from __future__ import annotations

import random
import re
from typing import Any

from ..base import Item
from .common import BBHTask, NoReferenceSolution

CATEGORIES: dict[str, list[tuple[str, str]]] = {
    "musical instruments": [(w, w + "s") for w in (
        "piano flute trumpet violin drum clarinet trombone accordion").split()],
    "fruits": [("apple", "apples"), ("banana", "bananas"), ("peach", "peaches"), ("plum", "plums"),
               ("grape", "grapes"), ("orange", "oranges"), ("strawberry", "strawberries"),
               ("nectarine", "nectarines"), ("blackberry", "blackberries"), ("raspberry", "raspberries")],
    "vegetables": [("carrot", "carrots"), ("potato", "potatoes"), ("onion", "onions"), ("yam", "yams"),
                   ("cabbage", "cabbages"), ("cauliflower", "cauliflowers"), ("garlic", "garlics"),
                   ("stalk of celery", "stalks of celery"), ("head of broccoli", "heads of broccoli"),
                   ("lettuce head", "lettuce heads")],
    "animals": [("cat", "cats"), ("dog", "dogs"), ("rabbit", "rabbits"), ("goat", "goats"), ("cow", "cows"),
                ("pig", "pigs"), ("chicken", "chickens"), ("duck", "ducks"), ("fish", "fish"),
                ("frog", "frogs"), ("mouse", "mice"), ("bear", "bears"), ("donkey", "donkeys"),
                ("snake", "snakes"), ("snail", "snails"), ("rabbit", "rabbits")],
    "objects": [("chair", "chairs"), ("table", "tables"), ("bed", "beds"), ("couch", "couches"),
                ("lamp", "lamps"), ("car", "cars"), ("stove", "stoves"), ("microwave", "microwaves"),
                ("oven", "ovens"), ("toaster", "toasters"), ("fridge", "fridges")],
}
NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]


def _lexicon() -> dict[str, tuple[str, str]]:
    """Noun (singular or plural) -> (singular, category)."""
    out = {}
    for cat, nouns in CATEGORIES.items():
        for sing, plur in nouns:
            out[sing] = out[plur] = (sing, cat)
    return out


class ObjectCounting(BBHTask):
    task = "object_counting"
    description = "Count how many items of a category (fruits, animals, ...) are listed."
    answer_kind = "numeric"

    def _generate_one(self, rng: random.Random) -> Item:
        asked = rng.choice(list(CATEGORIES))
        other = rng.choice([c for c in CATEGORIES if c != asked and c != "objects"] + ["objects"])
        pool = [(n, asked) for n in CATEGORIES[asked]] + [(n, other) for n in CATEGORIES[other]]
        chosen = rng.sample(pool, rng.randint(3, min(10, len(pool))))
        if not any(c == asked for _, c in chosen):
            chosen[0] = (rng.choice(CATEGORIES[asked]), asked)
        seen, things = set(), []
        for (sing, plur), _ in chosen:
            if sing in seen:
                continue
            seen.add(sing)
            k = rng.choice([1, 1, 1, 2, 3, 4, 5])
            art = "an" if sing[0] in "aeiou" else "a"
            things.append([k, sing, f"{art} {sing}" if k == 1 else f"{NUMBER_WORDS[k]} {plur}"])
        listed = ", ".join(t[2] for t in things[:-1]) + f", and {things[-1][2]}"
        text = f"I have {listed}. How many {asked} do I have?"
        lex = _lexicon()
        answer = sum(k for k, sing, _ in things if lex[sing][1] == asked)
        return self.item(text, answer, {"things": [[k, s] for k, s, _ in things], "category": asked,
                                         "lexicon": {s: lex[s][1] for _, s, _ in things}})

    def parse(self, question: str) -> dict[str, Any]:
        m = re.match(r"I have (.*)\. How many ([\w ]+?) do I have\?", question.strip())
        if not m or m.group(2) not in CATEGORIES:
            raise NoReferenceSolution("not an object_counting question")
        lex, things = _lexicon(), []
        for part in re.split(r", and |, | and ", m.group(1)):
            count, _, noun = part.partition(" ")
            k = 1 if count in ("a", "an") else NUMBER_WORDS.index(count) if count in NUMBER_WORDS else None
            if k is None or noun not in lex:
                raise NoReferenceSolution(f"unknown thing {part!r}")
            things.append([k, lex[noun][0]])
        return {"things": things, "category": m.group(2), "lexicon": {s: lex[s][1] for _, s in things}}

    def program(self, values: dict[str, Any]) -> str:
        return (
            f"things = {values['things']!r}  # (count, noun)\n"
            f"category_of = {values['lexicon']!r}\n"
            f"asked = {values['category']!r}\n"
            "total = sum(count for count, noun in things if category_of[noun] == asked)\n"
            "print(f'<<<{total}>>>')\n"
        )
