"""SymBench String Insertion: one left-to-right pass of the T operation over a string of A-E."""

from __future__ import annotations

import random

from ..base import Item, Task, Verdict

RULES = (("ABCD", "A"), ("BCDE", "B"), ("CDEA", "C"), ("DEAB", "D"), ("EABC", "E"))

_PROMPT = """Given the string consisting of characters A, B, C, D, and E, define the T operation as follows:

1. If there is a substring ABCD in the string, insert the character A after that substring.
2. If there is a substring BCDE in the string, insert the character B after that substring.
3. If there is a substring CDEA in the string, insert the character C after that substring.
4. If there is a substring DEAB in the string, insert the character D after that substring.
5. If there is a substring EABC in the string, insert the character E after that substring.

Question: Given the string {s}, what will the string be after one operation T? String insertion from left to right.
Return the answer with the format <<<a string>>>."""


def apply_t(s: str) -> str:
    """Apply T once: scan left to right, inserting after every rule match in the original string."""
    out = []
    for i, ch in enumerate(s):
        out.append(ch)
        window = s[i - 3 : i + 1] if i >= 3 else ""
        for pattern, insert in RULES:
            if window == pattern:
                out.append(insert)
    return "".join(out)


class StringInsertion(Task):
    name = "string_insertion"
    source = "symbench"
    description = "Insert characters after matching substrings, left to right."

    def _generate_one(self, rng: random.Random) -> Item:
        length = rng.randint(8, 16)
        s = "".join(rng.choice("ABCDE") for _ in range(length))
        for pattern, _ in rng.sample(RULES, 2):  # make sure some rule fires
            pos = rng.randint(0, len(s))
            s = s[:pos] + pattern + s[pos:]
        return self.make_item(_PROMPT.format(s=s), apply_t(s), original_string=s)

    def check(self, answer: str | None, item: Item) -> Verdict:
        if answer is None:
            return Verdict(0.0, False)
        cleaned = answer.strip().strip("'\"").upper()
        if not cleaned or any(c not in "ABCDE" for c in cleaned):
            return Verdict(0.0, False)
        return Verdict(1.0 if cleaned == item.answer else 0.0, True)

    def reference_solution(self, item: Item) -> str:
        s = item.metadata["original_string"]
        return (
            f"s = '{s}'\n"
            "rules = {'ABCD': 'A', 'BCDE': 'B', 'CDEA': 'C', 'DEAB': 'D', 'EABC': 'E'}\n"
            "out = ''\n"
            "for i, ch in enumerate(s):\n"
            "    out += ch\n"
            "    if i >= 3 and s[i-3:i+1] in rules:\n"
            "        out += rules[s[i-3:i+1]]\n"
            "print(f'<<<{out}>>>')\n"
        )
