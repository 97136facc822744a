"""How the SFT stage runs: in this process, or under `accelerate launch` on several processes.

`train_sft` has the signature of `r1ci_core.sft.train_sft` (what `stages.sft_checkpoint` calls) and reads
three of r1ci's keys of the recipe's `sft:` section (typed fields of `config.SftSection`, not
`trl.SFTConfig` fields):

* ``num_processes`` (default 1): above 1, the stage runs ``accelerate launch --config_file
  recipes/accelerate/<accelerate_config>.yaml --num_processes N -m r1ci_core.launch sft <spec>`` as a
  subprocess: every rank trains (DDP / FSDP / DeepSpeed, per the config), rank 0 writes the checkpoint and
  the figures, and its per-step logs go to the stage's MLflow run. The subprocess's output (its own r1ci
  log lines, accelerate's and the trainer's) is re-logged here line by line at INFO as ``[accelerate] ...``,
  so it reaches the Dagster run page with the stage's other lines. (Dagster Pipes would need the
  subprocess to speak Dagster's protocol, and this module does not import Dagster.)
* ``accelerate_config`` (default ``ddp``): a file name in ``recipes/accelerate/`` (``ddp``, ``fsdp``,
  ``zero2``, ``zero3``) or a path to an accelerate YAML. The ``ddp`` config runs on CPU too (gloo).
* ``varlen_attention`` (default true): with ``packing`` or ``padding_free`` (TRL flattens a batch into one
  row, sequences told apart by ``position_ids``/``cu_seq_lens``) and sdpa attention (``model.attn_implementation``
  unset or ``sdpa``), attention runs per packed sequence (`sdpa_varlen`) instead of over the whole row under a
  block-diagonal mask: the same result, a fraction of the attention work. Flash-attention users
  (``model.attn_implementation: flash_attention_2``) already get varlen kernels and are left alone.
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from .config import RECIPES_DIR, Recipe, RecipeError
from .lineage import active_target, resumed_run
from .trajectory import Trajectory

log = logging.getLogger(__name__)

ACCELERATE_DIR = RECIPES_DIR / "accelerate"
VARLEN = "sdpa_varlen"


# ------------------------------------------------------------------------------ packed-sequence attention
def sdpa_varlen_attention_forward(module: Any, query: Any, key: Any, value: Any, attention_mask: Any,
                                  dropout: float = 0.0, scaling: float | None = None,
                                  is_causal: bool | None = None, **kwargs: Any) -> tuple[Any, None]:
    """sdpa, per packed sequence when the batch is one padding-free row; else exactly transformers' sdpa.

    TRL's padding-free collator passes ``cu_seq_lens_q``/``cu_seq_lens_k`` (sequence starts in the
    flattened row, from ``position_ids == 0``). Each sequence then attends causally to itself only, which
    is what transformers' sdpa path computes with its block-diagonal mask, without the cross-sequence work.
    """
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    cu_q, cu_k = kwargs.get("cu_seq_lens_q"), kwargs.get("cu_seq_lens_k")
    causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    if (cu_q is None or cu_k is None or query.shape[0] != 1 or query.shape[2] != key.shape[2] or not causal
            or kwargs.get("sliding_window") or kwargs.get("softcap") is not None
            or kwargs.get("position_bias") is not None or not torch.equal(cu_q, cu_k)
            or int(cu_q[-1]) != query.shape[2]):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, is_causal=is_causal, **kwargs)
    n_rep = getattr(module, "num_key_value_groups", 1)
    if n_rep > 1:  # repeat_kv once (sdpa's enable_gqa falls back to the slow math kernel on CPU)
        b, h, t, d = key.shape
        key = key[:, :, None].expand(b, h, n_rep, t, d).reshape(b, h * n_rep, t, d)
        value = value[:, :, None].expand(b, h, n_rep, t, d).reshape(b, h * n_rep, t, d)
    bounds = cu_q.tolist()
    outs = []
    for start, end in zip(bounds[:-1], bounds[1:], strict=True):
        if end > start:
            outs.append(torch.nn.functional.scaled_dot_product_attention(
                query[:, :, start:end], key[:, :, start:end], value[:, :, start:end],
                dropout_p=dropout, scale=scaling, is_causal=end - start > 1))
    out = torch.cat(outs, dim=2)
    return out.transpose(1, 2).contiguous(), None


def register_varlen_attention() -> str:
    """Make ``attn_implementation="sdpa_varlen"`` loadable (idempotent); returns the name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(VARLEN, sdpa_varlen_attention_forward)
    AttentionMaskInterface.register(VARLEN, sdpa_mask)  # the masks it falls back to are sdpa's
    return VARLEN


# ------------------------------------------------------------------------------ recipe keys
def with_varlen(recipe: Recipe) -> Recipe:
    """`recipe` with `model.attn_implementation: sdpa_varlen` where `sft.varlen_attention` applies (packed
    or padding-free batches under sdpa); else `recipe` itself."""
    trl = recipe.sft.trl
    packed = bool(trl.get("packing")) or bool(trl.get("padding_free"))  # TRL fields, TRL's default False
    if recipe.sft.varlen_attention and packed and recipe.model.attn_implementation in (None, "sdpa"):
        return recipe.model_copy(update={"model": recipe.model.model_copy(update={"attn_implementation": VARLEN})})
    return recipe


def accelerate_config_path(name: str) -> Path:
    """`ddp` -> recipes/accelerate/ddp.yaml; a .yaml path is used as is."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise RecipeError(f"sft.accelerate_config: {path} not found")
        return path.resolve()
    candidate = ACCELERATE_DIR / f"{name}.yaml"
    if not candidate.is_file():
        known = sorted(p.stem for p in ACCELERATE_DIR.glob("*.yaml"))
        raise RecipeError(f"sft.accelerate_config: unknown config {name!r}; choose one of {known} or give a YAML path")
    return candidate


def accelerate_command(spec: Path, num_processes: int, config: str, port: int | None = None) -> list[str]:
    """The `accelerate launch` command line that runs the SFT stage's spec on `num_processes` processes."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(accelerate_config_path(config)),
           "--num_processes", str(num_processes)]
    if port is not None:
        cmd += ["--main_process_port", str(port)]
    return [*cmd, "-m", "r1ci_core.launch", "sft", str(spec)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------------------ the stage entry point
def train_sft(recipe: Recipe, trajectories: list[Trajectory], base_path: str, out_dir: Path,
              work_dir: Path) -> dict[str, Any]:
    """`r1ci_core.sft.train_sft`, on `sft.num_processes` processes through `accelerate launch` when above 1."""
    plain, n = with_varlen(recipe), recipe.sft.num_processes
    if n <= 1:
        return _train_here(plain, trajectories, base_path, Path(out_dir), Path(work_dir))
    accelerate_config_path(recipe.sft.accelerate_config)  # fail early on a bad name
    return launch_sft(plain, trajectories, base_path, Path(out_dir), Path(work_dir),
                      num_processes=n, config=recipe.sft.accelerate_config)


def _train_here(recipe: Recipe, trajectories: list[Trajectory], base_path: str, out_dir: Path,
                work_dir: Path) -> dict[str, Any]:
    from .sft import train_sft as sft_train

    if recipe.model.attn_implementation == VARLEN:
        register_varlen_attention()
    return sft_train(recipe, trajectories, base_path, out_dir, work_dir)


def launch_sft(recipe: Recipe, trajectories: list[Trajectory], base_path: str, out_dir: Path, work_dir: Path, *,
               num_processes: int, config: str = "ddp", env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run SFT under `accelerate launch` (a subprocess, waited for); returns rank 0's figures.

    `recipe` is the one to train (see `with_varlen`). Inputs go to `work_dir/launch/`; an active MLflow
    run receives rank 0's per-step logs.
    """
    from .io import atomic_write_text

    if not trajectories:
        raise ValueError("the SFT dataset is empty: the filter kept no trajectory (check teacher scores and filter limits)")
    spec_dir = work_dir / "launch"
    spec_dir.mkdir(parents=True, exist_ok=True)
    figures_path = spec_dir / "figures.json"
    figures_path.unlink(missing_ok=True)
    atomic_write_text(spec_dir / "trajectories.jsonl",
                      "".join(json.dumps(t.to_row()) + "\n" for t in trajectories))
    spec = {"recipe": recipe.model_dump(mode="json"), "trajectories": str(spec_dir / "trajectories.jsonl"),
            "base_path": str(base_path), "out_dir": str(Path(out_dir).resolve()),
            "work_dir": str(Path(work_dir).resolve()), "figures": str(figures_path), "mlflow": active_target()}
    atomic_write_text(spec_dir / "spec.json", json.dumps(spec, indent=1))
    cmd = accelerate_command(spec_dir / "spec.json", num_processes, config, port=_free_port())
    run_env = {**os.environ, **(env or {})}
    root = str(Path(__file__).resolve().parent.parent)
    run_env["PYTHONPATH"] = os.pathsep.join(p for p in (root, run_env.get("PYTHONPATH")) if p)
    log.info("SFT on %d processes: %s", num_processes, " ".join(cmd))
    tail: collections.deque[str] = collections.deque(maxlen=60)
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=run_env) as proc:
        assert proc.stdout is not None
        # lines end at "\n" only: a progress bar redrawn with "\r" is one line, logged once in its last state
        for raw in io.TextIOWrapper(proc.stdout, encoding="utf-8", errors="replace", newline="\n"):
            line = last_frame(raw)
            if line:
                tail.append(line)
                log.info("[accelerate] %s", line)
        code = proc.wait()
    if code != 0 or not figures_path.is_file():
        raise RuntimeError(f"SFT under `accelerate launch --num_processes {num_processes}` failed (exit {code}):\n"
                           + "\n".join(tail))
    return json.loads(figures_path.read_text())


def last_frame(line: str) -> str:
    """What a terminal shows of one output line: the text after its last carriage return, right-stripped."""
    frames = [f for f in line.rstrip("\n").split("\r") if f.strip()]
    return frames[-1].rstrip() if frames else ""


# ------------------------------------------------------------------------------ inside accelerate launch
def _rank() -> int:
    return int(os.environ.get("RANK", os.environ.get("PROCESS_INDEX", "0")))


def run_spec(spec_path: Path) -> dict[str, Any] | None:
    """One rank's part of `launch_sft`: every rank trains; rank 0 saves the checkpoint and writes the figures."""
    from .io import atomic_write_text

    spec = json.loads(Path(spec_path).read_text())
    recipe = Recipe.model_validate(spec["recipe"])
    with open(spec["trajectories"]) as fh:
        trajectories = [Trajectory.from_row(json.loads(line)) for line in fh if line.strip()]
    rank = _rank()
    work_dir = Path(spec["work_dir"])
    # save_final runs on every rank (FSDP/ZeRO-3 gather the weights collectively); only rank 0's is the artifact
    out_dir = Path(spec["out_dir"]) if rank == 0 else work_dir / "launch" / f"rank{rank}-discard"
    with resumed_run(spec.get("mlflow") if rank == 0 else None):  # rank 0 logs into the stage's run
        figures = _train_here(recipe, trajectories, spec["base_path"], out_dir, work_dir)
    if rank == 0:
        figures = {**figures, "num_processes": int(os.environ.get("WORLD_SIZE", "1"))}
        atomic_write_text(Path(spec["figures"]), json.dumps(figures))
        return figures
    shutil.rmtree(out_dir, ignore_errors=True)
    return None


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m r1ci_core.launch",
                                 description="a stage's part inside `accelerate launch` (see r1ci_core.launch)")
    ap.add_argument("stage", choices=["sft"])
    ap.add_argument("spec", type=Path)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_spec(args.spec)


if __name__ == "__main__":
    main()
