"""r1ci's own log lines on the Dagster run page.

`r1ci_core` logs with plain `logging` (it does not import Dagster) under the names ``r1ci_core.*`` and
``r1ci.*``. Dagster keeps a Python log record only when it reaches `context.log` (or `get_dagster_logger`),
or when its logger is listed under ``python_logs: managed_python_loggers`` in the instance's
``dagster.yaml``. That instance setting is lost as soon as ``DAGSTER_HOME`` points at another folder, and
in-process `dg.materialize` uses an ephemeral instance; so each asset forwards the r1ci loggers itself,
for the time it runs, with `stage_logs`. An instance that already manages them is left to do it alone.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import dagster as dg

R1CI_LOGGERS = ("r1ci_core", "r1ci")


class _ToDagster(logging.Handler):
    """Re-logs each record on the step's Dagster log manager, prefixed with its logger's name."""

    def __init__(self, dagster_log: logging.Logger, level: int) -> None:
        super().__init__(level)
        self._log = dagster_log

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._log.log(record.levelno, "%s: %s", record.name, record.getMessage(), exc_info=record.exc_info)
        except Exception:  # noqa: BLE001 - logging must never fail the stage
            self.handleError(record)


@contextlib.contextmanager
def stage_logs(context: dg.AssetExecutionContext, level: int = logging.INFO) -> Iterator[None]:
    """While the block runs, r1ci records at `level` and above go to the run's event log."""
    managed = set(context.instance.managed_python_loggers)
    loggers = [logging.getLogger(name) for name in R1CI_LOGGERS if name not in managed]
    handler = _ToDagster(context.log, level)
    saved = [(lg, lg.level) for lg in loggers]
    for lg in loggers:
        if lg.getEffectiveLevel() > level:
            lg.setLevel(level)
        lg.addHandler(handler)
    try:
        yield
    finally:
        for lg, old in saved:
            lg.removeHandler(handler)
            lg.setLevel(old)
