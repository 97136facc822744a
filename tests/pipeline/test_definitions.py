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


def test_grpo_below_sft_is_a_warning_check() -> None:
    import dagster as dg

    from r1ci_core.stages import StageResult
    from r1ci_pipeline import defs
    from r1ci_pipeline.defs.checks import check_eval_report_grpo_not_below_sft as check

    spec = next(s for s in check.check_specs if s.name == "check_eval_report_grpo_not_below_sft")
    assert spec.asset_key == dg.AssetKey("eval_report")
    assert "check_eval_report_grpo_not_below_sft" in {k.name for k in defs.resolve_asset_graph().asset_check_keys}

    def report(accuracy: dict) -> StageResult:
        return StageResult("/nowhere/report.md", "run", {"accuracy": accuracy})

    below = check(report({"sft": {"autonomous": 0.44, "text_only": 0.1}, "grpo": {"autonomous": 0.43,
                                                                                 "text_only": 0.2}}))
    assert not below.passed and below.severity == dg.AssetCheckSeverity.WARN
    assert "autonomous: GRPO 43.0% < SFT 44.0%" in below.description and "text_only" not in below.description
    above = check(report({"base": {"autonomous": 0.0}, "sft": {"autonomous": 0.4}, "grpo": {"autonomous": 0.5}}))
    assert above.passed and "autonomous" in above.description
    assert check(report({"sft": {"autonomous": 0.4}})).passed  # nothing to compare: no warning


def test_the_code_location_reads_no_environment_at_import(tmp_path) -> None:
    """R1CI_RECIPE / R1CI_DATA_DIR are read when a run uses the resources, not when Dagster imports the code."""
    import os

    code = ("import os, r1ci_pipeline as p; os.environ['R1CI_RECIPE'] = 'tiny'; "
            "os.environ['R1CI_DATA_DIR'] = os.environ['LATER']; "
            "r = p.defs.resolve_all_job_defs() and p.definitions.recipe; "
            "print(r.load().name, r.context('x').root)")
    env = {**os.environ, "R1CI_RECIPE": "no-such-recipe", "R1CI_DATA_DIR": str(tmp_path / "at_import"),
           "LATER": str(tmp_path / "later")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["tiny", str(tmp_path / "later")]
    source = "\n".join(p.read_text() for p in __import__("pathlib").Path("r1ci_pipeline").rglob("*.py"))
    assert "dagster._" not in source  # public Dagster APIs only


def test_materialize_in_process_on_the_tiny_recipe(tmp_path, monkeypatch) -> None:
    """`dg.materialize` of the corpus and base model with the pipeline's own resources and IO manager."""
    import pickle

    import dagster as dg

    from r1ci_pipeline import defs
    from r1ci_pipeline.defs.checks import check_task_corpus_pools_disjoint

    monkeypatch.setenv("R1CI_RECIPE", "tiny")
    monkeypatch.setenv("R1CI_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.delenv("R1CI_OVERRIDES", raising=False)
    assets = [a for a in defs.assets if isinstance(a, dg.AssetsDefinition) and a.key.path[-1] in
              ("task_corpus", "base_model")]
    result = dg.materialize([*assets, check_task_corpus_pools_disjoint], resources=defs.resources,
                            instance=dg.DagsterInstance.ephemeral())
    assert result.success
    corpus = result.output_for_node("task_corpus")
    assert corpus.metadata["n_families"] == 6 and (tmp_path / "data" / "tiny" / "task_corpus").is_dir()
    assert result.output_for_node("base_model").metadata["source"] == "tiny"
    [check] = result.get_asset_check_evaluations()
    assert check.passed and check.check_name == "check_task_corpus_pools_disjoint"
    stored = tmp_path / "data" / "dagster_storage" / "task_corpus"  # the IO manager's atomic pickle
    assert pickle.loads(stored.read_bytes()).path == corpus.path


def test_steps_fork_from_a_preloaded_forkserver_unless_the_run_config_says_otherwise(tmp_path) -> None:
    """A real multiprocess materialisation: the step's process is a child of Dagster's forkserver (which
    imported torch once), not a fresh interpreter; `in_process` and an explicit start method still apply."""
    import json
    import os

    from r1ci_pipeline import defs
    from r1ci_pipeline.defs.executor import PRELOAD_MODULES, _forkserver_by_default

    assert defs.resolve_job_def("pipeline_job").executor_def.name == "multi_or_in_process_forkserver"
    assert _forkserver_by_default({"multiprocess": {"max_concurrent": 1}}) == {"multiprocess": {
        "max_concurrent": 1, "start_method": {"forkserver": {"preload_modules": PRELOAD_MODULES}}}}
    assert _forkserver_by_default({"in_process": {}}) == {"in_process": {}}
    spawn = {"multiprocess": {"start_method": {"spawn": {}}}}
    assert _forkserver_by_default(spawn) == spawn

    env = {**os.environ, "R1CI_RECIPE": "tiny", "R1CI_DATA_DIR": str(tmp_path / "data"),
           "DAGSTER_HOME": str(tmp_path / "home")}
    (tmp_path / "home").mkdir()
    probe = tmp_path / "probe.py"  # an op in the same process model as the pipeline's steps
    probe.write_text(
        "import sys, dagster as dg\n"
        "@dg.asset\n"
        "def where() -> None:\n"
        "    import multiprocessing as mp\n"
        f"    open({str(tmp_path / 'where.json')!r}, 'w').write(__import__('json').dumps(\n"
        "        {'torch_preloaded': 'torch' in sys.modules, 'start': mp.get_start_method(allow_none=True)}))\n"
        "from r1ci_pipeline.defs.executor import executor\n"
        "defs = dg.Definitions(assets=[where], executor=executor)\n")
    out = subprocess.run([sys.executable, "-m", "dagster", "asset", "materialize", "-f", str(probe),
                          "--select", "where"], capture_output=True, text=True, timeout=300, env=env,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    seen = json.loads((tmp_path / "where.json").read_text())
    assert seen == {"torch_preloaded": True, "start": "forkserver"}, seen
