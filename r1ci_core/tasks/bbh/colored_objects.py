"""BBH reasoning_about_colored_objects: questions about coloured things on a surface."""

from __future__ import annotations

import random
from typing import Any

from ..base import Item
from .common import BBHTask, letter_of, render_options

COLORS = ["red", "orange", "yellow", "green", "blue", "brown", "magenta", "fuchsia", "mauve", "teal",
          "turquoise", "burgundy", "silver", "gold", "black", "grey", "purple", "pink"]
NUMBERS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
           "twelve", "thirteen", "fourteen", "fifteen", "sixteen"]
THINGS = [("pencil", "pencils"), ("mug", "mugs"), ("keychain", "keychains"), ("teddy bear", "teddy bears"),
          ("plate", "plates"), ("stress ball", "stress balls"), ("paperclip", "paperclips"),
          ("fidget spinner", "fidget spinners"), ("pen", "pens"), ("notebook", "notebooks"),
          ("sunglasses", "pairs of sunglasses"), ("booklet", "booklets"), ("cat toy", "cat toys"),
          ("bracelet", "bracelets"), ("dog leash", "dog leashes"), ("puzzle", "puzzles"), ("cup", "cups"),
          ("jug", "jugs"), ("envelope", "envelopes"), ("scrunchiephone charger", "scrunchiephone chargers")]
SURFACES = ["nightstand", "table", "desk", "floor"]


def _a(word: str) -> str:
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


class ReasoningAboutColoredObjects(BBHTask):
    task = "reasoning_about_colored_objects"
    description = "Answer questions about the colours, positions and counts of objects on a surface."
    answer_kind = "choice"

    def _generate_one(self, rng: random.Random) -> Item:
        surface = rng.choice(SURFACES)
        kind = rng.choice(["color_of", "right_of", "left_of", "count_left", "remove", "is_color"])
        k = rng.randint(3, 6)
        things = rng.sample(THINGS, k)
        colors = rng.sample(COLORS, k)
        objs = [[c, t[0]] for c, t in zip(colors, things, strict=True)]
        listing = ", ".join(f"{_a(c + ' ' + t)}" for c, t in objs[:-1]) + f", and {_a(' '.join(objs[-1]))}"
        counts = None
        options = COLORS
        if kind == "color_of":
            target = rng.randrange(k)
            text = f"On the {surface}, there is {listing}. What color is the {objs[target][1]}?"
            answer, arg = objs[target][0], objs[target][1]
        elif kind in ("right_of", "left_of"):
            target = rng.randrange(1, k) if kind == "left_of" else rng.randrange(k - 1)
            side = "right" if kind == "right_of" else "left"
            text = (f"On the {surface}, you see a bunch of objects arranged in a row: {listing}. What is the color "
                    f"of the object directly to the {side} of the {objs[target][1]}?")
            answer = objs[target + (1 if kind == "right_of" else -1)][0]
            arg = objs[target][1]
        elif kind == "count_left":
            target = rng.randrange(k)
            excl = rng.choice(colors)
            text = (f"On the {surface}, you see a set of things arranged in a row: {listing}. How many "
                    f"non-{excl} things do you see to the left of the {objs[target][0]} thing?")
            answer = NUMBERS[sum(1 for c, _ in objs[:target] if c != excl)]
            arg = [excl, objs[target][0]]
            options = NUMBERS[:7]
        elif kind == "remove":
            counts = [rng.randint(1, 3) for _ in range(k)]
            colors2 = [rng.choice(colors[:3]) for _ in range(k)]
            names = [rng.choice(things[:3]) for _ in range(k)]
            merged: dict[tuple[str, str], int] = {}
            for c, t, n in zip(colors2, names, counts, strict=True):
                merged[(c, t[0])] = merged.get((c, t[0]), 0) + n
            objs = [[c, t, n] for (c, t), n in merged.items()]
            plural = {s: p for s, p in THINGS}
            listing = ", ".join(
                f"{NUMBERS[n]} {c} {plural[t] if n > 1 else t}" for c, t, n in objs[:-1])
            c, t, n = objs[-1]
            listing += f"{', and ' if len(objs) > 1 else ''}{NUMBERS[n]} {c} {plural[t] if n > 1 else t}"
            removed = rng.choice(sorted({o[0] for o in objs}))
            asked = rng.choice(sorted({o[1] for o in objs}))
            text = (f"On the {surface}, I see {listing}. If I remove all the {removed} things from the {surface}, "
                    f"how many {plural[asked]} remain on it?")
            answer = NUMBERS[sum(n for c, t, n in objs if t == asked and c != removed)]
            arg = [removed, asked]
            options = NUMBERS
        else:
            target = rng.randrange(k)
            asked_color = objs[target][0] if rng.random() < 0.5 else rng.choice(COLORS)
            text = f"On the {surface}, there is {listing}. Is the {objs[target][1]} {asked_color}?"
            answer = "yes" if objs[target][0] == asked_color else "no"
            arg = [objs[target][1], asked_color]
            options = ["yes", "no"]
        text += "\n" + render_options(options)
        return self.item(text, letter_of(options, answer), {"objects": objs, "query": [kind, arg],
                                                             "options": options})

    def program(self, values: dict[str, Any]) -> str:
        kind, arg = values["query"]
        lines = [f"objects = {values['objects']!r}  # in the order listed",
                 f"options = {values['options']!r}",
                 f"numbers = {NUMBERS!r}"]
        if kind == "color_of":
            lines.append(f"answer = next(c for c, t in objects if t == {arg!r})")
        elif kind in ("right_of", "left_of"):
            step = 1 if kind == "right_of" else -1
            lines.append(f"i = next(i for i, (c, t) in enumerate(objects) if t == {arg!r})")
            lines.append(f"answer = objects[i + ({step})][0]")
        elif kind == "count_left":
            lines.append(f"excluded, target_color = {arg!r}")
            lines.append("i = next(i for i, (c, t) in enumerate(objects) if c == target_color)")
            lines.append("answer = numbers[sum(1 for c, t in objects[:i] if c != excluded)]")
        elif kind == "remove":
            lines.append(f"removed, asked = {arg!r}  # objects are (color, thing, count)")
            lines.append("answer = numbers[sum(n for c, t, n in objects if t == asked and c != removed)]")
        else:
            lines.append(f"thing, color = {arg!r}")
            lines.append("answer = 'yes' if next(c for c, t in objects if t == thing) == color else 'no'")
        lines.append("print(f'<<<({chr(65 + options.index(answer))})>>>')")
        return "\n".join(lines) + "\n"
