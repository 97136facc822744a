"""A sensor that evaluates each model version newly registered in MLflow."""

import json

import dagster as dg

from .assets.evaluation import version_run_config
from .resources import RecipeResource
from .schedules import model_version_eval_job


@dg.sensor(job=model_version_eval_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.STOPPED,
           description="For every new version of r1ci-<recipe>-sft / -grpo in the MLflow registry, one "
                       "model_version_eval run of exactly that version (run key <name>/<version>).")
def new_model_version_sensor(context: dg.SensorEvaluationContext, recipe: RecipeResource):
    from r1ci_core import lineage, versions

    cfg = recipe.load()
    lineage.setup(cfg.mlflow)
    seen = {name: int(v) for name, v in json.loads(context.cursor or "{}").items()}
    cursor, requests = dict(seen), []
    for name in versions.recipe_model_names(cfg.name):
        for number in versions.version_numbers(name):
            if number <= seen.get(name, 0):
                continue
            key = f"{name}/{number}"
            requests.append(dg.RunRequest(run_key=key, run_config=version_run_config(f"models:/{key}"),
                                          tags={"r1ci.model_version": key}))
            cursor[name] = max(cursor.get(name, 0), number)
    if not requests:
        return dg.SkipReason(f"no new model version (seen: {seen or 'none'})")
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(cursor, sort_keys=True))
