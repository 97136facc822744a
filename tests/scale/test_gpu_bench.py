"""benchmarks/gpu_bench.py exits cleanly, saying why, where there is no GPU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_bench_without_a_gpu() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: run benchmarks/gpu_bench.py itself")
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_bench.py")], capture_output=True, text=True,
                         timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    assert "no CUDA GPU" in lines[0]
    result = json.loads(lines[-1])
    assert result["metric"] == "gpu_sft_mfu" and result["value"] is None and "no CUDA GPU" in result["skipped"]
