"""Turn a stage's result into Dagster output metadata the UI can show and plot.

* every number at the top level (``reward_first_half``, ``n_samples``): an int or float entry, which the
  asset page's plots follow across materialisations;
* every number nested in a figure dict, flattened with dots (``accuracy.sft.autonomous``,
  ``pool_accuracy.grpo.autonomous.seen_family``, ``pass_rates.number_multiply``), beside the dict as JSON;
* ``mlflow_run``: a link to the run in the MLflow UI (see `r1ci_core.lineage.run_url`);
* the report's plots inline (``plots``: Markdown with the PNGs embedded) and its main table.
"""

from __future__ import annotations

import base64
import math
from pathlib import Path
from typing import Any

import dagster as dg

MAX_FLAT = 200  # numeric entries taken from one nested figure, at most (the rest stay in its JSON)


def _number(value: Any) -> dg.MetadataValue | None:
    """An int or float entry for a finite number; None for anything else (NaN is a missing point)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return dg.MetadataValue.int(value)
    if isinstance(value, float) and math.isfinite(value):
        return dg.MetadataValue.float(value)
    return None


def flatten_numbers(key: str, value: Any, depth: int = 3) -> dict[str, dg.MetadataValue]:
    """``{"a": {"b": 0.5}}`` under `key` -> ``{"key.a.b": float 0.5}`` (numeric leaves of nested dicts)."""
    out: dict[str, dg.MetadataValue] = {}
    if isinstance(value, dict) and depth > 0:
        for sub, item in value.items():
            out.update(flatten_numbers(f"{key}.{sub}", item, depth - 1))
            if len(out) >= MAX_FLAT:
                break
    elif (number := _number(value)) is not None:
        out[key] = number
    return dict(list(out.items())[:MAX_FLAT])


def plots_markdown(plots: dict[str, str]) -> str:
    """The plots as Markdown images with their PNG bytes inline (``data:`` URIs), one heading each."""
    parts = []
    for name, path in plots.items():
        data = base64.b64encode(Path(path).read_bytes()).decode()
        parts.append(f"**{name.replace('_', ' ')}**\n\n![{name}](data:image/png;base64,{data})")
    return "\n\n".join(parts)


def output(result: Any) -> dg.Output:
    """An `Output` carrying the `StageResult` (for downstream assets) and its figures as metadata."""
    from r1ci_core.lineage import run_url

    metadata: dict[str, Any] = {"path": dg.MetadataValue.path(result.path), "mlflow_run_id": result.mlflow_run_id}
    url = run_url(result.mlflow_run_id)
    if url:
        metadata["mlflow_run"] = dg.MetadataValue.url(url)
    nested: dict[str, dg.MetadataValue] = {}
    for key, value in result.metadata.items():
        if key == "markdown_table":
            metadata[key] = dg.MetadataValue.md(str(value))
        elif key == "plot_path":
            metadata[key] = dg.MetadataValue.path(str(value))
        elif key == "plots" and isinstance(value, dict):
            metadata[key] = dg.MetadataValue.md(plots_markdown(value))
        elif (number := _number(value)) is not None:
            metadata[key] = number
        elif isinstance(value, bool | str):
            metadata[key] = value
        elif isinstance(value, dict | list):
            metadata[key] = dg.MetadataValue.json(value)
            nested.update(flatten_numbers(key, value))
    return dg.Output(result, metadata={**metadata, **nested})
