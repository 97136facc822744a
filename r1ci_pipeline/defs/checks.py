"""Asset checks: data gates (blocking) and model comparisons (warnings)."""


import dagster as dg

from .assets.data import task_corpus
from .assets.evaluation import eval_report
from .resources import RecipeResource


@dg.asset_check(asset=task_corpus, blocking=True, description="No question id or text in two pools.")
def check_task_corpus_pools_disjoint(task_corpus) -> dg.AssetCheckResult:
    from pathlib import Path

    from r1ci_core.corpus import load_corpus, pool_overlaps

    overlaps = pool_overlaps(load_corpus(Path(task_corpus.path)))
    return dg.AssetCheckResult(passed=not overlaps, metadata={"n_overlaps": len(overlaps),
                                                              "examples": dg.MetadataValue.json(overlaps[:5])})


def _eval_check(result: tuple[bool, str]) -> dg.AssetCheckResult:
    passed, description = result
    return dg.AssetCheckResult(passed=passed, description=description)


@dg.asset_check(asset=eval_report, description="No NaN score or accuracy in this evaluation's runs.")
def check_eval_report_no_nan(eval_report) -> dg.AssetCheckResult:
    from r1ci_core.evaluation import check_no_nan

    return _eval_check(check_no_nan(eval_report.metadata["db_path"], eval_report.metadata["run_ids"]))


@dg.asset_check(asset=eval_report, additional_ins={"task_corpus": dg.AssetIn("task_corpus")},
                description="Every held-out family was evaluated in every run.")
def check_eval_report_all_families(eval_report, task_corpus) -> dg.AssetCheckResult:
    from r1ci_core.evaluation import check_all_families

    families = sorted(task_corpus.metadata["counts"])
    return _eval_check(check_all_families(eval_report.metadata["db_path"], eval_report.metadata["run_ids"], families))


@dg.asset_check(asset=eval_report, description="The sandbox infra-error rate is under the recipe's threshold.")
def check_eval_report_infra_rate(eval_report, recipe: RecipeResource) -> dg.AssetCheckResult:
    from r1ci_core.evaluation import check_infra_rate

    threshold = recipe.load().eval.max_infra_error_rate
    return _eval_check(check_infra_rate(eval_report.metadata["db_path"], eval_report.metadata["run_ids"], threshold))


def grpo_below_sft(accuracy: dict[str, dict[str, float]]) -> dict[str, tuple[float, float]]:
    """{mode: (sft, grpo)} for each mode in which both were evaluated and GRPO's accuracy is below SFT's."""
    sft, grpo = accuracy.get("sft") or {}, accuracy.get("grpo") or {}
    return {m: (sft[m], grpo[m]) for m in sorted(set(sft) & set(grpo)) if grpo[m] < sft[m]}


@dg.asset_check(asset=eval_report, description="GRPO's held-out accuracy is not below SFT's (a warning).")
def check_eval_report_grpo_not_below_sft(eval_report) -> dg.AssetCheckResult:
    accuracy = eval_report.metadata.get("accuracy") or {}
    below = grpo_below_sft(accuracy)
    compared = sorted(set(accuracy.get("sft") or {}) & set(accuracy.get("grpo") or {}))
    if below:
        text = "; ".join(f"{m}: GRPO {g:.1%} < SFT {s:.1%}" for m, (s, g) in below.items())
    else:
        text = f"GRPO >= SFT in {compared}" if compared else "SFT and GRPO were not both evaluated"
    return dg.AssetCheckResult(passed=not below, severity=dg.AssetCheckSeverity.WARN, description=text,
                               metadata={"below": dg.MetadataValue.json({m: {"sft": s, "grpo": g}
                                                                         for m, (s, g) in below.items()}),
                                         "modes_compared": dg.MetadataValue.json(compared)})
