"""Evaluation decoding on CPU with the embedded default's real model: the stock KV cache vs r1ci's.

    python benchmarks/decode_bench.py [--recipe smollm2-135m] [--questions 40] [--repeats 2] [--mode autonomous]

The recipe's base model (imported from its GGUF file as `base_model` does), greedy, autonomous mode, the
recipe's rollout limits and sandbox, on its held-out questions (seen and unseen pools, alternating): the
same `run_rollouts` call as evaluation, once with transformers' `DynamicCache` (a copy of the whole cache per
decoded token) and once with `r1ci_core.rollout.backends.kv_cache` (written in place), alternating in one
process. Greedy outputs must be identical. Prints a table, then as its LAST line one JSON object
{"metric": "decode_cache_speedup", ...}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--recipe", default="smollm2-135m")
    ap.add_argument("--questions", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--mode", default="autonomous")
    args = ap.parse_args()

    import logging
    import warnings

    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")
    from transformers import DynamicCache

    from r1ci_core.config import load_recipe
    from r1ci_core.corpus import build_items
    from r1ci_core.models import import_gguf, is_gguf_ref
    from r1ci_core.rollout.backends import kv_cache
    from r1ci_core.rollout.backends.transformers import TransformersBackend
    from r1ci_core.rollout.engine import run_rollouts
    from r1ci_core.sandbox import Sandbox

    recipe = load_recipe(args.recipe)
    ref = recipe.model.name_or_path
    tmp = Path(tempfile.mkdtemp(prefix="r1ci-decode-bench-"))
    base = import_gguf(ref, tmp / "base") if is_gguf_ref(ref) else Path(ref)
    items = build_items(recipe.tasks)
    seen = [it for it in items if it.pool == "test_seen"]
    unseen = [it for it in items if it.pool == "test_unseen"]
    mixed = [x for pair in zip(seen, unseen, strict=False) for x in pair][: args.questions]
    backend = TransformersBackend(model_path=str(base))
    preallocated = kv_cache.decode_cache

    def stock(config, capacity):  # noqa: ANN001, ANN202, ARG001
        return DynamicCache(config=config)

    sb = recipe.sandbox
    rows, texts, tokens = [], {}, {}
    with Sandbox(timeout_s=sb.timeout_s, memory_mb=sb.memory_mb, workers=sb.workers, isolation=sb.isolation) as box:
        for rep in range(args.repeats):
            for name, factory in (("stock", stock), ("preallocated", preallocated)):
                kv_cache.decode_cache = factory
                t0 = time.perf_counter()
                trajs = run_rollouts(backend, mixed, limits=recipe.rollout, sandbox=box, mode=args.mode,
                                     progress=False)
                wall = time.perf_counter() - t0
                texts[name] = [t.to_row()["messages"] for t in trajs]
                tokens[name] = sum(len(t.token_ids or []) for t in trajs)
                rows.append({"rep": rep, "cache": name, "wall_s": wall, "gen_s": sum(t.gen_time_s for t in trajs),
                             "tokens": tokens[name]})
    kv_cache.decode_cache = preallocated
    same = texts["stock"] == texts["preallocated"]
    print(f"{args.recipe} base model, {len(mixed)} questions ({args.mode}, greedy), torch threads as r1ci sets them")
    print(f"{'rep':>3} {'cache':<13} {'wall s':>8} {'gen s':>8} {'tokens':>7} {'tok/s':>7}")
    for r in rows:
        print(f"{r['rep']:>3} {r['cache']:<13} {r['wall_s']:8.1f} {r['gen_s']:8.1f} {r['tokens']:7d} "
              f"{r['tokens'] / r['wall_s']:7.1f}")
    ratios = [a["wall_s"] / b["wall_s"] for a, b in zip(rows[::2], rows[1::2], strict=True)]
    print(f"greedy outputs identical: {same}")
    print(json.dumps({"metric": "decode_cache_speedup", "value": round(statistics.median(ratios), 3), "goal": 1.2,
                      "identical_outputs": same,
                      "wall_s": {k: round(statistics.median(r["wall_s"] for r in rows if r["cache"] == k), 1)
                                 for k in ("stock", "preallocated")}}))


if __name__ == "__main__":
    main()
