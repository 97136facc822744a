"""The code location's executor: Dagster's default one, with its subprocesses forked from a forkserver.

Dagster's default (`multi_or_in_process_executor`) runs each step in a fresh `spawn`ed interpreter that imports
dagster, this code location and then torch/transformers again: measured on 2 cores, the tiny chain's first five
steps took 33 s that way and 17 s forked. Here the same executor and the same run config (``execution: config: multiprocess:`` or
``in_process:``), only with ``start_method: forkserver`` as the default and those modules preloaded in the
forkserver, so a step's process starts already holding them. A run config that names its own
``start_method`` (or ``in_process``) gets exactly what it asks for.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

# imported once in the forkserver (no thread pool is started by importing them; each step sets its own threads)
PRELOAD_MODULES = ["r1ci_pipeline", "torch", "transformers", "trl", "datasets", "mlflow"]


def _forkserver_by_default(config: dict[str, Any]) -> dict[str, Any]:
    if "in_process" in config:
        return config
    multiprocess = dict(config.get("multiprocess") or {})
    multiprocess.setdefault("start_method", {"forkserver": {"preload_modules": PRELOAD_MODULES}})
    return {"multiprocess": multiprocess}


executor = dg.multi_or_in_process_executor.configured(
    _forkserver_by_default, name="multi_or_in_process_forkserver",
    config_schema=dg.multi_or_in_process_executor.config_schema.as_field())
