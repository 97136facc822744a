"""Asset checks: data gates (blocking) and model comparisons (warnings)."""


import dagster as dg

from .assets.data import task_corpus


@dg.asset_check(asset=task_corpus, blocking=True, description="No question id or text in two pools.")
def check_task_corpus_pools_disjoint(task_corpus) -> dg.AssetCheckResult:
    from pathlib import Path

    from r1ci_core.corpus import load_corpus, pool_overlaps

    overlaps = pool_overlaps(load_corpus(Path(task_corpus.path)))
    return dg.AssetCheckResult(passed=not overlaps, metadata={"n_overlaps": len(overlaps),
                                                              "examples": dg.MetadataValue.json(overlaps[:5])})
