"""SymBench planning families: Blocksworld, BoxLift, BoxNet, Path Plan (plans validated by simulation)."""

from __future__ import annotations

import copy
import json
import random
import re
from collections import deque

from ..base import Item, Verdict
from ._common import UNPARSEABLE, SymbenchTask, literal, verdict

# ---------------------------------------------------------------- Blocksworld
State = dict[str, list[str]]


def blocksworld_prompt(initial: State, goal: State) -> str:
    prompt = "Blocksworld Task:\n\nInitial State:\n"
    prompt += "".join(f"{k}: {' '.join(v)}\n" for k, v in initial.items())
    prompt += "\nGoal State:\n" + "".join(f"{k}: {' '.join(v)}\n" for k, v in goal.items())
    return prompt + (
        "\nPlease provide a series of moves to reach the goal state. You can only move one block at a time. And that "
        "box should be the top box of the stack. Note that from the left to the right in each stack is the order "
        "from the bottom to the top of boxes. For example, in stack A B C D, A is the bottom box and D is the top box "
        "so that you can only move D in this case. ***Be careful that you can only pick up the top box in each "
        "stack. Check this rule before your move!***. \nEach move should be in the format: 'Move [block] from "
        "[source] to [destination]'. You cannot create new stacks but only move among the existing stacks. Separate "
        "each move with a newline. Surround the answer with <<<content>>>. Answer with the required format like the "
        "example: <<<Move B from 2 to table\nMove A from 1 to 2\nMove C from 3 to 1\nMove D from 3 to 2\nMove B from "
        "1 to 2>>>\nEach action should be separated by separate line. Your answer: \n"
    )


def parse_blocksworld(text: str) -> tuple[State, State]:
    """(initial, goal) stacks from a `blocksworld_task.txt` (or the prompt)."""
    initial: State = {}
    goal: State = {}
    current = initial
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("Initial State"):
            current = initial
        elif line.startswith("Goal State"):
            current = goal
        elif re.match(r"stack\d+:", line):
            name, _, blocks = line.partition(":")
            current[name] = blocks.split()
    return initial, goal


def blocksworld_bfs(initial: State, goal: State) -> list[str]:
    names = list(initial)
    start = tuple(tuple(initial[k]) for k in names)
    target = tuple(tuple(goal.get(k, [])) for k in names)
    prev: dict = {start: None}
    q = deque([start])
    while q:
        s = q.popleft()
        if s == target:
            break
        for i in range(len(s)):
            for j in range(len(s)):
                if i != j and s[i]:
                    t = list(s)
                    t[i], t[j] = s[i][:-1], s[j] + (s[i][-1],)
                    t = tuple(t)
                    if t not in prev:
                        prev[t] = (s, f"Move {s[i][-1]} from {names[i]} to {names[j]}")
                        q.append(t)
    moves = []
    while prev[s]:
        s, m = prev[s]
        moves.append(m)
    moves.reverse()
    if not moves:  # already at the goal (the release has such tasks): an empty plan is no answer, so
        i = next(k for k, stack in enumerate(start) if stack)  # move a block away and back
        j, block = (i + 1) % len(names), start[i][-1]
        moves = [f"Move {block} from {names[i]} to {names[j]}", f"Move {block} from {names[j]} to {names[i]}"]
    return moves


class Blocksworld(SymbenchTask):
    name = "blocksworld"
    description = "Plan block moves between stacks to reach a goal configuration."

    def _generate_one(self, rng: random.Random) -> Item:
        n_blocks, n_stacks = rng.choice([(b, s) for b in (2, 3, 4) for s in (3, 4, 5)] + [(5, 3)])
        blocks = [chr(65 + i) for i in range(n_blocks)]
        while True:
            states = []
            for _ in range(2):
                st: State = {f"stack{i + 1}": [] for i in range(n_stacks)}
                for b in rng.sample(blocks, n_blocks):
                    st[f"stack{rng.randint(1, n_stacks)}"].append(b)
                states.append(st)
            if states[0] != states[1]:
                break
        initial, goal = states
        plan = blocksworld_bfs(initial, goal)
        return self.make(blocksworld_prompt(initial, goal), "\n".join(plan), initial_state=initial, goal_state=goal)

    def check(self, answer: str | None, item: Item) -> Verdict:
        if answer is None:
            return UNPARSEABLE
        lines = [ln.strip() for ln in answer.strip().splitlines() if ln.strip()]
        if not lines or not all(re.fullmatch(r"Move \S+ from \S+ to \S+", ln) for ln in lines):
            return UNPARSEABLE
        state = copy.deepcopy(item.metadata["initial_state"])
        for ln in lines:
            _, block, _, src, _, dst = ln.split()
            src, dst = (x if x.startswith("stack") else f"stack{x}" for x in (src, dst))
            if src not in state or dst not in state or not state[src] or state[src][-1] != block:
                return verdict(False)
            state[dst].append(state[src].pop())
        goal = item.metadata["goal_state"]
        return verdict({k: v for k, v in state.items() if v} == {k: v for k, v in goal.items() if v})

    def reference_solution(self, item: Item) -> str:
        md = item.metadata
        names = list(md["initial_state"])
        start = tuple(tuple(md["initial_state"][k]) for k in names)
        goal = tuple(tuple(md["goal_state"].get(k, [])) for k in names)
        return (
            "from collections import deque\n"
            f"names = {names}\n"
            f"start = {start}  # bottom -> top\n"
            f"goal = {goal}\n"
            "prev, queue = {start: None}, deque([start])\n"
            "while queue:  # breadth-first search over stack states\n"
            "    s = queue.popleft()\n"
            "    if s == goal:\n"
            "        break\n"
            "    for i in range(len(s)):\n"
            "        for j in range(len(s)):\n"
            "            if i != j and s[i]:\n"
            "                t = list(s)\n"
            "                t[i], t[j] = s[i][:-1], s[j] + (s[i][-1],)\n"
            "                t = tuple(t)\n"
            "                if t not in prev:\n"
            "                    prev[t] = (s, f'Move {s[i][-1]} from {names[i]} to {names[j]}')\n"
            "                    queue.append(t)\n"
            "moves = []\n"
            "while prev[s]:\n"
            "    s, move = prev[s]\n"
            "    moves.append(move)\n"
            "moves.reverse()\n"
            "if not moves:  # already at the goal, but a plan needs a move: move a block away and back\n"
            "    i = next(k for k, stack in enumerate(start) if stack)\n"
            "    j, block = (i + 1) % len(names), start[i][-1]\n"
            "    moves = [f'Move {block} from {names[i]} to {names[j]}', f'Move {block} from {names[j]} to {names[i]}']\n"
            "print('<<<' + '\\n'.join(moves) + '>>>')\n"
        )


# ---------------------------------------------------------------- BoxLift
def boxlift_greedy(boxes: list[int], lifters: list[int]) -> list[list[tuple[int, list[int]]]]:
    """The official step estimate as a plan: heaviest boxes first, lifters taken in order."""
    remaining = sorted(boxes, reverse=True)
    steps = []
    while remaining:
        free = list(enumerate(lifters))
        step = []
        for box in list(remaining):
            if sum(c for _, c in free) >= box:
                used, total = [], 0
                while total < box:
                    i, c = free.pop(0)
                    used.append(i)
                    total += c
                step.append((box, used))
                remaining.remove(box)
        steps.append(step)
    return steps


def boxlift_prompt(boxes: list[int], lifters: list[int], steps: int) -> str:
    return f"""Task: BoxLift

You are given a list of boxes with the following weights: {boxes}
And a list of lifters with the following maximum lifting capacities: {lifters}

Your task is to assign the lifters to lift all the boxes in multiple steps, following these rules:
1. Multiple boxes can be lifted in each step.
2. Each lifter can only lift one box at a time.
3. Each lifting agent can be used only once in each step.
4. Multiple lifters can combine together to lift one box if the box is too heavy for a single lifter.
5. Try to lift all the boxes using the minimum number of steps possible.
6. You need to lift all the boxes in less than or equal to {steps} steps.

Please provide your solution in the following format:
Step 1: [(Box weight, [Lifter indices]), (Box weight, [Lifter indices]), ...]
Step 2: [(Box weight, [Lifter indices]), (Box weight, [Lifter indices]), ...]
...

For example:
Step 1: [(50, [0, 2]), (30, [1]), (20, [3])]
This means in Step 1, lifters 0 and 2 are lifting a box weighing 50, lifter 1 is lifting a box weighing 30, and lifter 3 is lifting a box weighing 20.

Surround the answer with <<<content>>>.

For example, <<<Step 1: [(50, [0, 2]), (30, [1]), (20, [3])]\\nStep 2: [(40, [0, 1]), (20, [2]), (20, [3])]\\nStep 3:...>>>

Ensure all boxes are lifted and provide the most efficient solution possible.

Your answer:\\n
"""


class BoxLift(SymbenchTask):
    name = "boxlift"
    description = "Assign lifters to lift all boxes within a step budget (partial credit: weight lifted)."

    def _generate_one(self, rng: random.Random) -> Item:
        n_boxes, n_lifters, bw, lc = rng.choice([(6, 2, (10, 80), (40, 80)), (10, 3, (10, 100), (40, 80)),
                                                 (15, 4, (20, 200), (30, 120)), (20, 5, (30, 300), (40, 160))])
        while True:
            boxes = [rng.randint(*bw) for _ in range(n_boxes)]
            lifters = [rng.randint(*lc) for _ in range(n_lifters)]
            if max(boxes) <= sum(lifters):
                break
        plan = boxlift_greedy(boxes, lifters)
        answer = "\n".join(f"Step {k + 1}: {s}" for k, s in enumerate(plan))
        return self.make(boxlift_prompt(boxes, lifters, len(plan)), answer, boxes=boxes, lifters=lifters,
                         estimated_steps=len(plan))

    def check(self, answer: str | None, item: Item) -> Verdict:
        if answer is None:
            return UNPARSEABLE
        boxes, lifters = item.metadata["boxes"], item.metadata["lifters"]
        steps = re.findall(r"Step\s*\d+\s*:\s*(\[.*?\])\s*(?=Step|$)", answer.strip(), re.DOTALL)
        parsed = [literal(s) for s in steps]
        if not steps or any(not isinstance(p, (list, tuple)) for p in parsed):
            return UNPARSEABLE
        remaining = list(boxes)
        for step in parsed[: item.metadata["estimated_steps"]]:
            used: set[int] = set()
            for entry in step:
                try:
                    weight, idx = entry
                    idx = [int(i) for i in idx]
                except (TypeError, ValueError):
                    return UNPARSEABLE
                if (weight in remaining and all(0 <= i < len(lifters) for i in idx) and not used & set(idx)
                        and len(set(idx)) == len(idx) and sum(lifters[i] for i in idx) >= weight):
                    remaining.remove(weight)
                    used |= set(idx)
        if not remaining:
            return Verdict(1.0, True)
        return Verdict((sum(boxes) - sum(remaining)) / sum(boxes), True)

    def reference_solution(self, item: Item) -> str:
        md = item.metadata
        return (
            f"boxes = sorted({md['boxes']}, reverse=True)\n"
            f"lifters = {md['lifters']}\n"
            "steps = []\n"
            "while boxes:  # each step: heaviest boxes first, lifters taken in order until strong enough\n"
            "    free, step = list(enumerate(lifters)), []\n"
            "    for box in list(boxes):\n"
            "        if sum(c for _, c in free) >= box:\n"
            "            used, total = [], 0\n"
            "            while total < box:\n"
            "                i, c = free.pop(0)\n"
            "                used.append(i)\n"
            "                total += c\n"
            "            step.append((box, used))\n"
            "            boxes.remove(box)\n"
            "    steps.append(step)\n"
            "print('<<<' + '\\n'.join(f'Step {k + 1}: {s}' for k, s in enumerate(steps)) + '>>>')\n"
        )


# ---------------------------------------------------------------- BoxNet
def _neighbours(rows: int, cols: int, i: int, j: int) -> list[list[float]]:
    return [[a + 0.5, b + 0.5] for a, b in ((i - 1, j), (i + 1, j), (i, j - 1), (i, j + 1))
            if 0 <= a < rows and 0 <= b < cols]


def boxnet_prompt(rows: int, cols: int, cells: dict[str, list[str]]) -> str:
    state = ""
    for i in range(rows):
        for j in range(cols):
            items = cells[f"{i + 0.5}_{j + 0.5}"]
            actions = []
            for box in [x for x in items if x.startswith("box")]:
                actions += [f"move({box}, square{n})" for n in _neighbours(rows, cols, i, j)]
                if "target" + box[3:] in items:
                    actions.append(f"move({box}, target{box[3:]})")
            state += (f"Agent[{i + 0.5}, {j + 0.5}]: I am in square[{i + 0.5}, {j + 0.5}], I can observe {items}, "
                      f"I can do {actions}\n")
    return (
        "\nYou are a central planner tasked with directing agents in a grid-like field to move colored boxes to their "
        "corresponding color-coded targets. Each agent occupies a 1x1 square and can only interact with objects "
        "within its square. Agents can move a box to an adjacent square or directly to a target square of the same "
        "color. A square may contain multiple boxes and targets.\n\nThe squares are identified by their center "
        "coordinates (e.g., square[0.5, 0.5]). Actions are formatted as: move(box_color, destination), where "
        "box_color is the color of the box and destination is either a target of the same color or an adjacent "
        "square.\n\nYour objective is to create a sequence of action plans that instructs each agent to match all "
        "boxes to their color-coded targets in the most efficient manner.\n\nPlease adhere to the following rules "
        "when specifying your action plan:\n\n1. **Single Action per Agent**: Assign only one action to each agent "
        "at a time. However, the final answer shoule be a list of action plans for multiple steps.\n\n2. **Unique "
        "Agent Keys**: Use unique keys for each agent in the JSON format action plan. The key should be the agent's "
        "coordinates in the format \"Agent[x, y]\".\n\n3. **Prioritize Matching Boxes to Targets**: Always "
        "prioritize actions that will match a box to its target over moving a box to an adjacent square.\n\n"
        "4. **Sequential Action Planning**: The whole returned answer should be a list of action plans for multiple "
        "steps, do not just return one step plan.\n\n5. **Clear Formatting**: Ensure the action plan is clearly "
        "formatted in JSON, with each agent's action specified as a key-value pair.\n\n6. **Conflict Resolution**: "
        "Ensure that no two agents are assigned actions that would interfere with each other.\n\n7. **Optimize "
        "Efficiency**: Aim to minimize the number of moves required to match all boxes with their targets.\n\n"
        "Here is the format for your action plan:\n```json\n[{\"Agent[0.5, 0.5]\":\"move(box_blue, square[0.5, 1.5])\", "
        "\"Agent[1.5, 0.5]\":\"move(box_red, target_red)\"}, {\"Agent[0.5, 1.5]\":\"move(box_blue, target_blue)\", "
        "\"Agent[2.5, 0.5]\":\"move...}, {...}...]\n```\nInclude an agent in the action plan only if it has a task "
        "to perform next.\n\nSurround the answer with <<<content>>>. \n\n"
        f"The current left boxes and agents are:\n{state}\n"
        "Please respond in the format: <<<list of action dictionary>>>, such as <<<[{\"Agent[0.5, 0.5]\":\"move(box_blue, "
        "square[0.5, 1.5])\", \"Agent[1.5, 0.5]\":\"move...}, {\"Agent[0.5, 1.5]\":\"move(box_blue, target_blue)\"}, "
        "{...}...]>>>.\n\nYour answer:\n"
    )


def boxnet_run(cells: dict[str, list[str]], plan: list[dict]) -> dict[str, list[str]]:
    """Apply `plan` like the official simulator: invalid actions are skipped."""
    cur = copy.deepcopy(cells)
    for step in plan:
        for agent, action in step.items():
            coords = re.findall(r"\d+\.?\d*", str(agent))
            m = re.match(r"move\((.*?),\s*(.*?)\)$", str(action).strip())
            if len(coords) != 2 or not m:
                continue
            here = f"{float(coords[0])}_{float(coords[1])}"
            item, dest = m.group(1).strip(), m.group(2).strip()
            if here not in cur or item not in cur[here] or not item.startswith("box_"):
                continue
            if dest.startswith("target_"):
                if dest in cur[here] and item[4:] == dest[7:]:
                    cur[here].remove(item)
                    cur[here].remove(dest)
            elif "square" in dest:
                xy = [float(v) for v in re.findall(r"\d+\.?\d*", dest)]
                there = f"{xy[0]}_{xy[1]}" if len(xy) == 2 else ""
                if there in cur and abs(xy[0] - float(coords[0])) + abs(xy[1] - float(coords[1])) == 1:
                    cur[here].remove(item)
                    cur[there].append(item)
    return cur


class BoxNet(SymbenchTask):
    name = "boxnet"
    description = "Plan agents' moves on a grid to bring colored boxes to matching targets (partial credit)."

    def _generate_one(self, rng: random.Random) -> Item:
        rows, cols = rng.choice([(1, 2), (2, 2), (2, 3), (2, 4)])
        keys = [f"{i + 0.5}_{j + 0.5}" for i in range(rows) for j in range(cols)]
        cells: dict[str, list[str]] = {k: [] for k in keys}
        for color in rng.sample(["blue", "red", "green", "purple", "orange"], rng.randint(1, 4)):
            for _ in range(rng.randint(1, 2)):
                cells[rng.choice(keys)].append(f"box_{color}")
                cells[rng.choice(keys)].append(f"target_{color}")
        for v in cells.values():
            rng.shuffle(v)
        plan = boxnet_plan(cells)
        return self.make(boxnet_prompt(rows, cols, cells), json.dumps(plan), rows=rows, cols=cols, cells=cells)

    def check(self, answer: str | None, item: Item) -> Verdict:
        plan = literal(answer)
        if isinstance(plan, dict):
            plan = [plan]
        if not isinstance(plan, list) or not all(isinstance(s, dict) for s in plan):
            return UNPARSEABLE
        cells = item.metadata["cells"]
        total = sum(x.startswith("box_") for v in cells.values() for x in v)
        left = sum(x.startswith("box_") for v in boxnet_run(cells, plan).values() for x in v)
        if left == 0:
            return Verdict(1.0, True)
        return Verdict((total - left) / total, True)

    def reference_solution(self, item: Item) -> str:
        return (
            "import json\n"
            f"cells = {item.metadata['cells']}\n"
            "targets = [(k, x[7:]) for k, v in cells.items() for x in v if x.startswith('target_')]\n"
            "pos = lambda k: tuple(map(float, k.split('_')))\n"
            "plan = []  # one action per step: walk each box to a free target of its colour, then match it\n"
            "for k, v in cells.items():\n"
            "    for box in [x for x in v if x.startswith('box_')]:\n"
            "        t = min((t for t in targets if t[1] == box[4:]),\n"
            "                key=lambda t: sum(abs(a - b) for a, b in zip(pos(k), pos(t[0]))))\n"
            "        targets.remove(t)\n"
            "        (x, y), (tx, ty) = pos(k), pos(t[0])\n"
            "        while (x, y) != (tx, ty):\n"
            "            nx, ny = (x + (tx > x) - (tx < x), y) if x != tx else (x, y + (ty > y) - (ty < y))\n"
            "            plan.append({f'Agent[{x}, {y}]': f'move({box}, square[{nx}, {ny}])'})\n"
            "            x, y = nx, ny\n"
            "        plan.append({f'Agent[{x}, {y}]': f'move({box}, target_{box[4:]})'})\n"
            "print('<<<' + json.dumps(plan) + '>>>')\n"
        )


def boxnet_plan(cells: dict[str, list[str]]) -> list[dict]:
    targets = [(k, x[7:]) for k, v in cells.items() for x in v if x.startswith("target_")]

    def pos(k: str) -> tuple[float, float]:
        a, b = k.split("_")
        return float(a), float(b)

    plan = []
    for k, v in cells.items():
        for box in [x for x in v if x.startswith("box_")]:
            t = min((t for t in targets if t[1] == box[4:]),
                    key=lambda t, k=k: sum(abs(a - b) for a, b in zip(pos(k), pos(t[0]), strict=True)))
            targets.remove(t)
            (x, y), (tx, ty) = pos(k), pos(t[0])
            while (x, y) != (tx, ty):
                nx, ny = (x + (tx > x) - (tx < x), y) if x != tx else (x, y + (ty > y) - (ty < y))
                plan.append({f"Agent[{x}, {y}]": f"move({box}, square[{nx}, {ny}])"})
                x, y = nx, ny
            plan.append({f"Agent[{x}, {y}]": f"move({box}, target_{box[4:]})"})
    return plan


# ---------------------------------------------------------------- Path Plan
WALLS = [(-1.5, -1.4, -1.5, 1.5), (1.4, 1.5, -1.5, 1.5), (-1.5, 1.5, -1.5, -1.4), (-1.5, 1.5, 1.4, 1.5)]
COLORS = ["yellow", "red", "green", "blue", "pink", "purple", "orange"]
H = 0.05


def seg_rect(p: tuple, q: tuple, rect: tuple, eps: float = 1e-9) -> float | None:
    """Entry parameter t in [0, 1] where segment p->q meets the closed rectangle (x0, x1, y0, y1), else None."""
    t0, t1 = 0.0, 1.0
    for d, lo, hi, s in ((q[0] - p[0], rect[0] - eps, rect[1] + eps, p[0]),
                         (q[1] - p[1], rect[2] - eps, rect[3] + eps, p[1])):
        if abs(d) < 1e-15:
            if s < lo or s > hi:
                return None
        else:
            a, b = sorted(((lo - s) / d, (hi - s) / d))
            t0, t1 = max(t0, a), min(t1, b)
            if t0 > t1:
                return None
    return t0


def path_route(boxes: dict, start: tuple, end: tuple, visit: list[str], avoid: list[str]) -> list | None:
    """Grid-BFS waypoints through `visit` (in order) that never touch `avoid` boxes, or None."""
    def blocked(p: tuple[int, int]) -> bool:
        return max(abs(p[0]), abs(p[1])) * H > 1.38 or any(
            b[0] - 1e-9 <= p[0] * H <= b[1] + 1e-9 and b[2] - 1e-9 <= p[1] * H <= b[3] + 1e-9
            for b in (boxes[c] for c in avoid))

    def bfs(src: tuple[int, int], goal) -> list | None:
        prev = {src: None}
        q = deque([src])
        while q:
            p = q.popleft()
            if goal(p):
                path = []
                while p:
                    path.append(p)
                    p = prev[p]
                return path[::-1]
            for d in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                n = (p[0] + d[0], p[1] + d[1])
                if n not in prev and not blocked(n):
                    prev[n] = p
                    q.append(n)
        return None

    s = (round(start[0] / H), round(start[1] / H))
    e = (round(end[0] / H), round(end[1] / H))
    if blocked(s) or blocked(e):
        return None
    route = [s]
    goals = [lambda p, b=boxes[c]: b[0] < p[0] * H < b[1] and b[2] < p[1] * H < b[3] for c in visit]
    for goal in [*goals, lambda p: p == e]:
        leg = bfs(route[-1], goal)
        if leg is None:
            return None
        route += leg[1:]
    return [(round(x * H, 2), round(y * H, 2)) for x, y in route]


def path_check(md: dict, waypoints: list) -> bool:
    pts = [tuple(float(v) for v in p) for p in waypoints]
    start, end = tuple(md["start"]), tuple(md["end"])
    if not pts or max(abs(a - b) for a, b in zip(pts[-1], end, strict=True)) > 1e-3:
        return False
    if max(abs(a - b) for a, b in zip(pts[0], start, strict=True)) > 1e-3:
        pts = [start, *pts]
    if len(pts) == 1:
        pts = pts * 2
    boxes = {c: tuple(b) for c, b in md["boxes"].items()}
    events = []
    for k, (p, q) in enumerate(zip(pts, pts[1:], strict=False)):
        if any(seg_rect(p, q, w) is not None for w in WALLS):
            return False
        if any(seg_rect(p, q, boxes[c]) is not None for c in md["avoid"]):
            return False
        events += sorted((k, t, c) for c, b in boxes.items() if (t := seg_rect(p, q, b)) is not None)
    seq = iter(c for _, _, c in sorted(events))
    return all(c in seq for c in md["visit"])


class PathPlan(SymbenchTask):
    name = "path_plan"
    description = "Plan a waypoint trajectory that visits some colored rooms in order and avoids others."

    def _generate_one(self, rng: random.Random) -> Item:
        while True:
            boxes: dict[str, tuple] = {}
            for color in rng.sample(COLORS, rng.randint(4, 7)):
                for _ in range(50):
                    w, h = rng.randint(6, 18) * H, rng.randint(6, 18) * H
                    x0, y0 = rng.randint(-26, 26 - round(w / H)) * H, rng.randint(-26, 26 - round(h / H)) * H
                    b = (round(x0, 2), round(x0 + w, 2), round(y0, 2), round(y0 + h, 2))
                    if all(b[1] + 0.1 <= o[0] or o[1] + 0.1 <= b[0] or b[3] + 0.1 <= o[2] or o[3] + 0.1 <= b[2]
                           for o in boxes.values()):
                        boxes[color] = b
                        break
            colors = list(boxes)
            rng.shuffle(colors)
            visit = colors[: rng.randint(1, min(3, len(colors) - 1))]
            avoid = colors[len(visit): len(visit) + rng.randint(0, 2)]
            start = (round(rng.randint(-27, 27) * H, 2), round(rng.randint(-27, 27) * H, 2))
            end = (round(rng.randint(-27, 27) * H, 2), round(rng.randint(-27, 27) * H, 2))
            if any(seg_rect(p, p, b) is not None for p in (start, end) for b in boxes.values()):
                continue
            route = path_route(boxes, start, end, visit, avoid)
            if route:
                break
        instruction = "Navigate into the " + " room, and go to the ".join(visit) + " room."
        if avoid:
            instruction += f" Remember do not enter the {' and '.join(avoid)} area{'s' if len(avoid) > 1 else ''} all the time."
        md = {"boxes": {c: list(b) for c, b in boxes.items()}, "start": list(start), "end": list(end),
              "visit": visit, "avoid": avoid, "instruction": instruction}
        return self.make(self.question(boxes, start, end, instruction), str(route), **md)

    @staticmethod
    def question(boxes: dict, start: tuple, end: tuple, instruction: str) -> str:
        env = f"First, there are four black colored walls with position {', '.join(map(str, WALLS))}. Then the boxes are:"
        env += ";".join(f" a {c} colored box {tuple(b)}" for c, b in boxes.items()) + "."
        return (
            "I am a mobile robot and I hope you can help me plan the trajectory to fulfill the navigation instruction. "
            "I will give you the position and size of each box in the whole environment and the instruction is to "
            "enter or avoid the box. Each box is of square shape, I will give you (x_start, x_end, y_start, y_end) to "
            "describe the shape of squares/boxes. x_start, x_end denote the boundary of squares/boxes in x "
            "coordinates. y_start, y_end denote the boundary of squares/boxes in y coordinates.\n\n"
            f"{env}\n\nDuring navigation, the trajectory should always not touch the black wall. The starting "
            f"position of the car is {start}, the ending position of the car is {end}.\n\nThe instruction is "
            f"'{instruction}' The rooms must be entered in the order given. The car should fulfill the instruction "
            "and in the end stop at the end position. Could you give me the trajectory to realize the above "
            "instruction? Return your answer with a list of waypoints [(x0, y0), (x1, y1)...].\n\nNote that the "
            "whole trajectory is acquired by directly connecting the near waypoints with straight lines. These "
            "straight lines should also fulfill the instruction requirements. Particularly check whether the "
            "interpolated straight lines enter into the areas that should avoid.\n\nNote that entering in the area "
            "means the trajectory intersects with the box, including the boundary of the box. Hence, the trajectory "
            "should not intersect with the boundary of the box if the instruction is to avoid the box.\n"
            "Return your answer with the format <<<[(x0, y0), (x1, y1), ...]>>>."
        )

    def check(self, answer: str | None, item: Item) -> Verdict:
        pts = literal(answer)
        if (not isinstance(pts, (list, tuple)) or not pts
                or not all(isinstance(p, (list, tuple)) and len(p) == 2
                           and all(isinstance(v, (int, float)) for v in p) for p in pts)):
            return UNPARSEABLE
        return verdict(path_check(item.metadata, list(pts)))

    def reference_solution(self, item: Item) -> str:
        md = item.metadata
        return (
            "from collections import deque\n"
            f"boxes = {md['boxes']}  # colour: [x0, x1, y0, y1]\n"
            f"start, end = {tuple(md['start'])}, {tuple(md['end'])}\n"
            f"visit, avoid = {md['visit']}, {md['avoid']}\n"
            "h = 0.05  # search on a grid of step h; cells on an avoided box's boundary are blocked\n"
            "def blocked(p):\n"
            "    return max(map(abs, p)) * h > 1.38 or any(b[0] - 1e-9 <= p[0] * h <= b[1] + 1e-9 and\n"
            "        b[2] - 1e-9 <= p[1] * h <= b[3] + 1e-9 for b in map(boxes.get, avoid))\n"
            "def bfs(src, goal):\n"
            "    prev, queue = {src: None}, deque([src])\n"
            "    while not goal(p := queue.popleft()):\n"
            "        for n in ((p[0] + 1, p[1]), (p[0] - 1, p[1]), (p[0], p[1] + 1), (p[0], p[1] - 1)):\n"
            "            if n not in prev and not blocked(n):\n"
            "                prev[n], _ = p, queue.append(n)\n"
            "    path = []\n"
            "    while p:\n"
            "        path, p = [p] + path, prev[p]\n"
            "    return path\n"
            "route = [(round(start[0] / h), round(start[1] / h))]\n"
            "for c in visit:  # enter each room's interior in order\n"
            "    b = boxes[c]\n"
            "    route += bfs(route[-1], lambda p: b[0] < p[0] * h < b[1] and b[2] < p[1] * h < b[3])[1:]\n"
            "e = (round(end[0] / h), round(end[1] / h))\n"
            "route += bfs(route[-1], lambda p: p == e)[1:]\n"
            "keep = [p for i, p in enumerate(route) if i in (0, len(route) - 1)\n"
            "        or (p[0] - route[i - 1][0], p[1] - route[i - 1][1]) != (route[i + 1][0] - p[0], route[i + 1][1] - p[1])]\n"
            "print(f'<<<{[(round(x * h, 2), round(y * h, 2)) for x, y in keep]}>>>')\n"
        )
