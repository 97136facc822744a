"""BBH web_of_lies: follow a chain of who-says-who-lies statements."""

from __future__ import annotations

import random
import re
from typing import Any

from ..base import Item
from .common import BBHTask, NoReferenceSolution

NAMES = """Alexis Amberly Andree Antwan Arthur Audrie Bernita Christie Conception Crista Delbert Delfina
Dallas Elanor Ella Fidel Fletcher Gwenn Helene Inga Jaymie Jamey Jerry Jim Kandi Kristian Ka Lorine
Leda Lorine Maybelle Michaela Millicent Osvaldo Phoebe Raymond Rashida Ryan Sal Shalonda Shaunda
Sherrie Sima Tamika Teressa Tamika Ryan Ka Vernell Vina Willian Yoland Yazmin Yoland Antwan""".split()


class WebOfLies(BBHTask):
    task = "web_of_lies"
    description = "Each person says whether the previous one lies; does the last one tell the truth?"
    answer_kind = "label"
    labels = ("Yes", "No")

    def _generate_one(self, rng: random.Random) -> Item:
        people = rng.sample(sorted(set(NAMES)), 5)
        first_truthful = rng.random() < 0.5
        claims = [rng.random() < 0.5 for _ in range(4)]  # True: "says X tells the truth"
        sentences = [f"{people[0]} {'tells the truth' if first_truthful else 'lies'}."]
        for i, says_truth in enumerate(claims):
            sentences.append(f"{people[i + 1]} says {people[i]} {'tells the truth' if says_truth else 'lies'}.")
        truthful = first_truthful
        for says_truth in claims:
            truthful = says_truth == truthful
        text = f"Question: {' '.join(sentences)} Does {people[-1]} tell the truth?"
        values = {"first": people[0], "first_truthful": first_truthful,
                  "statements": [[people[i + 1], people[i], c] for i, c in enumerate(claims)],
                  "target": people[-1]}
        return self.item(text, "Yes" if truthful else "No", values)

    def parse(self, question: str) -> dict[str, Any]:
        m = re.search(r"Question: (\w+) (lies|tells the truth)\. (.*) Does (\w+) tell the truth\?", question)
        if not m:
            raise NoReferenceSolution("not a web_of_lies question")
        stmts = re.findall(r"(\w+) says (\w+) (lies|tells the truth)\.", m.group(3))
        return {"first": m.group(1), "first_truthful": m.group(2) != "lies",
                "statements": [[a, b, c != "lies"] for a, b, c in stmts], "target": m.group(4)}

    def program(self, values: dict[str, Any]) -> str:
        return (
            f"truthful = {{{values['first']!r}: {values['first_truthful']!r}}}\n"
            f"statements = {values['statements']!r}  # (speaker, subject, says subject tells the truth)\n"
            "for speaker, subject, says_truth in statements:\n"
            "    truthful[speaker] = (says_truth == truthful[subject])\n"
            f"print('<<<' + ('Yes' if truthful[{values['target']!r}] else 'No') + '>>>')\n"
        )
