"""The one `Definitions` of r1ci."""

from __future__ import annotations

import dagster as dg

from .defs.assets import data, evaluation, training
from .defs.checks import (
    check_eval_report_all_families,
    check_eval_report_grpo_not_below_sft,
    check_eval_report_infra_rate,
    check_eval_report_no_nan,
    check_task_corpus_pools_disjoint,
)
from .defs.executor import executor
from .defs.io_manager import AtomicFilesystemIOManager
from .defs.resources import RecipeResource, SandboxResource
from .defs.schedules import eval_job, eval_schedule, model_version_eval_job, pipeline_job
from .defs.sensors import new_model_version_sensor

# nothing of the environment is read here: the resources read R1CI_RECIPE, R1CI_OVERRIDES and R1CI_DATA_DIR
# when a run uses them
recipe = RecipeResource()

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([data, training, evaluation]),
    asset_checks=[check_task_corpus_pools_disjoint, check_eval_report_no_nan, check_eval_report_all_families,
                  check_eval_report_infra_rate, check_eval_report_grpo_not_below_sft],
    jobs=[pipeline_job, eval_job, model_version_eval_job],
    schedules=[eval_schedule],
    sensors=[new_model_version_sensor],
    executor=executor,
    resources={
        "recipe": recipe,
        "sandbox": SandboxResource(recipe=recipe),
        "io_manager": AtomicFilesystemIOManager(),
    },
)
