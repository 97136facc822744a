"""The evaluation report: base, SFT and GRPO on held-out questions, samples in DuckDB."""


import dagster as dg

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
