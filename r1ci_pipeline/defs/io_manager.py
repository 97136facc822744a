"""The asset IO manager: Dagster's pickling filesystem IO manager, but every pickle is written atomically.

Dagster's own writes the file in place, so a step killed while storing its output leaves a truncated
pickle that the next run's downstream steps fail to load. Here it goes to a temporary file that is
renamed over the old one: a kill leaves the previous output or the new one.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import dagster as dg
from dagster._core.storage.fs_io_manager import PickledObjectFilesystemIOManager


class AtomicPickledObjectFilesystemIOManager(PickledObjectFilesystemIOManager):
    def dump_to_path(self, context: dg.OutputContext, obj: Any, path: Any) -> None:
        from r1ci_core.io import atomic_write_bytes

        if type(path).__module__.startswith("upath") and getattr(path, "protocol", "") not in ("", "file", "local"):
            return super().dump_to_path(context, obj, path)  # remote stores: Dagster's own write
        atomic_write_bytes(Path(str(path)), pickle.dumps(obj, pickle.HIGHEST_PROTOCOL))


class AtomicFilesystemIOManager(dg.FilesystemIOManager):
    """`dg.FilesystemIOManager` with atomic writes (same configuration, same files)."""

    def create_io_manager(self, context: dg.InitResourceContext) -> AtomicPickledObjectFilesystemIOManager:
        base_dir = self.base_dir or context.instance.storage_directory()
        return AtomicPickledObjectFilesystemIOManager(base_dir=base_dir)
