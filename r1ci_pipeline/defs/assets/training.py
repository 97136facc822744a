"""Model assets: the base model, the SFT checkpoint and the GRPO checkpoint."""


import dagster as dg

from ..code_version import stage_code_version
from ..logs import stage_logs
from ..resources import RecipeResource, SandboxResource
from ._meta import output


@dg.asset(group_name="training", code_version=stage_code_version("base_model"),
          description="The starting model: the embedded tiny Qwen2 or the recipe's checkpoint.")
def base_model(context: dg.AssetExecutionContext, recipe: RecipeResource, task_corpus) -> dg.Output:
    from r1ci_core import stages

    with stage_logs(context):
        return output(stages.base_model(recipe.context(context.run_id), task_corpus))


@dg.asset(group_name="training", code_version=stage_code_version("sft_checkpoint"),
          description="Multi-turn SFT (TRL SFTTrainer); interpreter tokens carry no loss.")
def sft_checkpoint(context: dg.AssetExecutionContext, recipe: RecipeResource, sft_dataset, base_model) -> dg.Output:
    from r1ci_core import stages

    with stage_logs(context):
        return output(stages.sft_checkpoint(recipe.context(context.run_id), sft_dataset, base_model))


@dg.asset(group_name="training", code_version=stage_code_version("task_difficulty"),
          description="Pass rate and improvement potential 4p(1-p) of each training "
                      "family under the SFT model, for the GRPO curriculum (cached per checkpoint).")
def task_difficulty(context: dg.AssetExecutionContext, recipe: RecipeResource, sandbox: SandboxResource,
                    sft_checkpoint, task_corpus) -> dg.Output:
    from r1ci_core import stages

    with stage_logs(context), sandbox.open() as sb:
        return output(stages.task_difficulty(recipe.context(context.run_id), sft_checkpoint, task_corpus, sb))


@dg.asset(group_name="training", code_version=stage_code_version("grpo_checkpoint"),
          description="GRPO (TRL GRPOTrainer) with code-executing multi-turn rollouts, "
                      "curriculum stages from task_difficulty.")
def grpo_checkpoint(context: dg.AssetExecutionContext, recipe: RecipeResource, sandbox: SandboxResource,
                    sft_checkpoint, task_corpus, task_difficulty) -> dg.Output:
    from r1ci_core import stages

    with stage_logs(context), sandbox.open() as sb:
        return output(stages.grpo_checkpoint(recipe.context(context.run_id), sft_checkpoint, task_corpus, sb,
                                             difficulty=task_difficulty))
