"""r1ci training core: tasks, sandbox, rollouts, SFT, GRPO and evaluation (no Dagster imports)."""

__version__ = "0.1.0"
