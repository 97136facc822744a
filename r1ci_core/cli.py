"""The `r1ci` command line: run the pipeline, inspect tasks, serve a checkpoint, compare evaluations."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, PermissionError, RuntimeError, OSError)


TRAINING_ASSETS = ("sft_checkpoint", "grpo_checkpoint", "eval_report")


def _selects_training(select: str) -> bool:
    """Whether a Dagster asset selection may include a training asset (then the TRL sections are checked)."""
    for token in select.split(","):
        token = token.strip()
        if not token or token.endswith("*") or token.endswith("+") or token.strip("*+ ") in TRAINING_ASSETS:
            return True
        if token.startswith(("tag:", "group:", "key:", "kind:", "owner:")) or any(c in token for c in "()| "):
            return True  # a selection expression: assume it may
    return False


def cmd_run(args: argparse.Namespace) -> int:
    """Materialise assets of the pipeline (all by default): `dagster asset materialize` with the recipe set.

    The recipe and this machine are checked first (`preflight`). Dagster's log goes to stdout; when a
    step fails, its root cause is raised as one `PipelineError` line.
    """
    import os

    from . import preflight
    from .config import data_dir, load_recipe
    from .errors import PipelineError, root_cause

    env = dict(os.environ)
    if args.recipe:
        env["R1CI_RECIPE"] = args.recipe
    recipe = load_recipe(env.get("R1CI_RECIPE"))  # fail fast, in one line, on a bad recipe
    preflight.check(recipe, data_dir(), training=_selects_training(args.select))
    cmd = [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "r1ci_pipeline.definitions",
           "--select", args.select]
    rc, tail = _run_streaming(cmd, env)
    if rc == 0:
        return 0
    if rc in (130, -2) or "DagsterExecutionInterruptedError" in tail:
        raise KeyboardInterrupt  # Ctrl-C reached Dagster (it exits 1 then): say so, not "failed"
    if rc < 0:
        raise PipelineError(f"the Dagster process was killed by signal {-rc} (out of memory?): re-run the same "
                            "command to resume from the finished shards and checkpoints")
    cause = root_cause(tail) or (f"materialising {args.select!r} failed (exit {rc}); the Dagster log above "
                                 "has the details")
    raise PipelineError(cause)


def _run_streaming(cmd: list[str], env: dict[str, str], keep: int = 256 * 1024) -> tuple[int, str]:
    """Run `cmd`, copying its stdout and stderr to our stdout as they come; return (exit code, output tail)."""
    import os
    import subprocess

    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None
    tail = bytearray()
    out = sys.stdout.buffer if hasattr(sys.stdout, "buffer") else None
    try:
        while chunk := os.read(proc.stdout.fileno(), 65536):
            if out is not None:
                out.write(chunk)
                out.flush()
            else:
                sys.stdout.write(chunk.decode(errors="replace"))
            tail += chunk
            if len(tail) > 2 * keep:
                del tail[:-keep]
    except KeyboardInterrupt:
        proc.wait()  # the child got the same Ctrl-C; let it stop cleanly
        raise
    finally:
        proc.stdout.close()
    return proc.wait(), tail[-keep:].decode(errors="replace")


def cmd_serve(args: argparse.Namespace) -> int:
    from .preflight import check_model_ref
    from .serve import serve

    check_model_ref(args.checkpoint, key="checkpoint")

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
    run.add_argument("--recipe", help="recipe name or YAML path (default: $R1CI_RECIPE or smollm2-135m)")
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
    from .errors import PipelineError, explain

    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("r1ci: interrupted", file=sys.stderr)
        return 130
    except PipelineError as err:
        print(f"r1ci: error: {err}", file=sys.stderr)
        return 1
    except USER_ERRORS as err:
        if args.verbose:
            raise
        print(f"r1ci: error: {explain(err)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
