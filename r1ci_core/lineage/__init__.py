"""MLflow lineage: the one place in r1ci that talks to MLflow (`tests/test_mlflow_one_module.py` checks it).

* `runs`: the tracking store, one run per asset materialisation linked to its upstream runs and inputs, runs
  reused by content key, and logging into the active run.
* `figures`: trainer steps, per-step curves and an evaluation's metrics logged to a run; a metric history.
* `registry`: the model registry (register a version, list a name's versions, aliases, version tags, download).

Everything is importable from `r1ci_core.lineage` itself.
"""

from . import registry
from .figures import active_run_id, log_curves, log_step_metrics, log_to_run, metric_history
from .runs import (
    CACHE_KEY_TAG,
    DEFAULT_UI_URL,
    OUTPUT_DIGEST_TAG,
    REPLACES_TAG,
    RESULT_ARTIFACT,
    UI_URL_ENV,
    UPSTREAM_TAG,
    CachedRun,
    TrackingError,
    active_target,
    asset_run,
    check_reachable,
    close_stale_runs,
    find_cached_run,
    log_dataset,
    log_dict,
    log_metric,
    log_metrics,
    log_params,
    record_result,
    register_checkpoint,
    resumed_run,
    run_url,
    set_tag,
    setup,
    tracking_uri,
    use_tracking_store,
)

__all__ = [
    "CACHE_KEY_TAG", "DEFAULT_UI_URL", "OUTPUT_DIGEST_TAG", "REPLACES_TAG", "RESULT_ARTIFACT", "UI_URL_ENV",
    "UPSTREAM_TAG", "CachedRun", "TrackingError", "active_run_id", "active_target", "asset_run",
    "check_reachable", "close_stale_runs", "find_cached_run", "log_curves", "log_dataset", "log_dict",
    "log_metric", "log_metrics", "log_params", "log_step_metrics", "log_to_run", "metric_history",
    "record_result", "register_checkpoint", "registry", "resumed_run", "run_url", "set_tag", "setup",
    "tracking_uri", "use_tracking_store",
]
