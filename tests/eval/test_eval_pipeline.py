"""A real evaluation of two tiny checkpoints through the `eval_report` stage: DuckDB tables, views,
re-runs, modes, MLflow logging, model-registry checkpoints and the HTML report in headless Chromium."""

from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from r1ci_core.chat import CODE_FIRST_SUFFIX, TEXT_ONLY_SUFFIX
from r1ci_core.evaluation import (
    check_all_families,
    check_infra_rate,
    check_no_nan,
    compare_runs,
    format_comparison,
    run_evaluation,
)

SEEN, UNSEEN = "number_multiply", "bbh_boolean_expressions"  # as in conftest.py
MODES = ["autonomous", "text_only", "code_first"]
REWARDS = [0.1, 0.3, 0.2, 0.5, 0.6]


def _recipe(**overrides):
    from r1ci_core.config import load_recipe

    base = {"rollout.max_new_tokens": 96, "rollout.max_turns": 3, "eval.modes": MODES,
            "eval.checkpoints": ["base", "sft", "grpo"]}
    return load_recipe("tiny", {**base, **overrides})


@pytest.fixture(scope="module")
def evaluated(eval_env, eval_items, tiny_checkpoints, sandbox):
    """Run the real `eval_report` stage once (base + sft, three modes), after a fake finished GRPO run."""
    import mlflow

    from r1ci_core import lineage
    from r1ci_core.corpus import save_corpus
    from r1ci_core.rollout.tiny import sample_items
    from r1ci_core.stages import StageContext, StageResult, eval_report

    recipe = _recipe()
    ctx = StageContext(recipe=recipe, root=eval_env / "data")
    exp = lineage.setup(recipe.mlflow)
    with mlflow.start_run(experiment_id=exp, run_name="grpo_checkpoint",
                          tags={"dagster.asset_key": "grpo_checkpoint"}) as grpo_run:
        for step, r in enumerate(REWARDS):
            mlflow.log_metric("reward", r, step=step)
    # one training question per training pool: `datasets` cannot reload a DatasetDict with an empty split
    extra = sample_items(2, families=(SEEN,), seed=99)
    for item, pool in zip(extra, ("sft", "grpo"), strict=True):
        item.pool = pool
    corpus = StageResult(str(save_corpus(eval_items + extra, ctx.artifact("task_corpus"))), "corpus-run")
    ckpts = {name: StageResult(path, f"{name}-run") for name, path in tiny_checkpoints.items()}
    # the GRPO upstream names its MLflow run (the report's reward curve); eval.checkpoints leaves it unevaluated
    ckpts["grpo"] = StageResult(tiny_checkpoints["sft"], grpo_run.info.run_id)
    ctx = StageContext(recipe=_recipe(**{"eval.checkpoints": ["base", "sft"]}), root=ctx.root)
    result = eval_report(ctx, corpus, ckpts, sandbox)
    # later tests re-run the evaluation into the same folder: keep this report's HTML as the stage wrote it
    snapshot = eval_env / "report_snapshot.html"
    shutil.copyfile(result.metadata["html_path"], snapshot)
    result.metadata["html_snapshot"] = str(snapshot)
    return ctx, result


def _db(ctx) -> Path:
    return ctx.root / "r1ci.duckdb"


def _df(ctx, sql, params=None) -> pd.DataFrame:
    con = duckdb.connect(str(_db(ctx)), read_only=True)
    try:
        return con.execute(sql, params or []).df()
    finally:
        con.close()


def test_stage_result_and_returned_figures(evaluated, eval_items):
    ctx, result = evaluated
    report = result.metadata
    assert result.path == report["report_path"] and Path(report["report_path"]).name == "report.md"
    assert Path(report["report_path"]).parent == ctx.artifact("eval_report")
    for key in ("markdown_table", "plot_path", "accuracy", "family_accuracy", "n_samples", "n_infra_errors",
                "infra_errors", "duration_s", "run_ids", "html_path"):
        assert key in report, key
    assert set(report["accuracy"]) == {"base", "sft"}
    assert all(set(per_mode) == set(MODES) for per_mode in report["accuracy"].values())
    assert set(report["family_accuracy"]["sft"]["autonomous"]) == {SEEN, UNSEEN}
    assert report["n_samples"] == 2 * len(MODES) * len(eval_items)
    assert len(report["run_ids"]) == 6 and report["reused_run_ids"] == []
    assert Path(report["plot_path"]).is_file()
    assert set(report["plots"]) == {"per_family", "code_use_vs_accuracy", "accuracy_over_time", "grpo_reward"}
    assert report["markdown_table"].startswith("| Checkpoint | Mode |")
    assert "SymBench" in report["markdown_table"] and "BBH" in report["markdown_table"]
    md = Path(report["report_path"]).read_text()
    assert report["markdown_table"] in md and SEEN in md and UNSEEN in md
    # the seen/unseen table: each pool's accuracy with its Wilson 95% interval and n
    from r1ci_core.metrics import wilson_interval

    acc = report["family_accuracy"]["sft"]["autonomous"][SEEN]
    n = sum(1 for it in eval_items if it.family == SEEN)
    low, high = wilson_interval(acc * n, n)
    assert f"{100 * acc:.1f} [{100 * low:.1f}, {100 * high:.1f}] (n={n})" in md
    json.dumps(report)  # Dagster metadata must be plain JSON


def test_documented_tables_and_columns(evaluated, eval_items):
    ctx, result = evaluated
    runs = _df(ctx, "SELECT * FROM eval_runs")
    samples = _df(ctx, "SELECT * FROM eval_samples")
    for col in ("run_id", "checkpoint", "mode", "mlflow_run_id", "model_version", "recipe", "started_at",
                "eval_key", "checkpoint_fingerprint"):
        assert col in runs.columns, col
    for col in ("run_id", "family", "source", "pool", "question_id", "score", "n_turns", "n_code_calls", "gold",
                "answer", "n_code_errors", "n_timeouts", "trivial_code", "n_gen_tokens", "latency_s", "trajectory",
                "infra_error"):
        assert col in samples.columns, col
    assert len(runs) == 6
    assert set(runs["checkpoint"]) == {"base", "sft"} and set(runs["mode"]) == set(MODES)
    assert set(runs["mlflow_run_id"]) == {result.mlflow_run_id}
    assert (runs["recipe"] == "tiny").all()
    assert len(samples) == 6 * len(eval_items)
    pools = dict(samples[["family", "pool"]].drop_duplicates().itertuples(index=False))
    assert pools == {SEEN: "seen_family", UNSEEN: "unseen_family"}
    sources = dict(samples[["family", "source"]].drop_duplicates().itertuples(index=False))
    assert sources == {SEEN: "symbench", UNSEEN: "bbh"}
    assert set(samples["question_id"]) == {it.id for it in eval_items}
    traj = json.loads(samples["trajectory"].iloc[0])
    assert {"messages", "executions", "final_answer", "score"} <= set(traj)
    # the views exist and are queryable with the duckdb CLI's SQL
    for view in ("eval_family_accuracy", "eval_source_accuracy", "eval_run_accuracy"):
        assert len(_df(ctx, f"SELECT * FROM {view}")) > 0


def test_views_match_hand_computed_accuracy(evaluated):
    ctx, _ = evaluated
    s = _df(ctx, "SELECT run_id, family, source, score, infra_error FROM eval_samples")
    s = s[~s["infra_error"]]
    by_family = s.groupby(["run_id", "family"])["score"].mean()
    view = _df(ctx, "SELECT run_id, family, accuracy, n FROM eval_family_accuracy").set_index(["run_id", "family"])
    assert len(view) == len(by_family)
    for key, acc in by_family.items():
        assert view.loc[key, "accuracy"] == pytest.approx(acc)
    by_source = s.groupby(["run_id", "source"])["score"].mean()
    sview = _df(ctx, "SELECT run_id, source, accuracy FROM eval_source_accuracy").set_index(["run_id", "source"])
    for key, acc in by_source.items():
        assert sview.loc[key, "accuracy"] == pytest.approx(acc)
    overall = s.groupby("run_id")["score"].mean()
    oview = _df(ctx, "SELECT run_id, accuracy, ci_low, ci_high FROM eval_run_accuracy").set_index("run_id")
    for rid, acc in overall.items():
        assert oview.loc[rid, "accuracy"] == pytest.approx(acc)
        assert oview.loc[rid, "ci_low"] <= acc <= oview.loc[rid, "ci_high"]
    stored = _df(ctx, "SELECT run_id, accuracy FROM eval_runs").set_index("run_id")["accuracy"]
    for rid, acc in overall.items():
        assert stored[rid] == pytest.approx(acc)


def test_modes_change_behaviour(evaluated):
    ctx, _ = evaluated
    s = _df(ctx, "SELECT r.checkpoint, r.mode, s.n_code_calls, s.used_code, s.trajectory "
                 "FROM eval_samples s JOIN eval_runs r USING (run_id)")
    for row in s.itertuples():
        traj = json.loads(row.trajectory)
        system = traj["messages"][0]["content"]
        assert system.endswith(TEXT_ONLY_SUFFIX) == (row.mode == "text_only")
        assert system.endswith(CODE_FIRST_SUFFIX) == (row.mode == "code_first")
        executions = traj["executions"]
        if row.mode == "text_only":  # text-only executes no code at all
            assert row.n_code_calls == 0 and executions == [] and not row.used_code
    calls = s.groupby(["checkpoint", "mode"])["n_code_calls"].sum()
    assert calls[("sft", "autonomous")] > 0 and calls[("sft", "code_first")] > 0  # the taught policy runs code
    assert calls[("sft", "text_only")] == 0


def test_mlflow_run_has_metrics_and_report_artifacts(evaluated):
    from mlflow.tracking import MlflowClient

    _, result = evaluated
    client = MlflowClient()
    run = client.get_run(result.mlflow_run_id)
    assert run.data.tags["dagster.asset_key"] == "eval_report"
    assert run.info.status == "FINISHED"
    acc = result.metadata["accuracy"]
    assert run.data.metrics["accuracy.sft.autonomous"] == pytest.approx(acc["sft"]["autonomous"])
    assert "accuracy.base.text_only" in run.data.metrics
    names = {Path(f.path).name for f in client.list_artifacts(result.mlflow_run_id, "eval_report")}
    assert {"report.md", "report.html", "per_family.png", "grpo_reward.png"} <= names


def test_mlflow_run_names_its_upstream_assets(evaluated):
    """The eval run's lineage tags name the assets it read: `base_model`, not a `base_checkpoint` no asset has."""
    from mlflow.tracking import MlflowClient

    from r1ci_pipeline.defs.assets.evaluation import eval_report as asset

    _, result = evaluated
    tags = MlflowClient().get_run(result.mlflow_run_id).data.tags
    linked = {k.removeprefix("r1ci.upstream."): v for k, v in tags.items() if k.startswith("r1ci.upstream.")}
    assert linked == {"task_corpus": "corpus-run", "base_model": "base-run", "sft_checkpoint": "sft-run",
                      "grpo_checkpoint": tags["r1ci.upstream.grpo_checkpoint"]}
    inputs = {key.to_user_string() for key in asset.keys_by_input_name.values()}
    assert set(linked) == inputs  # the upstream assets of the Dagster asset, by their own names
    assert "base_model=base-run" in tags["r1ci.upstream_runs"].split(",")


def test_unforced_rerun_is_noop_then_forced_and_changed_settings_append(evaluated, eval_items, tiny_checkpoints,
                                                                        sandbox):
    from r1ci_core.stages import StageContext

    ctx, result = evaluated
    before = _df(ctx, "SELECT count(*) AS n FROM eval_samples")["n"][0]
    again = run_evaluation(ctx, eval_items, tiny_checkpoints, sandbox)
    assert again["new_run_ids"] == []
    assert set(again["run_ids"]) == set(result.metadata["run_ids"])
    assert again["accuracy"] == result.metadata["accuracy"]
    assert _df(ctx, "SELECT count(*) AS n FROM eval_samples")["n"][0] == before

    forced = run_evaluation(ctx, eval_items, tiny_checkpoints, sandbox, modes=["text_only"], force=True)
    assert len(forced["new_run_ids"]) == 2
    runs = _df(ctx, "SELECT run_id, forced, eval_key FROM eval_runs")
    assert len(runs) == 8 and runs["forced"].sum() == 2
    assert runs["eval_key"].nunique() == 6  # the forced runs repeat two keys; history is kept
    assert _df(ctx, "SELECT count(*) AS n FROM eval_samples")["n"][0] == before + 2 * len(eval_items)

    ctx2 = StageContext(recipe=_recipe(**{"rollout.max_new_tokens": 64}), root=ctx.root)
    changed = run_evaluation(ctx2, eval_items, tiny_checkpoints, sandbox, modes=["text_only"])
    assert len(changed["new_run_ids"]) == 2
    assert run_evaluation(ctx2, eval_items, tiny_checkpoints, sandbox, modes=["text_only"])["new_run_ids"] == []
    assert len(_df(ctx, "SELECT * FROM eval_runs")) == 10


def test_modes_by_checkpoint_picks_each_checkpoints_modes(evaluated, eval_items, tiny_checkpoints, sandbox):
    from r1ci_core.config import RecipeError
    from r1ci_core.stages import StageContext

    ctx, _ = evaluated
    recipe = _recipe(**{"rollout.max_new_tokens": 48, "eval.modes": ["autonomous"],
                        "eval.modes_by_checkpoint": {"sft": ["autonomous", "code_first"]}})
    res = run_evaluation(StageContext(recipe=recipe, root=ctx.root), eval_items, tiny_checkpoints, sandbox)
    runs = _df(ctx, "SELECT checkpoint, mode FROM eval_runs WHERE list_contains(?, run_id)", [res["new_run_ids"]])
    assert sorted(zip(runs["checkpoint"], runs["mode"], strict=True)) == [
        ("base", "autonomous"), ("sft", "autonomous"), ("sft", "code_first")]
    with pytest.raises(RecipeError, match=r"modes_by_checkpoint names \['gpro'\]"):
        _recipe(**{"eval.modes_by_checkpoint": {"gpro": ["text_only"]}})


def test_pools_by_mode_evaluates_a_mode_on_its_pools_only(evaluated, eval_items, tiny_checkpoints, sandbox):
    from r1ci_core.config import RecipeError
    from r1ci_core.report import build_report
    from r1ci_core.stages import StageContext

    ctx, _ = evaluated
    recipe = _recipe(**{"rollout.max_new_tokens": 40, "eval.modes": ["autonomous", "text_only"],
                        "eval.pools_by_mode": {"text_only": ["test_seen"]}})
    res = run_evaluation(StageContext(recipe=recipe, root=ctx.root), eval_items, {"sft": tiny_checkpoints["sft"]},
                         sandbox)
    runs = _df(ctx, "SELECT run_id, mode, pools, n_items FROM eval_runs WHERE list_contains(?, run_id)",
               [res["new_run_ids"]]).set_index("mode")
    n_seen = sum(it.pool == "test_seen" for it in eval_items)
    assert runs.loc["autonomous", ["pools", "n_items"]].tolist() == ["seen_family,unseen_family", len(eval_items)]
    assert runs.loc["text_only", ["pools", "n_items"]].tolist() == ["seen_family", n_seen]
    families = _df(ctx, "SELECT DISTINCT family FROM eval_samples WHERE run_id = ?", [runs.loc["text_only", "run_id"]])
    assert families["family"].tolist() == [SEEN]
    # the report says which rows saw fewer pools
    report = build_report(_db(ctx), res["run_ids"], ctx.root / "pools_report")
    md = Path(report["report_path"]).read_text()
    assert "| sft | text_only (seen families only) |" in md
    assert "| sft | autonomous |" in md
    with pytest.raises(RecipeError, match=r"pools_by_mode .*subset of eval.pools \['test_seen'\]"):
        _recipe(**{"eval.pools": ["test_seen"], "eval.pools_by_mode": {"text_only": ["test_unseen"]}})


def test_asset_check_functions(evaluated):
    ctx, result = evaluated
    ids = result.metadata["run_ids"]
    db = _db(ctx)
    ok, why = check_no_nan(db, ids)
    assert ok, why
    ok, why = check_all_families(db, ids, [SEEN, UNSEEN])
    assert ok, why
    ok, why = check_all_families(db, ids, [SEEN, UNSEEN, "rg_rush_hour"])
    assert not ok and "rg_rush_hour" in why
    ok, why = check_infra_rate(db, ids, 0.05)
    assert ok, why


def test_compare_two_runs(evaluated):
    ctx, result = evaluated
    runs = _df(ctx, "SELECT run_id, checkpoint, mode FROM eval_runs WHERE mode = 'autonomous' "
                    "AND list_contains(?, run_id)", [result.metadata["run_ids"]])
    a = runs[runs.checkpoint == "base"]["run_id"].iloc[0]
    b = runs[runs.checkpoint == "sft"]["run_id"].iloc[0]
    rows = compare_runs(_db(ctx), a, b)
    assert [r["family"] for r in rows] == sorted([SEEN, UNSEEN]) + ["(all)"]
    acc = result.metadata["family_accuracy"]
    for r in rows[:-1]:
        assert r["acc_a"] == pytest.approx(acc["base"]["autonomous"][r["family"]])
        assert r["acc_b"] == pytest.approx(acc["sft"]["autonomous"][r["family"]])
        assert r["diff"] == pytest.approx(r["acc_b"] - r["acc_a"])
        assert isinstance(r["significant"], bool)
    text = format_comparison(rows, a, b)
    assert SEEN in text and "(all)" in text
    with pytest.raises(ValueError, match="not in"):
        compare_runs(_db(ctx), a, "nope")


def test_registered_model_version_is_evaluated(evaluated, eval_items, tiny_checkpoints, sandbox):
    import mlflow

    from r1ci_core import lineage, versions
    from r1ci_core.evaluation import checkpoint_fingerprint
    from r1ci_core.stages import StageContext

    ctx, _ = evaluated
    exp = lineage.setup(ctx.recipe.mlflow)
    with mlflow.start_run(experiment_id=exp, run_name="sft_checkpoint"):
        version = lineage.register_checkpoint(Path(tiny_checkpoints["sft"]), "r1ci-sft")
    version = str(version)
    resolved = versions.resolve("models:/r1ci-sft/latest")
    assert resolved.version == version and resolved.path != tiny_checkpoints["sft"]  # MLflow's own copy
    assert checkpoint_fingerprint(resolved.path) == checkpoint_fingerprint(tiny_checkpoints["sft"])

    recipe = _recipe(**{"eval.checkpoints": ["models:/r1ci-sft/latest"], "eval.modes": ["text_only"]})
    ctx3 = StageContext(recipe=recipe, root=ctx.root)
    # same content as the stored `sft` text_only run: a no-op unless forced
    assert run_evaluation(ctx3, eval_items, {}, sandbox)["new_run_ids"] == []
    res = run_evaluation(ctx3, eval_items, {}, sandbox, force=True)
    (rid,) = res["new_run_ids"]
    row = _df(ctx, "SELECT checkpoint, model_version, checkpoint_path FROM eval_runs WHERE run_id = ?", [rid])
    assert row["checkpoint"][0] == f"r1ci-sft/{version}" == row["model_version"][0]
    assert row["checkpoint_path"][0] == "models:/r1ci-sft/latest"
    assert set(res["accuracy"]) == {f"r1ci-sft/{version}"}


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


@pytest.mark.skipif(_chromium() is None, reason="headless Chromium is not installed "
                                                 "(apt-get install -y chromium); the CI script installs it")
def test_html_report_renders_in_headless_chromium(evaluated, tmp_path):
    import numpy as np
    from matplotlib import image

    _, result = evaluated
    html_path = Path(result.metadata["html_snapshot"])
    flags = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,4000"]
    dom = subprocess.run(flags + ["--dump-dom", html_path.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    parser = _Collect()
    parser.feed(dom.stdout)
    tags = [t for t, _ in parser.tags]
    assert tags.count("table") >= 4
    imgs = [a for t, a in parser.tags if t == "img"]
    assert {a.get("id") for a in imgs} >= {"plot-per_family", "plot-code_use_vs_accuracy",
                                           "plot-accuracy_over_time", "plot-grpo_reward"}
    assert all(a["src"].startswith("data:image/png;base64,") for a in imgs)
    assert "Checkpoint" in dom.stdout and "sft" in dom.stdout and SEEN in dom.stdout

    shot = tmp_path / "report.png"
    out = subprocess.run(flags + [f"--screenshot={shot}", html_path.as_uri()], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and shot.is_file(), out.stderr[-2000:]
    pixels = image.imread(str(shot))[..., :3]
    assert pixels.shape[:2] == (4000, 1200)
    # table borders/text near the top, and coloured plot marks (bars, lines, markers, legends) further down;
    # counted in pixels, since how many bars are drawn depends on the accuracies
    top = pixels[:400]
    assert (top.mean(axis=2) < 0.5).mean() > 0.003
    saturation = pixels.max(axis=2) - pixels.min(axis=2)
    assert (saturation[400:] > 0.3).sum() > 2000
    assert float(np.std(pixels)) > 0.05


def test_openai_endpoint_checkpoint(evaluated, eval_items, tiny_checkpoints, sandbox):
    """An `openai:<model>@<url>` recipe entry is evaluated through the OpenAI backend (against `r1ci serve`)."""
    import socket
    import threading
    import time

    from r1ci_core.serve import make_server
    from r1ci_core.stages import StageContext

    ctx, _ = evaluated
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = make_server(tiny_checkpoints["sft"], host="127.0.0.1", port=port, model_name="tiny-sft")
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
            time.sleep(0.05)
        entry = f"openai:tiny-sft@http://127.0.0.1:{port}/v1"
        ctx4 = StageContext(recipe=_recipe(**{"eval.checkpoints": [entry], "eval.modes": ["code_first"]}),
                            root=ctx.root)
        res = run_evaluation(ctx4, eval_items, {}, sandbox)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    (rid,) = res["new_run_ids"]
    row = _df(ctx, "SELECT checkpoint, backend, checkpoint_path FROM eval_runs WHERE run_id = ?", [rid])
    assert (row["checkpoint"][0], row["backend"][0], row["checkpoint_path"][0]) == ("openai:tiny-sft", "openai", entry)
    s = _df(ctx, "SELECT n_code_calls, n_gen_tokens FROM eval_samples WHERE run_id = ?", [rid])
    assert len(s) == len(eval_items) and s["n_code_calls"].sum() > 0 and (s["n_gen_tokens"] > 0).all()


def test_vllm_backend_checkpoint(evaluated, eval_items, tiny_checkpoints, sandbox, monkeypatch):
    """`rollout.backend: vllm` evaluates a checkpoint on a vLLM engine built from its folder (a double that samples
    from that checkpoint stands in for vLLM, which needs a GPU); the rows record the backend."""
    import sys

    from vllm_doubles import fake_vllm_module

    from r1ci_core.stages import StageContext

    built: list = []
    monkeypatch.setitem(sys.modules, "vllm", fake_vllm_module(built))
    ctx, _ = evaluated
    ctx5 = StageContext(recipe=_recipe(**{"rollout.backend": "vllm", "eval.checkpoints": ["sft"],
                                          "eval.modes": ["code_first"]}), root=ctx.root)
    res = run_evaluation(ctx5, eval_items, {"sft": tiny_checkpoints["sft"]}, sandbox)
    (rid,) = res["new_run_ids"]
    (model, _, engine), = built
    assert model == tiny_checkpoints["sft"] and engine.sampler.calls  # one engine, built from the checkpoint
    row = _df(ctx, "SELECT checkpoint, backend FROM eval_runs WHERE run_id = ?", [rid])
    assert (row["checkpoint"][0], row["backend"][0]) == ("sft", "vllm")
    s = _df(ctx, "SELECT n_code_calls, n_gen_tokens FROM eval_samples WHERE run_id = ?", [rid])
    assert len(s) == len(eval_items) and s["n_code_calls"].sum() > 0 and (s["n_gen_tokens"] > 0).all()
    # every generated turn went through the engine: one sampled sequence per conversation turn
    assert len(engine.sampler.calls) >= len(eval_items)
