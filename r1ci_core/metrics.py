"""Per-sample evaluation figures (code use, errors, trivial code, tokens) and interval statistics."""

from __future__ import annotations

import ast
import math
from typing import Any

from .trajectory import Trajectory

Z95 = 1.959963984540054

_CONSTANT_NODES = (ast.Constant, ast.List, ast.Tuple, ast.Set, ast.Dict, ast.Load)


def _is_constant_expr(node: ast.AST, constants: set[str]) -> bool:
    """True when `node` evaluates to a literal without computing anything (names bound to literals count)."""
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.Name):
        return node.id in constants
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        return isinstance(node.operand, ast.Constant)
    if isinstance(node, ast.List | ast.Tuple | ast.Set):
        return all(_is_constant_expr(e, constants) for e in node.elts)
    if isinstance(node, ast.Dict):
        return all(k is None or _is_constant_expr(k, constants) for k in node.keys) and all(
            _is_constant_expr(v, constants) for v in node.values)
    if isinstance(node, ast.JoinedStr):
        return all(_is_constant_expr(v, constants) for v in node.values)
    if isinstance(node, ast.FormattedValue):
        return _is_constant_expr(node.value, constants) and (
            node.format_spec is None or _is_constant_expr(node.format_spec, constants))
    return False


def is_trivial_code(code: str) -> bool:
    """True for code that only prints constants (e.g. ``print(42)`` or ``x = 'A'; print(x)``).

    Such a block computes nothing: the model wrote its answer as a literal and used the interpreter as an
    echo. Code that does not parse, or has no print at all, is not called trivial (it is an error or
    silent code, counted elsewhere).
    """
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    constants: set[str] = set()
    printed = False
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and _is_constant_expr(stmt.value, constants) and all(
                isinstance(t, ast.Name) for t in stmt.targets):
            constants.update(t.id for t in stmt.targets)  # type: ignore[union-attr]
            continue
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
            call = stmt.value
            if isinstance(call.func, ast.Name) and call.func.id == "print" and all(
                    _is_constant_expr(a, constants) for a in call.args) and all(
                    _is_constant_expr(k.value, constants) for k in call.keywords):
                printed = True
                continue
        if isinstance(stmt, ast.Pass) or (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)):
            continue  # docstrings / pass
        return False
    return printed


def sample_figures(traj: Trajectory) -> dict[str, Any]:
    """The per-sample columns of `eval_samples` derived from a trajectory."""
    executed = [e for e in traj.executions if not e.infra_error]
    n_errors = sum(1 for e in executed if not e.timed_out and e.exit_code not in (0, None))
    n_timeouts = sum(1 for e in executed if e.timed_out)
    blocks = [e.code for e in executed]
    n_trivial = sum(1 for c in blocks if is_trivial_code(c))
    if traj.mask is not None:
        n_gen = int(sum(traj.mask))
        n_total = len(traj.token_ids or [])
    else:  # text-level backend (openai): no ids are kept; estimate ~4 characters a token
        n_gen = sum(max(1, len(m["content"]) // 4) for m in traj.messages if m.get("role") == "assistant")
        n_total = None
    return {
        "used_code": traj.n_code_calls > 0,
        "n_code_errors": n_errors,
        "n_timeouts": n_timeouts,
        "n_trivial_code": n_trivial,
        "trivial_code": bool(blocks) and n_trivial == len(blocks),
        "n_gen_tokens": n_gen,
        "n_total_tokens": n_total,
        "latency_s": float(traj.gen_time_s + traj.exec_time_s),
    }


def wilson_interval(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion (`successes` may be a sum of fractional scores)."""
    if n <= 0:
        return (math.nan, math.nan)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (min(p, max(0.0, centre - half)), max(p, min(1.0, centre + half)))  # contains p despite rounding


def two_proportion_test(s_a: float, n_a: int, s_b: float, n_b: int) -> tuple[float, float]:
    """(z, two-sided p-value) of the pooled two-proportion z-test; (0, 1) when undefined."""
    if n_a <= 0 or n_b <= 0:
        return (0.0, 1.0)
    pooled = (s_a + s_b) / (n_a + n_b)
    var = pooled * (1 - pooled) * (1 / n_a + 1 / n_b)
    if var <= 0:
        return (0.0, 1.0)
    z = (s_b / n_b - s_a / n_a) / math.sqrt(var)
    return (z, math.erfc(abs(z) / math.sqrt(2)))
