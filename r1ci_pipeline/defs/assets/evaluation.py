"""Evaluation assets: the pipeline's report (base, SFT and GRPO) and the evaluation of registered model versions."""

from typing import Any

import dagster as dg
from pydantic import Field

from ..code_version import stage_code_version
from ..logs import stage_logs
from ..resources import RecipeResource, SandboxResource
from ._meta import output


class EvalReportConfig(dg.Config):
    """Run config of `eval_report`: `force` re-runs evaluations already stored for the same inputs."""

    force: bool = False


@dg.asset(group_name="evaluation", code_version=stage_code_version("eval_report"),
          description="Accuracy per family, checkpoint and mode; every sample in DuckDB.")
def eval_report(context: dg.AssetExecutionContext, config: EvalReportConfig, recipe: RecipeResource,
                sandbox: SandboxResource, task_corpus, base_model, sft_checkpoint, grpo_checkpoint) -> dg.Output:
    from r1ci_core import stages

    checkpoints = {"base": base_model, "sft": sft_checkpoint, "grpo": grpo_checkpoint}
    with stage_logs(context), sandbox.open() as sb:
        return output(stages.eval_report(recipe.context(context.run_id), task_corpus, checkpoints, sb,
                                         force=config.force))


class ModelVersionEvalConfig(dg.Config):
    """Which registered model version `model_version_eval` evaluates, and on which questions."""

    version: str = Field(default="", description="models:/r1ci-<recipe>-sft/3, r1ci-<recipe>-grpo@champion, or "
                         "short: sft/3, grpo@champion; empty: each new candidate version not yet evaluated")
    questions: str = Field(default="held_out", description="held_out (the corpus' test pools) or fresh "
                           "(new questions drawn with fresh_seed, none from the corpus)")
    fresh_seed: int = Field(default=0, description="seed of the fresh questions (questions: fresh)")
    force: bool = Field(default=False, description="re-run evaluations already stored for the same content")


@dg.asset(group_name="evaluation", deps=[eval_report], code_version=stage_code_version("model_version_eval"),
          description="Registered model versions evaluated on held-out (or fresh) questions; figures attached "
                      "to each version as MLflow tags, `champion` alias on the best (runs after eval_report, "
                      "whose stored evaluations of the same weights it reuses).")
def model_version_eval(context: dg.AssetExecutionContext, config: ModelVersionEvalConfig, recipe: RecipeResource,
                       sandbox: SandboxResource, task_corpus) -> dg.Output:
    from r1ci_core import stages

    with sandbox.open() as sb:
        return output(stages.model_version_eval(recipe.context(context.run_id), task_corpus, sb,
                                                version=config.version, questions=config.questions,
                                                fresh_seed=config.fresh_seed, force=config.force))


def version_run_config(version: str, questions: str = "held_out", fresh_seed: int = 0) -> dict[str, Any]:
    """The run config that makes `model_version_eval` evaluate one version (for sensors and schedules)."""
    config = {"version": version, "questions": questions, "fresh_seed": fresh_seed}
    return {"ops": {"model_version_eval": {"config": config}}}
