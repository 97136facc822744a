"""The one Definitions loads, validates and lists the assets, checks, schedule and sensor."""

from __future__ import annotations

import subprocess
import sys

ASSETS = {"task_corpus", "base_model", "teacher_trajectories", "sft_dataset", "sft_checkpoint",
          "grpo_checkpoint", "eval_report", "model_version_eval"}


def test_dagster_validates_definitions() -> None:
    out = subprocess.run([sys.executable, "-m", "dagster", "definitions", "validate", "-m", "r1ci_pipeline"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Validation successful for code location r1ci_pipeline" in out.stderr + out.stdout


def test_definitions_list_assets_schedule_sensor_checks() -> None:
    import dagster as dg

    from r1ci_pipeline import defs

    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert ASSETS <= keys
    # the chain's dependencies, in order
    deps = {k.to_user_string(): {p.to_user_string() for p in graph.get(k).parent_keys} for k in graph.get_all_asset_keys()}
    assert "task_corpus" in deps["teacher_trajectories"]
    assert "teacher_trajectories" in deps["sft_dataset"]
    assert "sft_dataset" in deps["sft_checkpoint"]
    assert "sft_checkpoint" in deps["grpo_checkpoint"]
    assert {"base_model", "sft_checkpoint", "grpo_checkpoint"} <= deps["eval_report"]

    schedule = defs.resolve_schedule_def("eval_schedule")
    assert schedule.job.name == "model_version_eval_job"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert defs.resolve_sensor_def("new_model_version_sensor").job.name == "model_version_eval_job"
    assert "eval_report" in deps["model_version_eval"]  # evaluations of the same weights are reused
    check_keys = {k.name for k in graph.asset_check_keys}
    assert {"check_task_corpus_pools_disjoint", "check_eval_report_no_nan",
            "check_eval_report_all_families", "check_eval_report_infra_rate"} <= check_keys
