"""Turn a stage's result into Dagster output metadata."""

from __future__ import annotations

from typing import Any

import dagster as dg


def output(result: Any) -> dg.Output:
    """An `Output` carrying the `StageResult` (for downstream assets) and its figures as metadata."""
    metadata: dict[str, Any] = {"path": dg.MetadataValue.path(result.path), "mlflow_run_id": result.mlflow_run_id}
    for key, value in result.metadata.items():
        if isinstance(value, bool | int | float | str):
            metadata[key] = value
        elif key == "markdown_table":
            metadata[key] = dg.MetadataValue.md(str(value))
        elif key == "plot_path":
            metadata[key] = dg.MetadataValue.path(str(value))
        elif isinstance(value, dict | list):
            metadata[key] = dg.MetadataValue.json(value)
    return dg.Output(result, metadata=metadata)
