"""The evaluation stage: roll out checkpoints on held-out questions, store every sample, write the report.

Entry points
------------
* `run_evaluation(ctx, items, checkpoints, sandbox, mlflow_run_id=...)` — what `stages.eval_report` calls.
* `compare_runs(db_path, run_a, run_b)` / `format_comparison(rows)` — ``r1ci eval compare A B``.
* `check_no_nan`, `check_all_families`, `check_infra_rate` — plain asset-check functions.
* `version_figures(db, run_ids)` — accuracy per mode and pool of each model version, for its MLflow tags.

A checkpoint is a folder path, a registered MLflow model version (``models:/r1ci-tiny-sft/3``,
``models:/r1ci-tiny-sft/latest`` or ``models:/r1ci-tiny-sft@champion``, loaded from the version's own
artifacts: see `r1ci_core.versions`) or an OpenAI-compatible endpoint model (``openai:<model>`` with
``$OPENAI_BASE_URL``, or ``openai:<model>@http://host:port/v1``). Recipe entries of
``eval.checkpoints`` written that way are evaluated too, besides the pipeline's base/sft/grpo.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import lineage, store, store_staging
from .audit import hardcoded_answer
from .digest import checkpoint_fingerprint
from .metrics import sample_figures, two_proportion_test
from .training import release_memory

log = logging.getLogger(__name__)

POOL_NAMES = {"test_unseen": "unseen_family", "test_seen": "seen_family"}
PIPELINE_CHECKPOINTS = ("base", "sft", "grpo")
STAGE_CHECKPOINTS = ("sft", "grpo")  # registered as r1ci-<recipe>-sft / -grpo (`versions.registered_name`)
# rollout settings that cannot change what is generated (batching) are left out of the eval key
_KEY_EXCLUDED_ROLLOUT = ("batch_size",)


# ---------------------------------------------------------------------------------------- checkpoints
@dataclass
class CheckpointSpec:
    """One model to evaluate: a local folder (transformers/vllm) or an OpenAI-compatible endpoint."""

    name: str
    kind: str  # "path" or "openai"
    path: str  # folder, or the endpoint's base URL for "openai"
    model_version: str | None = None
    model: str | None = None  # endpoint model name
    uri: str | None = None  # what the user wrote (models:/..., openai:...)

    @property
    def location(self) -> str:
        return self.uri or self.path


def _resolve_model_uri(uri: str) -> tuple[str, str]:
    """(local folder, 'name/version') of ``models:/<name>/<version|latest>`` or ``models:/<name>@<alias>``:
    the version's own artifacts in MLflow, never the folder the pipeline trains into."""
    from .versions import resolve

    resolved = resolve(uri)
    return resolved.path, resolved.key


def resolve_checkpoint(name: str, value: str) -> CheckpointSpec:
    value = str(value)
    if value.startswith("models:/"):
        path, version = _resolve_model_uri(value)
        return CheckpointSpec(name=name, kind="path", path=path, model_version=version, uri=value)
    if value.startswith("openai:"):
        model, _, base_url = value[len("openai:"):].partition("@")
        base_url = base_url or os.environ.get("OPENAI_BASE_URL", "")
        if not model:
            raise ValueError(f"checkpoint {value!r}: write openai:<model> or openai:<model>@<base_url>")
        return CheckpointSpec(name=name, kind="openai", path=base_url, model=model, uri=value)
    return CheckpointSpec(name=name, kind="path", path=str(value))


def resolve_checkpoints(checkpoints: Mapping[str, str], recipe_names: Sequence[str] = ()) -> list[CheckpointSpec]:
    """Specs for the pipeline's checkpoints plus recipe entries that name a model version or an endpoint."""
    specs = [resolve_checkpoint(name, path) for name, path in checkpoints.items()]
    have = {s.name for s in specs}
    for entry in recipe_names:
        if entry in have or entry in PIPELINE_CHECKPOINTS:
            continue
        if entry.startswith(("models:/", "openai:")):
            spec = resolve_checkpoint(entry, entry)
            if spec.model_version:
                spec.name = spec.model_version
            elif spec.kind == "openai":
                spec.name = f"openai:{spec.model}"
            specs.append(spec)
        else:
            log.warning("eval.checkpoints entry %r has no checkpoint in this run: skipped", entry)
    order = {n: i for i, n in enumerate(PIPELINE_CHECKPOINTS)}
    return sorted(specs, key=lambda s: order.get(s.name, len(order)))


def _registered_version(spec: CheckpointSpec, recipe_name: str, fingerprint: str) -> str | None:
    """The newest registered version (``r1ci-<recipe>-sft/3``) with this checkpoint's content, if any."""
    if spec.model_version or spec.kind != "path":
        return spec.model_version
    if spec.name not in STAGE_CHECKPOINTS:
        return None
    from .versions import find_version, registered_name

    name = registered_name(recipe_name, spec.name)
    version = find_version(name, fingerprint)
    return f"{name}/{version}" if version else None


def _make_backend(spec: CheckpointSpec, recipe: Any) -> Any:
    from .rollout import get_backend

    if spec.kind == "openai":
        return get_backend("openai", base_url=spec.path or None, model=spec.model)
    name = recipe.rollout.backend if recipe.rollout.backend != "openai" else "transformers"
    if name == "vllm":
        return get_backend("vllm", model_path=spec.path)
    return get_backend("transformers", model_path=spec.path, dtype=recipe.model.dtype,
                       local_files_only=recipe.model.local_files_only, prefill_dtype=recipe.rollout.prefill_dtype)


# ---------------------------------------------------------------------------------------- keys and rows
def items_fingerprint(items: Sequence[Any]) -> str:
    rows = sorted((it.id, it.family, str(it.answer), it.pool) for it in items)
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()[:20]


def rollout_settings(limits: Any, seed: int, samples_per_item: int, backend: str) -> dict[str, Any]:
    """The settings an evaluation run is keyed on (and stores in ``eval_runs.rollout``)."""
    from .chat import PROMPT_VERSION

    keyed = {k: v for k, v in limits.model_dump().items() if k not in _KEY_EXCLUDED_ROLLOUT}
    keyed["backend"] = backend
    return {"limits": keyed, "seed": seed, "samples_per_item": samples_per_item,
            "prompt_version": PROMPT_VERSION, "batch_size": limits.batch_size}


def eval_key(fingerprint: str, items_fp: str, mode: str, settings: Mapping[str, Any]) -> str:
    keyed = {k: v for k, v in settings.items() if k != "batch_size"}
    blob = json.dumps([fingerprint, items_fp, mode, keyed], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def sample_rows(run_id: str, items: Sequence[Any], trajs: Sequence[Any], samples_per_item: int,
                families: Mapping[str, Any]) -> list[dict[str, Any]]:
    """eval_samples rows of one run (trajectories are item-major, `samples_per_item` each)."""
    rows = []
    for i, traj in enumerate(trajs):
        item = items[i // samples_per_item]
        fam = families.get(item.family)
        source = item.source or (getattr(fam, "source", "") if fam else "")
        score = traj.score
        if score is not None and isinstance(score, float) and math.isnan(score):
            score = None
        rows.append({
            "run_id": run_id,
            "sample_idx": i % samples_per_item,
            "question_id": item.id,
            "family": item.family,
            "source": source,
            "pool": POOL_NAMES.get(item.pool, item.pool or ""),
            "question": item.question,
            "gold": str(item.answer),
            "answer": traj.final_answer,
            "score": score,
            "parseable": traj.parseable,
            "infra_error": bool(traj.infra_error),
            "finish_reason": traj.finish_reason,
            "n_turns": traj.n_turns,
            "n_code_calls": traj.n_code_calls,
            "gen_time_s": float(traj.gen_time_s),
            "exec_time_s": float(traj.exec_time_s),
            "trajectory": _trajectory_json(traj),
            "hardcoded_answer": hardcoded_answer(traj, item.question),
            **sample_figures(traj),
        })
    return rows


def _trajectory_json(traj: Any) -> str:
    """The whole trajectory as one JSON object (messages/executions/provenance nested, not as strings)."""
    row = traj.to_row()
    for key in ("messages", "executions", "provenance"):
        if isinstance(row.get(key), str):
            row[key] = json.loads(row[key])
    return json.dumps(row, default=str)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


# ---------------------------------------------------------------------------------------- main entry
@dataclass(frozen=True)
class Decoding:
    """How the runs of one evaluation sample: the headline (one answer per question with the rollout
    limits as they are: greedy by default) or the sampled runs behind pass@k (``eval.samples`` answers per
    question at ``eval.temperature``)."""

    name: str  # "headline" / "sampled"
    limits: Any  # RolloutConfig
    samples: int


def decodings(recipe: Any) -> list[Decoding]:
    """The headline decoding, and with ``eval.temperature`` > 0 the sampled one."""
    out = [Decoding("headline", recipe.rollout, 1)]
    if recipe.eval.temperature > 0:
        limits = recipe.rollout.model_copy(update={"temperature": recipe.eval.temperature})
        out.append(Decoding("sampled", limits, recipe.eval.samples))
    return out


@dataclass
class _Target:
    """One checkpoint as evaluated: its spec, content fingerprint, model version and backend name."""

    spec: CheckpointSpec
    fingerprint: str
    version: str | None
    backend_name: str


@dataclass
class _Job:
    """One `run_evaluation` call: what all its runs share, and the run ids they produce or reuse."""

    ctx: Any
    items: list[Any]
    sandbox: Any
    families: Mapping[str, Any]
    db: Path
    force: bool
    progress: bool
    mlflow_run_id: str | None
    run_ids: list[str] = field(default_factory=list)  # headline runs
    sampled_run_ids: list[str] = field(default_factory=list)
    new_ids: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    from_staged: list[str] = field(default_factory=list)  # inserted from files an earlier attempt staged
    by_checkpoint: dict[str, list[str]] = field(default_factory=dict)

    @property
    def recipe(self) -> Any:
        return self.ctx.recipe

    @property
    def staging(self) -> Path:
        return self.ctx.artifact(STAGING_NAME)

    def items_for(self, mode: str) -> list[Any]:
        """The questions `mode` is evaluated on: those of its ``eval.pools_by_mode`` pools, else all."""
        pools = self.recipe.eval.pools_by_mode.get(mode)
        return self.items if pools is None else [it for it in self.items if it.pool in pools]


def _pools_label(items: Sequence[Any]) -> str:
    """The pools of `items` as stored in eval_runs.pools ("seen_family,unseen_family")."""
    return ",".join(sorted({POOL_NAMES.get(it.pool, it.pool or "") for it in items}))


def run_evaluation(
    ctx: Any,
    items: Sequence[Any],
    checkpoints: Mapping[str, str],
    sandbox: Any,
    *,
    mlflow_run_id: str | None = None,
    modes: Sequence[str] | None = None,
    force: bool = False,
    families: Mapping[str, Any] | None = None,
    progress: bool = False,
    reward_curve: Sequence[float] | None = None,
    recipe_entries: bool = True,
    out_dir: Path | None = None,
    title: str | None = None,
    extra_report_run_ids: Sequence[str] = (),
    version_labels: bool = False,
) -> dict[str, Any]:
    """Evaluate every checkpoint in every mode of ``ctx.recipe.eval`` on `items`; store, report, log.

    `checkpoints` maps names (``base``/``sft``/``grpo``) to folders (or ``models:/`` / ``openai:`` specs).
    Each checkpoint × mode gets a headline run (one answer per question) and, with ``eval.temperature`` > 0,
    a sampled run (``eval.samples`` answers per question) for pass@k. A (checkpoint content, items, mode,
    rollout settings) combination already in the store is not run again unless `force` (or
    ``$R1CI_EVAL_FORCE=1``); its stored run is reported. Returns the report's figures (see the module doc
    of `r1ci_core.report` for the files): report_path, html_path, markdown_table, plot_path, plots,
    accuracy {checkpoint: {mode: acc}}, family_accuracy {checkpoint: {mode: {family: acc}}}, pass_at_k
    {checkpoint: {mode: {"pass@k"/"avg@n": value}}}, n_samples, n_infra_errors, infra_errors {checkpoint:
    {mode: n}}, duration_s, run_ids (headline), sampled_run_ids, new_run_ids, reused_run_ids, db_path.

    `recipe_entries=False` evaluates only `checkpoints` (not the recipe's ``models:/``/``openai:`` entries);
    the report goes to `out_dir` (default ``<data>/<recipe>/eval_report``), also shows the stored runs
    `extra_report_run_ids`, and with `version_labels` names pipeline checkpoints by their model version.
    """
    t0 = time.perf_counter()
    job = _start(ctx, items, sandbox, families=families, force=force, progress=progress,
                 mlflow_run_id=mlflow_run_id)
    ecfg = ctx.recipe.eval
    specs = resolve_checkpoints(checkpoints, ecfg.checkpoints if recipe_entries else ())
    if not specs and not extra_report_run_ids:
        raise ValueError("no checkpoint to evaluate: eval.checkpoints names none of the pipeline's checkpoints")
    for spec in specs:
        _evaluate_checkpoint(job, spec, list(modes) if modes else ecfg.modes_for(spec.name))
    out_dir = Path(out_dir) if out_dir is not None else ctx.artifact("eval_report")
    return _finish(job, t0, out_dir, title=title, reward_curve=reward_curve,
                   extra_report_run_ids=extra_report_run_ids, version_labels=version_labels)


def _start(ctx: Any, items: Sequence[Any], sandbox: Any, *, families: Mapping[str, Any] | None, force: bool,
           progress: bool, mlflow_run_id: str | None) -> _Job:
    """The questions (each once), the tracking store and the DuckDB store set up for one evaluation."""
    unique: dict[str, Any] = {}
    for it in items:
        unique.setdefault(it.id, it)
    if not unique:
        raise ValueError("no evaluation items: the corpus has no question in the pools "
                         f"{list(ctx.recipe.eval.pools)} (check tasks.n_test_seen / n_test_unseen)")
    lineage.use_tracking_store(ctx.recipe.mlflow)
    db = store.db_path(ctx.root)
    try:
        store.init_db(db, wait_s=store.LOOKUP_WAIT_S)
    except store.StoreLocked as err:  # rollouts go on; their insert waits for the store
        log.warning("evaluation: %s; evaluating anyway, each run is staged and inserted when the store is free", err)
    return _Job(ctx=ctx, items=list(unique.values()), sandbox=sandbox,
                families=families if families is not None else ctx.families, db=db, force=force or env_forced(),
                progress=progress, mlflow_run_id=mlflow_run_id)


class _LazyBackend:
    """The checkpoint's backend, loaded on the first rollout (never when every run is already stored)."""

    def __init__(self, spec: CheckpointSpec, recipe: Any):
        self.spec, self.recipe, self.backend = spec, recipe, None

    def get(self) -> Any:
        if self.backend is None:
            self.backend = _make_backend(self.spec, self.recipe)
        return self.backend

    def close(self) -> None:
        if self.backend is not None:
            close = getattr(self.backend, "close", None)
            if callable(close):
                close()
            self.backend = None
            release_memory()


def _evaluate_checkpoint(job: _Job, spec: CheckpointSpec, modes: Sequence[str]) -> None:
    """Every mode × decoding of one checkpoint, on one backend that is closed at the end."""
    recipe = job.recipe
    fingerprint = checkpoint_fingerprint(spec.path) if spec.kind == "path" else f"openai:{spec.model}@{spec.path}"
    backend_name = "openai" if spec.kind == "openai" else (
        recipe.rollout.backend if recipe.rollout.backend != "openai" else "transformers")
    target = _Target(spec, fingerprint, _registered_version(spec, recipe.name, fingerprint), backend_name)
    backend = _LazyBackend(spec, recipe)
    headline: list[str] = []
    try:
        for mode in modes:
            for decoding in decodings(recipe):
                run_id = _evaluate_mode(job, target, mode, decoding, backend)
                (headline if decoding.name == "headline" else job.sampled_run_ids).append(run_id)
    finally:
        backend.close()
    job.run_ids += headline
    job.by_checkpoint[spec.name] = headline


def _evaluate_mode(job: _Job, target: _Target, mode: str, decoding: Decoding, backend: _LazyBackend) -> str:
    """One run: reused from the store, inserted from an earlier attempt's staged file, or rolled out."""
    spec = target.spec
    settings = rollout_settings(decoding.limits, job.recipe.seed, decoding.samples, target.backend_name)
    items = job.items_for(mode)
    key = eval_key(target.fingerprint, items_fingerprint(items), mode, settings)
    label = f"{spec.name}/{mode}" + ("" if decoding.name == "headline" else f" ({decoding.samples} samples)")
    staged = store_staging.find_staged(job.staging, key)
    if staged is None and not job.force:
        existing = _stored_run(job.db, key)
        if existing:
            log.info("eval %s already stored as run %s: not run again", label, existing)
            job.reused.append(existing)
            return existing
    resumed = staged is not None
    if staged is not None:
        log.info("eval %s: rollouts of run %s were staged in %s by an earlier attempt and not stored: inserting "
                 "them, nothing rolled out again", label, staged.run["run_id"], staged.path)
    else:
        run, rows = _evaluate(job, items, target, mode, decoding, key, settings, backend.get())
        staged = store_staging.stage_run(job.staging, run, rows)
    try:
        run_id, inserted = store_staging.insert_staged(job.db, staged)
    except store.StoreLocked as err:
        raise store.StoreLocked(f"{err}. The rollouts of eval {label} are kept in {staged.path}: the next run "
                                "inserts them without rolling out again") from err
    (job.new_ids if inserted else job.reused).append(run_id)
    if resumed and inserted:
        job.from_staged.append(run_id)
    run = staged.run
    log.info("eval %s: accuracy %s over %d samples (%d infra errors), run %s", label, run["accuracy"],
             run["n_samples"], run["n_infra_errors"], run_id)
    return run_id


def _finish(job: _Job, t0: float, out_dir: Path, *, title: str | None, reward_curve: Sequence[float] | None,
            extra_report_run_ids: Sequence[str], version_labels: bool) -> dict[str, Any]:
    """Warn on infra errors, write the report, log it to MLflow; the evaluation's figures."""
    from .report import build_report

    recipe = job.recipe
    _warn_infra(job.db, job.run_ids + job.sampled_run_ids, recipe.eval.max_infra_error_rate)
    report = build_report(job.db, [*job.run_ids, *extra_report_run_ids], out_dir,
                          title=title or f"r1ci evaluation — recipe {recipe.name}", reward_curve=reward_curve,
                          recipe=recipe.name, version_labels=version_labels, sampled_run_ids=job.sampled_run_ids)
    result = {
        **report,
        "n_samples": int(report.get("n_samples", 0)),
        "duration_s": round(time.perf_counter() - t0, 3),
        "run_ids": job.run_ids,
        "sampled_run_ids": job.sampled_run_ids,
        "checkpoint_run_ids": job.by_checkpoint,  # {checkpoint: its headline run ids, one per mode}
        "new_run_ids": job.new_ids,
        "reused_run_ids": job.reused,
        "staged_inserted_run_ids": job.from_staged,
        "db_path": str(job.db),
    }
    _log_to_mlflow(result, out_dir, job.mlflow_run_id)
    return result


def _stored_run(db: Path, key: str) -> str | None:
    """The stored run of `key`; None also while another process holds the store (the insert then checks)."""
    try:
        return store.find_run(db, key, wait_s=store.LOOKUP_WAIT_S)
    except store.StoreLocked as err:
        log.warning("evaluation: cannot look up stored runs (%s): evaluating and staging; an unforced insert "
                    "still never stores the same evaluation twice", err)
        return None


STAGING_NAME = "eval_report.staged"  # beside the report: evaluation runs rolled out but not yet in the store


def _evaluate(job: _Job, items: list[Any], target: _Target, mode: str, decoding: Decoding, key: str,
              settings: dict[str, Any], backend: Any) -> tuple[dict[str, Any], list[dict]]:
    """Roll out one checkpoint in one mode and decoding on `items`: its eval_runs row and its sample rows."""
    from .rollout import run_rollouts

    recipe, spec = job.recipe, target.spec
    run_id = uuid.uuid4().hex
    started = _now()
    t_run = time.perf_counter()
    trajs = run_rollouts(backend, items, limits=decoding.limits, sandbox=job.sandbox, mode=mode,
                         samples_per_item=decoding.samples, seed=recipe.seed, progress=job.progress,
                         families=job.families)
    duration = time.perf_counter() - t_run
    rows = sample_rows(run_id, items, trajs, decoding.samples, job.families)
    scored = [r["score"] for r in rows if not r["infra_error"] and r["score"] is not None]
    run = {
        "run_id": run_id, "eval_key": key, "checkpoint": spec.name, "checkpoint_path": spec.location,
        "checkpoint_fingerprint": target.fingerprint, "model_version": target.version,
        "mlflow_run_id": job.mlflow_run_id or "", "dagster_run_id": getattr(job.ctx, "dagster_run_id", ""),
        "recipe": recipe.name, "mode": mode, "backend": target.backend_name, "rollout": settings,
        "pools": _pools_label(items), "n_items": len(items), "n_samples": len(rows),
        "n_infra_errors": sum(1 for r in rows if r["infra_error"]),
        "accuracy": sum(scored) / len(scored) if scored else None,
        "forced": bool(job.force), "started_at": started, "finished_at": _now(), "duration_s": duration,
    }
    return run, rows


def env_forced() -> bool:
    """`$R1CI_EVAL_FORCE` asks for evaluations already stored to be run again."""
    return os.environ.get("R1CI_EVAL_FORCE", "").lower() in ("1", "true", "yes")


def _warn_infra(db: Path, run_ids: Sequence[str], threshold: float) -> None:
    passed, why = check_infra_rate(db, run_ids, threshold)
    if not passed:
        log.warning("evaluation: %s (those samples are excluded from accuracy)", why)


# ---------------------------------------------------------------------------------------- MLflow
def _metric_name(*parts: str) -> str:
    import re

    return ".".join(re.sub(r"[^A-Za-z0-9_\-./ ]", "_", p) for p in parts)


def _log_to_mlflow(result: Mapping[str, Any], out_dir: Path, mlflow_run_id: str | None) -> None:
    """Figures as metrics and the report folder as artifacts of the active (or given) MLflow run."""
    run_id = lineage.active_run_id() or mlflow_run_id
    if not run_id:
        return
    metrics: dict[str, float] = {"n_samples": float(result.get("n_samples", 0)),
                                 "n_infra_errors": float(result.get("n_infra_errors", 0)),
                                 "duration_s": float(result.get("duration_s", 0.0))}
    for ckpt, per_mode in result.get("accuracy", {}).items():
        for mode, acc in per_mode.items():
            if acc is not None and not math.isnan(acc):
                metrics[_metric_name("accuracy", ckpt, mode)] = float(acc)
    for ckpt, per_mode in result.get("code_use_ratio", {}).items():
        for mode, val in per_mode.items():
            if val is not None and not math.isnan(val):
                metrics[_metric_name("code_use_ratio", ckpt, mode)] = float(val)
    for ckpt, per_mode in result.get("pass_at_k", {}).items():  # pass@3 -> pass_at_3.<ckpt>.<mode>
        for mode, figures in per_mode.items():
            for name, val in figures.items():
                if val is not None:
                    metrics[_metric_name(name.replace("@", "_at_"), ckpt, mode)] = float(val)
    try:
        lineage.log_to_run(run_id, metrics, {"r1ci.eval_run_ids": ",".join(result.get("run_ids", []))[:5000]},
                           artifacts=out_dir, artifact_path="eval_report")
    except Exception as err:  # noqa: BLE001 - the store and report are the record; MLflow is a mirror
        log.warning("could not log the evaluation to MLflow run %s: %s", run_id, err)


def grpo_reward_curve(run_id: str) -> list[float] | None:
    """The ``reward`` metric history (by step) of the ``grpo_checkpoint`` MLflow run `run_id`, if it has one.

    The caller names the run (the evaluated GRPO checkpoint's own): with several recipes or retrains in one
    store, "the latest GRPO run" may be another model's.
    """
    try:
        return lineage.metric_history(run_id, "reward") or None
    except Exception as err:  # noqa: BLE001 - the curve is an optional input of the report
        log.info("no GRPO reward curve for run %s: %s", run_id, err)
        return None


def version_figures(db_path: str | Path, runs: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """{model version: {figure: value}} of the stored runs `runs` ({run_id: model version}):
    ``<mode>.accuracy``, ``<mode>.n``, ``<mode>.<pool>.accuracy``, ``<mode>.<pool>.n`` and ``run_ids``
    (infra-error samples excluded, as in the views)."""
    df = store.query(db_path, """
        SELECT r.mode, r.run_id, s.pool,
               avg(s.score) FILTER (WHERE NOT s.infra_error) AS accuracy,
               count(*) FILTER (WHERE NOT s.infra_error AND s.score IS NOT NULL) AS n
        FROM eval_runs r JOIN eval_samples s USING (run_id)
        WHERE list_contains(?, r.run_id)
        GROUP BY GROUPING SETS ((r.mode, r.run_id), (r.mode, r.run_id, s.pool))""", [_ids(list(runs))])
    out: dict[str, dict[str, Any]] = {}
    for r in df.itertuples():
        figures = out.setdefault(runs[r.run_id], {"run_ids": []})
        prefix = r.mode if not isinstance(r.pool, str) else f"{r.mode}.{r.pool}"
        acc = None if r.accuracy is None or math.isnan(r.accuracy) else float(r.accuracy)
        figures[f"{prefix}.accuracy"], figures[f"{prefix}.n"] = acc, int(r.n)
        if r.run_id not in figures["run_ids"]:
            figures["run_ids"].append(r.run_id)
    return out


def latest_version_runs(db_path: str | Path, names: Sequence[str], question_ids: Sequence[str],
                        modes: Sequence[str], exclude: Sequence[str] = ()) -> list[str]:
    """The latest stored run per (model version, mode) of the registered `names` on exactly `question_ids`
    (fresh-question re-checks left out), except the versions in `exclude`."""
    if not Path(db_path).is_file():
        return []
    df = store.query(db_path, """
        WITH same AS (SELECT run_id FROM eval_samples GROUP BY run_id
                      HAVING count(DISTINCT question_id) = ? AND bool_and(list_contains(?, question_id)))
        SELECT r.run_id FROM eval_runs r JOIN same USING (run_id)
        WHERE list_contains(?, split_part(r.model_version, '/', 1)) AND NOT list_contains(?, r.model_version)
          AND list_contains(?, r.mode) AND r.checkpoint NOT LIKE '%@fresh-%'
        QUALIFY row_number() OVER (PARTITION BY r.model_version, r.mode ORDER BY r.started_at DESC) = 1
        ORDER BY r.model_version, r.mode""",
                     [len(set(question_ids)), list(set(question_ids)), list(names), list(exclude), list(modes)])
    return list(df["run_id"])


# ---------------------------------------------------------------------------------------- compare
def compare_runs(db_path: str | Path, run_a: str, run_b: str) -> list[dict[str, Any]]:
    """Per-family accuracy of two runs with a pooled two-proportion z-test (95 %).

    Rows: family, source, n_a, n_b, acc_a, acc_b, diff (= acc_b - acc_a), p_value, significant; families of
    only one run get None for the other side. A last row ``family='(all)'`` compares the runs overall.
    Infra-error samples are excluded.
    """
    known = set(store.query(db_path, "SELECT run_id FROM eval_runs WHERE run_id IN (?, ?)", [run_a, run_b])["run_id"])
    for rid in (run_a, run_b):
        if rid not in known:
            raise ValueError(f"eval run {rid!r} is not in {db_path} (list runs with: SELECT run_id FROM eval_runs)")
    df = store.query(db_path, """
        SELECT run_id, family, any_value(source) AS source,
               count(*) FILTER (WHERE NOT infra_error AND score IS NOT NULL) AS n,
               coalesce(sum(score) FILTER (WHERE NOT infra_error), 0) AS s
        FROM eval_samples WHERE run_id IN (?, ?) GROUP BY run_id, family""", [run_a, run_b])
    stats: dict[str, dict[str, tuple[int, float]]] = {}
    sources: dict[str, str] = {}
    for r in df.itertuples():
        stats.setdefault(r.family, {})[r.run_id] = (int(r.n), float(r.s))
        sources[r.family] = r.source
    rows = []

    def row(family: str, source: str, a: tuple[int, float] | None, b: tuple[int, float] | None) -> dict[str, Any]:
        acc_a = a[1] / a[0] if a and a[0] else None
        acc_b = b[1] / b[0] if b and b[0] else None
        p, significant, diff = None, False, None
        if acc_a is not None and acc_b is not None:
            diff = acc_b - acc_a
            _, p = two_proportion_test(a[1], a[0], b[1], b[0])
            significant = p < 0.05
        return {"family": family, "source": source, "n_a": a[0] if a else 0, "n_b": b[0] if b else 0,
                "acc_a": acc_a, "acc_b": acc_b, "diff": diff, "p_value": p, "significant": significant}

    tot = {run_a: [0, 0.0], run_b: [0, 0.0]}
    for family in sorted(stats):
        a, b = stats[family].get(run_a), stats[family].get(run_b)
        rows.append(row(family, sources.get(family, ""), a, b))
        for rid, v in ((run_a, a), (run_b, b)):
            if v:
                tot[rid][0] += v[0]
                tot[rid][1] += v[1]
    rows.append(row("(all)", "", tuple(tot[run_a]), tuple(tot[run_b])))  # type: ignore[arg-type]
    return rows


def format_comparison(rows: Sequence[Mapping[str, Any]], run_a: str = "A", run_b: str = "B") -> str:
    """A fixed-width text table of `compare_runs` rows; ``*`` marks differences beyond noise at 95 %."""
    def pct(v: float | None) -> str:
        return "   -  " if v is None else f"{100 * v:5.1f}%"

    width = max([len("family")] + [len(str(r["family"])) for r in rows])
    head = f"{'family':<{width}}  {'n':>4} {run_a[:8]:>8} {run_b[:8]:>8} {'diff':>8} {'p':>7}"
    lines = [head, "-" * len(head)]
    for r in rows:
        diff = "    -   " if r["diff"] is None else f"{100 * r['diff']:+7.1f}%"
        p = "     - " if r["p_value"] is None else f"{r['p_value']:7.3f}"
        n = max(r["n_a"], r["n_b"])
        lines.append(f"{r['family']:<{width}}  {n:>4} {pct(r['acc_a']):>8} {pct(r['acc_b']):>8} {diff:>8} {p}"
                     f"{' *' if r['significant'] else ''}")
    lines.append("* significant at 95% (pooled two-proportion z-test)")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------- asset checks
def _ids(run_ids: Sequence[str]) -> list[str]:
    return [str(r) for r in run_ids]


def check_no_nan(db_path: str | Path, run_ids: Sequence[str]) -> tuple[bool, str]:
    """Every non-infra sample has a finite score, and every run has a finite accuracy."""
    ids = _ids(run_ids)
    bad = store.query(db_path, """
        SELECT run_id, count(*) AS n FROM eval_samples
        WHERE list_contains(?, run_id) AND NOT infra_error AND (score IS NULL OR isnan(score))
        GROUP BY run_id""", [ids])
    empty = store.query(db_path, """
        SELECT r.run_id FROM eval_runs r LEFT JOIN eval_run_accuracy a USING (run_id)
        WHERE list_contains(?, r.run_id) AND (a.accuracy IS NULL OR isnan(a.accuracy))""", [ids])
    missing = set(ids) - set(store.query(db_path, "SELECT run_id FROM eval_runs WHERE list_contains(?, run_id)",
                                         [ids])["run_id"])
    if missing:
        return False, f"runs not in the store: {sorted(missing)}"
    if len(bad) or len(empty):
        parts = [f"{r.run_id[:8]}: {r.n} unscored samples" for r in bad.itertuples()]
        parts += [f"{r[:8]} has no accuracy" for r in empty["run_id"] if r not in set(bad["run_id"])]
        return False, "NaN/NULL scores: " + "; ".join(parts)
    return True, f"all samples of {len(ids)} runs have a score"


def check_all_families(db_path: str | Path, run_ids: Sequence[str],
                       expected_families: Sequence[str]) -> tuple[bool, str]:
    """Every run has at least one scored (non-infra) sample of every expected family."""
    ids = _ids(run_ids)
    df = store.query(db_path, """
        SELECT r.run_id, r.checkpoint, r.mode, list(DISTINCT s.family) FILTER (WHERE NOT s.infra_error) AS fams
        FROM eval_runs r LEFT JOIN eval_samples s USING (run_id)
        WHERE list_contains(?, r.run_id) GROUP BY r.run_id, r.checkpoint, r.mode""", [ids])
    if len(df) < len(set(ids)):
        return False, f"{len(set(ids)) - len(df)} of the runs are not in the store"
    expected = set(expected_families)
    problems = []
    for r in df.itertuples():
        missing = expected - set(r.fams if r.fams is not None else [])
        if missing:
            problems.append(f"{r.checkpoint}/{r.mode} misses {sorted(missing)}")
    if problems:
        return False, "; ".join(problems)
    return True, f"{len(df)} runs cover all {len(expected)} families"


def check_infra_rate(db_path: str | Path, run_ids: Sequence[str], threshold: float) -> tuple[bool, str]:
    """Each run's share of infra-error samples is at most `threshold`."""
    ids = _ids(run_ids)
    df = store.query(db_path, """
        SELECT r.run_id, r.checkpoint, r.mode, count(s.run_id) AS n,
               count(*) FILTER (WHERE s.infra_error) AS n_infra
        FROM eval_runs r LEFT JOIN eval_samples s USING (run_id)
        WHERE list_contains(?, r.run_id) GROUP BY r.run_id, r.checkpoint, r.mode""", [ids])
    worst, problems = 0.0, []
    for r in df.itertuples():
        rate = r.n_infra / r.n if r.n else 1.0
        worst = max(worst, rate)
        if rate > threshold:
            problems.append(f"{r.checkpoint}/{r.mode}: {r.n_infra}/{r.n} = {rate:.1%}")
    if problems:
        return False, f"infra error rate above {threshold:.1%}: " + "; ".join(problems)
    return True, f"worst infra error rate {worst:.1%} <= {threshold:.1%} over {len(df)} runs"

