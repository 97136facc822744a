"""The GRPO curriculum of R1-Code-Interpreter: families ordered by improvement potential, trained in stages.

`measure_difficulty` samples the SFT model `k` times per training family (on GRPO-pool questions, with the
rollout engine, code executed) and gives each family its pass rate p and improvement potential 4p(1-p)
(1 at p = 0.5, 0 for families always or never solved). `stage_schedule` sorts the families from high to low
potential and cuts them into `n_stages` groups; `curriculum_items` lays the GRPO prompts out stage after
stage. As in the paper, training "begins with high-potential samples and gradually incorporates
lower-potential ones": stage k draws from groups 1..k (`cumulative`, the default), or from group k alone.
`OnlineDifficulty` (`curriculum.online`) re-estimates the pass rates from GRPO's own groups during training and
draws each step's prompts by family with weight 4p(1-p), beside (or instead of) the offline measurement.
"""

from __future__ import annotations

import json
import logging
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .tasks import Item, resolve_families

log = logging.getLogger(__name__)


def improvement_potential(pass_rate: float) -> float:
    """4p(1-p): how much GRPO can still gain on a family (1 at p = 0.5; 0 when always or never solved)."""
    return 4.0 * pass_rate * (1.0 - pass_rate)


@dataclass
class FamilyDifficulty:
    family: str
    n_samples: int
    n_correct: float
    n_infra_errors: int = 0

    @property
    def pass_rate(self) -> float:
        return self.n_correct / self.n_samples if self.n_samples else 0.0

    @property
    def potential(self) -> float:
        return improvement_potential(self.pass_rate)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "pass_rate": self.pass_rate, "potential": self.potential}


@dataclass
class Stage:
    """One curriculum stage: the families it adds (`families`), those it samples (`pool`), its steps."""

    index: int
    families: list[str]
    steps: int
    potentials: dict[str, float] = field(default_factory=dict)
    pool: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.pool:
            self.pool = list(self.families)


def pass_rates(trajectories: Sequence[Any]) -> dict[str, FamilyDifficulty]:
    """Per family: samples, correct (sum of scores) and infra errors; infra-error samples are not counted."""
    out: dict[str, FamilyDifficulty] = {}
    for traj in trajectories:
        fd = out.setdefault(traj.family, FamilyDifficulty(traj.family, 0, 0.0))
        if traj.infra_error or traj.score is None:
            fd.n_infra_errors += 1
            continue
        fd.n_samples += 1
        fd.n_correct += float(traj.score)
    return out


def stage_schedule(difficulty: Mapping[str, FamilyDifficulty | float], n_stages: int, total_steps: int,
                   stage_steps: Sequence[int] = (), cumulative: bool = True,
                   exclude_settled: bool = False) -> list[Stage]:
    """Families sorted by potential (high first; ties: higher pass rate, then name) cut into stages.

    `difficulty` maps families to a `FamilyDifficulty` or a pass rate. The stages add near-equal groups
    (`min(n_stages, n_families)` of them); with `cumulative` a stage samples every family added so far.
    `stage_steps` gives each stage's optimizer steps; empty = `total_steps` shared evenly (the first
    stages take the remainder). `exclude_settled` leaves out the families of potential 0 (always or never
    solved: every group's rewards agree, so their prompts carry no advantage), unless that leaves none.
    """
    rates = {f: (d.pass_rate if isinstance(d, FamilyDifficulty) else float(d)) for f, d in difficulty.items()}
    if not rates:
        raise ValueError("no family to schedule: the difficulty measurement has no training family")
    if exclude_settled:
        open_ = {f: p for f, p in rates.items() if improvement_potential(p) > 0}
        if open_:
            log.info("%d settled families left out of GRPO (pass rate 0 or 1): %s",
                     len(rates) - len(open_), ", ".join(sorted(set(rates) - set(open_))))
            rates = open_
        else:
            log.warning("curriculum.exclude_settled: every family is settled (pass rate 0 or 1); keeping all")
    order = sorted(rates, key=lambda f: (-improvement_potential(rates[f]), -rates[f], f))
    n = max(1, min(n_stages, len(order)))
    if stage_steps and len(stage_steps) != n:
        raise ValueError(f"curriculum.stage_steps has {len(stage_steps)} entries for {n} stages "
                         f"({len(order)} families, n_stages {n_stages})")
    if not stage_steps and total_steps < n:
        raise ValueError(f"{total_steps} GRPO steps cannot cover {n} curriculum stages: raise grpo.max_steps")
    base, extra = divmod(len(order), n)
    steps = list(stage_steps) or [total_steps // n + (1 if i < total_steps % n else 0) for i in range(n)]
    stages, start = [], 0
    for i in range(n):
        size = base + (1 if i < extra else 0)
        fams = order[start:start + size]
        start += size
        pool = order[:start] if cumulative else fams
        stages.append(Stage(i + 1, fams, int(steps[i]), {f: improvement_potential(rates[f]) for f in fams}, pool))
    return stages


def curriculum_items(items: Sequence[Item], stages: Sequence[Stage], prompts_per_step: int,
                     seed: int = 0) -> list[tuple[int, Item]]:
    """The GRPO prompts in training order: for each stage, `steps * prompts_per_step` (stage, item) pairs
    drawn round-robin over the stage's `pool` of families (its newest families first), each family's
    questions shuffled once and cycled across stages."""
    by_family: dict[str, list[Item]] = {}
    for it in items:
        by_family.setdefault(it.family, []).append(it)
    rng = random.Random(seed)
    shuffled: dict[str, list[Item]] = {}
    for fam in sorted(by_family):
        qs = list(by_family[fam])
        rng.shuffle(qs)
        shuffled[fam] = qs
    cursor = dict.fromkeys(shuffled, 0)
    out: list[tuple[int, Item]] = []
    for stage in stages:
        newest = [f for f in stage.families if f in stage.pool]
        fams = [f for f in [*newest, *[f for f in stage.pool if f not in newest]] if shuffled.get(f)]
        if not fams:
            raise ValueError(f"curriculum stage {stage.index} has no GRPO question (families {stage.pool})")
        for k in range(stage.steps * prompts_per_step):
            fam = fams[k % len(fams)]
            out.append((stage.index, shuffled[fam][cursor[fam] % len(shuffled[fam])]))
            cursor[fam] += 1
    return out


class OnlineDifficulty:
    """Each family's pass rate re-estimated from GRPO's own groups as training goes, and a family mix by potential.

    `update` folds a group's mean score into its family's pass rate p (an exponential moving average with weight
    `ema`, starting from `prior`, e.g. `task_difficulty`'s p, else 0.5); `weights` gives each family
    max(`floor`, 4p(1-p)), normalised: families always or never solved fall to the floor (never to zero, so
    their p keeps being measured), mid-difficulty ones get the most prompts; `draw` picks prompts by that mix.
    """

    def __init__(self, families: Sequence[str], prior: Mapping[str, float] | None = None, *, ema: float = 0.3,
                 floor: float = 0.05):
        if not 0.0 < ema <= 1.0 or not 0.0 < floor <= 1.0:
            raise ValueError(f"curriculum.online: ema {ema} and floor {floor} must be in (0, 1]")
        prior = prior or {}
        self.pass_rate = {f: float(prior.get(f, 0.5)) for f in sorted(families)}
        self.ema, self.floor = ema, floor

    def update(self, family: str, scores: Sequence[float | None]) -> None:
        """Fold one group's scores (None: infra error, left out) into `family`'s pass rate."""
        vals = [float(s) for s in scores if s is not None]
        if vals and family in self.pass_rate:
            self.pass_rate[family] += self.ema * (sum(vals) / len(vals) - self.pass_rate[family])

    def weights(self, families: Sequence[str] | None = None) -> dict[str, float]:
        """Sampling weight of each family (of `families`, default all), summing to 1."""
        fams = [f for f in (families if families is not None else self.pass_rate) if f in self.pass_rate]
        raw = {f: max(self.floor, improvement_potential(self.pass_rate[f])) for f in fams}
        total = sum(raw.values())
        return {f: w / total for f, w in raw.items()} if total else {}

    def draw(self, candidates: Sequence[Any], n: int, rng: random.Random, family: Any = None) -> list[Any]:
        """`n` distinct candidates (fewer if there are not enough): a family by `weights`, then one of its
        candidates at random. `family(candidate)` names a candidate's family (default: its `.family`)."""
        family = family or (lambda c: c.family)
        by_family: dict[str, list[Any]] = {}
        for c in candidates:
            by_family.setdefault(family(c), []).append(c)
        out: list[Any] = []
        while len(out) < n and by_family:
            weights = self.weights(sorted(by_family))
            if not weights:  # candidates of families the estimator does not know: uniform
                weights = dict.fromkeys(sorted(by_family), 1.0)
            fam = rng.choices(list(weights), weights=list(weights.values()))[0]
            pool = by_family[fam]
            out.append(pool.pop(rng.randrange(len(pool))))
            if not pool:
                del by_family[fam]
        return out


def difficulty_items(items: Sequence[Item], questions_per_family: int, seed: int = 0) -> list[Item]:
    """Up to `questions_per_family` questions of each family (a seeded choice), families in name order."""
    by_family: dict[str, list[Item]] = {}
    for it in items:
        by_family.setdefault(it.family, []).append(it)
    out = []
    for fam in sorted(by_family):
        qs = sorted(by_family[fam], key=lambda it: it.id)
        random.Random(f"{seed}:{fam}").shuffle(qs)
        out.extend(qs[:questions_per_family])
    return out


def measure_difficulty(recipe: Any, items: Sequence[Item], model_path: str, sandbox: Any, *,
                       families: Mapping[str, Any] | None = None, backend: Any = None) -> dict[str, Any]:
    """Sample the model `k` times per family (`recipe.curriculum`) and compute pass rates and potentials.

    Returns {"families": {name: FamilyDifficulty.to_dict()}, "n_samples", "n_infra_errors", "settings"}.
    """
    from .rollout import get_backend, run_rollouts

    cfg = recipe.curriculum
    chosen = difficulty_items(items, cfg.questions_per_family, seed=recipe.seed)
    per_family = max(1, min(cfg.questions_per_family, len(chosen)))
    samples = max(1, math.ceil(cfg.samples_per_family / per_family))
    temperature = cfg.temperature if cfg.temperature is not None else float(recipe.grpo.trl.get("temperature", 1.0))
    limits = recipe.rollout.model_copy(update={"temperature": temperature})
    own = backend is None
    if own:
        backend = get_backend("transformers", model_path=model_path, dtype=recipe.model.dtype,
                              local_files_only=recipe.model.local_files_only,
                              prefill_dtype=recipe.rollout.prefill_dtype)
    try:
        trajs = run_rollouts(backend, chosen, limits=limits, sandbox=sandbox, samples_per_item=samples,
                             seed=recipe.seed, progress=False,
                             families=families if families is not None else resolve_families(recipe.tasks))
    finally:
        if own and callable(getattr(backend, "close", None)):
            backend.close()
    rates = pass_rates(trajs)
    return {
        "families": {f: d.to_dict() for f, d in sorted(rates.items())},
        "n_samples": sum(d.n_samples for d in rates.values()),
        "n_infra_errors": sum(d.n_infra_errors for d in rates.values()),
        "settings": {"samples_per_question": samples, "questions_per_family": per_family,
                     "temperature": temperature, "k": samples * per_family},
    }


def load_difficulty(path: str | Path) -> dict[str, FamilyDifficulty]:
    """The families of a `task_difficulty` JSON file as `FamilyDifficulty` records."""
    data = json.loads(Path(path).read_text())
    return {f: FamilyDifficulty(f, int(d["n_samples"]), float(d["n_correct"]), int(d.get("n_infra_errors", 0)))
            for f, d in data["families"].items()}


def schedule_dict(stages: Sequence[Stage]) -> list[dict[str, Any]]:
    return [asdict(s) for s in stages]
