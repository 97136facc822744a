"""The asset IO manager: pickles under a base folder (as `dg.FilesystemIOManager` stores them), every one
written atomically.

Dagster's own writes the file in place, so a step killed while storing its output leaves a truncated
pickle that the next run's downstream steps fail to load. Here it goes to a temporary file that is
renamed over the old one: a kill leaves the previous output or the new one. Built on the public
`dg.UPathIOManager` (paths, partitions and the `<base>/<asset key>` layout are Dagster's).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import dagster as dg


class AtomicPickleIOManager(dg.UPathIOManager):
    """Pickled outputs, local files written atomically (remote `upath` stores: a plain write)."""

    extension: str = ""  # the file names `dg.FilesystemIOManager` uses

    def __init__(self, base_dir: str) -> None:
        from upath import UPath

        super().__init__(base_path=UPath(base_dir))

    def dump_to_path(self, context: dg.OutputContext, obj: Any, path: Any) -> None:
        from r1ci_core.io import atomic_write_bytes

        data = pickle.dumps(obj, pickle.HIGHEST_PROTOCOL)
        if getattr(path, "protocol", "") not in ("", "file", "local"):
            path.write_bytes(data)
        else:
            atomic_write_bytes(Path(str(path)), data)

    def load_from_path(self, context: dg.InputContext, path: Any) -> Any:
        return pickle.loads(path.read_bytes())


class AtomicFilesystemIOManager(dg.ConfigurableIOManagerFactory):
    """Configurable like `dg.FilesystemIOManager`: `base_dir`, default `<R1CI_DATA_DIR>/dagster_storage`
    (read when a run starts, not at import)."""

    base_dir: str | None = None

    def create_io_manager(self, context: dg.InitResourceContext) -> AtomicPickleIOManager:
        from r1ci_core.config import data_dir

        return AtomicPickleIOManager(self.base_dir or str(data_dir() / "dagster_storage"))
