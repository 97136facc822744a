"""Resources: the recipe (and artifact root), the sandbox built from its limits."""


import json
import os
from typing import Any

import dagster as dg
from pydantic import Field


class RecipeResource(dg.ConfigurableResource):
    """Which recipe the pipeline runs, its JSON overrides and the artifact root. Empty fields are read from
    the environment when the resource is used (not when the code location is imported): `R1CI_RECIPE`
    (default `smollm2-135m`), `R1CI_OVERRIDES`, `R1CI_DATA_DIR` (default `./data`)."""

    recipe: str = Field(default="", description="recipe name or YAML path; empty: $R1CI_RECIPE or the default")
    overrides_json: str = Field(default="", description='e.g. {"grpo.max_steps": 2}; empty: $R1CI_OVERRIDES')
    data_dir: str = Field(default="", description="artifact root; empty: $R1CI_DATA_DIR or ./data")

    def load(self) -> Any:
        from r1ci_core.config import load_recipe

        overrides = self.overrides_json or os.environ.get("R1CI_OVERRIDES") or "{}"
        return load_recipe(self.recipe or None, json.loads(overrides))

    def context(self, run_id: str) -> Any:
        from pathlib import Path

        from r1ci_core.config import data_dir
        from r1ci_core.stages import StageContext

        return StageContext(self.load(), Path(self.data_dir).resolve() if self.data_dir else data_dir(), run_id)


class SandboxResource(dg.ConfigurableResource):
    """The code sandbox, with the limits of the recipe's `sandbox` section."""

    recipe: RecipeResource

    def open(self) -> Any:
        from r1ci_core.sandbox import Sandbox

        cfg = self.recipe.load().sandbox
        return Sandbox(timeout_s=cfg.timeout_s, memory_mb=cfg.memory_mb, workers=cfg.workers,
                       isolation=cfg.isolation, persistent=cfg.persistent)
