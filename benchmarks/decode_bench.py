"""Evaluation decoding on CPU with the embedded default's real model: the stock KV cache vs r1ci's.

    python benchmarks/decode_bench.py [--recipe smollm2-135m] [--questions 40] [--repeats 2] [--mode autonomous]
                                      [--batch-size N]

The recipe's base model (imported from its GGUF file as `base_model` does), greedy, autonomous mode, the
recipe's rollout limits and sandbox, on its held-out questions (seen and unseen pools, alternating): the
same `run_rollouts` call as evaluation, once with transformers' `DynamicCache` (a copy of the whole cache per
decoded token), with `r1ci_core.rollout.backends.kv_cache` (written in place), and with that cache and a
bfloat16-autocast prefill (`rollout.prefill_dtype`), alternating in one process. The two caches must give
identical greedy outputs; for the bf16 prefill the share of identical conversations is printed. Prints a
table, then as its LAST line one JSON object {"metric": "decode_speedup", ...}.
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
    ap.add_argument("--batch-size", type=int, default=0, help="rollout.batch_size (default: the recipe's)")
    args = ap.parse_args()

    import logging
    import warnings

    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")
    import torch
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
    limits = recipe.rollout.model_copy(update={"batch_size": args.batch_size or recipe.rollout.batch_size})
    preallocated = kv_cache.decode_cache

    def stock(config, capacity, dtype=None):  # noqa: ANN001, ANN202, ARG001
        return DynamicCache(config=config)

    variants = (("stock", stock, "model"), ("preallocated", preallocated, "model"),
                ("prealloc+bf16pf", preallocated, "bfloat16"))
    sb = recipe.sandbox
    rows, texts = [], {}
    with Sandbox(timeout_s=sb.timeout_s, memory_mb=sb.memory_mb, workers=sb.workers, isolation=sb.isolation) as box:
        for rep in range(args.repeats):
            for name, factory, prefill in variants:
                kv_cache.decode_cache, backend.prefill_dtype = factory, prefill
                t0 = time.perf_counter()
                trajs = run_rollouts(backend, mixed, limits=limits, sandbox=box, mode=args.mode, progress=False)
                wall = time.perf_counter() - t0
                texts[name] = [json.dumps(t.to_row()["messages"]) for t in trajs]
                rows.append({"rep": rep, "variant": name, "wall_s": wall, "exec_s": sum(t.exec_time_s for t in trajs),
                             "tokens": sum(len(t.token_ids or []) for t in trajs),
                             "accuracy": sum(t.score or 0 for t in trajs) / len(trajs)})
    kv_cache.decode_cache = preallocated
    same = texts["stock"] == texts["preallocated"]
    agree = sum(a == b for a, b in zip(texts["stock"], texts["prealloc+bf16pf"], strict=True)) / len(mixed)
    print(f"{args.recipe} base model, {len(mixed)} questions ({args.mode}, greedy, batch_size {limits.batch_size}), "
          f"{torch.get_num_threads()} torch threads")
    print(f"{'rep':>3} {'variant':<16} {'wall s':>8} {'exec s':>7} {'tokens':>7} {'tok/s':>7} {'acc':>6}")
    for r in rows:
        print(f"{r['rep']:>3} {r['variant']:<16} {r['wall_s']:8.1f} {r['exec_s']:7.1f} {r['tokens']:7d} "
              f"{r['tokens'] / r['wall_s']:7.1f} {r['accuracy']:6.3f}")

    def wall(name: str) -> list[float]:
        return [r["wall_s"] for r in rows if r["variant"] == name]

    cache_ratio = statistics.median(a / b for a, b in zip(wall("stock"), wall("preallocated"), strict=True))
    total_ratio = statistics.median(a / b for a, b in zip(wall("stock"), wall("prealloc+bf16pf"), strict=True))
    print(f"preallocated cache: x{cache_ratio:.2f}, identical outputs: {same}; with bf16 prefill: x{total_ratio:.2f}, "
          f"{agree:.0%} of conversations identical to fp32's")
    print(json.dumps({"metric": "decode_speedup", "value": round(total_ratio, 3), "goal": 1.5,
                      "cache_speedup": round(cache_ratio, 3), "cache_identical_outputs": same,
                      "bf16_prefill_same_conversations": round(agree, 3),
                      "wall_s": {name: round(statistics.median(wall(name)), 1) for name, _, _ in variants}}))

if __name__ == "__main__":
    main()
