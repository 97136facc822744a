"""Jobs, and the daily re-check of each champion model version on fresh questions (stopped until turned on)."""

from __future__ import annotations

import dagster as dg

from .assets.evaluation import version_run_config
from .resources import RecipeResource

eval_job = dg.define_asset_job("eval_job", selection=dg.AssetSelection.assets("eval_report"))
model_version_eval_job = dg.define_asset_job("model_version_eval_job",
                                             selection=dg.AssetSelection.assets("model_version_eval"))
pipeline_job = dg.define_asset_job("pipeline_job", selection=dg.AssetSelection.all())


@dg.schedule(job=model_version_eval_job, cron_schedule="0 3 * * *", default_status=dg.DefaultScheduleStatus.STOPPED,
             description="Daily: evaluate each registered model's @champion version on fresh questions (drawn "
                         "with the day as seed, none from the corpus); figures tagged r1ci.recheck.* on the version. "
                         "Turn on in the UI or with `dagster schedule start eval_schedule`.")
def eval_schedule(context: dg.ScheduleEvaluationContext, recipe: RecipeResource):
    from r1ci_core import lineage, versions

    cfg = recipe.load()
    lineage.setup(cfg.mlflow)
    day = context.scheduled_execution_time.strftime("%Y%m%d")
    requests = []
    for name in versions.recipe_model_names(cfg.name):
        champion = versions.alias_version(name, versions.CHAMPION)
        if champion is None:
            continue
        key = f"{name}/{champion}"
        seed = int(day) if int(day) != cfg.tasks.seed else int(day) + 1
        requests.append(dg.RunRequest(run_key=f"{key}@fresh-{day}", run_config=version_run_config(
            f"models:/{key}", questions="fresh", fresh_seed=seed), tags={"r1ci.model_version": key}))
    if not requests:
        return dg.SkipReason(f"no champion version of {', '.join(versions.recipe_model_names(cfg.name))} yet "
                             "(model_version_eval sets it after a held-out evaluation)")
    return requests
