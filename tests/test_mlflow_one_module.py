"""Every MLflow call of r1ci is in one module, `r1ci_core.lineage`: no other module of r1ci_core or
r1ci_pipeline imports mlflow (at the top, inside a function, or through `importlib`/`__import__`)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINEAGE = ROOT / "r1ci_core" / "lineage"  # the package; a single lineage.py counts as the same module


def _is_lineage(path: Path) -> bool:
    return path == LINEAGE.with_suffix(".py") or LINEAGE in path.parents


def _names_mlflow(module: str | None) -> bool:
    return module is not None and (module == "mlflow" or module.startswith("mlflow."))


def mlflow_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of each import of mlflow in the file, in line order."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            hits = [a.name for a in node.names if _names_mlflow(a.name)]
        elif isinstance(node, ast.ImportFrom):
            hits = [node.module] if node.level == 0 and _names_mlflow(node.module) else []
        elif isinstance(node, ast.Call):  # importlib.import_module("mlflow"), __import__("mlflow")
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            arg = node.args[0] if node.args else None
            hits = ([arg.value] if name in ("import_module", "__import__") and isinstance(arg, ast.Constant)
                    and isinstance(arg.value, str) and _names_mlflow(arg.value) else [])
        else:
            continue
        found += [(node.lineno, h) for h in hits]
    return sorted(found)


def _sources() -> list[Path]:
    return sorted(p for pkg in ("r1ci_core", "r1ci_pipeline") for p in (ROOT / pkg).rglob("*.py"))


def test_only_the_lineage_module_imports_mlflow():
    outside = [f"{path.relative_to(ROOT)}:{line} imports {module}"
               for path in _sources() if not _is_lineage(path) for line, module in mlflow_imports(path)]
    assert not outside, ("MLflow is used outside r1ci_core.lineage (move the call into a lineage function):\n"
                         + "\n".join(outside))


def test_the_walk_finds_imports_where_they_are(tmp_path):
    # the check above is only worth something if it finds imports: the lineage module's, and every form
    assert any(mlflow_imports(path) for path in _sources() if _is_lineage(path))
    sample = tmp_path / "sample.py"
    sample.write_text("import os\nimport mlflowish\nfrom . import mlflow_names\n\ndef f():\n"
                      "    from mlflow.tracking import MlflowClient\n    import json, mlflow.artifacts\n"
                      "    return importlib.import_module('mlflow'), __import__('mlflow.entities')\n")
    assert mlflow_imports(sample) == [(6, "mlflow.tracking"), (7, "mlflow.artifacts"), (8, "mlflow"),
                                      (8, "mlflow.entities")]
