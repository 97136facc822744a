"""Which prompts a GRPO step trains on: dynamic sampling (DAPO's group filter) and the online family mix.

TRL's dataloader hands each step its rows (every prompt repeated `num_generations` times); `StepBatch.prepare`
may replace them before TRL rolls them out and scores them:

* Online difficulty (`curriculum.online`): the step's prompts are drawn by family from the rows of the same
  curriculum stage, with weight max(floor, 4p(1-p)) of each family's pass rate p, which every group
  generated updates (`curriculum.OnlineDifficulty`).
* Dynamic sampling (`grpo.dynamic_sampling`): the rows are rolled out here; a group whose rewards all agree
  (zero advantage: no learning signal) is dropped and a fresh prompt of the same stage, not yet in the batch,
  rolled out in its place, for at most `max_rounds` extra generation rounds. Groups still uniform then fill
  the batch and are masked from the loss by the trainer. The trajectories are handed to the rollout function
  (`prepared`), so TRL scores and trains on exactly these.

Groups are taken to be local to a process (`per_device_train_batch_size` a multiple of `num_generations`,
as in the recipes): each process refills its own groups.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from typing import Any

from .config import DynamicSamplingConfig
from .rewards import total_rewards

log = logging.getLogger(__name__)


def reward_totals(funcs: Sequence[Any], weights: Sequence[float], trajs: Sequence[Any],
                  rows: Sequence[dict[str, Any]]) -> list[float | None]:
    """The weighted reward of each trajectory as TRL computes it: the rollout's fields plus the dataset row's
    columns (as TRL passes them to reward functions)."""
    columns = {k: [r[k] for r in rows] for k in rows[0] if k not in ("prompt", "completion", "completion_ids")}
    fields = {"score": [t.score for t in trajs], "parseable": [t.parseable for t in trajs],
              "infra_error": [t.infra_error for t in trajs], "n_turns": [t.n_turns for t in trajs],
              "n_code_calls": [t.n_code_calls for t in trajs]}
    return total_rewards(funcs, weights, prompts=[r["prompt"] for r in rows], completions=[None] * len(trajs),
                         **{**columns, **fields})


def is_uniform(totals: Sequence[float | None]) -> bool:
    """True when a group's rewards all agree (fewer than two scored ones count as agreeing)."""
    vals = [v for v in totals if v is not None]
    return len(vals) < 2 or max(vals) - min(vals) < 1e-9


def uniform_groups(totals: Sequence[float | None], g: int) -> list[int]:
    """Start index of every group of `g` consecutive rewards that all agree."""
    return [s for s in range(0, len(totals) - g + 1, g) if is_uniform(totals[s:s + g])]


class StepBatch:
    """Chooses and (with dynamic sampling) rolls out the prompts of each GRPO step; see the module doc.

    `rows` are the dataset rows (`prompt`, `item_id`, `stage`); `items` maps item ids to `Item`s;
    `generate(items, trainer)` rolls out one trajectory per given item (the rollout function's engine).
    """

    def __init__(self, rows: Sequence[dict[str, Any]], items: dict[str, Any], generate: Any, rewards: tuple[list, list],
                 dynamic: DynamicSamplingConfig, online: Any = None, seed: int = 0):
        self.rows, self.items, self.generate = list(rows), items, generate
        self.funcs, self.weights = rewards
        self.dynamic, self.online, self.seed = dynamic, online, seed
        self.last: dict[str, Any] = {}  # the latest step's figures (what `metrics` logs)

    @property
    def active(self) -> bool:
        return self.dynamic.enabled or self.online is not None

    def prepare(self, inputs: list[dict[str, Any]], trainer: Any) -> tuple[list[dict[str, Any]], list[Any] | None]:
        """The rows this step trains on and, with dynamic sampling, their trajectories (else None: TRL's
        rollout function generates them)."""
        g = trainer.num_generations
        heads = [inputs[i] for i in range(0, len(inputs), g)]
        step = int(trainer.state.global_step)
        rng = random.Random(f"{self.seed}:{step}:{getattr(trainer, '_step', 0)}")
        pool = self._pool(heads)
        if self.online is not None:
            heads = self.online.draw(pool, len(heads), rng, family=self._family) or heads
        self.last = {"dropped": 0, "rounds": 0, "masked": 0, "prompt_ids": [h["item_id"] for h in heads]}
        if not self.dynamic.enabled:
            return _repeat(heads, g), None
        kept, dropped = self._roll(heads, trainer)
        used = {h["item_id"] for h in heads}
        rounds = 0
        while len(kept) < len(heads) and rounds < self.dynamic.max_rounds:
            fresh = [r for r in pool if r["item_id"] not in used]
            fresh = (self.online.draw(fresh, len(heads) - len(kept), rng, family=self._family) if self.online
                     else rng.sample(fresh, min(len(fresh), len(heads) - len(kept))))
            if not fresh:
                break
            rounds += 1
            used.update(r["item_id"] for r in fresh)
            more_kept, more_dropped = self._roll(fresh, trainer)
            kept += more_kept
            dropped += more_dropped
        n_dropped = len(dropped)
        masked = dropped[: len(heads) - len(kept)]  # uniform groups that fill what refilling could not
        final = kept + masked
        self.last.update(dropped=n_dropped - len(masked), rounds=rounds, masked=len(masked),
                         prompt_ids=[h["item_id"] for h, _ in final])
        if n_dropped:
            log.info("dynamic sampling: %d uniform groups, %d replaced by fresh prompts in %d extra rounds, %d kept "
                     "masked", n_dropped, n_dropped - len(masked), rounds, len(masked))
        return _repeat([h for h, _ in final], g), [t for _, trajs in final for t in trajs]

    def metrics(self) -> dict[str, float]:
        """The latest step's figures as trainer metrics (TRL logs them; `training.mlflow_callback` sends them on)."""
        out: dict[str, float] = {}
        if self.dynamic.enabled and self.last:
            out.update({"dynamic_sampling/dropped_groups": float(self.last["dropped"]),
                        "dynamic_sampling/rounds": float(self.last["rounds"]),
                        "dynamic_sampling/masked_groups": float(self.last["masked"])})
        if self.online is not None:
            for fam, w in self.online.weights().items():
                out[f"online_mix/{fam}"] = w
                out[f"online_pass_rate/{fam}"] = self.online.pass_rate[fam]
        return out

    def observe(self, trajs: Sequence[Any], g: int) -> None:
        """Fold every group's scores into the online pass rates (groups of `g` consecutive trajectories)."""
        if self.online is None:
            return
        for s in range(0, len(trajs) - g + 1, g):
            self.online.update(trajs[s].family, [t.score for t in trajs[s:s + g]])

    # ------------------------------------------------------------------ helpers
    def _family(self, row: dict[str, Any]) -> str:
        return self.items[row["item_id"]].family

    def _pool(self, heads: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Rows a fresh prompt may come from: those of the step's curriculum stage, one per item."""
        stages = {h.get("stage") for h in heads}
        seen: set[str] = set()
        pool = []
        for r in self.rows:
            if r.get("stage") in stages and r["item_id"] not in seen:
                seen.add(r["item_id"])
                pool.append(r)
        return pool

    def _roll(self, heads: Sequence[dict[str, Any]], trainer: Any) -> tuple[list, list]:
        """Roll out `heads` (num_generations each): (kept, dropped) lists of (row, group trajectories)."""
        g = trainer.num_generations
        rows = _repeat(list(heads), g)
        trajs = self.generate([self.items[r["item_id"]] for r in rows], trainer)
        self.observe(trajs, g)
        totals = reward_totals(self.funcs, self.weights, trajs, rows)
        kept, dropped = [], []
        for i, head in enumerate(heads):
            group = (head, trajs[i * g:(i + 1) * g])
            (dropped if is_uniform(totals[i * g:(i + 1) * g]) else kept).append(group)
        return kept, dropped


def _repeat(heads: Sequence[dict[str, Any]], g: int) -> list[dict[str, Any]]:
    return [dict(h) for h in heads for _ in range(g)]
