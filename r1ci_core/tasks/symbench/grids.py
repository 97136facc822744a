"""SymBench grid simulations: Matrix Transformation, Pooling, Light Puzzles, Reversi, 2048, Pattern Recognition."""

from __future__ import annotations

import random
import re
import string

from ..base import Item, Verdict
from ._common import UNPARSEABLE, SymbenchTask, int_tokens, tokens, verdict


def rotate(matrix: list[list[str]], degrees: int) -> list[list[str]]:
    """`matrix` rotated clockwise by `degrees` (a multiple of 90)."""
    m = [list(r) for r in matrix]
    for _ in range((degrees // 90) % 4):
        m = [list(r) for r in zip(*m[::-1], strict=True)]
    return m


class MatrixTransformation(SymbenchTask):
    name = "matrix_transformation"
    description = "Rotate a letter matrix by a multiple of 90 degrees and list the result row by row."

    def _generate_one(self, rng: random.Random) -> Item:
        rows, cols = rng.randint(2, 5), rng.randint(2, 5)
        if rng.random() < 0.5:
            cols = rows
        matrix = [[rng.choice(string.ascii_uppercase) for _ in range(cols)] for _ in range(rows)]
        degrees = rng.choice((90, 90, 180, 270))
        return self.make(self.question(matrix, degrees), self.flat(rotate(matrix, degrees)),
                         matrix=matrix, degrees=degrees)

    @staticmethod
    def question(matrix: list[list[str]], degrees: int) -> str:
        shown = "\n".join(" ".join(r) for r in matrix)
        return (
            "Given a 2D array of strings, which represents a letter matrix. Your task is to rotate this matrix "
            f"{degrees} degrees clockwise and output the result.\nIf the matrix is \n{shown}.\nWhat is the result?\n"
            "Return your answer with format <<<list of values and symbols>>>, For example, <<<A,B,C,D>>> "
            "represents a 2D array."
        )

    @staticmethod
    def flat(matrix: list[list[str]]) -> str:
        return ",".join(x for r in matrix for x in r)

    def check(self, answer: str | None, item: Item) -> Verdict:
        got = tokens(answer)
        if got is None or not all(x.isalnum() for x in got):
            return UNPARSEABLE
        return verdict(got == item.answer.split(","))

    def reference_solution(self, item: Item) -> str:
        return (
            f"m = {item.metadata['matrix']}\n"
            f"degrees = {item.metadata['degrees']}\n"
            "for _ in range(degrees // 90):\n"
            "    m = [list(row) for row in zip(*m[::-1])]\n"
            "print('<<<' + ','.join(x for row in m for x in row) + '>>>')\n"
        )


def max_pool(matrix: list[list[int]], k: int) -> list[list[int]]:
    n, m = len(matrix), len(matrix[0])
    return [[max(matrix[i + a][j + b] for a in range(k) for b in range(k)) for j in range(m - k + 1)]
            for i in range(n - k + 1)]


class Pooling(SymbenchTask):
    name = "pooling"
    description = "Max pooling of an integer matrix with a sliding window (stride 1)."

    def _generate_one(self, rng: random.Random) -> Item:
        n = rng.randint(3, 6)
        k = rng.randint(2, min(3, n - 1))
        matrix = [[rng.randint(-20, 20) for _ in range(n)] for _ in range(n)]
        return self.make(self.question(matrix, k), ",".join(str(x) for r in max_pool(matrix, k) for x in r),
                         matrix=matrix, window_size=k, pooling_type="max")

    @staticmethod
    def question(matrix: list[list[int]], k: int) -> str:
        shown = "\n".join(", ".join(map(str, r)) for r in matrix)
        return (
            "In an N*N grid, there are N^2 numbers, with numbers in the same row separated by commas. We define the "
            '"max pooling" operation: suppose that there is an n*n (n<N) sliding window, which slides from left to '
            "right or from top to bottom in the matrix, finding the maximum value in each sliding window. Then, the "
            "maximum values are arranged according to their original positions to form a new matrix for output.\n"
            f"Now, please perform max pooling on the following matrix by using a {k}*{k} sliding window:\n{shown}\n"
            "For example, <<<0,0,0,0>>> represents a 2D array."
        )

    def check(self, answer: str | None, item: Item) -> Verdict:
        got = int_tokens(answer)
        if got is None:
            return UNPARSEABLE
        return verdict(got == [int(x) for x in item.answer.split(",")])

    def reference_solution(self, item: Item) -> str:
        return (
            f"m = {item.metadata['matrix']}\n"
            f"k = {item.metadata['window_size']}\n"
            "out = [max(m[i + a][j + b] for a in range(k) for b in range(k))\n"
            "       for i in range(len(m) - k + 1) for j in range(len(m[0]) - k + 1)]\n"
            "print('<<<' + ','.join(map(str, out)) + '>>>')\n"
        )


class LightPuzzles(SymbenchTask):
    name = "light_puzzles"
    description = "Toggle lights of a grid by pressing buttons in rounds; give the final grid."

    def _generate_one(self, rng: random.Random) -> Item:
        n = rng.randint(3, 6)
        grid = [[rng.randint(0, 1) for _ in range(n)] for _ in range(n)]
        cells = [[r, c] for r in range(1, n + 1) for c in range(1, n + 1)]
        buttons = {b: rng.sample(cells, rng.randint(2, min(10, len(cells))))
                   for b in "ABCD"[: rng.randint(2, 4)]}
        ops = [rng.choice(list(buttons)) for _ in range(rng.randint(1, 6))]
        return self.make(self.question(n, grid, buttons, ops), ",".join(map(str, self.solve(grid, buttons, ops))),
                         n=n, initial_state=grid, buttons=buttons, operations=ops)

    @staticmethod
    def solve(grid: list[list[int]], buttons: dict[str, list[list[int]]], ops: list[str]) -> list[int]:
        g = [list(r) for r in grid]
        for b in ops:
            for r, c in buttons[b]:
                g[r - 1][c - 1] ^= 1
        return [x for r in g for x in r]

    @staticmethod
    def question(n: int, grid: list[list[int]], buttons: dict, ops: list[str]) -> str:
        shown = "\n".join("".join(map(str, r)) for r in grid)
        lines = "\n".join(
            f"Button {b} controls the lights at " + ", ".join(f'["{r}", "{c}"]' for r, c in cells)
            for b, cells in buttons.items())
        rounds = "\n".join(f"Round {i + 1}: Button {b}" for i, b in enumerate(ops))
        return (
            "There is an n*n grid with some lights randomly distributed. A lit light is represented by 1, and an "
            "unlit light is represented by 0. There are some buttons which can change the state of the lights in "
            "certain positions when they are pressed, like turning some lights on or off. Different buttons may "
            "control the state of the same light.\n"
            f"Given n={n} and the number of buttons={len(buttons)}, the initial network is:\n{shown}\n\n"
            f"{lines}\n\n{rounds}\n\n"
            "Please write the result after all rounds of operation based on the lights controlled by the button.\n"
            f"For example, <<<{','.join(['0'] * n * n)}>>> represents a fully unlit light network."
        )

    def check(self, answer: str | None, item: Item) -> Verdict:
        got = int_tokens(answer)
        if got is None:
            return UNPARSEABLE
        return verdict(got == [int(x) for x in item.answer.split(",")])

    def reference_solution(self, item: Item) -> str:
        md = item.metadata
        return (
            f"grid = {md['initial_state']}\n"
            f"buttons = {md['buttons']}\n"
            f"ops = {md['operations']}\n"
            "for b in ops:\n"
            "    for r, c in buttons[b]:\n"
            "        grid[r - 1][c - 1] ^= 1\n"
            "print('<<<' + ','.join(str(x) for row in grid for x in row) + '>>>')\n"
        )


def reversi_play(board: list[str], moves: list[list]) -> list[list[str]]:
    """Play `moves` ([row, col, piece], 1-based) on `board`, flipping bracketed opponent pieces."""
    g = [list(r) for r in board]
    n = len(g)
    for r, c, p in moves:
        r, c = r - 1, c - 1
        q = "1" if p == "0" else "0"
        g[r][c] = p
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                if dr == dc == 0:
                    continue
                i, j, line = r + dr, c + dc, []
                while 0 <= i < n and 0 <= j < n and g[i][j] == q:
                    line.append((i, j))
                    i, j = i + dr, j + dc
                if line and 0 <= i < n and 0 <= j < n and g[i][j] == p:
                    for a, b in line:
                        g[a][b] = p
    return g


def _legal(board: list[str], p: str) -> list[tuple[int, int]]:
    n = len(board)
    out = []
    for r in range(n):
        for c in range(n):
            if board[r][c] == "*":
                after = reversi_play(board, [[r + 1, c + 1, p]])
                if sum(a != b for x, y in zip(after, board, strict=True) for a, b in zip(x, y, strict=True)) > 1:
                    out.append((r + 1, c + 1))
    return out


class Reversi(SymbenchTask):
    name = "reversi"
    description = "Apply Reversi moves to a board and give the resulting board."

    def _generate_one(self, rng: random.Random) -> Item:
        while True:
            n = rng.choice((4, 6, 6, 8))
            h = n // 2
            board = [["*"] * n for _ in range(n)]
            board[h - 1][h - 1] = board[h][h] = "1"
            board[h - 1][h] = board[h][h - 1] = "0"
            rows = ["".join(r) for r in board]
            turn = "0"
            ok = True
            for _ in range(rng.randint(0, 4)):
                legal = _legal(rows, turn)
                if not legal:
                    ok = False
                    break
                r, c = rng.choice(legal)
                rows = ["".join(x) for x in reversi_play(rows, [[r, c, turn]])]
                turn = "1" if turn == "0" else "0"
            you = rng.choice("01")
            moves, cur = [], rows
            for k in range(rng.randint(1, 3)):
                p = you if k % 2 == 0 else ("1" if you == "0" else "0")
                legal = _legal(cur, p)
                if not legal:
                    ok = False
                    break
                r, c = rng.choice(legal)
                moves.append([r, c, p])
                cur = ["".join(x) for x in reversi_play(cur, [[r, c, p]])]
            if ok:
                break
        answer = ",".join(x for r in cur for x in r)
        return self.make(self.question(rows, you, moves), answer, board=rows, moves=moves, board_size=n)

    @staticmethod
    def question(board: list[str], you: str, moves: list[list]) -> str:
        color = "black" if you == "0" else "white"
        rounds = "\n".join(
            f"Round {i + 1}: " + ("Your's" if p == you else "The opponent's") + f" landing position is ({r},{c})"
            for i, (r, c, p) in enumerate(moves))
        n = len(board)
        return (
            "There is a game similar to Reversi. On an n*n grid (where n is even), four pieces are placed in the "
            "center, two black and two white, arranged diagonally. Black pieces are represented by 0, white pieces "
            "by 1, and empty spaces by *.\nRules:\n1. Two players take turns placing pieces, one playing black and "
            "the other playing white.\n2. Each player places one piece on an empty space during their turn.\n"
            "3. After placing a piece, if there are any of the opponent's pieces between two of the player's pieces "
            "(in the same row, column, or diagonal), those pieces will be flipped to the player's color. That is, 0 "
            "becomes 1, or 1 becomes 0.\nAll coordinates start from the first row and first column, and the "
            "coordinate (a, b) represents the cell in the a-th row and b-th column.\n\n"
            f"Given: n={n}, you play {color} chess.\n\nThe previous round of the game was: \n"
            + "\n".join(board) + f"\n\n{rounds}\n\n"
            "Please write down the game situation after this round based on the situation of the previous round.\n"
            f"For example, <<<{','.join(['*'] * n * n)}>>> represents the empty grid."
        )

    def check(self, answer: str | None, item: Item) -> Verdict:
        if answer is None:
            return UNPARSEABLE
        cells = re.sub(r"[\s,\[\]'\"]", "", answer)
        if not cells or set(cells) - set("*01"):
            return UNPARSEABLE
        return verdict(cells == item.answer.replace(",", "").replace(" ", ""))

    def reference_solution(self, item: Item) -> str:
        md = item.metadata
        return (
            f"g = [list(row) for row in {md['board']}]\n"
            f"moves = {md['moves']}  # [row, col, piece], 1-based\n"
            "n = len(g)\n"
            "for r, c, p in moves:\n"
            "    r, c, q = r - 1, c - 1, '1' if p == '0' else '0'\n"
            "    g[r][c] = p\n"
            "    for dr, dc in [(a, b) for a in (-1, 0, 1) for b in (-1, 0, 1) if a or b]:\n"
            "        i, j, line = r + dr, c + dc, []\n"
            "        while 0 <= i < n and 0 <= j < n and g[i][j] == q:\n"
            "            line.append((i, j))\n"
            "            i, j = i + dr, j + dc\n"
            "        if line and 0 <= i < n and 0 <= j < n and g[i][j] == p:\n"
            "            for a, b in line:\n"
            "                g[a][b] = p\n"
            "print('<<<' + ','.join(x for row in g for x in row) + '>>>')\n"
        )


_STEP = {"u": (-1, 0), "d": (1, 0), "l": (0, -1), "r": (0, 1)}


def play_2048(grid: list[list[int]], start: list[int], moves: str) -> list[list[int]]:
    g = [list(r) for r in grid]
    r, c = start
    n = len(g)
    for m in moves:
        i, j = r + _STEP[m][0], c + _STEP[m][1]
        if not (0 <= i < n and 0 <= j < n):
            continue
        if g[i][j] == 0:
            g[i][j], g[r][c] = g[r][c], 0
            r, c = i, j
        elif g[i][j] == g[r][c]:
            g[i][j], g[r][c] = 2 * g[i][j], 0
            r, c = i, j
    return g


class Game2048(SymbenchTask):
    name = "game_2048"
    description = "Move one tile of a 2048 grid along a move sequence, merging equal tiles."

    def _generate_one(self, rng: random.Random) -> Item:
        n = rng.randint(2, 5)
        grid = [[rng.choice([0, 0, 2, 2, 4, 4, 8, 16, 32]) for _ in range(n)] for _ in range(n)]
        start = [rng.randrange(n), rng.randrange(n)]
        if grid[start[0]][start[1]] == 0:
            grid[start[0]][start[1]] = rng.choice([2, 4, 8])
        moves = "".join(rng.choice("udlr") for _ in range(rng.randint(1, 2 + n)))
        answer = "\n".join(", ".join(map(str, r)) for r in play_2048(grid, start, moves))
        return self.make(self.question(grid, start, moves), answer, grid=grid, moves=moves, start_pos=start)

    @staticmethod
    def question(grid: list[list[int]], start: list[int], moves: str) -> str:
        n = len(grid)
        shown = "\n".join(", ".join(map(str, r)) for r in grid)
        return (
            f"In an {n}x{n} grid, there are several squares containing powers of 2. We define the '2048' game: The "
            "numbers in the grid can move in any direction. When they encounter a number that is the same power of "
            "2, they can combine to form a larger number that is the next power of 2. For example: 2 meets 2 -> 4; "
            "4 meets 4 -> 8; 16 meets 16 -> 32. When they encounter a different number, they remain unchanged.\n"
            "u: represents moving up one step\nd: represents moving down one step\nl: represents moving left one "
            "step\nr: represents moving right one step\n\n"
            f"Now, in the following matrix, move the number in position ({start[0] + 1}, {start[1] + 1}) using the "
            f"sequence '{moves}':\n{shown}\n\nWhat is the matrix after moving?\n"
            "Return your answer with format <<<matrix>>>."
        )

    def check(self, answer: str | None, item: Item) -> Verdict:
        got = int_tokens(answer)
        if got is None:
            return UNPARSEABLE
        return verdict(got == int_tokens(item.answer))

    def reference_solution(self, item: Item) -> str:
        md = item.metadata
        return (
            f"g = {md['grid']}\n"
            f"r, c = {md['start_pos'][0]}, {md['start_pos'][1]}  # 0-based\n"
            f"moves = '{md['moves']}'\n"
            "step = {'u': (-1, 0), 'd': (1, 0), 'l': (0, -1), 'r': (0, 1)}\n"
            "for m in moves:\n"
            "    i, j = r + step[m][0], c + step[m][1]\n"
            "    if not (0 <= i < len(g) and 0 <= j < len(g)):\n"
            "        continue\n"
            "    if g[i][j] == 0 or g[i][j] == g[r][c]:\n"
            "        g[i][j], g[r][c] = g[i][j] + g[r][c], 0\n"
            "        r, c = i, j\n"
            "print('<<<' + '\\n'.join(', '.join(map(str, row)) for row in g) + '>>>')\n"
        )


def squares(rows: list[str]) -> list[tuple[int, int, int]]:
    """All (size, bottom_row, right_col) of same-character squares of side >= 3."""
    R, C = len(rows), len(rows[0])
    out = []
    for i in range(R):
        for j in range(C):
            for k in range(3, min(R - i, C - j) + 1):
                if all(rows[i + a][j + b] == rows[i][j] for a in range(k) for b in range(k)):
                    out.append((k, i + k - 1, j + k - 1))
    return out


class PatternRecognition(SymbenchTask):
    name = "pattern_recognition"
    description = "Find the bottom-right corner of the one same-letter square (side >= 3) in a letter matrix."

    def _generate_one(self, rng: random.Random) -> Item:
        while True:
            R, C = rng.randint(5, 13), rng.randint(5, 13)
            g = [[rng.choice(string.ascii_uppercase) for _ in range(C)] for _ in range(R)]
            k = rng.randint(3, min(5, R, C))
            i, j = rng.randint(0, R - k), rng.randint(0, C - k)
            ch = rng.choice(string.ascii_uppercase)
            for a in range(k):
                for b in range(k):
                    g[i + a][j + b] = ch
            rows = ["".join(r) for r in g]
            found = squares(rows)
            # only the planted square (and its own sub-squares) may appear
            if all(i <= br - s + 1 and br <= i + k - 1 and j <= rc - s + 1 and rc <= j + k - 1
                   for s, br, rc in found):
                break
        answer = f"[{i + k - 1}, {j + k - 1}]"
        return self.make(self.question(rows), answer, matrix=rows, row=i + k - 1, column=j + k - 1)

    @staticmethod
    def question(rows: list[str]) -> str:
        shown = "\n".join(" ".join(r) for r in rows)
        return (
            "Given a character matrix, your task is to identify the positions of all squares with a length of at "
            "least 3 and output the row and column numbers of the bottom-right corner of these squares. The squares "
            "are composed of the same character, and each side has a length of at least 3.\n\n"
            f"If the matrix is\n\n{shown}\n\n"
            "Please provide the row and column of the bottom-right vertex of the square in the character matrix with "
            "a side length of at least 3 (the answer is unique). Notice: All coordinates start from 0.  \n\n"
            "Your answer should be in the format <<<[row, column]>>>."
        )

    def check(self, answer: str | None, item: Item) -> Verdict:
        got = int_tokens(answer)
        if got is None or len(got) != 2:
            return UNPARSEABLE
        return verdict(got == [item.metadata["row"], item.metadata["column"]])

    def reference_solution(self, item: Item) -> str:
        return (
            f"g = {item.metadata['matrix']}\n"
            "best = (0, -1, -1)\n"
            "for i in range(len(g)):\n"
            "    for j in range(len(g[0])):\n"
            "        for k in range(3, min(len(g) - i, len(g[0]) - j) + 1):\n"
            "            if all(g[i + a][j + b] == g[i][j] for a in range(k) for b in range(k)):\n"
            "                best = max(best, (k, i + k - 1, j + k - 1))\n"
            "print(f'<<<[{best[1]}, {best[2]}]>>>')\n"
        )
