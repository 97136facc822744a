"""The one `Definitions` of r1ci."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from r1ci_core.config import DEFAULT_RECIPE

from .defs.assets import data, evaluation, training
from .defs.checks import (
    check_eval_report_all_families,
    check_eval_report_infra_rate,
    check_eval_report_no_nan,
    check_task_corpus_pools_disjoint,
)
from .defs.io_manager import AtomicFilesystemIOManager
from .defs.resources import RecipeResource, SandboxResource
from .defs.schedules import eval_job, eval_schedule, model_version_eval_job, pipeline_job
from .defs.sensors import new_model_version_sensor


def _data_dir() -> Path:
    return Path(os.environ.get("R1CI_DATA_DIR", "data")).resolve()


recipe = RecipeResource(
    recipe=dg.EnvVar("R1CI_RECIPE").get_value(DEFAULT_RECIPE) or DEFAULT_RECIPE,
    overrides_json=os.environ.get("R1CI_OVERRIDES", "{}"),
    data_dir=str(_data_dir()),
)

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([data, training, evaluation]),
    asset_checks=[check_task_corpus_pools_disjoint, check_eval_report_no_nan, check_eval_report_all_families,
                  check_eval_report_infra_rate],
    jobs=[pipeline_job, eval_job, model_version_eval_job],
    schedules=[eval_schedule],
    sensors=[new_model_version_sensor],
    resources={
        "recipe": recipe,
        "sandbox": SandboxResource(recipe=recipe),
        "io_manager": AtomicFilesystemIOManager(base_dir=str(_data_dir() / "dagster_storage")),
    },
)
