"""BBH penguins_in_a_table: answer a question about a small table of penguins."""

from __future__ import annotations

import random
from typing import Any

from ..base import Item
from .common import BBHTask, letter_of, render_options

NAMES = ["Louis", "Bernard", "Vincent", "Gwen", "James", "Pingu", "Tux", "Mumble", "Gloria", "Skipper",
         "Kowalski", "Rico", "Private", "Cody", "Lovelace", "Ramon"]
SUPERLATIVES = {"oldest": (1, max), "youngest": (1, min), "tallest": (2, max), "shortest": (2, min),
                "heaviest": (3, max), "lightest": (3, min)}


def answer_of(rows: list[list[Any]], query: list[Any]) -> str:
    kind, arg = query
    if kind == "younger_than":
        return str(sum(r[1] < arg for r in rows))
    if kind == "older_than":
        return str(sum(r[1] > arg for r in rows))
    if kind == "superlative":
        col, pick = SUPERLATIVES[arg]
        return pick(rows, key=lambda r: r[col])[0]
    if kind == "alphabetic":
        names = sorted(r[0] for r in rows)
        return names[0] if arg == "first" else names[-1]
    if kind == "cumulated_age":
        return str(sum(r[1] for r in rows))
    return str(len(rows))  # count


class PenguinsInATable(BBHTask):
    task = "penguins_in_a_table"
    description = "Answer questions about a table of penguins (counts, extremes, sums)."
    answer_kind = "choice"

    def _generate_one(self, rng: random.Random) -> Item:
        while True:
            names = rng.sample(NAMES, 5)
            rows = [[n, rng.randint(2, 12), rng.randint(40, 100), rng.randint(8, 20)] for n in names]
            added = rng.random() < 0.5
            base = rows[:4]
            table = rows if added else base
            kind = rng.choice(["younger_than", "older_than", "superlative", "alphabetic", "cumulated_age", "count"])
            arg = {"younger_than": rng.randint(4, 10), "older_than": rng.randint(4, 10),
                   "superlative": rng.choice(list(SUPERLATIVES)), "alphabetic": rng.choice(["first", "last"])}.get(kind)
            # the extreme must be unique
            if kind == "superlative":
                col = SUPERLATIVES[arg][0]
                vals = [r[col] for r in table]
                if vals.count(SUPERLATIVES[arg][1](vals)) > 1:
                    continue
            break
        answer = answer_of(table, [kind, arg])
        question = {
            "younger_than": f"How many penguins are less than {arg} years old?",
            "older_than": f"How many penguins are more than {arg} years old?",
            "superlative": f"Which is the {arg} penguin?",
            "alphabetic": f"What is the name of the {arg} penguin sorted by alphabetic order?",
            "cumulated_age": "What is the cumulated age of the penguins?",
            "count": "How many penguins are there in the table?",
        }[kind]
        if kind in ("superlative", "alphabetic"):
            options = [r[0] for r in table]
        else:
            a = int(answer)
            start = max(0, a - rng.randint(0, 4))
            options = [str(v) for v in range(start, start + 5)]
        header = ("Here is a table where the first line is a header and each subsequent line is a penguin:  "
                  "name, age, height (cm), weight (kg) " + " ".join(f"{n}, {a}, {h}, {w}" for n, a, h, w in base)
                  + f"  For example: the age of {base[0][0]} is {base[0][1]}, the weight of {base[3][0]} is "
                  f"{base[3][3]} kg, the height of {base[1][0]} is {base[1][2]} cm.  ")
        if added:
            n, a, h, w = rows[4]
            header += f"We now add a penguin to the table:\n{n}, {a}, {h}, {w}\n"
        text = f"{header}{question}\n{render_options(options)}"
        return self.item(text, letter_of(options, answer), {"rows": table, "query": [kind, arg],
                                                             "options": options})

    def program(self, values: dict[str, Any]) -> str:
        kind, arg = values["query"]
        lines = [
            f"rows = {values['rows']!r}  # name, age, height (cm), weight (kg)",
            f"options = {values['options']!r}",
        ]
        if kind in ("younger_than", "older_than"):
            op = "<" if kind == "younger_than" else ">"
            lines.append(f"answer = str(sum(1 for r in rows if r[1] {op} {arg}))")
        elif kind == "superlative":
            col, pick = SUPERLATIVES[arg]
            lines.append(f"answer = {pick.__name__}(rows, key=lambda r: r[{col}])[0]  # {arg}")
        elif kind == "alphabetic":
            lines.append(f"answer = sorted(r[0] for r in rows)[{0 if arg == 'first' else -1}]")
        elif kind == "cumulated_age":
            lines.append("answer = str(sum(r[1] for r in rows))")
        else:
            lines.append("answer = str(len(rows))")
        lines.append("print(f'<<<({chr(65 + options.index(answer))})>>>')")
        return "\n".join(lines) + "\n"
