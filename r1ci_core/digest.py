"""Content digests: what every cache key and resume fingerprint of r1ci is made of.

Keys are built from content only (files' bytes, questions, recipe sections), never from run ids, paths of
other runs or timestamps, so a re-run that reproduces the same inputs finds the work already done.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

_FP_CACHE: dict[tuple, str] = {}
_FULL_HASH_BYTES = 64 * 2**20
_SAMPLE_BYTES = 2**20


def json_digest(*parts: Any, length: int = 16) -> str:
    """A short sha256 of JSON-able parts (dict keys sorted; other objects by `str`)."""
    blob = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


def _hash_file(h: Any, p: Path, size: int) -> None:
    with open(p, "rb") as fh:
        if size <= _FULL_HASH_BYTES:
            for block in iter(lambda: fh.read(2**20), b""):  # noqa: B023 - fh is the loop's own file
                h.update(block)
        else:  # large weights: size + 8 sampled MiB spread over the file
            for k in range(8):
                fh.seek((size - _SAMPLE_BYTES) * k // 7)
                h.update(fh.read(_SAMPLE_BYTES))


def content_digest(path: str | Path) -> str:
    """A content hash of a folder or file (files under 64 MiB whole; larger ones: size + 8 sampled MiB).

    Folder entries whose name starts with "." (temporary siblings, locks) are left out; the same content
    elsewhere gives the same digest. A path that does not exist (a hub id, a model name) is hashed by its
    name (``ref:<hash>``).
    """
    path = Path(path)
    if path.is_file():
        files, base = [path], path.parent
    elif path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and not any(
            part.startswith(".") for part in p.relative_to(path).parts))
        base = path
    else:
        return "ref:" + hashlib.sha256(str(path).encode()).hexdigest()[:16]
    stats = [(p, p.stat()) for p in files]
    stamp = tuple((str(p), st.st_size, st.st_mtime_ns) for p, st in stats)
    if stamp in _FP_CACHE:
        return _FP_CACHE[stamp]
    h = hashlib.sha256()
    for p, st in stats:
        h.update(f"{p.relative_to(base) if p != path else p.name}\0{st.st_size}\0".encode())
        _hash_file(h, p, st.st_size)
    digest = h.hexdigest()[:20]
    _FP_CACHE[stamp] = digest
    return digest


def checkpoint_fingerprint(path: str | Path) -> str:
    """A checkpoint's content hash (`content_digest`); a hub id or other non-folder is hashed by its name."""
    if Path(path).is_dir():
        return content_digest(path)
    return "ref:" + hashlib.sha256(str(path).encode()).hexdigest()[:16]


def items_digest(items: Iterable[Any]) -> str:
    """A hash of task items' content (id, family, source, split, pool, question, gold answer, metadata), in
    their order. Dataclass fields are read directly (`dataclasses.asdict` deep-copies: seconds per corpus)."""
    h = hashlib.sha256()
    for it in items:
        if isinstance(it, dict):
            row = it
        elif dataclasses.is_dataclass(it):
            row = {f.name: getattr(it, f.name) for f in dataclasses.fields(it)}
            if isinstance(row.get("metadata"), dict):  # as `Item.to_row` writes it
                row["metadata"] = json.dumps(row["metadata"], sort_keys=True)
        else:
            row = it.to_row()
        h.update(json.dumps(row, sort_keys=True, default=str).encode())
        h.update(b"\n")
    return h.hexdigest()[:20]
