"""`r1ci tasks ...` subcommands: `list` the task families and `sample` a few questions of one.

Wiring: `add_tasks_parser(subparsers)` adds the `tasks` command; every leaf parser sets
`func(args) -> int` (the exit status), so the CLI does `sys.exit(args.func(args))`.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from collections import Counter
from typing import Any


def _registry(args: argparse.Namespace, include_unavailable: bool) -> dict[str, Any]:
    from . import registry

    return registry(bbh_dir=args.bbh_dir, custom_tasks=args.custom_tasks or None,
                    include_unavailable=include_unavailable)


def cmd_list(args: argparse.Namespace) -> int:
    from . import unavailable_families

    families = _registry(args, include_unavailable=True)
    rows = [f for f in families.values()
            if (not args.source or f.source == args.source) and (not args.split or f.split == args.split)]
    if args.json:
        print(json.dumps([{"name": f.name, "source": f.source, "split": f.split,
                           "available": getattr(f, "available", True),
                           "reference": ("none" if not getattr(f, "has_reference_solution", True)
                                         else "trivial" if getattr(f, "trivial_reference", False) else "program")}
                          for f in rows], indent=1))
        return 0
    width = max((len(f.name) for f in rows), default=10)
    print(f"{'family':{width}}  {'source':13}  {'split':5}  available")
    for f in rows:
        avail = "yes" if getattr(f, "available", True) else "no"
        print(f"{f.name:{width}}  {f.source:13}  {f.split:5}  {avail}")
    counts = Counter((f.source, f.split) for f in rows if getattr(f, "available", True))
    print()
    for source in sorted({s for s, _ in counts}):
        print(f"{source}: {counts[(source, 'train')]} train, {counts[(source, 'test')]} test")
    available = [f for f in rows if getattr(f, "available", True)]
    print(f"total available: {len(available)} ({sum(f.split == 'train' for f in available)} train, "
          f"{sum(f.split == 'test' for f in available)} test); unavailable: {len(rows) - len(available)}")
    hints = sorted(set(unavailable_families(bbh_dir=args.bbh_dir, custom_tasks=args.custom_tasks or None).values()))
    for hint in hints:
        print(f"note: {hint}")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    families = _registry(args, include_unavailable=True)
    family = families.get(args.family)
    if family is None:
        close = difflib.get_close_matches(args.family, list(families), n=5, cutoff=0.5)
        close = close or [n for n in families if args.family.lower() in n.lower()][:5]
        hint = (f"; did you mean {', '.join(close)}? (`r1ci tasks list` shows them all)" if close
                else "; see `r1ci tasks list` for the available names")
        print(f"r1ci: error: unknown task family {args.family!r}{hint}", file=sys.stderr)
        return 2
    if not getattr(family, "available", True):
        print(f"r1ci: error: {family.name} is unavailable: {family.unavailable_hint}", file=sys.stderr)
        return 2
    items = family.generate(args.n, seed=args.seed)
    for i, item in enumerate(items, 1):
        print(f"=== {family.name} [{family.source}, {family.split}] #{i} id={item.id}")
        print(item.question)
        print(f"--- gold answer: {item.answer}")
        if args.solution:
            try:
                print("--- reference solution:\n" + family.reference_solution(item))
            except Exception as e:  # noqa: BLE001 - shown, not fatal
                print(f"--- no reference solution: {e}")
        print()
    return 0


def add_tasks_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add `tasks list` and `tasks sample FAMILY [-n 3] [--seed 0]` to an argparse subparsers object."""
    tasks = subparsers.add_parser("tasks", help="list task families or sample their questions")
    tasks.set_defaults(func=lambda args: (tasks.print_help(), 2)[1])
    sub = tasks.add_subparsers(dest="tasks_command")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--bbh-dir", default=None, help="folder of the official BBH <task>.json files")
        p.add_argument("--custom-tasks", action="append", default=[], metavar="JSONL",
                       help="a custom task JSONL file (repeatable)")

    p_list = sub.add_parser("list", help="families with source, split and availability")
    p_list.add_argument("--source", choices=["symbench", "bbh", "reasoning_gym", "custom"])
    p_list.add_argument("--split", choices=["train", "test"])
    p_list.add_argument("--json", action="store_true", help="machine-readable output")
    common(p_list)
    p_list.set_defaults(func=cmd_list)

    p_sample = sub.add_parser("sample", help="a few rendered questions of a family with their gold answers")
    p_sample.add_argument("family")
    p_sample.add_argument("-n", type=int, default=3, help="how many questions (default 3)")
    p_sample.add_argument("--seed", type=int, default=0)
    p_sample.add_argument("--solution", action="store_true", help="also print the reference solution")
    common(p_sample)
    p_sample.set_defaults(func=cmd_sample)
    return tasks


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (`python -m r1ci_core.tasks.commands list`)."""
    parser = argparse.ArgumentParser(prog="r1ci")
    add_tasks_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["tasks", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
