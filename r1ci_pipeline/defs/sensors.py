"""A sensor that re-evaluates when a new model version is registered in MLflow."""

import json

import dagster as dg

from .resources import RecipeResource
from .schedules import eval_job


@dg.sensor(job=eval_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.STOPPED,
           description="Start eval_report when a new r1ci-sft or r1ci-grpo version is registered in MLflow.")
def new_model_version_sensor(context: dg.SensorEvaluationContext, recipe: RecipeResource):
    from r1ci_core import lineage
    from r1ci_core.evaluation import latest_model_versions

    lineage.setup(recipe.load().mlflow)
    seen = json.loads(context.cursor or "{}")
    latest = {name: version for name, (version, _) in latest_model_versions().items()}
    new = {name: v for name, v in latest.items() if seen.get(name) != v}
    if not new:
        return dg.SkipReason(f"no new model version (latest: {latest or 'none'})")
    run_key = ",".join(f"{name}:{v}" for name, v in sorted(new.items()))
    return dg.SensorResult(run_requests=[dg.RunRequest(run_key=run_key, tags={"r1ci.new_versions": run_key})],
                           cursor=json.dumps({**seen, **latest}))
