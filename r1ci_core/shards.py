"""Resumable, sharded generation: finished shards are kept, a killed run redoes only the missing ones."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from tqdm.auto import tqdm

log = logging.getLogger(__name__)
T = TypeVar("T")


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.parquet"


def run_sharded(
    inputs: Sequence[T],
    out_dir: Path,
    fn: Callable[[list[T]], list[dict[str, Any]]],
    *,
    shard_size: int,
    fingerprint: str,
    desc: str = "generating",
) -> list[Path]:
    """Apply `fn` to `inputs` in shards of `shard_size`, writing each shard's rows as parquet atomically.

    Shards already written by an earlier run with the same `fingerprint` (inputs + settings) are kept;
    a different fingerprint starts afresh. Returns the shard paths in order.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = out_dir / "manifest.json"
    if manifest.exists() and json.loads(manifest.read_text()).get("fingerprint") != fingerprint:
        for old in out_dir.glob("shard-*.parquet"):
            old.unlink()
    manifest.write_text(json.dumps({"fingerprint": fingerprint, "n_inputs": len(inputs), "shard_size": shard_size}))
    for stray in out_dir.glob(".shard-*"):
        stray.unlink()
    chunks = [list(inputs[i : i + shard_size]) for i in range(0, len(inputs), shard_size)]
    paths = [out_dir / shard_name(i) for i in range(len(chunks))]
    done = sum(p.exists() for p in paths)
    with tqdm(total=len(inputs), desc=desc, unit="q", initial=sum(len(c) for c, p in zip(chunks, paths) if p.exists())) as bar:
        if done:
            log.info("resuming: %d of %d shards already written", done, len(paths))
        for chunk, path in zip(chunks, paths):
            if path.exists():
                continue
            rows = fn(chunk)
            tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
            pq.write_table(pa.Table.from_pylist(rows), tmp)
            os.replace(tmp, path)
            bar.update(len(chunk))
    return paths
