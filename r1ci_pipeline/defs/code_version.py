"""`code_version` of each asset: a digest of the `r1ci_core` sources its stage can run.

An asset `X` runs `r1ci_core.stages.X`. Its sources are `stages.py` and every `r1ci_core` module that
function imports, followed through their own imports (module-level and inside functions); a subpackage
(`tasks/`, `rollout/`, `sandbox/`) counts whole, data files included, since some of it is read rather than
imported (the sandbox's `inside/` parts). Editing code a stage never reaches leaves its version alone, so the
UI flags exactly the assets whose code changed since they were materialised.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "r1ci_core"


def _unit(name: str) -> Path | None:
    """The file or package folder of the top-level r1ci_core module `name` (None if there is none)."""
    top = name.split(".")[0]
    if (CORE / top).is_dir():
        return CORE / top
    return CORE / f"{top}.py" if (CORE / f"{top}.py").is_file() else None


def _files(unit: Path) -> list[Path]:
    if unit.is_file():
        return [unit]
    return sorted(p for p in unit.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def _imports(tree: ast.AST, package: str) -> set[str]:
    """Top-level r1ci_core modules imported anywhere in `tree` (a module of r1ci_core package `package`)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0:
                base = node.module or ""
                if base.split(".")[0] != "r1ci_core":
                    continue
                rel = base.split(".")[1:]
            else:  # relative: resolved against the importing module's package
                parts = package.split(".")[: len(package.split(".")) - (node.level - 1)] if package else []
                rel = (parts + (node.module.split(".") if node.module else []))
            if rel:
                found.add(rel[0])
            else:  # `from . import a, b`
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("r1ci_core."))
    return found


def _package_of(path: Path) -> str:
    """Dotted package (below r1ci_core) that a source file's relative imports resolve against."""
    rel = path.relative_to(CORE).parent.parts
    return ".".join(rel)


@functools.cache
def stage_code_version(stage: str) -> str:
    """16 hex digits over the sources `r1ci_core.stages.<stage>` can reach."""
    stages_tree = ast.parse((CORE / "stages.py").read_text())
    fn = next((n for n in stages_tree.body if isinstance(n, ast.FunctionDef) and n.name == stage), None)
    if fn is None:
        raise ValueError(f"r1ci_core.stages has no stage function {stage!r} for the asset of that name")
    module_level = ast.Module(body=[n for n in stages_tree.body if isinstance(n, ast.Import | ast.ImportFrom)],
                              type_ignores=[])
    todo = _imports(fn, "") | _imports(module_level, "") | {"stages"}
    seen: set[Path] = set()
    while todo:
        unit = _unit(todo.pop())
        if unit is None or unit in seen:
            continue
        seen.add(unit)
        for path in _files(unit):
            if path.suffix == ".py" and path != CORE / "stages.py":  # of stages.py, only its own imports count
                todo |= _imports(ast.parse(path.read_text()), _package_of(path))
    digest = hashlib.sha256()
    for unit in sorted(seen):
        for path in _files(unit):
            digest.update(str(path.relative_to(CORE)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]
