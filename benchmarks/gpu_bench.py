"""GPU speed: SFT MFU and rollout generation, a plain transformers baseline and r1ci's own path side by side.

    python benchmarks/gpu_bench.py [--shape 0.5b] [--sections sft,gen] [--batch 8] [--r1ci-batch 8]
                                   [--seq 2048] [--steps 10] [--gen-batch 64] [--new-tokens 256]

Needs a CUDA GPU; elsewhere it prints why it measured nothing, a JSON line with "value": null, and exits 0.
Prints a table naming the card, then as its LAST line one JSON object {"metric": "gpu_sft_mfu", ...}.

Models: Qwen2.5-shaped (`--shape 0.5b` / `1.5b`: the published config numbers, 151,936-token vocabulary,
tied embeddings), random weights, bf16 weights, SDPA attention, fused AdamW.

* SFT, plain: a `transformers` loop (`model(input_ids, labels)`, backward, `AdamW(fused=True)`), rows of
  `--seq` random tokens, `--batch` rows, no packing: the issue's anchor setup.
* SFT, r1ci: the SFT stage's own path (`r1ci_core.launch.train_sft` -> `sft.train_sft` -> TRL `SFTTrainer`)
  on synthetic multi-turn conversations of `--seq`/2 to `--seq` tokens, with recipe settings only:
  `bf16`, `optim: adamw_torch_fused`, `packing` into `--seq`-token rows (`--r1ci-batch` rows a step),
  TRL's chunked LM head (no full 152k-vocab logits), Liger's RoPE/RMSNorm/SwiGLU kernels when
  `liger_kernel` is installed (`use_liger_kernel`), flash-attention-2 varlen when `flash_attn` is installed,
  else r1ci's `sdpa_varlen` (attention per packed sample).
* MFU = (6 N + 12 L h s) tokens/s / peak, N = parameters (tied embedding once), L layers, h hidden size,
  s the sequence each token attends in (the row for plain rows; each packed sample's own length for r1ci),
  peak = the card's dense bf16 FLOP/s (table below, or `--peak-tflops`).
* Generation: `--gen-batch` prompts of 128 random tokens, `--new-tokens` sampled tokens each (temperature 1):
  plain `model.generate` with the default cache and with `cache_implementation="static"`; r1ci's
  transformers rollout backend (`TransformersBackend.generate`, its per-token turn stopper included) as is,
  and with the model's `generation_config.cache_implementation = "static"`.

Bring-along for a machine without a package index (torch + transformers present): wheels of trl,
datasets (and their pure-Python deps), pydantic, pyyaml, optionally liger-kernel; see the README.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Qwen2.5 config numbers (config.json of Qwen/Qwen2.5-0.5B and -1.5B)
SHAPES = {
    "0.5b": dict(hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                 intermediate_size=4864, vocab_size=151936),
    "1.5b": dict(hidden_size=1536, num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2,
                 intermediate_size=8960, vocab_size=151936),
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                 intermediate_size=128, vocab_size=4096),  # smoke tests of this script only
}
COMMON = dict(max_position_embeddings=32768, rope_theta=1_000_000.0, rms_norm_eps=1e-6, tie_word_embeddings=True,
              hidden_act="silu", use_sliding_window=False)
# dense (no sparsity) bf16 tensor FLOP/s; first match of the device name wins
PEAK_TFLOPS = [("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("GH200", 989.4), ("H200", 989.4), ("H100", 989.4),
               ("H800", 989.4), ("B200", 2250.0), ("A100", 312.0), ("A800", 312.0), ("L40S", 362.1),
               ("L4", 121.0), ("A10G", 70.0), ("RTX 4090", 165.2)]
GOAL_MFU = 0.55
GOAL_GEN = 15_000


def peak_flops(name: str, override: float | None) -> float | None:
    if override:
        return override * 1e12
    for key, tflops in PEAK_TFLOPS:
        if key.lower() in name.lower():
            return tflops * 1e12
    return None


def model_config(shape: str):
    from transformers import Qwen2Config

    return Qwen2Config(**SHAPES[shape], **COMMON)


def n_params(shape: str) -> int:
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(model_config(shape))
    return sum(p.numel() for p in model.parameters())


def flops_per_token(shape: str, n: int, attended: float) -> float:
    s = SHAPES[shape]
    return 6 * n + 12 * s["num_hidden_layers"] * s["hidden_size"] * attended


def build_model(shape: str, device: str, dtype, attn: str = "sdpa"):
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(model_config(shape), dtype=dtype, attn_implementation=attn)
    return model


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _reset_mem(device: str) -> None:
    import torch

    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _peak_gib(device: str) -> float | None:
    import torch

    return torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None


# ----------------------------------------------------------------------------------------------- SFT
def plain_sft(shape: str, device: str, batch: int, seq: int, steps: int, warmup: int) -> dict:
    """The anchor: a plain transformers training loop, bf16 weights, fused AdamW, SDPA, no packing."""
    import torch

    _reset_mem(device)
    model = build_model(shape, device, torch.bfloat16)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=device.startswith("cuda"))
    x = torch.randint(0, SHAPES[shape]["vocab_size"], (batch, seq), device=device)
    t0 = 0.0
    for i in range(warmup + steps):
        if i == warmup:
            _sync(device)
            t0 = time.perf_counter()
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    _sync(device)
    dt = time.perf_counter() - t0
    out = {"tokens_per_s": batch * seq * steps / dt, "attended": float(seq), "peak_gib": _peak_gib(device),
           "batch": f"{batch} x {seq}"}
    del model, opt, x
    _reset_mem(device)
    return out


def _synthetic_trajectories(tokenizer, n: int, seq: int, seed: int = 0) -> list:
    """Multi-turn R1-CI conversations (code, interpreter output, answer) of seq/2..seq tokens."""
    import random

    from r1ci_core.chat import exec_message, prompt_messages, tokenize_conversation
    from r1ci_core.trajectory import Trajectory

    rng = random.Random(seed)

    def words(k: int) -> str:
        return " ".join(str(rng.randint(0, 99999)) for _ in range(k))

    def convo(k: int) -> list[dict[str, str]]:
        q = k // 4
        return [*prompt_messages(f"Compute the sum of {words(q)}"),
                {"role": "assistant", "content": f"I will add them.\n```python\nprint(sum([{words(q)}]))\n```"},
                exec_message(words(q)),
                {"role": "assistant", "content": f"So {words(q)}. The answer is <<<{rng.randint(0, 9)}>>>."}]

    small, large = (len(tokenize_conversation(tokenizer, convo(k))[0]) for k in (8, 400))
    per_word = (large - small) / 392
    out = []
    for i in range(n):
        target = rng.randint(seq // 2, seq - 16)
        k = max(8, 8 + int((target - small) / per_word))
        out.append(Trajectory(item_id=f"syn{i}", family="synthetic", messages=convo(k)))
    return out


def r1ci_sft(shape: str, device: str, batch: int, seq: int, steps: int, warmup: int, tmp: Path) -> dict:
    """r1ci's SFT stage path with GPU recipe settings; tokens/s between the end of step `warmup` and the last."""
    import importlib.util

    import torch
    from transformers import GenerationConfig, TrainerCallback

    import r1ci_core.sft as sft
    from r1ci_core.config import Recipe
    from r1ci_core.launch import train_sft, with_varlen
    from r1ci_core.models import train_tiny_tokenizer
    from r1ci_core.sft import sft_rows

    base = tmp / "base"
    tokenizer = train_tiny_tokenizer([" ".join(str(i) for i in range(k, k + 400)) for k in range(0, 40000, 400)]
                                     + ["print(sum([1, 2])) The answer is <<<3>>>."] * 50, 2048)
    _reset_mem(device)
    model = build_model(shape, device, torch.bfloat16)
    model.config.eos_token_id, model.config.pad_token_id = tokenizer.eos_token_id, tokenizer.pad_token_id
    model.generation_config = GenerationConfig(eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    model.save_pretrained(base)
    tokenizer.save_pretrained(base)
    del model
    gc.collect()

    n_rows = (warmup + steps + 2) * batch
    trajectories = _synthetic_trajectories(tokenizer, int(n_rows * 1.6), seq)
    lengths = [min(len(r["input_ids"]), seq) for r in sft_rows(trajectories, tokenizer)]
    attended = sum(n * n for n in lengths) / sum(lengths)
    liger = importlib.util.find_spec("liger_kernel") is not None
    flash = importlib.util.find_spec("flash_attn") is not None and device.startswith("cuda")
    on_gpu = device.startswith("cuda")
    section = {"max_steps": warmup + steps, "per_device_train_batch_size": batch, "packing": True,
               "max_length": seq, "bf16": on_gpu, "optim": "adamw_torch_fused" if on_gpu else "adamw_torch",
               "learning_rate": 1e-5, "warmup_steps": 0, "save_strategy": "no", "logging_steps": 10_000,
               "gradient_checkpointing": False, "include_num_input_tokens_seen": "non_padding",
               "use_liger_kernel": liger, "dataloader_num_workers": 2 if on_gpu else 0, "report_to": "none",
               "disable_tqdm": True}
    recipe = Recipe.model_validate({"name": "gpu_bench", "seed": 0, "sft": section, "model": {
        "name_or_path": str(base), "dtype": "bfloat16", "attn_implementation": "flash_attention_2" if flash else None}})
    attn = with_varlen(recipe).model.attn_implementation or "sdpa"

    marks: dict[int, tuple[float, int]] = {}

    class StepClock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):  # noqa: ANN001
            _sync(device)
            marks[state.global_step] = (time.perf_counter(), int(state.num_input_tokens_seen))

    sft.mlflow_callback = StepClock  # the bench's only hook (also keeps MLflow out of the GPU machine)
    _reset_mem(device)
    train_sft(recipe, trajectories, str(base), tmp / "out", tmp / "work")
    (t0, k0), (t1, k1) = marks[warmup], marks[warmup + steps]
    return {"tokens_per_s": (k1 - k0) / (t1 - t0), "attended": attended, "peak_gib": _peak_gib(device),
            "batch": f"{batch} x {seq} packed", "attn": attn, "liger": liger}


# ----------------------------------------------------------------------------------------------- generation
def generation(shape: str, device: str, batch: int, new_tokens: int, prompt_len: int = 128) -> dict:
    import torch

    from r1ci_core.models import train_tiny_tokenizer
    from r1ci_core.rollout.backends.base import GenRequest, SamplingParams
    from r1ci_core.rollout.backends.transformers import TransformersBackend

    tokenizer = train_tiny_tokenizer([" ".join(str(i) for i in range(k, k + 200)) for k in range(0, 20000, 200)],
                                     1024)
    _reset_mem(device)
    model = build_model(shape, device, torch.bfloat16).eval()
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    g = torch.Generator().manual_seed(0)
    prompts = torch.randint(3, len(tokenizer), (batch, prompt_len), generator=g)
    x = prompts.to(device)
    mask = torch.ones_like(x)
    out: dict[str, dict] = {}

    def plain(static: bool, n: int) -> float:
        kw = {"cache_implementation": "static"} if static else {}
        _sync(device)
        t = time.perf_counter()
        with torch.no_grad():
            y = model.generate(input_ids=x, attention_mask=mask, do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
                               max_new_tokens=n, min_new_tokens=n, pad_token_id=tokenizer.pad_token_id, **kw)
        _sync(device)
        return (y.shape[1] - prompt_len) * batch / (time.perf_counter() - t)

    backend = TransformersBackend(model=model, tokenizer=tokenizer)
    requests = [GenRequest(messages=[], max_new_tokens=new_tokens, prompt_ids=p.tolist(), stop_on_turn=False)
                for p in prompts]

    def r1ci(n: int) -> float:
        reqs = [GenRequest(messages=[], max_new_tokens=n, prompt_ids=r.prompt_ids, stop_on_turn=False)
                for r in requests]
        _sync(device)
        t = time.perf_counter()
        res = backend.generate(reqs, SamplingParams(temperature=1.0, top_p=1.0, seed=0))
        _sync(device)
        return sum(len(r.token_ids or []) for r in res) / (time.perf_counter() - t)

    for name, fn in (("plain, default cache", lambda n: plain(False, n)),
                     ("plain, static cache", lambda n: plain(True, n)),
                     ("r1ci backend", r1ci)):
        try:
            fn(16)  # warm-up (and static-cache allocation)
            out[name] = {"tokens_per_s": fn(new_tokens)}
        except Exception as err:  # noqa: BLE001 - report and go on
            out[name] = {"error": f"{type(err).__name__}: {str(err).splitlines()[0][:160]}"}
    try:
        model.generation_config.cache_implementation = "static"
        r1ci(16)
        out["r1ci backend, static cache"] = {"tokens_per_s": r1ci(new_tokens)}
    except Exception as err:  # noqa: BLE001
        out["r1ci backend, static cache"] = {"error": f"{type(err).__name__}: {str(err).splitlines()[0][:160]}"}
    finally:
        model.generation_config.cache_implementation = None
    return out


# ----------------------------------------------------------------------------------------------- main
def missing(modules: list[str]) -> list[str]:
    import importlib.util

    return [m for m in modules if importlib.util.find_spec(m) is None]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", choices=sorted(SHAPES), default="0.5b")
    ap.add_argument("--sections", default="sft,gen", help="comma list of sft, gen")
    ap.add_argument("--batch", type=int, default=8, help="plain loop: rows of --seq tokens")
    ap.add_argument("--r1ci-batch", type=int, default=8, help="r1ci SFT: packed rows of --seq tokens per step")
    ap.add_argument("--seq", type=int, default=2048)
    ap.add_argument("--steps", type=int, default=10, help="timed steps (after --warmup)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--gen-batch", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=256)
    ap.add_argument("--peak-tflops", type=float, help="the card's dense bf16 TFLOP/s, when not in the table")
    ap.add_argument("--device", default="cuda", help=argparse.SUPPRESS)  # 'cpu': smoke-test this script only
    args = ap.parse_args()

    import logging
    import warnings

    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    try:
        from datasets.utils.logging import disable_progress_bar
        from transformers.utils import logging as hf_logging

        disable_progress_bar()
        hf_logging.disable_progress_bar()
    except ImportError:
        pass

    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        why = (f"no CUDA GPU here (torch {torch.__version__}, CUDA build {torch.version.cuda or 'none'}, "
               f"{platform.machine()}): nothing measured")
        print(f"gpu_bench: {why}. Run it on a machine with an NVIDIA GPU: python benchmarks/gpu_bench.py")
        print(json.dumps({"metric": "gpu_sft_mfu", "value": None, "goal": GOAL_MFU, "skipped": why,
                          "rollout_tokens_per_s": None, "rollout_goal": GOAL_GEN}))
        return 0
    card = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else f"CPU ({platform.processor()})"
    peak = peak_flops(card, args.peak_tflops)
    versions = {m: getattr(__import__(m), "__version__", "?") for m in ("torch", "transformers")
                if not missing([m])}
    for m in ("trl", "accelerate", "liger_kernel", "flash_attn"):
        versions[m] = "-" if missing([m]) else getattr(__import__(m), "__version__", "installed")
    n = n_params(args.shape)
    print(f"card: {card}; peak bf16 dense {peak / 1e12 if peak else float('nan'):.1f} TFLOP/s; shape Qwen2.5-{args.shape} "
          f"({n / 1e6:.0f}M parameters, tied embeddings, vocab {SHAPES[args.shape]['vocab_size']}); "
          + ", ".join(f"{k} {v}" for k, v in versions.items()))

    rows: list[tuple[str, str, dict]] = []
    sft_res: dict[str, dict] = {}
    gen_res: dict[str, dict] = {}
    if "sft" in sections:
        try:
            sft_res["plain"] = plain_sft(args.shape, args.device, args.batch, args.seq, args.steps, args.warmup)
        except Exception as err:  # noqa: BLE001
            sft_res["plain"] = {"error": f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"}
        need = missing(["trl", "datasets", "pydantic", "yaml", "accelerate"])
        if need:
            sft_res["r1ci"] = {"error": f"r1ci's SFT path needs {need} (bring their wheels; see the README)"}
        else:
            try:
                with tempfile.TemporaryDirectory() as tmp:
                    sft_res["r1ci"] = r1ci_sft(args.shape, args.device, args.r1ci_batch, args.seq, args.steps,
                                               args.warmup, Path(tmp))
            except Exception as err:  # noqa: BLE001
                traceback.print_exc()
                sft_res["r1ci"] = {"error": f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"}
        for name, r in sft_res.items():
            if "tokens_per_s" in r:
                r["mfu"] = (r["tokens_per_s"] * flops_per_token(args.shape, n, r["attended"]) / peak) if peak else None
            rows.append(("SFT", f"{name} ({r.get('batch', '')})", r))
    if "gen" in sections:
        need = missing(["pydantic", "yaml"])
        if need:
            gen_res = {"r1ci backend": {"error": f"r1ci's backend needs {need}"}}
        else:
            gen_res = generation(args.shape, args.device, args.gen_batch, args.new_tokens)
            _reset_mem(args.device)
        for name, r in gen_res.items():
            rows.append(("generation", f"{name} (batch {args.gen_batch}, {args.new_tokens} new)", r))

    header = f"{'':<11}{'setup':<58}{'tokens/s':>11}{'MFU':>8}{'peak GiB':>10}"
    print(header)
    print("-" * len(header))
    for kind, name, r in rows:
        if "error" in r:
            print(f"{kind:<11}{name:<58}  failed: {r['error']}")
            continue
        mfu = f"{r['mfu']:.1%}" if r.get("mfu") is not None else "-"
        mem = f"{r['peak_gib']:.1f}" if r.get("peak_gib") is not None else "-"
        print(f"{kind:<11}{name:<58}{r['tokens_per_s']:>11,.0f}{mfu:>8}{mem:>10}")
    r1 = sft_res.get("r1ci", {})
    if "attn" in r1:
        print(f"r1ci SFT: attention {r1['attn']}, liger kernels {'on' if r1['liger'] else 'off (not installed)'}, "
              f"mean attended length {r1['attended']:.0f}")
    best_gen = max((r.get("tokens_per_s", 0.0) for k, r in gen_res.items() if k.startswith("r1ci")), default=None)
    print(f"goals: r1ci SFT MFU >= {GOAL_MFU:.0%}, r1ci rollout backend >= {GOAL_GEN:,} tokens/s at batch 64 "
          "(0.5b shape, H200)")
    out = {"metric": "gpu_sft_mfu", "value": round(r1["mfu"], 4) if r1.get("mfu") is not None else None,
           "goal": GOAL_MFU, "card": card, "shape": args.shape, "device": args.device,
           "baseline_mfu": round(sft_res["plain"]["mfu"], 4) if sft_res.get("plain", {}).get("mfu") else None,
           "r1ci_sft_tokens_per_s": round(r1["tokens_per_s"]) if "tokens_per_s" in r1 else None,
           "baseline_sft_tokens_per_s": round(sft_res["plain"]["tokens_per_s"])
           if "tokens_per_s" in sft_res.get("plain", {}) else None,
           "rollout_tokens_per_s": round(best_gen) if best_gen else None, "rollout_goal": GOAL_GEN,
           "generation": {k: round(v["tokens_per_s"]) if "tokens_per_s" in v else v.get("error")
                          for k, v in gen_res.items()},
           "versions": versions}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
