"""Resources: the recipe (and artifact root), the sandbox built from its limits."""


import json
from typing import Any

import dagster as dg

from r1ci_core.config import DEFAULT_RECIPE


class RecipeResource(dg.ConfigurableResource):
    """Which recipe the pipeline runs (`R1CI_RECIPE`, default `smollm2-135m`) plus JSON overrides
    (`R1CI_OVERRIDES`)."""

    recipe: str = DEFAULT_RECIPE
    overrides_json: str = "{}"
    data_dir: str = ""

    def load(self) -> Any:
        from r1ci_core.config import load_recipe

        return load_recipe(self.recipe, json.loads(self.overrides_json or "{}"))

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
