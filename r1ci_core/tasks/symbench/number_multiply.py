"""SymBench Number Multiply: the exact product of a few signed integers."""

from __future__ import annotations

import math
import random

from ..base import Item, Task, Verdict


def parse_int(text: str | None) -> int | None:
    """An integer written plainly (commas and spaces allowed), else None."""
    if text is None:
        return None
    cleaned = text.replace(",", "").replace(" ", "").strip()
    try:
        return int(cleaned)
    except ValueError:
        try:
            value = float(cleaned)
        except ValueError:
            return None
        return int(value) if value.is_integer() else None


class NumberMultiply(Task):
    name = "number_multiply"
    source = "symbench"
    description = "Multiply several signed integers exactly."

    def _generate_one(self, rng: random.Random) -> Item:
        count = rng.randint(2, 4)
        nums = [rng.choice((-1, 1)) * rng.randint(2, 10 ** rng.randint(1, 4)) for _ in range(count)]
        expr = "*".join(map(str, nums))
        question = f"What is the result of {expr}?\nReturn the answer with the format <<<number>>>."
        return self.make_item(question, math.prod(nums), numbers=nums)

    def check(self, answer: str | None, item: Item) -> Verdict:
        value = parse_int(answer)
        if value is None:
            return Verdict(0.0, False)
        return Verdict(1.0 if value == int(item.answer) else 0.0, True)

    def reference_solution(self, item: Item) -> str:
        nums = item.metadata["numbers"]
        return f"import math\nnums = {nums}\nprint(f'<<<{{math.prod(nums)}}>>>')\n"
