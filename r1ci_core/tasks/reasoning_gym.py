"""Reasoning-Gym families: one per procedurally generated dataset of `reasoning_gym` (0.1.25).

Items come from `reasoning_gym.create_dataset(name, seed=..., size=...)` and are scored with that
dataset's own `score_answer(answer, entry)` (its partial credit included: several datasets give 0.01-0.25
to a well-formed wrong answer). The entry is stored JSON-safe in `metadata["entry"]`. `reasoning_gym` is
imported only when a family generates or scores, so `registry()` stays cheap.

Reference solutions: a short program that re-derives the answer from the question's values where one is
written in `_SOLVERS`; otherwise a program that prints the stored gold answer, and the family is marked
`trivial_reference = True` so evaluation can flag it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import random
from collections.abc import Callable
from typing import Any

from .base import Item, Task, Verdict

ANSWER_LINE = "\n\nGive your final answer in the format <<<answer>>>."
PINNED_VERSION = "0.1.25"

# Every dataset `reasoning_gym.factory.DATASETS` registers in the pinned version.
RG_DATASETS: tuple[str, ...] = tuple("""
ab acre advanced_geometry aiw arc_1d arc_agi base_conversion basic_arithmetic bf binary_alternation binary_matrix
bitwise_arithmetic boxnet caesar_cipher calendar_arithmetic chain_sum circuit_logic codeio coin_flip
color_cube_rotation complex_arithmetic composite count_bits count_primes countdown course_schedule cryptarithm
decimal_arithmetic decimal_chain_sum dice emoji_mystery family_relationships figlet_font fraction_simplification
futoshiki game_of_life game_of_life_halting gcd graph_color group_anagrams gsm_symbolic intermediate_integration
isomorphic_strings jugs kakurasu knight_swap knights_knaves largest_island lcm leg_counting letter_counting
letter_jumble list_functions mahjong_puzzle manipulate_matrix maze mini_sudoku modulo_grid n_queens
needle_haystack number_filtering number_format number_sequence number_sorting palindrome_generation
palindrome_partitioning path_star polynomial_equations polynomial_multiplication pool_matrix power_function
prime_factorization products propositional_logic puzzle24 quantum_lock ransom_note rearc rectangle_count
rotate_matrix rotten_oranges rubiks_cube rush_hour self_reference sentence_reordering shortest_path
simple_equations simple_geometry simple_integration sokoban spell_backward spiral_matrix string_insertion
string_manipulation string_splitting string_synthesis sudoku survo syllogism time_intervals tower_of_hanoi
tsumego word_ladder word_sequence_reversal word_sorting zebra_puzzles
""".split())

# Datasets that are not families, with the reason.
SKIPPED: dict[str, str] = {
    "composite": "meta-dataset that mixes other datasets; needs a config listing them (not a task of its own)",
    "boxnet": "no gold answer (any plan is scored by simulation, with partial credit) and no short generic "
              "planner to serve as reference solution",
}

# Datasets whose entries carry answer=None: a valid answer the dataset stores in its metadata.
_GOLD_FROM_METADATA: dict[str, Callable[[dict[str, Any]], str]] = {
    "propositional_logic": lambda e: e["metadata"]["example_answer"],
    "graph_color": lambda e: json.dumps(e["metadata"]["possible_answer"]),
    "rubiks_cube": lambda e: e["metadata"]["example_correct_answer"],
    "rush_hour": lambda e: _run_solver("rush_hour", e["metadata"]),
}


def _run_solver(dataset: str, meta: dict[str, Any]) -> str:
    """Run a reference program in-process to obtain a gold answer the dataset does not store."""
    import contextlib
    import io

    from .base import extract_answer

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(_SOLVERS[dataset](meta), {"__name__": "__main__"})  # noqa: S102 - our own program
    return extract_answer(buf.getvalue()) or ""


def _bool_exact(answer: str, entry: dict[str, Any]) -> float:
    return 1.0 if answer.strip().lower() == str(entry["answer"]).strip().lower() else 0.0


# reasoning_gym 0.1.25's game_of_life_halting scorer compares bool(answer) == bool(gold), so any non-empty
# text scores 1.0; it is replaced by an exact True/False match.
_SCORER_OVERRIDES: dict[str, Callable[[str, dict[str, Any]], float]] = {"game_of_life_halting": _bool_exact}


def _tuplify(value: Any) -> Any:
    return tuple(_tuplify(v) for v in value) if isinstance(value, list) else value


def _restore_grid(key: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The scorer compares a parsed board (tuple of tuples) with metadata[key], which JSON made lists."""

    def restore(entry: dict[str, Any]) -> dict[str, Any]:
        meta = dict(entry["metadata"])
        meta[key] = _tuplify(meta[key])
        return {**entry, "metadata": meta}

    return restore


# Undo what the JSON round trip changed, where the dataset's scorer depends on it.
_ENTRY_RESTORE: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "arc_agi": _restore_grid("output"), "rearc": _restore_grid("output")}


def _jsonable(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return value.tolist()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return repr(value)


def _json_safe(entry: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(entry, default=_jsonable))


def _int_seed(*parts: Any) -> int:
    """A seed in [0, 2**31 - 2**20): some datasets add the index and seed numpy, which wants < 2**32."""
    return int(hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:12], 16) % (2**31 - 2**20)


class _GlobalSeed:
    """Seed the global `random` and numpy generators for one entry (some datasets use them), restoring
    the previous states afterwards."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def __enter__(self) -> None:
        self.state = random.getstate()
        random.seed(self.seed)
        try:
            import numpy as np

            self.np_state = np.random.get_state()
            np.random.seed(self.seed % 2**32)
        except ImportError:
            self.np_state = None

    def __exit__(self, *exc: Any) -> None:
        random.setstate(self.state)
        if self.np_state is not None:
            import numpy as np

            np.random.set_state(self.np_state)


@functools.cache
def _scorer_dataset(name: str) -> Any:
    import reasoning_gym

    return reasoning_gym.create_dataset(name, seed=0, size=1)


class ReasoningGymTask(Task):
    """The Reasoning-Gym dataset `dataset` as a family named `rg_<dataset>`."""

    source = "reasoning_gym"

    def __init__(self, dataset: str) -> None:
        self.dataset = dataset
        self.name = f"rg_{dataset}"
        self.description = f"Reasoning-Gym dataset {dataset!r} (default configuration)."
        self.trivial_reference = dataset not in _SOLVERS

    # --- generation -----------------------------------------------------------------------------
    def generate(self, n: int, seed: int, split: str | None = None) -> list[Item]:
        import reasoning_gym

        rg_seed = _int_seed(self.name, seed, split or "")
        items: dict[str, Item] = {}
        size = max(n, 1)
        while True:
            with _GlobalSeed(rg_seed):
                ds = reasoning_gym.create_dataset(self.dataset, seed=rg_seed, size=size)
            for i in range(len(ds)):
                with _GlobalSeed(rg_seed + i):
                    entry = ds[i]
                item = self.from_entry(entry)
                item.split = split or ""
                items.setdefault(item.id, item)
                if len(items) >= n:
                    return list(items.values())[:n]
            if size >= 4 * max(n, 1):
                return list(items.values())
            size *= 2

    def from_entry(self, entry: dict[str, Any]) -> Item:
        safe = _json_safe({"question": entry["question"], "answer": entry.get("answer"),
                           "metadata": entry.get("metadata", {})})
        gold = _GOLD_FROM_METADATA[self.dataset](safe) if self.dataset in _GOLD_FROM_METADATA else safe["answer"]
        return Item(family=self.name, source=self.source, question=safe["question"] + ANSWER_LINE,
                    answer=str(gold), metadata={"dataset": self.dataset, "entry": safe})

    def _generate_one(self, rng: random.Random) -> Item:
        return self.generate(1, rng.randrange(2**31))[0]

    # --- verifier -------------------------------------------------------------------------------
    def check(self, answer: str | None, item: Item) -> Verdict:
        if answer is None or not str(answer).strip():
            return Verdict(0.0, False)
        entry = item.metadata["entry"]
        if self.dataset in _ENTRY_RESTORE:
            entry = _ENTRY_RESTORE[self.dataset](entry)
        try:
            if self.dataset in _SCORER_OVERRIDES:
                score = _SCORER_OVERRIDES[self.dataset](str(answer), entry)
            else:
                score = float(_scorer_dataset(self.dataset).score_answer(str(answer), entry))
        except Exception:  # noqa: BLE001 - a scorer that cannot read the answer
            return Verdict(0.0, False)
        if math.isnan(score):
            return Verdict(0.0, False)
        return Verdict(min(max(score, 0.0), 1.0), True)

    # --- reference solution -------------------------------------------------------------------
    def reference_solution(self, item: Item) -> str:
        entry = item.metadata["entry"]
        solver = _SOLVERS.get(self.dataset)
        if solver is not None:
            return solver(entry["metadata"])
        return f"# the gold answer stored by the generator (no generic solver for {self.dataset})\n" \
               f"answer = {item.answer!r}\nprint(f'<<<{{answer}}>>>')\n"


# --- reference programs that re-derive the answer ----------------------------------------------
def _prog(values: dict[str, Any], body: str) -> str:
    head = "".join(f"{k} = {v!r}\n" for k, v in values.items())
    return head + body


def _eval_int(m: dict[str, Any]) -> str:
    return _prog({"expression": m["expression"]},
                 "value = eval(expression)\n"
                 "print(f'<<<{int(value) if float(value).is_integer() else value}>>>')\n")


_SOLVERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "basic_arithmetic": _eval_int,
    "chain_sum": _eval_int,
    "products": _eval_int,
    "decimal_chain_sum": lambda m: _prog(
        {"expression": m["expression"]},
        "from decimal import Decimal\n"
        "tokens = expression.split()\n"
        "total = Decimal(tokens[0])\n"
        "for op, num in zip(tokens[1::2], tokens[2::2]):\n"
        "    total = total + Decimal(num) if op == '+' else total - Decimal(num)\n"
        "print(f'<<<{total}>>>')\n"),
    "gcd": lambda m: _prog({"numbers": m["numbers"]},
                           "import math\nprint(f'<<<{math.gcd(*numbers)}>>>')\n"),
    "lcm": lambda m: _prog({"numbers": m["numbers"]},
                           "import math\nprint(f'<<<{math.lcm(*numbers)}>>>')\n"),
    "count_bits": lambda m: _prog({"n": m["number"]}, "print(f'<<<{bin(n).count(\"1\")}>>>')\n"),
    "letter_counting": lambda m: _prog(
        {"words": m["span"], "letter": m["target_letter"]},
        "print(f'<<<{sum(w.lower().count(letter) for w in words)}>>>')\n"),
    "spell_backward": lambda m: _prog({"word": m["word"]}, "print(f'<<<{word[::-1]}>>>')\n"),
    "word_sorting": lambda m: _prog(
        {"words": m["transformed_words"], "direction": m["direction"]},
        "print('<<<' + ', '.join(sorted(words, reverse=direction == 'descending')) + '>>>')\n"),
    "number_sorting": lambda m: _prog(
        {"numbers": m["original_numbers"], "direction": m["direction"]},
        "print(f'<<<{sorted(numbers, key=float, reverse=direction == \"descending\")}>>>')\n"),
    "prime_factorization": lambda m: _prog(
        {"n": m["number"]},
        "factors, d = [], 2\n"
        "while n > 1:\n"
        "    while n % d == 0:\n"
        "        factors.append(d)\n"
        "        n //= d\n"
        "    d += 1\n"
        "print('<<<' + ' × '.join(map(str, factors)) + '>>>')\n"),
    "count_primes": lambda m: _prog(
        {"start": m["start"], "end": m["end"]},
        "sieve = bytearray([1]) * (end + 1)\n"
        "sieve[0:2] = b'\\x00\\x00'\n"
        "for i in range(2, int(end ** 0.5) + 1):\n"
        "    if sieve[i]:\n"
        "        sieve[i * i::i] = bytearray(len(sieve[i * i::i]))\n"
        "print(f'<<<{sum(sieve[start:end + 1])}>>>')\n"),
    "word_sequence_reversal": lambda m: _prog(
        {"words": m["words"]}, "print('<<<' + ', '.join(reversed(words)) + '>>>')\n"),
    "base_conversion": lambda m: _prog(
        {"digits": m["source_repr"], "source_base": m["source_base"], "target_base": m["target_base"]},
        "n = int(digits, source_base)\n"
        "out = ''\n"
        "while True:\n"
        "    n, r = divmod(n, target_base)\n"
        "    out = '0123456789abcdefghijklmnopqrstuvwxyz'[r] + out\n"
        "    if n == 0:\n"
        "        break\n"
        "print(f'<<<{out}>>>')\n"),
    "rotate_matrix": lambda m: _prog(
        {"matrix": m["matrix"], "quarter_turns": m["num_rotations"]},
        "for _ in range(quarter_turns % 4):\n"
        "    matrix = [list(row) for row in zip(*matrix[::-1])]\n"
        "print('<<<' + '\\n'.join(' '.join(map(str, row)) for row in matrix) + '>>>')\n"),
    "spiral_matrix": lambda m: _prog(
        {"matrix": m["matrix"]},
        "out = []\n"
        "while matrix:\n"
        "    out += matrix.pop(0)\n"
        "    matrix = [list(r) for r in zip(*matrix)][::-1]\n"
        "print('<<<' + ' '.join(map(str, out)) + '>>>')\n"),
    "isomorphic_strings": lambda m: _prog(
        {"s": m["words"][0], "t": m["words"][1]},
        "ok = len(s) == len(t) and len(set(zip(s, t))) == len(set(s)) == len(set(t))\n"
        "print(f'<<<{ok}>>>')\n"),
    "ransom_note": lambda m: _prog(
        {"note": m["ransom_note"], "magazine": m["magazine"]},
        "from collections import Counter\n"
        "print(f'<<<{not (Counter(note) - Counter(magazine))}>>>')\n"),
    "largest_island": lambda m: _prog(
        {"grid": m["grid"]},
        "rows, cols = len(grid), len(grid[0])\n"
        "seen, best = set(), 0\n"
        "for r in range(rows):\n"
        "    for c in range(cols):\n"
        "        if grid[r][c] == 1 and (r, c) not in seen:\n"
        "            stack, size = [(r, c)], 0\n"
        "            seen.add((r, c))\n"
        "            while stack:\n"
        "                y, x = stack.pop()\n"
        "                size += 1\n"
        "                for ny, nx in ((y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)):\n"
        "                    if 0 <= ny < rows and 0 <= nx < cols and grid[ny][nx] == 1 and (ny, nx) not in seen:\n"
        "                        seen.add((ny, nx))\n"
        "                        stack.append((ny, nx))\n"
        "            best = max(best, size)\n"
        "print(f'<<<{best}>>>')\n"),
    "maze": lambda m: _prog(
        {"grid": m["grid"], "start": m["start"], "goal": m["goal"], "wall": m["wall"]},
        "from collections import deque\n"
        "cells = {(r, c): ch for r, row in enumerate(grid) for c, ch in enumerate(row)}\n"
        "src = next(p for p, ch in cells.items() if ch == start)\n"
        "dist, queue = {src: 0}, deque([src])\n"
        "while queue:\n"
        "    r, c = queue.popleft()\n"
        "    if cells[(r, c)] == goal:\n"
        "        print(f'<<<{dist[(r, c)]}>>>')\n"
        "        break\n"
        "    for p in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):\n"
        "        if p in cells and cells[p] != wall and p not in dist:\n"
        "            dist[p] = dist[(r, c)] + 1\n"
        "            queue.append(p)\n"),
    "binary_alternation": lambda m: _prog(
        {"s": m["string"]},
        "def swaps(first):\n"
        "    target = [str((int(first) + i) % 2) for i in range(len(s))]\n"
        "    wrong = sum(a != b for a, b in zip(s, target))\n"
        "    return wrong // 2 if s.count('0') == target.count('0') else None\n"
        "options = [x for x in (swaps('0'), swaps('1')) if x is not None]\n"
        "print(f'<<<{min(options) if options else -1}>>>')\n"),
    "group_anagrams": lambda m: _prog(
        {"words": m["words"]},
        "import json\n"
        "groups = {}\n"
        "for w in words:\n"
        "    groups.setdefault(''.join(sorted(w)), []).append(w)\n"
        "print('<<<' + json.dumps(sorted(sorted(g) for g in groups.values())) + '>>>')\n"),
    "palindrome_partitioning": lambda m: _prog(
        {"s": m["string"]},
        "import json\n"
        "def parts(i):\n"
        "    if i == len(s):\n"
        "        return [[]]\n"
        "    return [[s[i:j]] + rest for j in range(i + 1, len(s) + 1) if s[i:j] == s[i:j][::-1]\n"
        "            for rest in parts(j)]\n"
        "print('<<<' + json.dumps(parts(0)) + '>>>')\n"),
    "graph_color": lambda m: _prog(
        {"vertices": m["puzzle"]["vertices"], "edges": m["puzzle"]["edges"], "colors": m["puzzle"]["color_options"]},
        "import json\n"
        "adj = {v: set() for v in vertices}\n"
        "for a, b in edges:\n"
        "    adj[a].add(b)\n"
        "    adj[b].add(a)\n"
        "coloring = {}\n"
        "def solve(i):\n"
        "    if i == len(vertices):\n"
        "        return True\n"
        "    v = vertices[i]\n"
        "    for c in colors:\n"
        "        if all(coloring.get(u) != c for u in adj[v]):\n"
        "            coloring[v] = c\n"
        "            if solve(i + 1):\n"
        "                return True\n"
        "            del coloring[v]\n"
        "    return False\n"
        "solve(0)\n"
        "print('<<<' + json.dumps({str(v): c for v, c in coloring.items()}) + '>>>')\n"),
    "n_queens": lambda m: _prog(
        {"board": m["puzzle"]},
        "n = len(board)\n"
        "queens = {(r, c) for r in range(n) for c in range(n) if board[r][c] == 'Q'}\n"
        "def ok(r, c):\n"
        "    return all(r != qr and c != qc and abs(r - qr) != abs(c - qc) for qr, qc in queens)\n"
        "def solve(r):\n"
        "    if r == n:\n"
        "        return True\n"
        "    if any(qr == r for qr, _ in queens):\n"
        "        return solve(r + 1)\n"
        "    for c in range(n):\n"
        "        if ok(r, c):\n"
        "            queens.add((r, c))\n"
        "            if solve(r + 1):\n"
        "                return True\n"
        "            queens.discard((r, c))\n"
        "    return False\n"
        "solve(0)\n"
        "rows = [' '.join('Q' if (r, c) in queens else '_' for c in range(n)) for r in range(n)]\n"
        "print('<<<' + '\\n'.join(rows) + '>>>')\n"),
    "simple_equations": lambda m: _prog(
        {"equation": m["equation"], "variable": m["variable"]},
        "import sympy\n"
        "lhs, rhs = equation.split('=')\n"
        "x = sympy.Symbol(variable)\n"
        "(solution,) = sympy.solve(sympy.sympify(lhs) - sympy.sympify(rhs), x)\n"
        "print(f'<<<{solution}>>>')\n"),
    "power_function": lambda m: _prog(
        {"base": m["base"], "exponent": m["exponent"]}, "print(f'<<<{base ** exponent}>>>')\n"),
    "dice": lambda m: _prog(
        {"dice": m["puzzle"]["dice_str"], "target": m["puzzle"]["target"]},
        "from fractions import Fraction\n"
        "dist = {0: 1}\n"
        "for die in dice.split(', '):\n"
        "    count, sides = map(int, die.split('d'))\n"
        "    for _ in range(count):\n"
        "        new = {}\n"
        "        for total, ways in dist.items():\n"
        "            for face in range(1, sides + 1):\n"
        "                new[total + face] = new.get(total + face, 0) + ways\n"
        "        dist = new\n"
        "p = Fraction(sum(w for t, w in dist.items() if t >= target), sum(dist.values()))\n"
        "print(f'<<<{p.numerator}/{p.denominator}>>>')\n"),
    "rush_hour": lambda m: _prog(
        {"board": m["board_config"]},  # 6x6 row by row: 'o' empty, 'x' wall, letters vehicles, AA the red car
        "from collections import deque\n"
        "def vehicles(b):\n"
        "    cells = {}\n"
        "    for i, ch in enumerate(b):\n"
        "        if ch not in 'ox':\n"
        "            cells.setdefault(ch, []).append(i)\n"
        "    return cells\n"
        "# the question shows the vehicles relabelled A, B, C, ... in the order of their letters here\n"
        "shown = {ch: chr(65 + i) for i, ch in enumerate(sorted(vehicles(board)))}\n"
        "prev = {board: None}\n"
        "queue = deque([board])\n"
        "while queue:\n"
        "    b = queue.popleft()\n"
        "    cells = vehicles(b)\n"
        "    if cells['A'][-1] == 17:  # the red car reached the exit on the right of row 2\n"
        "        break\n"
        "    for ch, ps in cells.items():\n"
        "        stride = 1 if ps[1] - ps[0] == 1 else 6\n"
        "        for sign in (-1, 1):\n"
        "            cur = list(ps)\n"
        "            for steps in range(1, 6):\n"
        "                edge = cur[0] if sign < 0 else cur[-1]\n"
        "                nxt = edge + sign * stride\n"
        "                if not 0 <= nxt < 36 or (stride == 1 and nxt // 6 != edge // 6) or b[nxt] != 'o':\n"
        "                    break\n"
        "                cur = [c + sign * stride for c in cur]\n"
        "                nb = list(b)\n"
        "                for c in ps:\n"
        "                    nb[c] = 'o'\n"
        "                for c in cur:\n"
        "                    nb[c] = ch\n"
        "                nb = ''.join(nb)\n"
        "                if nb not in prev:\n"
        "                    prev[nb] = (b, f\"{shown[ch]}{'+' if sign > 0 else '-'}{steps}\")\n"
        "                    queue.append(nb)\n"
        "moves = []\n"
        "while prev[b]:\n"
        "    b, move = prev[b]\n"
        "    moves.append(move)\n"
        "print('<<<' + ' '.join(reversed(moves)) + '>>>')\n"),
    "fraction_simplification": lambda m: _prog(
        {"numerator": m["numerator"], "denominator": m["denominator"]},
        "import math\n"
        "g = math.gcd(numerator, denominator)\n"
        "print(f'<<<{numerator // g}/{denominator // g}>>>')\n"),
}


def rg_dataset_names() -> list[str]:
    """The datasets of the installed reasoning_gym (the pinned list unless another version is installed)."""
    try:
        from importlib.metadata import version

        installed = version("reasoning-gym")
    except Exception:  # noqa: BLE001 - not installed: no Reasoning-Gym families
        return []
    if installed == PINNED_VERSION:
        return list(RG_DATASETS)
    from reasoning_gym.factory import DATASETS

    return sorted(DATASETS)


def rg_families() -> list[ReasoningGymTask]:
    """One family per usable dataset (`SKIPPED` lists the others with their reasons)."""
    return [ReasoningGymTask(name) for name in rg_dataset_names() if name not in SKIPPED]
