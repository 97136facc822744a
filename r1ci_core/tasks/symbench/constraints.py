"""SymBench constraint puzzles (any valid answer accepted): Eight Queens, Standard Sudoku, Letter Logic Diagram,
Logic Puzzle, Permutations & Combinations, Constrained Linear Arrangement."""

from __future__ import annotations

import itertools
import math
import random
import re

from ..base import Item, Verdict
from ._common import UNPARSEABLE, SymbenchTask, int_grid, letter_grid, pairs, tokens, verdict


# ---------------------------------------------------------------- Eight Queens
def queens_solve(board: list[str]) -> list[tuple[int, int]] | None:
    n = len(board)
    fixed = {r: row.index("1") for r, row in enumerate(board) if "1" in row}

    def search(r: int, sol: list[tuple[int, int]]) -> list[tuple[int, int]] | None:
        if r == n:
            return sol
        for c in [fixed[r]] if r in fixed else range(n):
            if board[r][c] != "X" and all(c != c2 and abs(r - r2) != abs(c - c2) for r2, c2 in sol):
                found = search(r + 1, sol + [(r, c)])
                if found:
                    return found
        return None

    return search(0, [])


class EightQueens(SymbenchTask):
    name = "eight_queens"
    description = "Complete a partially filled N-queens board avoiding blocked cells."

    def _generate_one(self, rng: random.Random) -> Item:
        n = rng.choice((8, 8, 8, 6, 7))
        cols: list[int] = []

        def place(r: int) -> bool:
            if r == n:
                return True
            for c in rng.sample(range(n), n):
                if all(c != c2 and abs(r - r2) != abs(c - c2) for r2, c2 in enumerate(cols)):
                    cols.append(c)
                    if place(r + 1):
                        return True
                    cols.pop()
            return False

        place(0)
        full = list(enumerate(cols))
        placed = rng.sample(full, rng.randint(0, min(4, n - 2)))
        free = [(r, c) for r in range(n) for c in range(n) if (r, c) not in full]
        blocked = rng.sample(free, rng.randint(0, 4))
        board = [["0"] * n for _ in range(n)]
        for r, c in placed:
            board[r][c] = "1"
        for r, c in blocked:
            board[r][c] = "X"
        rows = ["".join(r) for r in board]
        answer = ", ".join(f"{r} {c}" for r, c in queens_solve(rows))
        return self.make(self.question(rows), answer, initial_board=rows, board_size=n,
                         blocked_positions=[list(p) for p in blocked], placed_queens=[list(p) for p in placed])

    @staticmethod
    def question(rows: list[str]) -> str:
        n = len(rows)
        count = "eight" if n == 8 else str(n)
        return (
            f"Given an {n}*{n} grid, cells marked with 1 have a queen placed, and cells marked with 0 are empty. A "
            f"total of {count} queens need to be placed such that no two queens can attack each other, meaning no "
            "two queens can be in the same row, column, or diagonal. Additionally, positions marked with X are not "
            "allowed for placing queens. Please help me complete the placement of the remaining queens on the "
            f"partially filled board.\n\n" + "\n".join(rows) + "\n\n"
            "Return your answer with the format <<<list of queen positions>>>, where each position is given as row "
            "column (0-based indices). For example, <<<0 3, 1 0, 2 4>>> means queens are placed at positions (0,3), "
            "(1,0), and (2,4)."
        )

    def check(self, answer: str | None, item: Item) -> Verdict:
        got = pairs(answer)
        if got is None:
            return UNPARSEABLE
        rows = item.metadata["initial_board"]
        n = len(rows)
        queens = set(got) | {(r, c) for r, row in enumerate(rows) for c, ch in enumerate(row) if ch == "1"}
        ok = (len(queens) == n and len(set(got)) == len(got)
              and all(0 <= r < n and 0 <= c < n and rows[r][c] != "X" for r, c in queens)
              and all(a[0] != b[0] and a[1] != b[1] and abs(a[0] - b[0]) != abs(a[1] - b[1])
                      for a, b in itertools.combinations(queens, 2)))
        return verdict(ok)

    def reference_solution(self, item: Item) -> str:
        return (
            f"board = {item.metadata['initial_board']}  # 1 = queen, X = blocked\n"
            "n = len(board)\n"
            "fixed = {r: row.index('1') for r, row in enumerate(board) if '1' in row}\n"
            "def search(r, sol):\n"
            "    if r == n:\n"
            "        return sol\n"
            "    for c in ([fixed[r]] if r in fixed else range(n)):\n"
            "        if board[r][c] != 'X' and all(c != c2 and abs(r - r2) != abs(c - c2) for r2, c2 in sol):\n"
            "            found = search(r + 1, sol + [(r, c)])\n"
            "            if found:\n"
            "                return found\n"
            "print('<<<' + ', '.join(f'{r} {c}' for r, c in search(0, [])) + '>>>')\n"
        )


# ---------------------------------------------------------------- Standard Sudoku
def sudoku_solve(grid: list[list[int]]) -> list[list[int]] | None:
    g = [list(r) for r in grid]

    def cands(r: int, c: int) -> set[int]:
        used = set(g[r]) | {g[i][c] for i in range(9)}
        used |= {g[i][j] for i in range(r // 3 * 3, r // 3 * 3 + 3) for j in range(c // 3 * 3, c // 3 * 3 + 3)}
        return set(range(1, 10)) - used

    def search() -> bool:
        empty = [(len(cands(r, c)), r, c) for r in range(9) for c in range(9) if g[r][c] == 0]
        if not empty:
            return True
        _, r, c = min(empty)
        for v in cands(r, c):
            g[r][c] = v
            if search():
                return True
        g[r][c] = 0
        return False

    return g if search() else None


def sudoku_valid(puzzle: list[list[int]], sol: list[list[int]]) -> bool:
    if len(sol) != 9 or any(len(r) != 9 for r in sol):
        return False
    if any(puzzle[r][c] and puzzle[r][c] != sol[r][c] for r in range(9) for c in range(9)):
        return False
    units = [sol[r] for r in range(9)] + [[sol[r][c] for r in range(9)] for c in range(9)]
    units += [[sol[r][c] for r in range(br, br + 3) for c in range(bc, bc + 3)] for br in (0, 3, 6) for bc in (0, 3, 6)]
    return all(sorted(u) == list(range(1, 10)) for u in units)


class StandardSudoku(SymbenchTask):
    name = "standard_sudoku"
    description = "Fill a 9x9 Sudoku grid."

    def _generate_one(self, rng: random.Random) -> Item:
        digits = list(range(1, 10))
        rng.shuffle(digits)
        bands = rng.sample(range(3), 3)
        rows = [b * 3 + r for b in bands for r in rng.sample(range(3), 3)]
        stacks = rng.sample(range(3), 3)
        cols = [s * 3 + c for s in stacks for c in rng.sample(range(3), 3)]
        full = [[digits[(3 * (r % 3) + r // 3 + c) % 9] for c in cols] for r in rows]
        holes = rng.randint(25, 55)
        puzzle = [list(r) for r in full]
        for k in rng.sample(range(81), holes):
            puzzle[k // 9][k % 9] = 0
        shown = "\n".join(",".join(str(v) if v else " " for v in r) for r in puzzle)
        question = (
            "Given a 9*9 Sudoku grid, each cell must be filled with a number between 1 and 9. No number may appear "
            "more than once in the same row, column, or 3*3 subgrid. Some cells are pre-filled. Please fill the "
            f"remaining empty cells.\n{shown}\n\nReturn your answer in the format: <<<a 9*9 matrix>>>."
        )
        return self.make(question, str(sudoku_solve(puzzle)), puzzle=puzzle)

    def check(self, answer: str | None, item: Item) -> Verdict:
        got = int_grid(answer)
        if got is None and answer is not None:
            flat = [int(ch) for ch in re.findall(r"\d", answer)]
            got = [flat[i * 9 : i * 9 + 9] for i in range(9)] if len(flat) == 81 else None
        if got is None:
            return UNPARSEABLE
        return verdict(sudoku_valid(item.metadata["puzzle"], got))

    def reference_solution(self, item: Item) -> str:
        return (
            f"g = {item.metadata['puzzle']}  # 0 = empty\n"
            "def cands(r, c):\n"
            "    box = {g[i][j] for i in range(r // 3 * 3, r // 3 * 3 + 3) for j in range(c // 3 * 3, c // 3 * 3 + 3)}\n"
            "    return set(range(1, 10)) - set(g[r]) - {g[i][c] for i in range(9)} - box\n"
            "def solve():\n"
            "    empty = [(len(cands(r, c)), r, c) for r in range(9) for c in range(9) if g[r][c] == 0]\n"
            "    if not empty:\n"
            "        return True\n"
            "    _, r, c = min(empty)  # most constrained cell first\n"
            "    for v in cands(r, c):\n"
            "        g[r][c] = v\n"
            "        if solve():\n"
            "            return True\n"
            "    g[r][c] = 0\n"
            "    return False\n"
            "solve()\n"
            "print(f'<<<{g}>>>')\n"
        )


# ---------------------------------------------------------------- Letter Logic Diagram
LLD_LETTERS = "abcdefg"


def lld_valid(grid: list[list[str | None]], sol: list[list[str]]) -> bool:
    n = len(grid)
    if len(sol) != n or any(len(r) != n for r in sol):
        return False
    if any(grid[r][c] and grid[r][c] != sol[r][c] for r in range(n) for c in range(n)):
        return False
    letters = sorted(LLD_LETTERS[:n])
    return (all(sorted(r) == letters for r in sol) and all(sorted(col) == letters for col in zip(*sol, strict=True))
            and len({sol[i][n - 1 - i] for i in range(n)}) == 1)


class LetterLogicDiagram(SymbenchTask):
    name = "letter_logic_diagram"
    description = "Complete a 7x7 letter Latin square whose minor diagonal holds one letter."

    def _generate_one(self, rng: random.Random) -> Item:
        perm = rng.sample(LLD_LETTERS, 7)
        a, c = rng.randint(1, 6), rng.randrange(7)
        full = [[perm[(a * (i + j) + c) % 7] for j in range(7)] for i in range(7)]
        grid: list[list[str | None]] = [list(r) for r in full]
        for k in rng.sample(range(49), rng.randint(12, 30)):
            grid[k // 7][k % 7] = None
        shown = "\n".join(",".join(x or "" for x in r) for r in grid)
        question = (
            "Given a 7x7 grid of letters {a..g}, some cells are pre-filled. Fill the rest so that:\n"
            "1) Each row has exactly one of each letter {a..g}.\n2) Each column has exactly one of each letter {a..g}.\n"
            "3) All cells on the minor diagonal (top-right to bottom-left) contain the same letter.\n\n"
            f"Here is the puzzle (each row on its own line, cells separated by commas, empty cells blank):\n\n{shown}\n\n"
            "Return the answer with the format:\n<<<\nrow1\nrow2\n...  (7 rows total)\n>>>\n\n"
            "where each row has 7 letters separated by commas.\n"
        )
        return self.make(question, "\n".join(",".join(r) for r in full), grid=grid)

    def check(self, answer: str | None, item: Item) -> Verdict:
        got = letter_grid(answer)
        if got is None or len(got) != 7 or any(len(r) != 7 for r in got):
            return UNPARSEABLE
        return verdict(lld_valid(item.metadata["grid"], [[x.lower() for x in r] for r in got]))

    def reference_solution(self, item: Item) -> str:
        return (
            f"g = {item.metadata['grid']}  # None = empty\n"
            "n, letters = 7, 'abcdefg'\n"
            "def options(r, c, diag):\n"
            "    if r + c == n - 1:\n"
            "        return [diag] if diag not in g[r] and diag not in [g[i][c] for i in range(n)] else []\n"
            "    return [x for x in letters if x not in g[r] and x not in [g[i][c] for i in range(n)]]\n"
            "def solve(diag):\n"
            "    empty = [(len(options(r, c, diag)), r, c) for r in range(n) for c in range(n) if g[r][c] is None]\n"
            "    if not empty:\n"
            "        return True\n"
            "    _, r, c = min(empty)\n"
            "    for x in options(r, c, diag):\n"
            "        g[r][c] = x\n"
            "        if solve(diag):\n"
            "            return True\n"
            "    g[r][c] = None\n"
            "    return False\n"
            "for diag in letters:\n"
            "    if all(g[i][n - 1 - i] in (None, diag) for i in range(n)) and solve(diag):\n"
            "        break\n"
            "print('<<<\\n' + '\\n'.join(','.join(row) for row in g) + '\\n>>>')\n"
        )


# ---------------------------------------------------------------- Logic Puzzle
def logic_ok(grid: list[list[int]], cells: list[tuple[int, int]], ctype: str) -> bool:
    n = len(grid)
    lines = [[grid[r][c] for r, c in cells if r == i] for i in range(n)]
    lines += [[grid[r][c] for r, c in cells if c == j] for j in range(n)]
    if ctype == "sum_le_4":
        return all(sum(v) <= 4 for v in lines)
    prod = [math.prod(v) for v in lines]
    return all(p > 0 for p in prod)


_RULE = {"sum_le_4": "The sum of the selected numbers in each row and each column should be less than or equal to 4.",
         "product_gt_0": "The product of the selected numbers in each row and each column should be greater than 0."}


class LogicPuzzle(SymbenchTask):
    name = "logic_puzzle"
    description = "Select grid cells so that each row and column meets a sum or product constraint."

    def _generate_one(self, rng: random.Random) -> Item:
        while True:
            n = rng.randint(2, 5)
            ctype = rng.choice(("sum_le_4", "product_gt_0"))
            lo, hi = (1, 4) if ctype == "sum_le_4" else (-4, 4)
            grid = [[rng.randint(lo, hi) for _ in range(n)] for _ in range(n)]
            k = rng.randint(2, min(n + 1, 5))
            first = (rng.randrange(n), rng.randrange(n))
            cells = [(r, c) for r in range(n) for c in range(n) if (r, c) != first]
            sol = next((s for s in itertools.combinations(cells, k - 1) if logic_ok(grid, [first, *s], ctype)), None)
            if sol is not None:
                break
        answer = ", ".join(f"{r} {c}" for r, c in [first, *sol])
        return self.make(self.question(grid, k, first, ctype), answer, grid=grid, count=k, first=list(first),
                         constraints={"type": ctype})

    @staticmethod
    def question(grid: list[list[int]], k: int, first: tuple[int, int], ctype: str) -> str:
        n = len(grid)
        flat = [v for r in grid for v in r]
        shown = "\n".join(", ".join(map(str, r)) for r in grid)
        return (
            f"Given a {n}*{n} grid where each cell contains a number (between {min(flat)} to {max(flat)}), you must "
            f"select {k} different numbers from these cells. {_RULE[ctype]} The numbers in the same row are separated "
            "by ',', and the coordinate system uses the top-left cell as the coordinate (0,0), the first index is "
            "the row and the second index is the column.\n"
            f"Using the number {grid[first[0]][first[1]]} in the square ({first[0]},{first[1]}) as the first selected "
            f"number\n{shown}\n\n"
            "Return your answer with the format <<<list of selected number positions>>>, where each position is "
            "given as row column (0-based indices). For example, <<<0 3, 1 0, 2 4>>> means numbers selected are at "
            "positions (0,3), (1,0), and (2,4)."
        )

    def check(self, answer: str | None, item: Item) -> Verdict:
        got = pairs(answer)
        if got is None:
            return UNPARSEABLE
        md = item.metadata
        n = len(md["grid"])
        ok = (len(got) == md["count"] and len(set(got)) == len(got) and tuple(md["first"]) in got
              and all(0 <= r < n and 0 <= c < n for r, c in got)
              and logic_ok(md["grid"], got, md["constraints"]["type"]))
        return verdict(ok)

    def reference_solution(self, item: Item) -> str:
        md = item.metadata
        rule = ("sum(vals) <= 4" if md["constraints"]["type"] == "sum_le_4" else "prod(vals) > 0")
        return (
            "from itertools import combinations\n"
            "from math import prod\n"
            f"grid = {md['grid']}\n"
            f"k, first = {md['count']}, {tuple(md['first'])}\n"
            "n = len(grid)\n"
            "def ok(cells):\n"
            "    for line in [[(r, c) for c in range(n)] for r in range(n)] + [[(r, c) for r in range(n)] for c in range(n)]:\n"
            "        vals = [grid[r][c] for r, c in line if (r, c) in cells]\n"
            f"        if vals and not ({rule}):\n"
            "            return False\n"
            "    return True\n"
            "others = [(r, c) for r in range(n) for c in range(n) if (r, c) != first]\n"
            "sol = next([first, *s] for s in combinations(others, k - 1) if ok([first, *s]))\n"
            "print('<<<' + ', '.join(f'{r} {c}' for r, c in sol) + '>>>')\n"
        )


# ---------------------------------------------------------------- Permutations and Combinations
_PC_PATTERNS = [
    ("fixed", r"Book\s+([A-Za-z])\s+must\s+be\s+placed\s+in\s+position\s+(\d+)"),
    ("left", r"Book\s+([A-Za-z])\s+must\s+be\s+to\s+the\s+left\s+of\s+book\s+([A-Za-z])"),
    ("not", r"Book\s+([A-Za-z])\s+cannot\s+be\s+placed\s+in\s+position\s+(\d+)"),
    ("right", r"Book\s+([A-Za-z])\s+must\s+be\s+to\s+the\s+right\s+of\s+book\s+([A-Za-z])"),
    ("adjacent", r"Book\s+([A-Za-z])\s+must\s+be\s+adjacent\s+to\s+book\s+([A-Za-z])"),
]
_PC_TEXT = {"fixed": "Book {} must be placed in position {}.", "left": "Book {} must be to the left of book {}.",
            "not": "Book {} cannot be placed in position {}.", "right": "Book {} must be to the right of book {}.",
            "adjacent": "Book {} must be adjacent to book {}."}


def parse_pc_constraints(text: str) -> list[list] | None:
    out = []
    for line in text.strip().split("\n"):
        for kind, pat in _PC_PATTERNS:
            m = re.search(pat, line)
            if m:
                b = m.group(2)
                out.append([kind, m.group(1), int(b) if b.isdigit() else b])
                break
        else:
            if line.strip():
                return None
    return out


def pc_ok(arr: list[str], cons: list[list]) -> bool:
    pos = {b: i + 1 for i, b in enumerate(arr)}
    for kind, a, b in cons:
        if a not in pos or (isinstance(b, str) and b not in pos):
            return False
        if ((kind == "fixed" and pos[a] != b) or (kind == "not" and pos[a] == b)
                or (kind == "left" and pos[a] >= pos[b]) or (kind == "right" and pos[a] <= pos[b])
                or (kind == "adjacent" and abs(pos[a] - pos[b]) != 1)):
            return False
    return True


class PermutationsAndCombinations(SymbenchTask):
    name = "permutations_and_combinations"
    description = "Arrange labelled books on a shelf under position and order constraints."

    def _generate_one(self, rng: random.Random) -> Item:
        n = rng.randint(4, 8)
        items = [chr(65 + i) for i in range(n)]
        target = rng.sample(items, n)
        pos = {b: i + 1 for i, b in enumerate(target)}
        cons: list[list] = []
        while len(cons) < rng.randint(3, 8):
            kind = rng.choice(list(_PC_TEXT))
            a, b = rng.sample(items, 2)
            c = {"fixed": [kind, a, pos[a]], "not": [kind, a, rng.choice([p for p in range(1, n + 1) if p != pos[a]])],
                 "left": ["left", *sorted((a, b), key=pos.get)], "right": ["right", *sorted((a, b), key=pos.get)[::-1]],
                 "adjacent": [kind, target[pos[a] - 1], target[pos[a] % n]] if pos[a] < n else None}[kind]
            if c and c not in cons and pc_ok(target, cons + [c]):
                cons.append(c)
        text = "\n".join(f"{i + 1}. " + _PC_TEXT[k].format(a, b) for i, (k, a, b) in enumerate(cons))
        sol = next(list(p) for p in itertools.permutations(items) if pc_ok(list(p), cons))
        question = (
            f"Xiao Wang is a librarian responsible for shelving {n} books labeled {', '.join(items[:-1])}, "
            f"{items[-1]} on a shelf with positions 1 to {n}.\n\nThe constraints are:\n{text}\n\nQuestion:\n"
            f"Based on the above conditions, please arrange the {n} books from left to right on the bookshelf, i.e. "
            f"positions 1 through {n}. Return your answer with the format <<< a list of strings >>>, one solution is "
            'enough.for example:\n<<<["A", "B", "C"]>>>\nYour answer:\n'
        )
        return self.make(question, str(sol).replace("'", '"'), items=items, constraints=cons, constraints_text=text)

    def check(self, answer: str | None, item: Item) -> Verdict:
        got = tokens(answer)
        if got is None or not all(x.isalpha() for x in got):
            return UNPARSEABLE
        got = [x.upper() for x in got]
        items = item.metadata["items"]
        return verdict(sorted(got) == sorted(items) and pc_ok(got, item.metadata["constraints"]))

    def reference_solution(self, item: Item) -> str:
        cons = [tuple(c) for c in item.metadata["constraints"]]
        return (
            "from itertools import permutations\n"
            f"books = {item.metadata['items']}\n"
            f"constraints = {cons}\n"
            "def ok(arr):\n"
            "    pos = {b: i + 1 for i, b in enumerate(arr)}\n"
            "    checks = {'fixed': lambda a, b: pos[a] == b, 'not': lambda a, b: pos[a] != b,\n"
            "              'left': lambda a, b: pos[a] < pos[b], 'right': lambda a, b: pos[a] > pos[b],\n"
            "              'adjacent': lambda a, b: abs(pos[a] - pos[b]) == 1}\n"
            "    return all(checks[kind](a, b) for kind, a, b in constraints)\n"
            "sol = next(list(p) for p in permutations(books) if ok(p))\n"
            "print('<<<' + str(sol).replace(\"'\", '\"') + '>>>')\n"
        )


# ---------------------------------------------------------------- Constrained Linear Arrangement (animal game)
ANIMALS = "ABCDEFGH"  # Elephant .. Mouse, largest first


def animal_beats(x: str, y: str) -> bool:
    if x == "H" and y == "A":
        return True
    if x == "A" and y == "H":
        return False
    return ANIMALS.index(x) < ANIMALS.index(y)


def animal_result(mine: str, theirs: str) -> str:
    return "draw" if mine == theirs else "win" if animal_beats(mine, theirs) else "loss"


class ConstrainedLinearArrangement(SymbenchTask):
    name = "constrained_linear_arrangement"
    description = "Deduce the opponent's pieces in a Jungle-Chess-like game from round results."

    def _generate_one(self, rng: random.Random) -> Item:
        rounds = rng.randint(2, 6)
        mine = rng.sample(ANIMALS, rounds)
        theirs = rng.sample(ANIMALS, rounds)
        results = [animal_result(a, b) for a, b in zip(mine, theirs, strict=True)]
        listed = "\n".join(f"Round {i + 1}: {m}, {r}." for i, (m, r) in enumerate(zip(mine, results, strict=True)))
        question = (
            "Both parties, A and B, play a game similar to Jungle Chess. Each player has 8 animal pieces, ranked "
            "from largest to smallest: Elephant (A), Lion (B), Tiger (C), Leopard (D), Wolf (E), Dog (F), Cat (G), "
            "and Mouse (H). Both players reveal their pieces simultaneously, but cannot see the opponent's piece. "
            "The referee announces the result of the match.\n\nRules:\n1. The goal for both players is to reach the "
            "opponent's den in 5 steps. The first to accumulate 5 steps wins.\n2. When a smaller piece encounters a "
            "larger piece, the smaller piece is captured, and the player with the larger piece wins.\n3. Mutual "
            "capture: When pieces of the same type encounter each other, they mutually capture and the result is a "
            "draw.\n4. Mouse captures Elephant: Apart from the size hierarchy, the Mouse can capture the Elephant, "
            "but the Elephant cannot capture the Mouse.\n5. Each piece can only be used once.\n\nAssuming you are "
            "one of the players, deduce what cards your opponent played each round based on the cards you played "
            f"and the results of each round.\n\nRounds:\n{listed}\n\n"
            "Use a list of letters to show your answer. For example, <<<A,B,C>>>."
        )
        return self.make(question, ",".join(theirs), game_type="animal", player_moves=mine, results=results)

    def check(self, answer: str | None, item: Item) -> Verdict:
        got = tokens(answer)
        if got is None or any(len(x) != 1 for x in got):
            return UNPARSEABLE
        got = [x.upper() for x in got]
        md = item.metadata
        ok = (len(got) == len(md["results"]) and len(set(got)) == len(got) and all(x in ANIMALS for x in got)
              and all(animal_result(m, o) == r for m, o, r in zip(md["player_moves"], got, md["results"], strict=True)))
        return verdict(ok)

    def reference_solution(self, item: Item) -> str:
        md = item.metadata
        return (
            "from itertools import permutations\n"
            f"mine = {md['player_moves']}\n"
            f"results = {md['results']}\n"
            "rank = 'ABCDEFGH'  # Elephant (largest) .. Mouse (smallest)\n"
            "def result(x, y):  # my piece x against the opponent's y\n"
            "    if x == y:\n"
            "        return 'draw'\n"
            "    if (x, y) in (('H', 'A'), ('A', 'H')):\n"
            "        return 'win' if x == 'H' else 'loss'\n"
            "    return 'win' if rank.index(x) < rank.index(y) else 'loss'\n"
            "for theirs in permutations(rank, len(mine)):\n"
            "    if all(result(x, y) == r for x, y, r in zip(mine, theirs, results)):\n"
            "        print('<<<' + ','.join(theirs) + '>>>')\n"
            "        break\n"
        )

