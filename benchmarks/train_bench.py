"""Training speed on CPU: SFT padded (TRL's default) vs packed, and one GRPO step split by phase.

    python benchmarks/train_bench.py [--trajectories 160] [--repeats 3] [--threads 1] [--pack-length 1024]
                                     [--pack-batch 0] [--modes padded,packed,padding_free,packed_masked]
    python benchmarks/train_bench.py --real [--recipe smollm2-135m] [--trajectories 48] [--grpo-steps 3]

Prints a table, then as its LAST line one JSON object {"metric": "sft_packed_speedup", ...}
({"metric": "real_sft_speedup", ...} with --real).

--real: the embedded default's real model (SmolLM2-135M-Instruct, imported from its GGUF file as the
`base_model` stage does) through r1ci's SFT and GRPO paths, "before" (r1ci's earlier CPU settings: one torch
thread, fp32, glibc's default heap, GRPO with beta 0.001 and so a reference copy of the model, rollouts with
transformers' concatenating KV cache and fp32 prefill) against "after" (the recipe as it ships: every core, bf16 autocast,
`steady_heap`, beta 0, r1ci's in-place KV cache, bf16 prefill), each setting in its own process, alternating, in one run.
SFT: tokens/s over the recipe's own reference-teacher trajectories. GRPO: the recipe's GRPO settings on its
GRPO questions, starting from the base model; per step generation / execution / optimisation, and the peak
RSS of each process.

SFT: the reference teacher's real trajectories for the `tiny` recipe's SFT pool (code really executed,
then the SFT filter), the tiny recipe's base model, one epoch through r1ci's SFT stage path
(`r1ci_core.launch.train_sft` -> `r1ci_core.sft.train_sft`, i.e. TRL's `SFTTrainer`), recipe overrides only:

* padded:        TRL's default (`per_device_train_batch_size` rows, each batch padded to its longest row);
* packed:        `sft.packing: true` (TRL's best-fit-decreasing into rows of `--pack-length` tokens,
                 `--pack-batch` rows a step, by default as many as hold the padded run's real tokens per
                 step), which TRL feeds padding-free (one flattened row, `position_ids` restarting per
                 sample); r1ci then runs attention per sample (`sdpa_varlen`, see `r1ci_core.launch`);
* padding_free:  `sft.padding_free: true` (the padded run's batches, each flattened into one row), same attention;
The teacher runs with its default mix (`TeacherConfig()`: 10% of trajectories first run a failing attempt,
10% of the easy families' answer in text), R1-CI's spread of lengths. The tiny recipe tunes its own teacher
for the GRPO demonstration (no failing attempts, 30% text answers), which makes its trajectories short and
uniform, where packing has little to gain; `--recipe-teacher` benches on those instead.

* packed_masked: packed with `sft.varlen_attention: false`: transformers' sdpa over the whole flattened row under
                 a block-diagonal mask (what TRL gives on CPU without flash-attention).

Each (mode, repeat) runs in its own process (peak memory is per process), modes alternate in order, the
speedup is the median of the per-repeat ratios. tokens/s counts real (non-padding) tokens, the same ones
for every mode. Peak memory: the process' peak RSS while training (sampled every 2 ms) and its growth over
the RSS when training began.

GRPO: one step of r1ci's GRPO (`r1ci_core.grpo.train_grpo`, TRL's `GRPOTrainer` whose rollouts run r1ci's
multi-turn engine and the sandbox) with a small policy taught to write code (`rollout.tiny`), the tiny
recipe's GRPO and rollout settings; the first step is a warm-up, the others' median is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

MODES = ("padded", "packed", "padding_free", "packed_masked")
ROOT = Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------------------------------- helpers
def _quiet(threads: int) -> None:
    import logging
    import warnings

    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        from datasets.utils.logging import disable_progress_bar

        disable_progress_bar()
    except ImportError:
        pass
    if threads > 0:
        torch.set_num_threads(threads)


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class _RssPeak:
    """Samples this process' RSS in a thread between start() and stop()."""

    def __init__(self, every_s: float = 0.002):
        self.every_s, self.start_mb, self.peak_mb = every_s, 0.0, 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.start_mb = self.peak_mb = _rss_mb()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.peak_mb = max(self.peak_mb, _rss_mb())

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
        self.peak_mb = max(self.peak_mb, _rss_mb())


def sft_overrides(mode: str, pack_length: int, pack_batch: int) -> dict:
    """The recipe overrides of one SFT mode (padded = none: TRL's default)."""
    # fp32, no activation checkpointing: the CPU settings (TRL's bf16 autocast and checkpointing defaults are
    # GPU settings that slow a CPU run several-fold), the same for every mode
    common = {"sft.num_train_epochs": 1, "sft.max_steps": -1, "sft.save_strategy": "no", "sft.logging_steps": 10_000,
              "sft.include_num_input_tokens_seen": "non_padding", "sft.bf16": False,
              "sft.gradient_checkpointing": False}
    if mode == "padded":
        return common
    if mode == "packed":
        return {**common, "sft.packing": True, "sft.packing_strategy": "bfd", "sft.max_length": pack_length,
                "sft.per_device_train_batch_size": pack_batch}
    if mode == "padding_free":
        return {**common, "sft.padding_free": True, "sft.max_length": None}
    if mode == "packed_masked":  # packed, attention over the whole row under transformers' block-diagonal mask
        return {**sft_overrides("packed", pack_length, pack_batch), "sft.varlen_attention": False}
    raise ValueError(f"unknown mode {mode!r}; choose from {MODES}")


# ----------------------------------------------------------------------------------------------- data
def prepare(data: Path, recipe_name: str, n_traj: int, recipe_teacher: bool = False) -> dict:
    """Base model + filtered reference-teacher trajectories of the recipe's SFT pool, saved under `data`."""
    import random

    from r1ci_core.chat import SYSTEM_PROMPT, system_prompt
    from r1ci_core.config import TeacherConfig, load_recipe
    from r1ci_core.corpus import build_items
    from r1ci_core.filtering import filter_trajectories
    from r1ci_core.models import build_tiny_model, load_tokenizer
    from r1ci_core.sandbox import Sandbox
    from r1ci_core.sft import sft_rows
    from r1ci_core.tasks import registry
    from r1ci_core.teachers import make_teacher
    from r1ci_core.trajectory import Trajectory

    recipe = load_recipe(recipe_name)
    if not recipe_teacher:
        recipe = recipe.model_copy(update={"teacher": TeacherConfig(kind=recipe.teacher.kind)})
    if recipe.model.name_or_path != "tiny":
        raise SystemExit("train_bench builds the recipe's tiny model: use a recipe with model.name_or_path: tiny")
    items = build_items(recipe.tasks)
    families = registry()
    # the same tokenizer texts as stages.base_model
    texts = [system_prompt(m) for m in ("autonomous", "text_only", "code_first")] * 20 + [SYSTEM_PROMPT] * 50
    for item in items:
        texts.append(item.question)
        if item.family in families:
            texts.append(families[item.family].reference_solution(item))
    base = build_tiny_model(data / "base", texts, recipe.model.tiny, seed=recipe.seed)
    tokenizer = load_tokenizer(str(base))
    sb = recipe.sandbox
    with Sandbox(timeout_s=sb.timeout_s, memory_mb=sb.memory_mb, workers=sb.workers, isolation=sb.isolation) as box:
        teacher = make_teacher(recipe.teacher, families, box, rollout=recipe.rollout)
        todo, _ = teacher.select([it for it in items if it.pool == "sft"])
        rows, _ = teacher.generate(todo)
    trajs, _ = filter_trajectories([Trajectory.from_row(r) for r in rows], recipe.filter, tokenizer)
    random.Random(0).shuffle(trajs)
    trajs = trajs[:n_traj]
    (data / "trajectories.json").write_text(json.dumps([t.to_row() for t in trajs]))
    lengths = [len(r["input_ids"]) for r in sft_rows(trajs, tokenizer)]
    masked = sum(sum(r["assistant_masks"]) for r in sft_rows(trajs, tokenizer))
    return {"n": len(trajs), "tokens": sum(lengths), "trained_tokens": masked, "min": min(lengths),
            "median": statistics.median(lengths), "max": max(lengths)}


# ----------------------------------------------------------------------------------------------- workers
def worker_sft(data: Path, recipe_name: str, mode: str, pack_length: int, pack_batch: int) -> dict:
    """One epoch of r1ci's SFT in `mode`; train time from TRL's own train begin/end callbacks."""
    from transformers import TrainerCallback

    import r1ci_core.sft as sft
    from r1ci_core.config import load_recipe
    from r1ci_core.launch import train_sft
    from r1ci_core.trajectory import Trajectory

    rec: dict = {}
    mem = _RssPeak()

    class Timer(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):  # noqa: ANN001
            mem.start()
            rec["t0"] = time.perf_counter()

        def on_train_end(self, args, state, control, **kw):  # noqa: ANN001
            rec["t1"] = time.perf_counter()
            mem.stop()
            rec["tokens"], rec["steps"] = int(state.num_input_tokens_seen), int(state.global_step)

    sft.mlflow_callback = Timer  # the bench's only hook: r1ci's SFT path is otherwise untouched
    recipe = load_recipe(recipe_name).with_overrides(sft_overrides(mode, pack_length, pack_batch))
    trajs = [Trajectory.from_row(r) for r in json.loads((data / "trajectories.json").read_text())]
    with tempfile.TemporaryDirectory() as tmp:
        figures = train_sft(recipe, trajs, str(data / "base"), Path(tmp) / "out", Path(tmp) / "work")
    train_s = rec["t1"] - rec["t0"]
    return {"mode": mode, "tokens": rec["tokens"], "steps": rec["steps"], "train_s": train_s,
            "tokens_per_s": rec["tokens"] / train_s, "peak_rss_mb": mem.peak_mb,
            "rss_growth_mb": mem.peak_mb - mem.start_mb, "train_loss": figures["train_loss"]}


def worker_grpo(recipe_name: str, steps: int) -> dict:
    """`steps` GRPO steps through r1ci's `train_grpo` with a small policy taught to write code."""
    from r1ci_core.config import load_recipe
    from r1ci_core.rollout.tiny import TINY_SHAPE, make_tiny_policy, sample_items

    items = sample_items(12, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        make_tiny_policy(Path(tmp) / "policy", items, n_teach=3, steps=100)
        out = _timed_grpo(load_recipe(recipe_name), steps, items, str(Path(tmp) / "policy"))
    shape = TINY_SHAPE
    return {**out, "model": f"hidden {shape.hidden_size}, {shape.num_hidden_layers} layers"}


def _timed_grpo(recipe, steps: int, items: list, policy: str) -> dict:  # noqa: ANN001
    """`steps` GRPO steps of `policy` through r1ci's `train_grpo`; per step: rollout (generate / execute) and the rest."""
    from transformers import TrainerCallback

    import r1ci_core.grpo as grpo
    import r1ci_core.rollout as rollout
    from r1ci_core.sandbox import Sandbox

    recipe = recipe.with_overrides({"grpo.max_steps": steps, "grpo.save_strategy": "no", "grpo.logging_steps": 1})
    steps_log: list[dict] = []
    calls: list[dict] = []
    real_run_rollouts = rollout.run_rollouts

    def timed_run_rollouts(*args, **kwargs):  # noqa: ANN002, ANN003
        t0 = time.perf_counter()
        trajs = real_run_rollouts(*args, **kwargs)
        calls.append({"wall_s": time.perf_counter() - t0, "gen_s": sum(t.gen_time_s for t in trajs),
                      "exec_s": sum(t.exec_time_s for t in trajs), "n": len(trajs),
                      "policy_tokens": sum(sum(t.mask[t.prompt_len:]) for t in trajs),
                      "code_calls": sum(t.n_code_calls for t in trajs)})
        return trajs

    class StepTimer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):  # noqa: ANN001
            self.t0, self.n_calls = time.perf_counter(), len(calls)

        def on_step_end(self, args, state, control, **kw):  # noqa: ANN001
            mine = calls[self.n_calls:]
            steps_log.append({"step_s": time.perf_counter() - self.t0,
                              **{k: sum(c[k] for c in mine) for k in ("wall_s", "gen_s", "exec_s", "n",
                                                                         "policy_tokens", "code_calls")}})

    rollout.run_rollouts = timed_run_rollouts  # picked up by grpo.make_rollout_func
    grpo.mlflow_callback = StepTimer
    sb = recipe.sandbox
    with tempfile.TemporaryDirectory() as tmp, \
            Sandbox(timeout_s=sb.timeout_s, memory_mb=sb.memory_mb, workers=sb.workers, isolation=sb.isolation) as box:
        grpo.train_grpo(recipe, items, policy, Path(tmp) / "out", Path(tmp) / "work", box)
    return {"steps": steps_log, "completions_per_step": int(recipe.grpo.trl.get("per_device_train_batch_size", 8)),
            "beta": float(recipe.grpo.trl.get("beta", 0.001))}


# ----------------------------------------------------------------------------------------------- real model
REAL_SETTINGS = ("before", "after")


def real_overrides(setting: str, stage: str) -> dict:
    """The recipe overrides of one setting: `before` = r1ci's earlier CPU settings, `after` = the recipe."""
    if setting == "after":
        return {}
    if setting == "before":
        extra = {"grpo.beta": 0.001, "rollout.prefill_dtype": "model"} if stage == "grpo" else {}
        return {f"{stage}.bf16": False, **extra}
    raise ValueError(f"unknown setting {setting!r}; choose from {REAL_SETTINGS}")


def real_heap(setting: str) -> None:
    """`before` keeps glibc's default heap (thresholds that grow with freed blocks), as before `steady_heap`."""
    if setting == "before":
        import r1ci_core.training as training

        training.steady_heap = lambda: False


def real_threads(setting: str) -> str:
    return "1" if setting == "before" else ""  # "" = r1ci's choice (every core for a real model)


def prepare_real(data: Path, recipe_name: str, n_traj: int) -> dict:
    """The recipe's base model imported from its GGUF file, and its reference-teacher SFT trajectories."""
    import random

    from r1ci_core.config import load_recipe
    from r1ci_core.corpus import build_items
    from r1ci_core.filtering import filter_trajectories
    from r1ci_core.models import import_gguf, is_gguf_ref, load_tokenizer
    from r1ci_core.sandbox import Sandbox
    from r1ci_core.sft import sft_rows
    from r1ci_core.tasks import registry
    from r1ci_core.teachers import make_teacher
    from r1ci_core.trajectory import Trajectory

    recipe = load_recipe(recipe_name)
    ref = recipe.model.name_or_path
    if is_gguf_ref(ref):
        base = import_gguf(ref, data / "base")
    elif Path(ref).is_dir():
        base = Path(ref)
    else:
        raise SystemExit(f"--real needs a recipe whose model is a gguf: file or a local folder, not {ref!r}")
    tokenizer = load_tokenizer(str(base))
    items = build_items(recipe.tasks)
    sb = recipe.sandbox
    with Sandbox(timeout_s=sb.timeout_s, memory_mb=sb.memory_mb, workers=sb.workers, isolation=sb.isolation) as box:
        teacher = make_teacher(recipe.teacher, registry(), box, rollout=recipe.rollout)
        todo, _ = teacher.select([it for it in items if it.pool == "sft"])
        rows, _ = teacher.generate(todo)
    trajs, _ = filter_trajectories([Trajectory.from_row(r) for r in rows], recipe.filter, tokenizer)
    random.Random(0).shuffle(trajs)
    trajs = trajs[:n_traj]
    (data / "trajectories.json").write_text(json.dumps([t.to_row() for t in trajs]))
    (data / "base_path").write_text(str(base))
    lengths = [len(r["input_ids"]) for r in sft_rows(trajs, tokenizer)]
    return {"n": len(trajs), "tokens": sum(lengths), "median": statistics.median(lengths), "max": max(lengths)}


def worker_real_sft(data: Path, recipe_name: str, setting: str) -> dict:
    """One epoch of r1ci's SFT on the real model in `setting`."""
    from transformers import TrainerCallback

    import r1ci_core.sft as sft
    from r1ci_core.config import load_recipe
    from r1ci_core.launch import train_sft
    from r1ci_core.trajectory import Trajectory

    rec: dict = {}
    mem = _RssPeak()

    class Timer(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):  # noqa: ANN001
            import torch

            mem.start()
            rec["t0"], rec["threads"] = time.perf_counter(), torch.get_num_threads()

        def on_train_end(self, args, state, control, **kw):  # noqa: ANN001
            rec["t1"] = time.perf_counter()
            mem.stop()
            rec["tokens"], rec["steps"] = int(state.num_input_tokens_seen), int(state.global_step)

    sft.mlflow_callback = Timer
    real_heap(setting)
    recipe = load_recipe(recipe_name).with_overrides(
        {"sft.num_train_epochs": 1, "sft.max_steps": -1, "sft.save_strategy": "no", "sft.logging_steps": 10_000,
         "sft.include_num_input_tokens_seen": "non_padding", **real_overrides(setting, "sft")})
    trajs = [Trajectory.from_row(r) for r in json.loads((data / "trajectories.json").read_text())]
    with tempfile.TemporaryDirectory() as tmp:
        figures = train_sft(recipe, trajs, (data / "base_path").read_text(), Path(tmp) / "out", Path(tmp) / "work")
    train_s = rec["t1"] - rec["t0"]
    return {"setting": setting, "threads": rec["threads"], "tokens": rec["tokens"], "steps": rec["steps"],
            "train_s": train_s, "tokens_per_s": rec["tokens"] / train_s, "peak_rss_mb": mem.peak_mb,
            "train_loss": figures["train_loss"]}


def worker_real_grpo(data: Path, recipe_name: str, setting: str, steps: int) -> dict:
    """`steps` GRPO steps on the real model in `setting`, split as in `worker_grpo`."""
    from r1ci_core.config import load_recipe
    from r1ci_core.corpus import build_items

    recipe = load_recipe(recipe_name)
    items = [it for it in build_items(recipe.tasks) if it.pool == "grpo"]
    real_heap(setting)
    if setting == "before":  # transformers' concatenating KV cache, as before r1ci's in-place one
        from transformers import DynamicCache

        from r1ci_core.rollout.backends import kv_cache

        kv_cache.decode_cache = lambda config, capacity, dtype=None: DynamicCache(config=config)
    mem = _RssPeak()
    mem.start()
    out = _timed_grpo(recipe.with_overrides(real_overrides(setting, "grpo")), steps, items,
                      (data / "base_path").read_text())
    mem.stop()
    import torch

    return {**out, "setting": setting, "threads": torch.get_num_threads(), "peak_rss_mb": mem.peak_mb}


def real_main(args: argparse.Namespace) -> None:
    """Before/after on the real model (see the module doc); JSON last line."""
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        stats = prepare_real(data, args.recipe, args.trajectories)
        sft_runs: dict[str, list[dict]] = {s: [] for s in REAL_SETTINGS}
        grpo_runs: dict[str, dict] = {}
        for rep in range(args.repeats):
            for setting in (REAL_SETTINGS if rep % 2 == 0 else REAL_SETTINGS[::-1]):
                sft_runs[setting].append(_run_worker(
                    ["--worker", "real_sft", "--mode", setting, "--data", str(data), "--recipe", args.recipe],
                    real_threads(setting)))
        if args.grpo_steps > 0:
            for setting in REAL_SETTINGS:
                grpo_runs[setting] = _run_worker(
                    ["--worker", "real_grpo", "--mode", setting, "--data", str(data), "--recipe", args.recipe,
                     "--grpo-steps", str(args.grpo_steps)], real_threads(setting))

    def med(setting: str, key: str) -> float:
        return statistics.median(r[key] for r in sft_runs[setting])

    ratios = [a["tokens_per_s"] / b["tokens_per_s"] for a, b in zip(sft_runs["after"], sft_runs["before"], strict=True)]
    speedup = statistics.median(ratios)
    print(f"SFT on the real model of recipe {args.recipe!r}: {stats['n']} reference-teacher trajectories "
          f"({stats['tokens']} tokens, median {stats['median']:.0f}, max {stats['max']}), one epoch, "
          f"{args.repeats} repeat(s) (median), CPU")
    header = f"{'setting':<8}{'threads':>8}{'bf16':>6}{'steps':>7}{'tokens/s':>10}{'peak RSS MB':>13}{'loss':>8}"
    print(header)
    print("-" * len(header))
    for s in REAL_SETTINGS:
        print(f"{s:<8}{sft_runs[s][0]['threads']:>8d}{('no' if s == 'before' else 'yes'):>6}{sft_runs[s][0]['steps']:>7d}"
              f"{med(s, 'tokens_per_s'):>10.0f}{med(s, 'peak_rss_mb'):>13.0f}{med(s, 'train_loss'):>8.3f}")
    print(f"after/before SFT tokens/s: {speedup:.2f}x (goal >= 2x); per repeat: " + ", ".join(f"{x:.2f}" for x in ratios))
    out = {"metric": "real_sft_speedup", "value": round(speedup, 3), "goal": 2.0, "recipe": args.recipe,
           "device": "cpu", "repeats": args.repeats, "trajectories": stats["n"], "tokens_per_epoch": stats["tokens"]}
    for s in REAL_SETTINGS:
        out[f"sft_{s}_tokens_per_s"] = round(med(s, "tokens_per_s"), 1)
        out[f"sft_{s}_peak_rss_mb"] = round(med(s, "peak_rss_mb"), 1)
    if grpo_runs:
        print(f"GRPO steps on the real model ({args.grpo_steps} steps, the first a warm-up; median of the others):")
        header = (f"{'setting':<8}{'threads':>8}{'beta':>7}{'compl.':>7}{'tokens':>8}{'step s':>8}{'generate':>10}"
                  f"{'execute':>9}{'optimise':>10}{'peak RSS MB':>13}")
        print(header)
        print("-" * len(header))
        for s, run in grpo_runs.items():
            warm = run["steps"][1:] or run["steps"]
            g = {k: statistics.median(x[k] for x in warm) for k in warm[0]}
            opt = g["step_s"] - g["wall_s"]
            beta = 0.001 if s == "before" else float(run.get("beta", 0.0))
            print(f"{s:<8}{run['threads']:>8d}{beta:>7g}{int(g['n']):>7d}{int(g['policy_tokens']):>8d}{g['step_s']:>8.1f}"
                  f"{g['gen_s']:>10.1f}{g['exec_s']:>9.1f}{opt:>10.1f}{run['peak_rss_mb']:>13.0f}")
            out.update({f"grpo_{s}_step_s": round(g["step_s"], 2), f"grpo_{s}_generation_s": round(g["gen_s"], 2),
                        f"grpo_{s}_execution_s": round(g["exec_s"], 2), f"grpo_{s}_optimisation_s": round(opt, 2),
                        f"grpo_{s}_peak_rss_mb": round(run["peak_rss_mb"], 1)})
        print("  generate = the engine's decoding time (summed over its batches), execute = sandbox time "
              "(overlaps decoding), optimise = the rest of the step (rewards, log-probs, loss, backward, optimizer)")
    print(f"total bench time {time.perf_counter() - t_start:.0f}s")
    print(json.dumps(out))


def _run_worker(argv: list[str], threads: int | str) -> dict:
    """Run a worker in its own process with `threads` torch threads ("" = r1ci's own choice)."""
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    env.pop("R1CI_TORCH_THREADS", None)
    if threads != "":
        env.update({"OMP_NUM_THREADS": str(threads), "R1CI_TORCH_THREADS": str(threads)})
    out = subprocess.run([sys.executable, __file__, *argv, "--threads", str(threads or 0)], capture_output=True,
                         text=True, env=env, cwd=ROOT)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode != 0 or not lines:
        raise SystemExit(f"worker {argv[:2]} failed (exit {out.returncode}):\n{(out.stdout + out.stderr)[-4000:]}")
    return json.loads(lines[-1])


# ----------------------------------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default=None, help="tiny (default), or smollm2-135m with --real")
    ap.add_argument("--trajectories", type=int, default=160, help="SFT trajectories per epoch (a shuffled subset)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--recipe-teacher", action="store_true",
                    help="SFT trajectories from the recipe's own teacher settings (default: the teacher's defaults)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (the machine may be shared)")
    ap.add_argument("--modes", default="padded,packed,padding_free,packed_masked",
                    help=f"comma list of {','.join(MODES)}")
    ap.add_argument("--pack-length", type=int, default=1024,
                    help="packed row length (sft.max_length; >= filter.max_tokens, so bfd truncates nothing)")
    ap.add_argument("--pack-batch", type=int, default=0,
                    help="packed rows per step; 0: the padded run's real tokens per step / --pack-length")
    ap.add_argument("--grpo-steps", type=int, default=3, help="GRPO steps (the first is a warm-up); 0 skips")
    ap.add_argument("--real", action="store_true",
                    help="the real model of --recipe (default smollm2-135m): before/after settings, not the SFT modes")
    ap.add_argument("--worker", choices=["sft", "grpo", "real_sft", "real_grpo"], help=argparse.SUPPRESS)
    ap.add_argument("--mode", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    args = ap.parse_args()

    args.recipe = args.recipe or ("smollm2-135m" if args.real or (args.worker or "").startswith("real") else "tiny")
    _quiet(args.threads)
    if args.worker == "real_sft":
        print(json.dumps(worker_real_sft(Path(args.data), args.recipe, args.mode)))
        return
    if args.worker == "real_grpo":
        print(json.dumps(worker_real_grpo(Path(args.data), args.recipe, args.mode, args.grpo_steps)))
        return
    if args.real:
        if args.trajectories == 160:
            args.trajectories = 48
        if args.repeats == 3:
            args.repeats = 1
        real_main(args)
        return
    if args.worker == "sft":
        print(json.dumps(worker_sft(Path(args.data), args.recipe, args.mode, args.pack_length, args.pack_batch)))
        return
    if args.worker == "grpo":
        print(json.dumps(worker_grpo(args.recipe, args.grpo_steps)))
        return

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if "padded" not in modes or not ({"packed", "padding_free"} & set(modes)):
        raise SystemExit("--modes needs padded and at least one of packed, padding_free")
    for m in modes:
        sft_overrides(m, args.pack_length, args.pack_batch)  # validates the name
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        stats = prepare(data, args.recipe, args.trajectories, args.recipe_teacher)
        if args.pack_batch <= 0:
            args.pack_batch = max(1, round(load_bs(args.recipe) * stats["tokens"] / stats["n"] / args.pack_length))
        common = ["--recipe", args.recipe, "--pack-length", str(args.pack_length), "--pack-batch", str(args.pack_batch)]
        runs: dict[str, list[dict]] = {m: [] for m in modes}
        for rep in range(args.repeats):
            order = modes if rep % 2 == 0 else modes[::-1]
            for m in order:
                runs[m].append(_run_worker(["--worker", "sft", "--mode", m, "--data", str(data), *common],
                                           args.threads))
    grpo, grpo_error = None, None
    if args.grpo_steps > 0:
        try:
            grpo = _run_worker(["--worker", "grpo", "--recipe", args.recipe, "--grpo-steps", str(args.grpo_steps)],
                               args.threads)
        except SystemExit as err:  # still print the SFT figures
            grpo_error = str(err).splitlines()[-1][:300]

    def med(m: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[m])

    ratios = {m: [runs[m][i]["tokens_per_s"] / runs["padded"][i]["tokens_per_s"] for i in range(args.repeats)]
              for m in modes}
    headline = "packed" if "packed" in modes else "padding_free"
    speedup = statistics.median(ratios[headline])

    teacher = "the recipe's teacher settings" if args.recipe_teacher else "the teacher's default mix"
    print(f"SFT: {stats['n']} reference-teacher trajectories ({teacher}) of recipe {args.recipe!r} ({stats['tokens']} tokens, "
          f"{stats['trained_tokens']} trained; length min/median/max {stats['min']}/{stats['median']:.0f}/"
          f"{stats['max']}), one epoch, {args.repeats} repeats (median), torch threads={args.threads}, CPU")
    header = (f"{'mode':<14}{'batch':>16}{'steps':>7}{'tokens':>8}{'tokens/s':>10}{'x padded':>10}"
              f"{'peak RSS MB':>13}{'RSS +MB':>9}{'loss':>8}")
    print(header)
    print("-" * len(header))
    bs = load_bs(args.recipe)
    for m in modes:
        batch = {"padded": f"{bs} padded rows", "packed": f"{args.pack_batch} x {args.pack_length} tok",
                 "padding_free": f"{bs} in 1 row", "packed_masked": f"{args.pack_batch} x {args.pack_length} tok"}[m]
        print(f"{m:<14}{batch:>16}{runs[m][0]['steps']:>7d}{runs[m][0]['tokens']:>8d}{med(m, 'tokens_per_s'):>10.0f}"
              f"{statistics.median(ratios[m]):>10.2f}{med(m, 'peak_rss_mb'):>13.0f}{med(m, 'rss_growth_mb'):>9.0f}"
              f"{med(m, 'train_loss'):>8.3f}")
    print("per-repeat tokens/s: " + "; ".join(f"{m} " + ", ".join(f"{r['tokens_per_s']:.0f}" for r in runs[m])
                                              for m in modes))
    print(f"{headline}/padded tokens/s: {speedup:.2f}x (goal >= 1.5x); per repeat: "
          + ", ".join(f"{x:.2f}" for x in ratios[headline]))

    out = {"metric": "sft_packed_speedup", "value": round(speedup, 3), "goal": 1.5, "headline_mode": headline,
           "device": "cpu", "threads": args.threads, "repeats": args.repeats, "trajectories": stats["n"],
           "teacher": "recipe" if args.recipe_teacher else "default",
           "tokens_per_epoch": stats["tokens"], "pack_length": args.pack_length, "pack_batch": args.pack_batch,
           "per_repeat_ratios": {m: [round(x, 3) for x in ratios[m]] for m in modes if m != "padded"}}
    for m in modes:
        out[f"{m}_tokens_per_s"] = round(med(m, "tokens_per_s"), 1)
        out[f"{m}_peak_rss_mb"] = round(med(m, "peak_rss_mb"), 1)
        out[f"{m}_rss_growth_mb"] = round(med(m, "rss_growth_mb"), 1)
    if grpo:
        warm = grpo["steps"][1:] or grpo["steps"]
        g = {k: statistics.median(s[k] for s in warm) for k in warm[0]}
        opt = g["step_s"] - g["wall_s"]
        print(f"GRPO step (policy {grpo['model']}, {int(g['n'])} completions, {int(g['policy_tokens'])} policy tokens, "
              f"{int(g['code_calls'])} code calls; median of {len(warm)} steps after a warm-up):")
        print(f"  step {g['step_s']:.2f}s = rollout {g['wall_s']:.2f}s [generation {g['gen_s']:.2f}s, execution "
              f"{g['exec_s']:.2f}s (overlaps generation)] + optimisation {opt:.2f}s (rewards, reference "
              f"log-probs, loss, backward, optimizer)")
        out.update({"grpo_step_s": round(g["step_s"], 3), "grpo_rollout_s": round(g["wall_s"], 3),
                    "grpo_generation_s": round(g["gen_s"], 3), "grpo_execution_s": round(g["exec_s"], 3),
                    "grpo_optimisation_s": round(opt, 3), "grpo_completions": int(g["n"])})
    if grpo_error:
        print(f"GRPO step: failed: {grpo_error}")
        out["grpo_error"] = grpo_error
    print(f"total bench time {time.perf_counter() - t_start:.0f}s")
    print(json.dumps(out))


def load_bs(recipe_name: str) -> int:
    from r1ci_core.config import load_recipe

    return int(load_recipe(recipe_name).sft.trl.get("per_device_train_batch_size", 8))


if __name__ == "__main__":
    main()
