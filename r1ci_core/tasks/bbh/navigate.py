"""BBH navigate: do the movement instructions return to the starting point?"""

from __future__ import annotations

import random
import re
from typing import Any

from ..base import Item
from .common import BBHTask, NoReferenceSolution

_PROMPT = "If you follow these instructions, do you return to the starting point?"
_OPTIONS = "Options:\n- Yes\n- No"
_DIRS = {"forward": (0, 1), "backward": (0, -1), "left": (-1, 0), "right": (1, 0)}


def _steps(n: int) -> str:
    return f"{n} step" if n == 1 else f"{n} steps"


def simulate(instructions: list[str]) -> bool:
    x = y = 0
    dx, dy = 0, 1
    for ins in instructions:
        ins = ins.strip().rstrip(".")
        if ins == "Always face forward":
            continue
        if ins.startswith("Turn"):
            turn = ins.split()[1]
            dx, dy = {"left": (-dy, dx), "right": (dy, -dx), "around": (-dx, -dy)}[turn]
            continue
        m = re.fullmatch(r"Take (\d+) steps?(?: (forward|backward|left|right))?", ins)
        if not m:
            raise ValueError(ins)
        n, d = int(m.group(1)), m.group(2)
        if d is None or d == "forward":
            x, y = x + n * dx, y + n * dy
        elif d == "backward":
            x, y = x - n * dx, y - n * dy
        elif d == "left":
            x, y = x - n * dy, y + n * dx
        else:
            x, y = x + n * dy, y - n * dx
    return x == 0 and y == 0


class Navigate(BBHTask):
    task = "navigate"
    description = "Follow step and turn instructions and decide whether you end where you started."
    answer_kind = "label"
    labels = ("Yes", "No")

    def _generate_one(self, rng: random.Random) -> Item:
        want_home = rng.random() < 0.5
        for _ in range(200):
            if rng.random() < 0.5:
                ins = ["Always face forward"]
                for _ in range(rng.randint(2, 7)):
                    ins.append(f"Take {_steps(rng.randint(1, 10))} {rng.choice(list(_DIRS))}")
                if want_home:  # append moves that cancel the displacement
                    x = y = 0
                    for i in ins[1:]:
                        n, d = int(i.split()[1]), i.split()[-1]
                        x, y = x + n * _DIRS[d][0], y + n * _DIRS[d][1]
                    if y:
                        ins.append(f"Take {_steps(abs(y))} {'backward' if y > 0 else 'forward'}")
                    if x:
                        ins.append(f"Take {_steps(abs(x))} {'left' if x > 0 else 'right'}")
            else:
                ins = []
                for _ in range(rng.randint(3, 9)):
                    if rng.random() < 0.35:
                        ins.append(f"Turn {rng.choice(['left', 'right', 'around'])}")
                    else:
                        ins.append(f"Take {_steps(rng.randint(1, 10))}")
            if simulate(ins) == want_home and len(ins) <= 10:
                break
        text = f"{_PROMPT} {'. '.join(ins)}.\n{_OPTIONS}"
        return self.item(text, "Yes" if simulate(ins) else "No", {"instructions": ins})

    def parse(self, question: str) -> dict[str, Any]:
        if _PROMPT not in question:
            raise NoReferenceSolution("not a navigate question")
        steps = question.split(_PROMPT, 1)[1].split("Options:")[0].strip()
        ins = [s.strip() for s in steps.split(".") if s.strip()]
        try:
            simulate(ins)
        except (ValueError, KeyError, IndexError) as e:
            raise NoReferenceSolution(f"unknown instruction {e}") from e
        return {"instructions": ins}

    def program(self, values: dict[str, Any]) -> str:
        return (
            f"instructions = {values['instructions']!r}\n"
            "import re\n"
            "x = y = 0\n"
            "dx, dy = 0, 1  # facing north\n"
            "for ins in instructions:\n"
            "    if ins.startswith('Turn'):\n"
            "        turn = ins.split()[1]\n"
            "        dx, dy = {'left': (-dy, dx), 'right': (dy, -dx), 'around': (-dx, -dy)}[turn]\n"
            "        continue\n"
            "    m = re.fullmatch(r'Take (\\d+) steps?(?: (\\w+))?', ins)\n"
            "    if not m:\n"
            "        continue  # 'Always face forward'\n"
            "    n, d = int(m.group(1)), m.group(2) or 'forward'\n"
            "    mx, my = {'forward': (dx, dy), 'backward': (-dx, -dy), 'left': (-dy, dx), 'right': (dy, -dx)}[d]\n"
            "    x, y = x + n * mx, y + n * my\n"
            "print('<<<' + ('Yes' if (x, y) == (0, 0) else 'No') + '>>>')\n"
        )
