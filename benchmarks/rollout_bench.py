"""Rollout engine speed: batched multi-turn rollouts vs one question at a time, tiny model on CPU.

    python benchmarks/rollout_bench.py [--questions 32] [--batch-size 32] [--threads 1]

Prints a table, then as its LAST line one JSON object {"metric": "rollout_batched_speedup", ...}.
Both runs use the same taught tiny policy, questions, limits (greedy) and sandbox. The limits are the tiny
recipe's `rollout` section (what the pipeline runs), with `--batch-size` and, if given, `--max-new-tokens`.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
import warnings
from pathlib import Path


def summarize(trajs, wall: float) -> dict:
    n = len(trajs)
    return {
        "samples": n,
        "wall_s": wall,
        "samples_per_s": n / wall,
        "gen_s": sum(t.gen_time_s for t in trajs),
        "exec_s": sum(t.exec_time_s for t in trajs),
        "turns": sum(t.n_turns for t in trajs) / n,
        "code_calls": sum(t.n_code_calls for t in trajs) / n,
        "policy_tokens": sum(sum(t.mask) for t in trajs),
        "accuracy": sum(t.score or 0.0 for t in trajs) / n,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=None, help="default: the tiny recipe's")
    ap.add_argument("--repeats", type=int, default=5, help="alternating runs of each; medians are reported")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (the machine may be shared)")
    ap.add_argument("--teach-items", type=int, default=16,
                    help="questions the tiny policy is taught (it then writes code, runs it and answers)")
    ap.add_argument("--teach-steps", type=int, default=200)
    args = ap.parse_args()

    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")
    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    torch.set_num_threads(args.threads)

    from r1ci_core.config import load_recipe
    from r1ci_core.rollout import get_backend, run_rollouts
    from r1ci_core.rollout.tiny import make_tiny_policy, sample_items
    from r1ci_core.sandbox import Sandbox

    items = sample_items(args.questions, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        model, tok = make_tiny_policy(Path(tmp) / "tiny", items, n_teach=args.teach_items, steps=args.teach_steps)
        build_s = time.perf_counter() - t0
    backend = get_backend("transformers", model=model, tokenizer=tok)
    limits = load_recipe("tiny").rollout.model_copy(update={"batch_size": args.batch_size, "temperature": 0.0})
    if args.max_new_tokens:
        limits = limits.model_copy(update={"max_new_tokens": args.max_new_tokens})
    one = limits.model_copy(update={"batch_size": 1})

    with Sandbox() as sandbox:
        run_rollouts(backend, items[:2], limits=limits, sandbox=sandbox, progress=False)  # warm-up
        # Alternating repeats, medians: the batched run lasts a fraction of a second, so one scheduling
        # hiccup would otherwise move the ratio a lot.
        b_runs, s_runs = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            batched = run_rollouts(backend, items, limits=limits, sandbox=sandbox, progress=False)
            b_runs.append(summarize(batched, time.perf_counter() - t0))
            t0 = time.perf_counter()
            single = [run_rollouts(backend, [it], limits=one, sandbox=sandbox, progress=False)[0] for it in items]
            s_runs.append(summarize(single, time.perf_counter() - t0))
        b = sorted(b_runs, key=lambda r: r["wall_s"])[len(b_runs) // 2]
        s = sorted(s_runs, key=lambda r: r["wall_s"])[len(s_runs) // 2]

    same = [t.messages for t in batched] == [t.messages for t in single]
    ratio = b["samples_per_s"] / s["samples_per_s"]
    print(f"tiny policy built and taught in {build_s:.1f}s; {args.questions} questions, greedy, "
          f"limits: tiny recipe (max_new_tokens={limits.max_new_tokens}, max_turns={limits.max_turns}, "
          f"max_code_calls={limits.max_code_calls}), torch threads={args.threads}")
    header = f"{'engine':<22}{'samples/s':>10}{'wall s':>9}{'gen s':>8}{'exec s':>8}{'turns':>7}{'code':>6}" \
             f"{'tokens':>8}{'acc':>6}"
    print(header)
    print("-" * len(header))
    for name, r in ((f"batched (bs={args.batch_size})", b), ("one at a time", s)):
        print(f"{name:<22}{r['samples_per_s']:>10.2f}{r['wall_s']:>9.2f}{r['gen_s']:>8.2f}{r['exec_s']:>8.2f}"
              f"{r['turns']:>7.2f}{r['code_calls']:>6.2f}{r['policy_tokens']:>8d}{r['accuracy']:>6.2f}")
    walls = ", ".join(f"{r['wall_s']:.2f}" for r in b_runs)
    print(f"speedup: {ratio:.1f}x (goal >= 8x), medians of {args.repeats} alternating runs; batched runs "
          f"{walls} s; identical trajectories: {same}")
    print("gen s / exec s: time generating / in the sandbox (batched: code runs as soon as its turn ends, "
          "while the other rows still generate)")
    print(json.dumps({
        "metric": "rollout_batched_speedup", "value": round(ratio, 2), "goal": 8,
        "questions": args.questions, "batch_size": args.batch_size, "device": "cpu", "threads": args.threads,
        "batched_samples_per_s": round(b["samples_per_s"], 3), "single_samples_per_s": round(s["samples_per_s"], 3),
        "batched_gen_s": round(b["gen_s"], 3), "batched_exec_s": round(b["exec_s"], 3),
        "single_gen_s": round(s["gen_s"], 3), "single_exec_s": round(s["exec_s"], 3),
        "identical_trajectories": same, "repeats": args.repeats,
    }))


if __name__ == "__main__":
    main()
