"""Data assets: the task corpus, teacher trajectories and the filtered SFT dataset."""


import dagster as dg

from ..code_version import stage_code_version
from ..logs import stage_logs
from ..resources import RecipeResource, SandboxResource
from ._meta import output


@dg.asset(group_name="data", code_version=stage_code_version("task_corpus"),
          description="Questions of every family in disjoint pools (datasets on disk).")
def task_corpus(context: dg.AssetExecutionContext, recipe: RecipeResource) -> dg.Output:
    from r1ci_core import stages

    with stage_logs(context):
        return output(stages.task_corpus(recipe.context(context.run_id)))


@dg.asset(group_name="data", code_version=stage_code_version("teacher_trajectories"),
          description="R1-CI trajectories written by the teacher, code really executed.")
def teacher_trajectories(context: dg.AssetExecutionContext, recipe: RecipeResource, sandbox: SandboxResource,
                         task_corpus) -> dg.Output:
    from r1ci_core import stages

    with stage_logs(context), sandbox.open() as sb:
        return output(stages.teacher_trajectories(recipe.context(context.run_id), task_corpus, sb))


@dg.asset(group_name="data", code_version=stage_code_version("sft_dataset"),
          description="Verified-correct teacher trajectories within the filter's limits.")
def sft_dataset(context: dg.AssetExecutionContext, recipe: RecipeResource, teacher_trajectories,
                base_model) -> dg.Output:
    from r1ci_core import stages

    with stage_logs(context):
        return output(stages.sft_dataset(recipe.context(context.run_id), teacher_trajectories, base_model))
