"""BBH geometric_shapes: name the shape an SVG path draws."""

from __future__ import annotations

import math
import random
import re
from typing import Any

from ..base import Item
from .common import BBHTask, NoReferenceSolution, letter_of, render_options

BASE_OPTIONS = ["circle", "heptagon", "hexagon", "kite", "line", "octagon", "pentagon", "rectangle", "sector",
                "triangle"]
POLYGONS = {3: "triangle", 5: "pentagon", 6: "hexagon", 7: "heptagon", 8: "octagon"}
_PATH_RE = re.compile(r'<path d="([^"]+)"\s*/>')


def _p(x: float, y: float) -> str:
    return f"{x:.2f},{y:.2f}"


def _path_polygon(rng: random.Random, pts: list[tuple[float, float]]) -> str:
    """Closed path through pts, sometimes restarting with a redundant 'M' like the official data."""
    parts = [f"M {_p(*pts[0])}"]
    for pt in pts[1:] + [pts[0]]:
        parts.append(f"L {_p(*pt)}")
        if rng.random() < 0.3 and pt != pts[0]:
            parts.append(f"M {_p(*pt)}")
    return " ".join(parts)


class GeometricShapes(BBHTask):
    task = "geometric_shapes"
    description = "Name the shape drawn by an SVG path element."
    answer_kind = "choice"

    def _generate_one(self, rng: random.Random) -> Item:
        shape = rng.choice(["line", "circle", "ellipse", "sector", "kite", "rectangle", "trapezoid"]
                           + list(POLYGONS.values()))
        cx, cy = rng.uniform(25, 75), rng.uniform(25, 75)
        r = rng.uniform(8, 22)
        if shape == "line":
            d = f"M {_p(rng.uniform(0, 99), rng.uniform(0, 99))} L {_p(rng.uniform(0, 99), rng.uniform(0, 99))}"
        elif shape in ("circle", "ellipse"):
            rx = r
            ry = r if shape == "circle" else r * rng.uniform(0.5, 0.8)
            d = (f"M {_p(cx + rx, cy)} A {rx:.2f},{ry:.2f} 0.00 1,0 {_p(cx - rx, cy)} "
                 f"A {rx:.2f},{ry:.2f} 0.00 1,0 {_p(cx + rx, cy)}")
        elif shape == "sector":
            a1 = rng.uniform(0, 2 * math.pi)
            a2 = a1 + rng.uniform(0.4, 2.5)
            p1 = (cx + r * math.cos(a1), cy + r * math.sin(a1))
            p2 = (cx + r * math.cos(a2), cy + r * math.sin(a2))
            d = f"M {_p(cx, cy)} L {_p(*p1)} A {r:.2f},{r:.2f} 0.00 0,1 {_p(*p2)} L {_p(cx, cy)}"
        else:
            theta = rng.uniform(0, 2 * math.pi)
            c, s = math.cos(theta), math.sin(theta)
            if shape == "kite":
                w, up, down = rng.uniform(6, 15), rng.uniform(5, 10), rng.uniform(15, 25)
                local = [(0, -up), (w, 0), (0, down), (-w, 0)]
            elif shape == "rectangle":
                w, h = rng.uniform(8, 30), rng.uniform(4, 20)
                local = [(-w, -h), (w, -h), (w, h), (-w, h)]
            elif shape == "trapezoid":
                w1, w2, h = rng.uniform(15, 30), rng.uniform(4, 12), rng.uniform(6, 18)
                shift = rng.uniform(-5, 5)
                local = [(-w1, -h), (w1, -h), (w2 + shift, h), (-w2 + shift, h)]
            else:
                k = next(n for n, name in POLYGONS.items() if name == shape)
                angles = sorted(rng.uniform(0, 2 * math.pi) for _ in range(k))
                while min((angles[(i + 1) % k] - angles[i]) % (2 * math.pi) for i in range(k)) < 0.35:
                    angles = sorted(rng.uniform(0, 2 * math.pi) for _ in range(k))
                local = [(r * rng.uniform(0.7, 1.3) * math.cos(a), r * rng.uniform(0.7, 1.3) * math.sin(a))
                         for a in angles]
            pts = [(cx + x * c - y * s, cy + x * s + y * c) for x, y in local]
            d = _path_polygon(rng, pts)
        options = list(BASE_OPTIONS)
        if shape in ("ellipse", "trapezoid"):
            options.append(shape)
        text = f'This SVG path element <path d="{d}"/> draws a\n{render_options(options)}'
        return self.item(text, letter_of(options, shape), {"path": d, "options": options})

    def parse(self, question: str) -> dict[str, Any]:
        m = _PATH_RE.search(question)
        if not m:
            raise NoReferenceSolution("no SVG path")
        from .common import parse_options

        return {"path": m.group(1), "options": [t for _, t in parse_options(question)]}

    def program(self, values: dict[str, Any]) -> str:
        return (
            "import math, re\n"
            f"path = {values['path']!r}\n"
            f"options = {values['options']!r}\n"
            "tokens = re.findall(r'[MLA]|-?\\d+\\.?\\d*', path)\n"
            "points, arcs, i = [], [], 0\n"
            "while i < len(tokens):\n"
            "    cmd = tokens[i]\n"
            "    if cmd in 'ML':\n"
            "        points.append((float(tokens[i + 1]), float(tokens[i + 2]))); i += 3\n"
            "    else:  # A rx ry rotation large sweep x y\n"
            "        arcs.append((float(tokens[i + 1]), float(tokens[i + 2])))\n"
            "        points.append((float(tokens[i + 6]), float(tokens[i + 7]))); i += 8\n"
            "unique = []\n"
            "for p in points:\n"
            "    if not any(math.dist(p, q) < 1e-6 for q in unique):\n"
            "        unique.append(p)\n"
            "def vec(a, b):\n"
            "    return (b[0] - a[0], b[1] - a[1])\n"
            "def parallel(u, v):\n"
            "    return abs(u[0] * v[1] - u[1] * v[0]) < 1e-2 * math.hypot(*u) * math.hypot(*v)\n"
            "if arcs and len(unique) == 2:\n"
            "    rx, ry = arcs[0]\n"
            "    shape = 'ellipse' if 'ellipse' in options else 'circle'\n"
            "elif arcs:\n"
            "    shape = 'sector'\n"
            "elif len(unique) == 2:\n"
            "    shape = 'line'\n"
            "elif len(unique) == 4:\n"
            "    sides = [vec(unique[k], unique[(k + 1) % 4]) for k in range(4)]\n"
            "    lengths = [math.hypot(*s) for s in sides]\n"
            "    right = all(abs(sides[k][0] * sides[(k + 1) % 4][0] + sides[k][1] * sides[(k + 1) % 4][1])\n"
            "                < 1e-2 * lengths[k] * lengths[(k + 1) % 4] for k in range(4))\n"
            "    if parallel(sides[0], sides[2]) or parallel(sides[1], sides[3]):\n"
            "        shape = 'trapezoid' if 'trapezoid' in options else 'rectangle' if right else 'trapezoid'\n"
            "    else:\n"
            "        shape = 'kite'\n"
            "else:\n"
            "    shape = {3: 'triangle', 5: 'pentagon', 6: 'hexagon', 7: 'heptagon', 8: 'octagon'}[len(unique)]\n"
            "print(f'<<<({chr(65 + options.index(shape))})>>>')\n"
        )
