"""What the Dagster UI shows of a real `dagster asset materialize --select '*'` (reduced recipe, curriculum on):
core log lines on the run page, plottable numeric metadata, MLflow links, inline plots, code versions."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

ASSETS = ["task_corpus", "base_model", "teacher_trajectories", "sft_dataset", "sft_checkpoint",
          "task_difficulty", "grpo_checkpoint", "eval_report", "model_version_eval"]


@pytest.fixture(scope="module")
def ui_run(whole_chain: dict) -> dict:
    """What Dagster recorded of the session's whole-chain run (conftest.py): its materialisations by asset."""
    import dagster as dg

    env, run_id = whole_chain["env"], whole_chain["run_id"]
    instance = dg.DagsterInstance.from_config(env["DAGSTER_HOME"])
    materialized = {}
    for record in instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records:
        mat = record.event_log_entry.dagster_event.event_specific_data.materialization
        materialized[mat.asset_key.to_user_string()] = mat
    return {"env": env, "instance": instance, "run_id": run_id, "mat": materialized, "root": whole_chain["root"]}


def _floats(metadata: dict, prefix: str) -> dict[str, float]:
    import dagster as dg

    return {k: v.value for k, v in metadata.items() if k.startswith(prefix) and isinstance(v, dg.FloatMetadataValue)}


def test_numeric_figures_are_top_level_float_entries(ui_run: dict) -> None:
    import dagster as dg

    mat = ui_run["mat"]
    assert sorted(mat) == sorted(ASSETS)
    report = mat["eval_report"].metadata
    for ckpt in ("base", "sft", "grpo"):
        acc = report[f"accuracy.{ckpt}.autonomous"]
        assert isinstance(acc, dg.FloatMetadataValue) and 0.0 <= acc.value <= 1.0
        pools = _floats(report, f"pool_accuracy.{ckpt}.autonomous.")
        assert set(pools) == {f"pool_accuracy.{ckpt}.autonomous.{p}" for p in ("seen_family", "unseen_family")}
    assert isinstance(report["n_samples"], dg.IntMetadataValue) and report["n_samples"].value == 27
    assert isinstance(report["accuracy"], dg.JsonMetadataValue)  # the nested dict stays beside its entries
    assert report["accuracy"].value["sft"]["autonomous"] == report["accuracy.sft.autonomous"].value

    grpo = mat["grpo_checkpoint"].metadata
    for key in ("reward_first", "reward_last", "reward_first_half"):
        assert isinstance(grpo[key], dg.FloatMetadataValue), key
    after = _floats(grpo, "pass_rate_after.")
    assert set(after) == {"pass_rate_after.number_multiply", "pass_rate_after.bbh_boolean_expressions"}
    rates = _floats(mat["task_difficulty"].metadata, "pass_rates.")
    assert set(rates) == {"pass_rates.number_multiply", "pass_rates.bbh_boolean_expressions"}
    assert all(0.0 <= r <= 1.0 for r in rates.values())
    assert isinstance(mat["sft_checkpoint"].metadata["train_loss"], dg.FloatMetadataValue)
    assert isinstance(mat["task_corpus"].metadata["pools.sft"], dg.IntMetadataValue)


def test_mlflow_run_is_a_link_and_code_version_is_recorded(ui_run: dict) -> None:
    import dagster as dg
    from mlflow.tracking import MlflowClient

    from r1ci_pipeline.defs.code_version import stage_code_version

    client = MlflowClient(ui_run["env"]["MLFLOW_TRACKING_URI"])
    for name, mat in ui_run["mat"].items():
        run_id = mat.metadata["mlflow_run_id"].value
        link = mat.metadata["mlflow_run"]
        exp = client.get_run(run_id).info.experiment_id
        assert isinstance(link, dg.UrlMetadataValue), name
        assert link.value == f"http://mlflow.test/#/experiments/{exp}/runs/{run_id}", name
        assert mat.tags["dagster/code_version"] == stage_code_version(name), name


def test_report_plots_inline_and_no_nan_version(ui_run: dict) -> None:
    import base64

    import dagster as dg

    report = ui_run["mat"]["eval_report"].metadata
    plots = report["plots"]
    assert isinstance(plots, dg.MarkdownMetadataValue)
    images = re.findall(r"!\[(\w+)\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", plots.value)
    assert {"grpo_reward"} <= {name for name, _ in images} and len(images) >= 2
    assert all(base64.b64decode(data).startswith(b"\x89PNG") for _, data in images)
    md = Path(report["report_path"].value).read_text()
    runs = [line for line in md.splitlines() if re.match(r"\| `[^`]+` \| (base|sft|grpo) \|", line)]
    assert len(runs) == 3 and "nan" not in "".join(runs).lower()
    base_row = next(r for r in runs if "| base |" in r)
    assert base_row.split("|")[4].strip() == ""  # the base model has no registered version


def test_core_info_lines_reach_the_run_page(ui_run: dict) -> None:
    logs = [e for e in ui_run["instance"].all_logs(ui_run["run_id"]) if e.dagster_event is None]
    by_step: dict[str, list[str]] = {}
    for entry in logs:
        by_step.setdefault(entry.step_key, []).append(entry.user_message)
        if entry.user_message.startswith(("r1ci_core.", "r1ci.")):  # Dagster's own IO manager logs at DEBUG
            assert entry.level >= logging.INFO, entry.user_message
    core = {step: [m for m in msgs if m.startswith(("r1ci_core.", "r1ci."))] for step, msgs in by_step.items()}
    assert any(m.startswith("r1ci_core.shards: teacher") for m in core["teacher_trajectories"])
    assert sum("r1ci_core.evaluation: eval " in m for m in core["eval_report"]) == 3
    # the trainers' progress lines, under the asset that trained
    assert any(re.search(r"r1ci_core\.\w+: step 4/4: loss \d", m) for m in core["sft_checkpoint"])
    assert any(re.search(r"step 4/4: train_loss \d.*train_runtime", m) for m in core["sft_checkpoint"])
    assert any(re.search(r"step \d/2: .*reward", m) for m in core["grpo_checkpoint"])
    # and nothing is logged twice (an instance that manages the loggers itself is left alone)
    assert len(core["sft_checkpoint"]) == len(set(core["sft_checkpoint"]))


def test_reward_curve_is_the_evaluated_grpo_runs(ui_run: dict, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Another GRPO run logged later (another recipe) does not replace the evaluated model's curve."""
    import shutil

    import mlflow
    from mlflow.tracking import MlflowClient

    from r1ci_core.evaluation import grpo_reward_curve

    # on a copy of the chain's MLflow store (the curves are in it): the other run stays out of the shared one,
    # which test_pipeline_e2e.py counts runs in
    shutil.copy2(Path(ui_run["env"]["R1CI_DATA_DIR"]) / "mlflow.db", tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    # an earlier test in this process may have set a tracking URI, which outranks the environment
    monkeypatch.setattr(mlflow.tracking._tracking_service.utils, "_tracking_uri", None)
    client = MlflowClient(uri)
    grpo_run = ui_run["mat"]["grpo_checkpoint"].metadata["mlflow_run_id"].value
    expected = [m.value for m in sorted(client.get_metric_history(grpo_run, "reward"), key=lambda m: m.step)]
    other = client.create_run(client.get_experiment_by_name("r1ci").experiment_id,
                              tags={"dagster.asset_key": "grpo_checkpoint"}).info.run_id
    for step in range(3):
        client.log_metric(other, "reward", 100.0 + step, step=step)
    client.set_terminated(other)
    assert expected and grpo_reward_curve(grpo_run) == expected
    assert grpo_reward_curve(other) == [100.0, 101.0, 102.0]
    assert grpo_reward_curve("0" * 32) is None
