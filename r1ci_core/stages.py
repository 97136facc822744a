"""One plain function per pipeline stage: run it, record it in MLflow, return where its artifact is.

Dagster assets and the `r1ci` CLI both call these; nothing here imports Dagster.

Every stage is cached by content: its key hashes what its artifact is made from (recipe sections, the
content digests of the upstream artifacts, the questions), never run ids or times. When a FINISHED MLflow
run of the stage has the same key and its artifact is still on disk unchanged (same content digest), the
stage returns that run's result: nothing is recomputed or rewritten, no run is started, no model version
registered. `$R1CI_FORCE` (comma-separated asset names, or `all`) runs the named stages anyway; their
resumable state (teacher shards, trainer checkpoints, stored evaluations) is still used.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import lineage
from .config import Recipe, data_dir
from .digest import content_digest, items_digest, json_digest
from .versions import registered_name

if TYPE_CHECKING:
    from .rewards import RewardSet
    from .tasks import Task

log = logging.getLogger(__name__)


@dataclass
class StageResult:
    """What a stage produced: its artifact folder, its MLflow run and figures for the asset metadata."""

    path: str
    mlflow_run_id: str
    metadata: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


FORCE_ENV = "R1CI_FORCE"
CACHE_VERSION = 1  # part of every stage key: raise it when a stage's output changes for the same inputs


def _forced_from_env() -> frozenset[str]:
    return frozenset(a.strip() for a in os.environ.get(FORCE_ENV, "").split(",") if a.strip())


@dataclass
class StageContext:
    """Where artifacts go, which orchestrator run asked for them and which stages must run regardless."""

    recipe: Recipe
    root: Path = field(default_factory=data_dir)
    dagster_run_id: str = ""
    force: frozenset[str] = field(default_factory=_forced_from_env)

    @functools.cached_property
    def families(self) -> dict[str, Task]:
        """Every available task family for the recipe's `tasks` section (its BBH folder and custom files):
        the verifiers of the run's teacher, GRPO rewards, curriculum and evaluation."""
        from .tasks import resolve_families

        return resolve_families(self.recipe.tasks)

    @functools.cached_property
    def rewards(self) -> RewardSet:
        """The run's GRPO rewards (`grpo.rewards`, with the recipe's rollout limits)."""
        from .rewards import recipe_rewards

        return recipe_rewards(self.recipe)

    def artifact(self, name: str) -> Path:
        return self.root / self.recipe.name / name

    def forced(self, asset: str) -> bool:
        return bool(self.force & {asset, "all", "*", "1", "true"})


def _fingerprint(*parts: Any) -> str:
    return json_digest(*parts)


def _stage_key(ctx: StageContext, asset: str, **parts: Any) -> str:
    """The content key of one stage: its artifact's place plus everything the artifact is made from."""
    return json_digest(CACHE_VERSION, asset, str(ctx.artifact(asset)), parts, length=24)


def _sandbox_limits(ctx: StageContext) -> dict[str, Any]:
    """The sandbox settings that can change what code execution returns (not the worker count; `persistent`
    only when on, so that earlier runs' keys stay valid)."""
    cfg = ctx.recipe.sandbox
    return cfg.model_dump(exclude={"workers", *(() if cfg.persistent else ("persistent",))})


def _reuse(ctx: StageContext, asset: str, key: str, valid: Any = None,
           artifact: Path | None = None) -> StageResult | None:
    """The result of an earlier FINISHED run of `asset` with the same content key whose artifact (its result's
    path, or `artifact`) is still on disk unchanged and passes `valid`, if given; None when the stage has to run."""
    if ctx.forced(asset):
        log.info("%s: $%s names it: running it whatever earlier runs left", asset, FORCE_ENV)
        return None
    hit = lineage.find_cached_run(ctx.recipe.mlflow, asset, key)
    if hit is None:
        return None
    rec = hit.result
    result = StageResult(rec["path"], hit.run_id, dict(rec.get("metadata") or {}), dict(rec.get("extra") or {}))
    now = content_digest(artifact or result.path)
    if now != hit.output_digest:
        log.info("%s: %s changed since MLflow run %s (content %s, recorded %s): running the stage again",
                 asset, artifact or result.path, hit.run_id, now, hit.output_digest)
        return None
    if valid is not None and not valid(result):
        return None
    result.metadata["cached"] = True
    log.info("%s: inputs unchanged since MLflow run %s (key %s) and %s intact: reused, nothing recomputed",
             asset, hit.run_id, key, result.path)
    return result


def _record(result: StageResult, key: str, artifact: Path | None = None) -> StageResult:
    """Tag the active MLflow run with the stage's key and its artifact's digest, and store its result."""
    result.metadata.setdefault("cached", False)
    lineage.record_result(key, content_digest(artifact or result.path),
                          {"path": result.path, "metadata": result.metadata, "extra": result.extra})
    return result


def task_corpus(ctx: StageContext) -> StageResult:
    from .corpus import build_items, corpus_counts, pool_overlaps, save_corpus

    cfg = ctx.recipe.tasks
    items = build_items(cfg)  # cheap, and reads any external task files: the key is the questions themselves
    key = _stage_key(ctx, "task_corpus", items=items_digest(items))
    if cached := _reuse(ctx, "task_corpus", key):
        return cached
    with lineage.asset_run(ctx.recipe.mlflow, "task_corpus", dagster_run_id=ctx.dagster_run_id,
                           params={"tasks": cfg.model_dump(), "recipe": ctx.recipe.name}) as run:
        path = save_corpus(items, ctx.artifact("task_corpus"))
        counts = corpus_counts(items)
        pools = _pool_totals(counts)
        lineage.log_metrics({"n_items": len(items), "n_families": len(counts), **{f"n_{p}": n for p, n in pools.items()}})
        lineage.log_dict(counts, "counts.json")
        return _record(StageResult(str(path), run.info.run_id,
                                   {"n_items": len(items), "n_families": len(counts), "pools": pools,
                                    "counts": counts, "overlaps": len(pool_overlaps(items))}), key)


def _pool_totals(counts: dict[str, dict[str, int]]) -> dict[str, int]:
    """The number of questions in each pool, over all families."""
    pools: dict[str, int] = {}
    for per_pool in counts.values():
        for pool, n in per_pool.items():
            pools[pool] = pools.get(pool, 0) + n
    return pools


def base_model(ctx: StageContext, corpus: StageResult) -> StageResult:
    from .models import load_tokenizer

    mcfg = ctx.recipe.model
    key = _stage_key(ctx, "base_model", model=mcfg.model_dump(), seed=ctx.recipe.seed,
                     **_base_made_from(ctx, corpus))
    if cached := _reuse(ctx, "base_model", key):
        return cached
    with lineage.asset_run(ctx.recipe.mlflow, "base_model", dagster_run_id=ctx.dagster_run_id,
                           upstream={"task_corpus": corpus.mlflow_run_id}, params={"model": mcfg.model_dump()}) as run:
        path, source = _build_base(ctx, corpus)
        tokenizer = load_tokenizer(str(path), mcfg.local_files_only)
        lineage.log_params({"base_model.path": str(path), "base_model.source": source})
        lineage.log_metric("vocab_size", len(tokenizer))
        return _record(StageResult(str(path), run.info.run_id, {"source": source, "vocab_size": len(tokenizer)}),
                       key)


def _base_made_from(ctx: StageContext, corpus: StageResult) -> dict[str, str]:
    """What the base model is made from, for its key: the corpus (tiny), the GGUF file or the checkpoint."""
    from .models import find_gguf, is_gguf_ref

    name = ctx.recipe.model.name_or_path
    if name == "tiny":  # built from the corpus' text
        return {"corpus": content_digest(corpus.path)}
    if is_gguf_ref(name):
        return {"gguf": content_digest(find_gguf(name))}
    return {"checkpoint": content_digest(name)}


def _build_base(ctx: StageContext, corpus: StageResult) -> tuple[Any, str]:
    """The base model's path and source: a tiny model trained on the corpus' text, an imported GGUF file or
    the recipe's checkpoint as it is."""
    from .models import build_tiny_model, import_gguf, is_gguf_ref

    mcfg = ctx.recipe.model
    if mcfg.name_or_path == "tiny":
        path = build_tiny_model(ctx.artifact("base_model"), _tiny_texts(ctx, corpus), mcfg.tiny, seed=ctx.recipe.seed)
        return path, "tiny"
    if is_gguf_ref(mcfg.name_or_path):
        return import_gguf(mcfg.name_or_path, ctx.artifact("base_model")), "gguf"
    return mcfg.name_or_path, "external"


def _tiny_texts(ctx: StageContext, corpus: StageResult) -> list[str]:
    """The tiny model's training text: the system prompts, the corpus' questions and reference solutions."""
    from .chat import SYSTEM_PROMPT, system_prompt
    from .corpus import load_corpus

    items = load_corpus(Path(corpus.path))
    families = ctx.families
    texts = [system_prompt(m) for m in ("autonomous", "text_only", "code_first")] * 20 + [SYSTEM_PROMPT] * 50
    for item in items:
        texts.append(item.question)
        if item.family in families:
            texts.append(families[item.family].reference_solution(item))
    return texts


def teacher_trajectories(ctx: StageContext, corpus: StageResult, sandbox: Any, *,
                         backend: Any = None) -> StageResult:
    """Teacher trajectories for the corpus' `sft` pool, generated in resumable shards.

    `backend` (model teacher only) replaces the backend the recipe's `teacher` section would build.
    """
    from .corpus import load_corpus
    from .teachers import make_teacher

    tcfg = ctx.recipe.teacher
    items = load_corpus(Path(corpus.path), "sft")
    made_from = _teacher_made_from(ctx)
    key = _stage_key(ctx, "teacher_trajectories", items=items_digest(items), **made_from)
    if backend is None and (cached := _reuse(ctx, "teacher_trajectories", key)):
        return cached
    teacher = make_teacher(tcfg, ctx.families, sandbox, rollout=ctx.recipe.rollout, backend=backend)
    provenance = teacher.provenance()
    with lineage.asset_run(ctx.recipe.mlflow, "teacher_trajectories", dagster_run_id=ctx.dagster_run_id,
                           upstream={"task_corpus": corpus.mlflow_run_id},
                           params={"teacher": tcfg.model_dump(), "sandbox": ctx.recipe.sandbox.model_dump(),
                                   "provenance": provenance}) as run:
        from datasets import load_from_disk

        lineage.log_dataset(load_from_disk(corpus.path)["sft"], Path(corpus.path), "task_corpus.sft")
        rows, skipped, sharded = _generate_trajectories(ctx, teacher, items, made_from)
        out = ctx.artifact("teacher_trajectories")
        ds = _save_rows(rows, out)
        counts = {"n_trajectories": len(ds), "n_correct": sum(1 for s in ds["score"] if s == 1.0),
                  "n_infra_error": sum(ds["infra_error"]), "n_questions": len(items),
                  "n_resumed_questions": sharded.n_resumed}
        stats = {k: v for k, v in sorted(sharded.stats.items())}
        lineage.log_metrics({**counts, **{f"skipped.{k}": v for k, v in skipped.items()}, **stats})
        lineage.log_dict({"skipped": dict(skipped), "stats": stats, "provenance": provenance}, "teacher.json")
        result = StageResult(str(out), run.info.run_id,
                             {**counts, "skipped": dict(skipped), "stats": stats, "provenance": provenance},
                             extra={"corpus_path": corpus.path, "corpus_run_id": corpus.mlflow_run_id})
        return _record(result, key) if backend is None else result


def _teacher_made_from(ctx: StageContext) -> dict[str, Any]:
    """The settings the teacher's trajectories are made from (besides the questions), for the key and shards."""
    rollout = ctx.recipe.rollout.model_dump()
    if ctx.recipe.teacher.kind == "reference":  # only the output budget shapes reference trajectories
        rollout = {k: rollout[k] for k in ("output_chars", "output_tokens")}
    return {"teacher": ctx.recipe.teacher.model_dump(), "rollout": rollout, "sandbox": _sandbox_limits(ctx)}


def _generate_trajectories(ctx: StageContext, teacher: Any, items: list[Any],
                           made_from: dict[str, Any]) -> tuple[list[dict[str, Any]], Any, Any]:
    """Run the teacher on the questions it takes, in resumable shards (closing it after); return the rows in
    question order, what it skipped and the sharded run."""
    from .shards import run_sharded

    tcfg = ctx.recipe.teacher
    todo, skipped = teacher.select(items)
    if skipped:
        log.info("teacher: skipping %d of %d questions: %s", sum(skipped.values()), len(items), dict(skipped))
    work = ctx.artifact("teacher_trajectories.shards")
    # shards are kept across re-runs as long as the questions to write and the settings are the same
    fp = _fingerprint(items_digest(todo), made_from)
    try:
        sharded = run_sharded(todo, work, teacher.generate, shard_size=tcfg.shard_size, fingerprint=fp,
                              key=lambda it: it.id, desc=f"teacher ({tcfg.kind})")
    finally:
        teacher.close()
    order = {it.id: i for i, it in enumerate(todo)}
    rows = sorted(sharded.rows(), key=lambda r: (order.get(r["item_id"], len(order)),
                                                 json.loads(r["provenance"]).get("sample", 0)))
    if not rows:
        raise ValueError(f"the teacher wrote no trajectory for {len(items)} questions (skipped: {dict(skipped)})")
    return rows, skipped, sharded


def _save_rows(rows: list[dict[str, Any]], out: Path) -> Any:
    """Write `rows` as a datasets folder at `out`, atomically; return the dataset."""
    from datasets import Dataset

    from .io import atomic_dir

    ds = Dataset.from_list(rows)
    with atomic_dir(out) as tmp:
        ds.save_to_disk(str(tmp))
    return ds


def sft_dataset(ctx: StageContext, teacher: StageResult, base: StageResult) -> StageResult:
    """Filter the teacher's trajectories (see `filtering.filter_trajectories`), decontaminated against the
    corpus' test pools (the corpus the teacher read, else this recipe's `task_corpus` artifact)."""
    from .filtering import filter_trajectories
    from .models import load_tokenizer
    from .trajectory import Trajectory

    fcfg = ctx.recipe.filter
    corpus_path = Path(teacher.extra.get("corpus_path") or ctx.artifact("task_corpus"))
    upstream = {"teacher_trajectories": teacher.mlflow_run_id, "base_model": base.mlflow_run_id}
    if teacher.extra.get("corpus_run_id"):
        upstream["task_corpus"] = teacher.extra["corpus_run_id"]
    key = _stage_key(ctx, "sft_dataset", filter=fcfg.model_dump(), teacher=content_digest(teacher.path),
                     tokenizer=content_digest(base.path),
                     corpus=content_digest(corpus_path) if fcfg.decontaminate else None)
    if cached := _reuse(ctx, "sft_dataset", key):
        return cached
    with lineage.asset_run(ctx.recipe.mlflow, "sft_dataset", dagster_run_id=ctx.dagster_run_id,
                           upstream=upstream, params={"filter": fcfg.model_dump()}) as run:
        from datasets import load_from_disk

        source = load_from_disk(teacher.path)
        lineage.log_dataset(source, Path(teacher.path), "teacher_trajectories")
        test_questions = _test_questions(corpus_path) if fcfg.decontaminate else []
        trajs = [Trajectory.from_row(r) for r in source]
        tokenizer = load_tokenizer(base.path, ctx.recipe.model.local_files_only)
        kept, dropped = filter_trajectories(trajs, fcfg, tokenizer, test_questions=test_questions)
        if not kept:
            raise ValueError(f"the SFT filter kept no trajectory of {len(trajs)} (dropped: {dropped}); "
                             "check the teacher's scores and the recipe's filter limits")
        out = ctx.artifact("sft_dataset")
        ds = _save_rows([t.to_row() for t in kept], out)
        counts, dropped, per_family = _filter_figures(trajs, kept, dropped)
        lineage.log_metrics({**counts, **{f"dropped.{k}": v for k, v in dropped.items()}})
        lineage.log_dict({"dropped": dropped, "kept_per_family": per_family}, "filter.json")
        lineage.log_dataset(ds, out, "sft_dataset", context="output")
        return _record(StageResult(str(out), run.info.run_id,
                                   {**counts, "dropped": dropped, "kept_per_family": per_family}), key)


def _test_questions(corpus_path: Path) -> list[str]:
    """The questions of the corpus' test pools, which the SFT data must not contain (logged as an input)."""
    from datasets import concatenate_datasets, load_from_disk

    if not corpus_path.exists():
        raise FileNotFoundError(f"decontamination needs the task corpus at {corpus_path}; materialise "
                                "task_corpus or set filter.decontaminate: false")
    dd = load_from_disk(str(corpus_path))
    test = concatenate_datasets([dd[p] for p in ("test_seen", "test_unseen") if p in dd])
    lineage.log_dataset(test, corpus_path, "task_corpus.test")
    return list(test["question"])


def _filter_figures(trajs: list[Any], kept: list[Any],
                    dropped: dict[str, int]) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """The filter's counts (input, kept, kept with and without code), its drops per reason (every reason
    named) and the kept trajectories per family."""
    from .filtering import REASONS

    n_code = sum(1 for t in kept if t.n_code_calls > 0)
    per_family: dict[str, int] = {}
    for t in kept:
        per_family[t.family] = per_family.get(t.family, 0) + 1
    counts = {"n_input": len(trajs), "n_kept": len(kept), "n_kept_code": n_code, "n_kept_text_only": len(kept) - n_code}
    return counts, {r: dropped.get(r, 0) for r in REASONS}, per_family


def sft_checkpoint(ctx: StageContext, dataset: StageResult, base: StageResult) -> StageResult:
    from .launch import train_sft  # sft.train_sft, under `accelerate launch` when sft.num_processes > 1
    from .trajectory import Trajectory

    key = _stage_key(ctx, "sft_checkpoint", sft=ctx.recipe.sft.written(), seed=ctx.recipe.seed,
                     model=ctx.recipe.model.model_dump(), dataset=content_digest(dataset.path),
                     base=content_digest(base.path))
    if cached := _reuse(ctx, "sft_checkpoint", key):
        return cached
    with lineage.asset_run(ctx.recipe.mlflow, "sft_checkpoint", dagster_run_id=ctx.dagster_run_id,
                           upstream={"sft_dataset": dataset.mlflow_run_id, "base_model": base.mlflow_run_id},
                           params={"sft": ctx.recipe.sft.written(), "base_model": base.path}) as run:
        from datasets import load_from_disk

        ds = load_from_disk(dataset.path)
        lineage.log_dataset(ds, Path(dataset.path), "sft_dataset")
        out = ctx.artifact("sft_checkpoint")
        figures = train_sft(ctx.recipe, [Trajectory.from_row(r) for r in ds], base.path, out,
                            ctx.artifact("sft_checkpoint.work"))
        lineage.log_metrics({k: v for k, v in figures.items() if isinstance(v, int | float)})
        lineage.log_curves({"loss": (figures.get("loss_steps", []), figures.get("loss_curve", []))}, "loss_curve")
        version = lineage.register_checkpoint(out, registered_name(ctx.recipe.name, "sft"))
        return _record(StageResult(str(out), run.info.run_id, {**figures, "model_version": version}), key)


def task_difficulty(ctx: StageContext, sft: StageResult, corpus: StageResult, sandbox: Any) -> StageResult:
    """Pass rate p and improvement potential 4p(1-p) of each training family under the SFT model (k samples
    on GRPO-pool questions), for the GRPO curriculum. Cached: the same checkpoint, questions and settings
    reuse the stored measurement. With `curriculum.enabled: false` nothing is measured."""
    from .corpus import load_corpus
    from .io import atomic_write_text

    cfg = ctx.recipe.curriculum
    items = load_corpus(Path(corpus.path), "grpo")
    key = _stage_key(ctx, "task_difficulty", curriculum=cfg.model_dump(), rollout=ctx.recipe.rollout.model_dump(),
                     temperature=ctx.recipe.grpo.trl.get("temperature"), grpo_steps=ctx.recipe.grpo.trl.get("max_steps"),
                     seed=ctx.recipe.seed, sandbox=_sandbox_limits(ctx), sft=content_digest(sft.path),
                     items=items_digest(items))
    if cached := _reuse(ctx, "task_difficulty", key):
        return cached
    with lineage.asset_run(ctx.recipe.mlflow, "task_difficulty", dagster_run_id=ctx.dagster_run_id,
                           upstream={"sft_checkpoint": sft.mlflow_run_id, "task_corpus": corpus.mlflow_run_id},
                           params={"curriculum": cfg.model_dump()}) as run:
        out = ctx.artifact("task_difficulty.json")
        data, reused = _difficulty_data(ctx, items, sft, sandbox, out)
        atomic_write_text(out, json.dumps(data, indent=1, sort_keys=True))
        lineage.log_dict(data, "task_difficulty.json")
        meta: dict[str, Any] = {"enabled": data["enabled"], "cached": reused}
        if data["families"]:
            meta.update(_difficulty_figures(ctx, data))
        return _record(StageResult(str(out), run.info.run_id, meta), key)


def _difficulty_data(ctx: StageContext, items: list[Any], sft: StageResult, sandbox: Any,
                     out: Path) -> tuple[dict[str, Any], bool]:
    """The difficulty measurement: none when the curriculum is off, the one stored at `out` when it was made
    from the same checkpoint, questions and settings (tagging the run ``r1ci.cached``), else measured now;
    and whether it was the stored one."""
    from .curriculum import measure_difficulty
    from .digest import checkpoint_fingerprint

    cfg = ctx.recipe.curriculum
    fp = _fingerprint(checkpoint_fingerprint(sft.path), sorted(it.id for it in items), cfg.model_dump(),
                      ctx.recipe.rollout.model_dump(), ctx.recipe.grpo.trl.get("temperature"), ctx.recipe.seed)
    stored = json.loads(out.read_text()) if out.is_file() else None
    if not cfg.enabled:
        return {"enabled": False, "fingerprint": fp, "families": {}}, False
    if stored and stored.get("fingerprint") == fp:
        lineage.set_tag("r1ci.cached", "true")
        return stored, True
    return {"enabled": True, "fingerprint": fp, **measure_difficulty(ctx.recipe, items, sft.path, sandbox,
                                                                    families=ctx.families)}, False


def _difficulty_figures(ctx: StageContext, data: dict[str, Any]) -> dict[str, Any]:
    """Log each family's pass rate and potential; return them (rounded) with the curriculum's stages."""
    cfg, fams = ctx.recipe.curriculum, data["families"]
    lineage.log_metrics({**{f"pass_rate.{f}": d["pass_rate"] for f, d in fams.items()},
                         **{f"potential.{f}": d["potential"] for f, d in fams.items()}})
    stages = _schedule(ctx, {f: d["pass_rate"] for f, d in fams.items()},
                       int(ctx.recipe.grpo.trl.get("max_steps", 0) or len(cfg.stage_steps) or cfg.n_stages))
    return {"pass_rates": {f: round(d["pass_rate"], 4) for f, d in fams.items()},
            "potentials": {f: round(d["potential"], 4) for f, d in fams.items()},
            "stages": [s.families for s in stages], "n_samples": data.get("n_samples", 0)}


def grpo_checkpoint(ctx: StageContext, sft: StageResult, corpus: StageResult, sandbox: Any,
                    difficulty: StageResult | None = None) -> StageResult:
    from .corpus import load_corpus
    from .grpo import train_grpo
    from .training import release_memory

    ccfg = ctx.recipe.curriculum
    upstream = {"sft_checkpoint": sft.mlflow_run_id, "task_corpus": corpus.mlflow_run_id}
    if difficulty is not None:
        upstream["task_difficulty"] = difficulty.mlflow_run_id
    key = _stage_key(ctx, "grpo_checkpoint", grpo=ctx.recipe.grpo.written(), rollout=ctx.recipe.rollout.model_dump(),
                     curriculum=ccfg.model_dump(), seed=ctx.recipe.seed, model=ctx.recipe.model.model_dump(),
                     sandbox=_sandbox_limits(ctx), sft=content_digest(sft.path),
                     items=items_digest(load_corpus(Path(corpus.path), "grpo")),
                     difficulty=content_digest(difficulty.path) if difficulty is not None else None)
    if cached := _reuse(ctx, "grpo_checkpoint", key):
        return cached
    with lineage.asset_run(ctx.recipe.mlflow, "grpo_checkpoint", dagster_run_id=ctx.dagster_run_id,
                           upstream=upstream,
                           params={"grpo": ctx.recipe.grpo.written(), "rollout": ctx.recipe.rollout.model_dump(),
                                   "curriculum": ccfg.model_dump()}) as run:
        from datasets import load_from_disk

        lineage.log_dataset(load_from_disk(corpus.path)["grpo"], Path(corpus.path), "task_corpus.grpo")
        stages, baseline = _curriculum_stages(ctx, difficulty) if ccfg.enabled else (None, None)
        out = ctx.artifact("grpo_checkpoint")
        figures = train_grpo(ctx.recipe, load_corpus(Path(corpus.path), "grpo"), sft.path, out,
                             ctx.artifact("grpo_checkpoint.work"), sandbox, stages=stages, baseline=baseline,
                             families=ctx.families, rewards=ctx.rewards)
        lineage.log_metrics({k: v for k, v in figures.items() if isinstance(v, int | float)})
        _log_reward_curves(figures)
        if baseline and ccfg.measure_after:  # the same k samples on the same questions as task_difficulty, now from the GRPO model
            release_memory()  # the trainer's policy and Adam state, before the GRPO model is loaded again
            rates = _pass_rates_after(ctx, corpus, out, sandbox, baseline)
            figures["pass_rate_before"], figures["pass_rate_after"] = baseline, rates
        version = lineage.register_checkpoint(out, registered_name(ctx.recipe.name, "grpo"))
        meta = {**figures, "model_version": version}
        if stages:
            meta["curriculum"] = [{"families": s.pool, "steps": s.steps} for s in stages]
        return _record(StageResult(str(out), run.info.run_id, meta), key)


def _schedule(ctx: StageContext, difficulty: Any, total_steps: int) -> list[Any]:
    """`curriculum.stage_schedule` under the recipe's curriculum settings."""
    from .curriculum import stage_schedule

    cfg = ctx.recipe.curriculum
    return stage_schedule(difficulty, cfg.n_stages, total_steps, cfg.stage_steps, cumulative=cfg.cumulative,
                          exclude_settled=cfg.exclude_settled)


def _curriculum_stages(ctx: StageContext, difficulty: StageResult | None) -> tuple[list[Any], dict[str, float]]:
    """The curriculum's stages from the measured difficulty, logged, and each family's pass rate before GRPO."""
    from .curriculum import load_difficulty, schedule_dict

    if difficulty is None or not Path(difficulty.path).is_file():
        raise ValueError("curriculum.enabled needs the task_difficulty asset: materialise it first")
    measured = load_difficulty(difficulty.path)
    baseline = {f: d.pass_rate for f, d in measured.items()}
    stages = _schedule(ctx, measured, int(ctx.recipe.grpo.trl.get("max_steps", 0) or 0))
    lineage.log_dict({"stages": schedule_dict(stages),
                      "families": {f: d.to_dict() for f, d in measured.items()}}, "curriculum.json")
    lineage.log_params({f"curriculum.stage{s.index}": f"{','.join(s.pool)} x{s.steps} steps" for s in stages})
    return stages, baseline


def _log_reward_curves(figures: dict[str, Any]) -> None:
    """GRPO's reward, correctness and correctness-gain curves per step, and the mean reward per pass."""
    steps = figures["reward_steps"]
    lineage.log_curves({"reward": (steps, figures["reward_curve"]),
                        "correctness": (steps, figures["correctness_curve"]),
                        "correctness_gain": (steps, figures["correctness_gain_curve"]),
                        "reward per pass over the questions": (
                            [figures["steps_per_pass"] * (i + 1) for i in range(len(figures["reward_pass_means"]))],
                            figures["reward_pass_means"])},
                       "reward_curve")


def _pass_rates_after(ctx: StageContext, corpus: StageResult, out: Path, sandbox: Any,
                      baseline: dict[str, float]) -> dict[str, float]:
    """Each family's pass rate under the GRPO model (measured as task_difficulty measured the SFT model's),
    logged beside the mean rates before and after."""
    from .corpus import load_corpus
    from .curriculum import measure_difficulty

    after = measure_difficulty(ctx.recipe, load_corpus(Path(corpus.path), "grpo"), str(out), sandbox,
                               families=ctx.families)
    rates = {f: d["pass_rate"] for f, d in after["families"].items()}
    lineage.log_metrics({**{f"pass_rate_after.{f}": r for f, r in rates.items()},
                         "train_pass_rate_before": sum(baseline.values()) / len(baseline),
                         "train_pass_rate_after": sum(rates.values()) / max(1, len(rates))})
    return rates


CHECKPOINT_ASSETS = {"base": "base_model", "sft": "sft_checkpoint", "grpo": "grpo_checkpoint"}  # eval name -> asset


def eval_report(ctx: StageContext, corpus: StageResult, checkpoints: dict[str, StageResult], sandbox: Any,
                force: bool = False) -> StageResult:
    """Evaluate the checkpoints (see `evaluation.run_evaluation`) and write the report.

    Cached like every stage when only the pipeline's own checkpoints are evaluated: the same questions,
    checkpoint contents and settings, a report folder left unchanged and its evaluation runs still in the
    store reuse the earlier run. `force` (or `$R1CI_EVAL_FORCE`) evaluates again.
    """
    from .chat import PROMPT_VERSION
    from .corpus import load_corpus
    from .digest import checkpoint_fingerprint
    from .evaluation import env_forced, grpo_reward_curve, run_evaluation

    ecfg = ctx.recipe.eval
    upstream = {"task_corpus": corpus.mlflow_run_id, **{CHECKPOINT_ASSETS.get(k, k): v.mlflow_run_id
                                                        for k, v in checkpoints.items()}}
    items = [it for pool in ecfg.pools for it in load_corpus(Path(corpus.path), pool)]
    evaluated = {k: v.path for k, v in checkpoints.items() if k in ecfg.checkpoints}
    key = _stage_key(ctx, "eval_report", eval=ecfg.model_dump(), rollout=ctx.recipe.rollout.model_dump(),
                     seed=ctx.recipe.seed, sandbox=_sandbox_limits(ctx), model=ctx.recipe.model.model_dump(),
                     prompt=PROMPT_VERSION, items=items_digest(items),
                     checkpoints={k: checkpoint_fingerprint(p) for k, p in sorted(evaluated.items())})
    report_dir = ctx.artifact("eval_report")
    external = [c for c in ecfg.checkpoints if str(c).startswith(("models:/", "openai:"))]  # may move: not cached
    if not (force or env_forced() or external):
        cached = _reuse(ctx, "eval_report", key, valid=_runs_stored(ctx), artifact=report_dir)
        if cached:
            return cached
    with lineage.asset_run(ctx.recipe.mlflow, "eval_report", dagster_run_id=ctx.dagster_run_id,
                           upstream=upstream, params={"eval": ecfg.model_dump()}) as run:
        report = run_evaluation(ctx, items, evaluated, sandbox, mlflow_run_id=run.info.run_id, force=force,
                                families=ctx.families,
                                reward_curve=grpo_reward_curve(checkpoints["grpo"].mlflow_run_id)
                                if "grpo" in checkpoints else None)
        return _record(StageResult(str(report["report_path"]), run.info.run_id, report), key, artifact=report_dir)



def model_version_eval(ctx: StageContext, corpus: StageResult, sandbox: Any, *, version: str = "",
                       questions: str = "held_out", fresh_seed: int = 0, force: bool = False) -> StageResult:
    """Evaluate registered versions of this recipe's models and attach the figures to each version.

    `version`: ``models:/<name>/<n>``, ``<name>@<alias>``, or the short ``sft/3`` / ``grpo@champion``; empty:
    each ``candidate`` (newest) version not yet evaluated on these questions. `questions`: ``held_out`` (the
    corpus' test pools of ``eval.pools``; figures tagged ``r1ci.eval.*``, ``champion`` moved to the best
    version on the headline mode, the first of ``eval.modes``) or ``fresh`` (new questions drawn with
    `fresh_seed`, none from the corpus; tagged ``r1ci.recheck.*``). Stored evaluations of the same content
    are reused unless `force`. The report shows the latest held-out evaluation of every version.
    """
    from . import versions
    from .evaluation import env_forced, items_fingerprint

    if questions not in ("held_out", "fresh"):
        raise ValueError(f"model_version_eval: questions must be 'held_out' or 'fresh', not {questions!r}")
    ecfg, names = ctx.recipe.eval, versions.recipe_model_names(ctx.recipe.name)
    lineage.setup(ctx.recipe.mlflow)  # the registry is read for the key before the stage's run points MLflow there
    items = _version_eval_items(ctx, corpus, questions, fresh_seed)
    items_fp = items_fingerprint(items)
    spec = {"version": version, "questions": questions, "fresh_seed": fresh_seed}
    if not (force or env_forced()) and (cached := _reuse(ctx, "model_version_eval",
                                                         _version_eval_key(ctx, names, items_fp, **spec),
                                                         valid=_runs_stored(ctx),
                                                         artifact=ctx.artifact("model_version_eval"))):
        return cached
    with lineage.asset_run(ctx.recipe.mlflow, "model_version_eval", dagster_run_id=ctx.dagster_run_id,
                           upstream={"task_corpus": corpus.mlflow_run_id},
                           params={"version": version or "(candidates)", "questions": questions,
                                   "fresh_seed": fresh_seed, "eval": ecfg.model_dump()}) as run:
        targets = ([versions.resolve(_version_uri(version, ctx.recipe.name))] if version
                   else _unevaluated_candidates(names, items_fp))
        suffix = "" if questions == "held_out" else f"@fresh-{fresh_seed}"
        keys = {t.key: f"{t.key}{suffix}" for t in targets}
        lineage.set_tag("r1ci.model_versions", ",".join(keys))
        result, figures = _evaluate_versions(ctx, items, keys, names, questions, sandbox, run.info.run_id, force)
        champions = _record_version_figures(ctx, targets, figures, items_fp, questions, fresh_seed)
        out = StageResult(result["report_path"], run.info.run_id,
                          {**result, "model_versions": list(keys), "questions": questions, "n_questions": len(items),
                           "version_figures": figures, "champions": champions})
        # keyed on the state it leaves: re-run with nothing new registered, it is reused
        return _record(out, _version_eval_key(ctx, names, items_fp, **spec), artifact=ctx.artifact("model_version_eval"))


def _version_eval_items(ctx: StageContext, corpus: StageResult, questions: str, fresh_seed: int) -> list[Any]:
    """The questions of ``eval.pools``: the corpus' own (``held_out``) or fresh ones drawn with `fresh_seed`."""
    from .corpus import fresh_items, load_corpus

    corpus_items = load_corpus(Path(corpus.path))
    items = corpus_items if questions == "held_out" else fresh_items(ctx.recipe.tasks, corpus_items, fresh_seed)
    return [it for it in items if it.pool in ctx.recipe.eval.pools]


def _version_eval_key(ctx: StageContext, names: list[str], items_fp: str, *, version: str, questions: str,
                      fresh_seed: int) -> str:
    """model_version_eval's key: the registered versions' state too, so a new or newly evaluated version
    changes it."""
    return _stage_key(ctx, "model_version_eval", version=version, questions=questions, fresh_seed=fresh_seed,
                      eval=ctx.recipe.eval.model_dump(), rollout=ctx.recipe.rollout.model_dump(), seed=ctx.recipe.seed,
                      sandbox=_sandbox_limits(ctx), items=items_fp, versions=_versions_state(names))


def _evaluate_versions(ctx: StageContext, items: list[Any], keys: dict[str, str], names: list[str], questions: str,
                       sandbox: Any, mlflow_run_id: str, force: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """Evaluate the versions `keys` (version key -> label) and write the report, which also shows every other
    version's latest held-out evaluation; return the evaluation's result and each version's figures."""
    from . import store
    from .evaluation import latest_version_runs, run_evaluation, version_figures

    ecfg = ctx.recipe.eval
    others = latest_version_runs(store.db_path(ctx.root), names, [it.id for it in items], ecfg.modes,
                                 exclude=list(keys)) if questions == "held_out" else []
    if not keys and not others:
        raise ValueError(f"no registered version of {' / '.join(names)} to evaluate: materialise "
                         "sft_checkpoint (or grpo_checkpoint) first")
    result = run_evaluation(ctx, items, {label: f"models:/{key}" for key, label in keys.items()}, sandbox,
                            families=ctx.families,
                            mlflow_run_id=mlflow_run_id, force=force, recipe_entries=False,
                            out_dir=ctx.artifact("model_version_eval"), reward_curve=[],
                            extra_report_run_ids=others, version_labels=True,
                            title=f"r1ci model versions — recipe {ctx.recipe.name}")
    figures = version_figures(result["db_path"], {rid: key for key, label in keys.items()
                                                  for rid in result["checkpoint_run_ids"].get(label, [])})
    return result, figures


def _record_version_figures(ctx: StageContext, targets: list[Any], figures: dict[str, Any], items_fp: str,
                            questions: str, fresh_seed: int) -> dict[str, str | None]:
    """Attach each evaluated version's figures to it in the registry; after a held-out evaluation move each
    name's ``champion`` to its best version on the headline mode. Returns the champions."""
    from . import versions

    prefix = versions.EVAL_PREFIX if questions == "held_out" else versions.RECHECK_PREFIX
    champions: dict[str, str | None] = {}
    for t in targets:
        extra = {"seed": fresh_seed} if questions == "fresh" else {}
        versions.record_evaluation(t.key, {**figures.get(t.key, {}), **extra}, items_fp, prefix=prefix)
        if questions == "held_out":
            champions[t.name] = versions.update_champion(
                t.name, items_fp, f"{versions.EVAL_PREFIX}{ctx.recipe.eval.modes[0]}.accuracy")
    return champions


def _versions_state(names: list[str]) -> dict[str, list[Any]]:
    """Every registered version of `names` with the questions it was evaluated on and its aliases' targets."""
    from .versions import registry_state

    return {name: registry_state(name) for name in names}


def _version_uri(version: str, recipe_name: str) -> str:
    """``sft/3`` / ``grpo@champion`` → this recipe's registered name; other forms unchanged."""
    from .versions import STAGES, registered_name

    short = version.removeprefix("models:/")
    for stage in STAGES:
        for sep in ("/", "@"):
            if short.startswith(stage + sep):
                return f"models:/{registered_name(recipe_name, stage)}{short[len(stage):]}"
    return version if version.startswith("models:/") else f"models:/{version}"


def _unevaluated_candidates(names: list[str], items_fp: str) -> list[Any]:
    """The ``candidate`` version of each name whose held-out figures are not about the questions `items_fp`."""
    from . import versions

    out = []
    for name in names:
        number = versions.alias_version(name, versions.CANDIDATE)
        if number is None:
            continue
        if versions.evaluated_on(name, number) != items_fp:
            out.append(versions.resolve(f"models:/{name}/{number}"))
    return out


def _runs_stored(ctx: StageContext) -> Any:
    """A check that a reused report's evaluation runs are all still in the store."""
    from . import store

    def valid(result: StageResult) -> bool:
        run_ids = [*(result.metadata.get("run_ids") or []), *(result.metadata.get("sampled_run_ids") or [])]
        missing = store.missing_runs(store.db_path(ctx.root), run_ids)
        if missing:
            log.info("eval_report: %d of its %d evaluation runs are no longer stored: evaluating again",
                     len(missing), len(run_ids))
        return not missing

    return valid
