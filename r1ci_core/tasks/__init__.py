"""Task families: `registry()` lists every available family; loaders import official files."""

from __future__ import annotations

from .base import Item, Task, Verdict, extract_answer, item_id


def registry() -> dict[str, Task]:
    """Every available family by name (built-in sources plus custom and entry-point tasks)."""
    from .symbench import FAMILIES as SYMBENCH

    families: dict[str, Task] = {}
    for cls in SYMBENCH:
        family = cls()
        families[family.name] = family
    return families


__all__ = ["Item", "Task", "Verdict", "extract_answer", "item_id", "registry"]
