"""Evaluation runs staged to a file before they reach the DuckDB store.

An evaluation's rollouts are written to ``<staging folder>/<eval_key>-<run_id>.parquet`` (its samples as
rows, its ``eval_runs`` row as JSON in the file's schema metadata) the moment they finish, and only then
inserted into the store. A process holding the store's lock (a ``duckdb`` CLI, a notebook) delays the insert
(`store.connect` waits and says for what); when it never lets go, the staged file stays and the next run
inserts it without rolling out again. The file is removed once its run is in the store.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import store
from .io import atomic_write_bytes

log = logging.getLogger(__name__)

RUN_META_KEY = b"r1ci.eval_run"
_TIME_COLUMNS = ("started_at", "finished_at")


@dataclass
class StagedRun:
    """A staged evaluation run: its file, its eval_runs row and its samples (a DataFrame)."""

    path: Path
    run: dict[str, Any]
    samples: Any


def stage_run(folder: Path, run: dict[str, Any], samples: list[dict[str, Any]]) -> StagedRun:
    """Write one run and its samples to `folder` atomically (before anything is inserted)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    _, sample_df = store.frames(run, samples)
    table = pa.Table.from_pandas(sample_df, preserve_index=False)
    meta = {**(table.schema.metadata or {}), RUN_META_KEY: json.dumps(_jsonable(run), sort_keys=True).encode()}
    buf = io.BytesIO()
    pq.write_table(table.replace_schema_metadata(meta), buf)
    path = Path(folder) / f"{run['eval_key']}-{run['run_id']}.parquet"
    atomic_write_bytes(path, buf.getvalue())
    log.info("eval %s/%s: %d samples staged in %s", run.get("checkpoint"), run.get("mode"), len(samples), path)
    return StagedRun(path, run, sample_df)


def find_staged(folder: Path, eval_key: str) -> StagedRun | None:
    """The oldest staged run of `eval_key` in `folder`, if any (unreadable files are named and skipped)."""
    import pyarrow.parquet as pq

    for path in sorted(Path(folder).glob(f"{eval_key}-*.parquet"), key=lambda p: p.stat().st_mtime_ns):
        try:
            table = pq.read_table(path)
            run = json.loads(table.schema.metadata[RUN_META_KEY])
        except Exception as err:  # noqa: BLE001 - a damaged file must not stop the evaluation
            log.warning("staged evaluation %s is unreadable (%s): ignoring it; delete it to silence this", path, err)
            continue
        for col in _TIME_COLUMNS:
            if run.get(col):
                run[col] = dt.datetime.fromisoformat(run[col])
        return StagedRun(path, run, table.to_pandas())
    return None


def insert_staged(db: Path, staged: StagedRun) -> tuple[str, bool]:
    """Insert a staged run into the store (waiting while another process holds it), then remove the file.

    Returns (run_id in the store, True when this call inserted it). A run already stored (the same run_id,
    or for an unforced run the same eval_key) is not inserted twice: its stored id is returned.
    """
    run = staged.run
    try:
        if store.missing_runs(db, [run["run_id"]]):
            run_id, inserted = store.insert_frames(db, run, staged.samples, force=bool(run.get("forced"))), True
        else:
            run_id, inserted = run["run_id"], False
    except store.AlreadyStored as dup:
        log.info("eval %s/%s was stored meanwhile as run %s: staged run %s dropped", run.get("checkpoint"),
                 run.get("mode"), dup.run_id, run["run_id"])
        run_id, inserted = dup.run_id, False
    staged.path.unlink(missing_ok=True)
    return run_id, inserted


def _jsonable(run: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in run.items()}
