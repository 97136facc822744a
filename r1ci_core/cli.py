"""The `r1ci` command line: run the pipeline, inspect tasks, serve a checkpoint, compare evaluations."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, PermissionError, RuntimeError, OSError)


def cmd_run(args: argparse.Namespace) -> int:
    """Materialise assets of the pipeline (all by default): `dagster asset materialize` with the recipe set."""
    import os
    import subprocess

    from .config import load_recipe

    env = dict(os.environ)
    if args.recipe:
        env["R1CI_RECIPE"] = args.recipe
    load_recipe(env.get("R1CI_RECIPE"))  # fail fast, in one line, on a bad recipe
    cmd = [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "r1ci_pipeline", "--select", args.select]
    return subprocess.call(cmd, env=env)


def cmd_serve(args: argparse.Namespace) -> int:
    from .serve import serve

    serve(args.checkpoint, host=args.host, port=args.port)
    return 0


def cmd_recipes(args: argparse.Namespace) -> int:
    from .config import available_recipes, load_recipe

    for name in available_recipes():
        recipe = load_recipe(name)
        print(f"{name:16} model={recipe.model.name_or_path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .tasks.commands import add_tasks_parser

    parser = argparse.ArgumentParser(prog="r1ci", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="materialise the pipeline's assets (default: all)")
    run.add_argument("--recipe", help="recipe name or YAML path (default: $R1CI_RECIPE or tiny)")
    run.add_argument("--select", default="*", help="Dagster asset selection, e.g. 'grpo_checkpoint' or '*sft_dataset'")
    run.set_defaults(func=cmd_run)

    serve = sub.add_parser("serve", help="serve a checkpoint with an OpenAI-compatible HTTP API")
    serve.add_argument("checkpoint")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.set_defaults(func=cmd_serve)

    recipes = sub.add_parser("recipes", help="list the bundled recipes")
    recipes.set_defaults(func=cmd_recipes)

    add_tasks_parser(sub)
    _add_eval_parser(sub)
    return parser


def _add_eval_parser(sub: Any) -> None:
    ev = sub.add_parser("eval", help="work with evaluation runs in the DuckDB store")
    ev_sub = ev.add_subparsers(dest="eval_command", required=True)
    compare = ev_sub.add_parser("compare", help="per-family differences between two evaluation runs")
    compare.add_argument("run_a")
    compare.add_argument("run_b")
    compare.add_argument("--db", help="DuckDB file (default: $R1CI_DATA_DIR/r1ci.duckdb)")
    compare.set_defaults(func=cmd_eval_compare)


def cmd_eval_compare(args: argparse.Namespace) -> int:
    from .config import data_dir
    from .evaluation import compare_runs, format_comparison

    db = args.db or str(data_dir() / "r1ci.duckdb")
    print(format_comparison(compare_runs(db, args.run_a, args.run_b)))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("r1ci: interrupted", file=sys.stderr)
        return 130
    except USER_ERRORS as err:
        if args.verbose:
            raise
        print(f"r1ci: error: {str(err).splitlines()[0] if str(err) else type(err).__name__}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
