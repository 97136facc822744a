"""The evaluation store, comparison, asset checks and per-sample metrics on synthetic rows (no model)."""

from __future__ import annotations

import datetime as dt
import uuid

import duckdb
import pytest

from r1ci_core import store
from r1ci_core.evaluation import (
    check_all_families,
    check_infra_rate,
    check_no_nan,
    compare_runs,
    format_comparison,
    resolve_checkpoint,
)
from r1ci_core.metrics import is_trivial_code, sample_figures, two_proportion_test, wilson_interval
from r1ci_core.report import build_report
from r1ci_core.trajectory import Execution, Trajectory


def _write(db, checkpoint, mode, scores, *, family="fam_a", infra=(), key=None, force=False):
    """Store a run whose samples have `scores` (None = unscored); indices in `infra` are infra errors."""
    rid = uuid.uuid4().hex
    now = dt.datetime(2026, 1, 1) + dt.timedelta(seconds=len(store.query(db, "SELECT 1 FROM eval_runs"))
                                                 if db.exists() else 0)
    run = {"run_id": rid, "eval_key": key or rid, "checkpoint": checkpoint, "mode": mode, "recipe": "t",
           "rollout": {"limits": {}}, "started_at": now, "finished_at": now, "forced": force}
    fams = family if isinstance(family, list) else [family] * len(scores)
    rows = [{"run_id": rid, "sample_idx": 0, "question_id": f"q{i}", "family": fams[i], "source": "custom",
             "pool": "unseen_family", "score": None if i in infra else s, "infra_error": i in infra,
             "n_turns": 1, "n_code_calls": 0, "used_code": False, "trivial_code": False, "trajectory": "{}"}
            for i, s in enumerate(scores)]
    return store.write_run(db, run, rows, force=force)


@pytest.fixture
def db(tmp_path):
    return store.init_db(tmp_path / "r1ci.duckdb")


def test_run_and_samples_are_one_transaction(db):
    rid = _write(db, "base", "autonomous", [1.0, 0.0])
    bad_run = {"run_id": "crash", "eval_key": "k-crash", "checkpoint": "sft", "mode": "autonomous",
               "started_at": dt.datetime(2026, 1, 2)}
    rows = [{"run_id": "crash", "question_id": "q0", "family": "fam_a", "score": 1.0, "infra_error": False},
            {"run_id": "crash", "question_id": None, "family": "fam_a", "score": 0.0, "infra_error": False}]
    with pytest.raises(duckdb.ConstraintException):
        store.write_run(db, bad_run, rows)  # the second sample violates NOT NULL after the run row was inserted
    con = duckdb.connect(str(db), read_only=True)
    assert [r[0] for r in con.execute("SELECT run_id FROM eval_runs").fetchall()] == [rid]
    assert con.execute("SELECT count(*) FROM eval_samples WHERE run_id = 'crash'").fetchone()[0] == 0
    con.close()


def test_unforced_duplicate_key_is_refused_and_forced_appends(db):
    rid = _write(db, "base", "autonomous", [1.0], key="same")
    with pytest.raises(store.AlreadyStored) as err:
        _write(db, "base", "autonomous", [0.0], key="same")
    assert err.value.run_id == rid
    _write(db, "base", "autonomous", [0.0], key="same", force=True)
    assert len(store.runs(db)) == 2
    assert store.find_run(db, "same") is not None and store.find_run(db, "other") is None


def test_schema_upgrade_adds_missing_columns(tmp_path):
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE eval_runs (run_id VARCHAR PRIMARY KEY, checkpoint VARCHAR, mode VARCHAR)")
    con.execute("INSERT INTO eval_runs VALUES ('old', 'base', 'autonomous')")
    con.close()
    store.init_db(path)
    runs = store.runs(path)
    assert {n for n, _ in store.RUN_COLUMNS} <= set(runs.columns) and list(runs["run_id"]) == ["old"]


def test_views_exclude_and_count_infra_errors(db):
    rid = _write(db, "sft", "autonomous", [1.0, 0.0, 1.0, 1.0], infra={3})
    row = store.query(db, "SELECT * FROM eval_run_accuracy WHERE run_id = ?", [rid]).iloc[0]
    assert row["n"] == 3 and row["n_infra"] == 1
    assert row["accuracy"] == pytest.approx(2 / 3)
    lo, hi = wilson_interval(2, 3)
    assert row["ci_low"] == pytest.approx(lo) and row["ci_high"] == pytest.approx(hi)


def test_compare_runs_significance(db):
    a = _write(db, "base", "autonomous", [0.0] * 40 + [0.0] * 10, family=["big"] * 40 + ["small"] * 10)
    b = _write(db, "sft", "autonomous", [1.0] * 40 + [1.0, 0.0] * 5, family=["big"] * 40 + ["small"] * 10)
    rows = {r["family"]: r for r in compare_runs(db, a, b)}
    assert rows["big"]["acc_a"] == 0.0 and rows["big"]["acc_b"] == 1.0 and rows["big"]["significant"]
    assert rows["small"]["diff"] == pytest.approx(0.5)
    c = _write(db, "grpo", "autonomous", [1.0, 0.0] * 5 + [1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0],
               family=["small"] * 20)
    noise = {r["family"]: r for r in compare_runs(db, b, c)}
    assert noise["small"]["acc_b"] == pytest.approx(0.55) and not noise["small"]["significant"]
    assert noise["big"]["acc_b"] is None and not noise["big"]["significant"]  # family only in run b
    text = format_comparison(list(noise.values()), b, c)
    assert "small" in text and "-" in text
    assert two_proportion_test(0, 40, 40, 40)[1] < 1e-9
    assert two_proportion_test(5, 10, 5, 10) == (0.0, 1.0)


def test_asset_checks_fail_with_reasons(db):
    good = _write(db, "base", "autonomous", [1.0, 0.0], family=["fam_a", "fam_b"])
    unscored = _write(db, "sft", "autonomous", [1.0, None], family=["fam_a", "fam_b"])
    infra = _write(db, "grpo", "autonomous", [1.0, 0.0, 1.0, 0.0], family=["fam_a", "fam_b", "fam_a", "fam_b"],
                   infra={1, 3})
    assert check_no_nan(db, [good, infra])[0]
    ok, why = check_no_nan(db, [good, unscored])
    assert not ok and "unscored" in why
    assert not check_no_nan(db, [good, "missing-run"])[0]
    assert check_all_families(db, [good, unscored], ["fam_a", "fam_b"])[0]
    ok, why = check_all_families(db, [infra], ["fam_a", "fam_b"])  # fam_b only has infra errors
    assert not ok and "fam_b" in why
    assert check_infra_rate(db, [good], 0.05)[0]
    ok, why = check_infra_rate(db, [good, infra], 0.05)
    assert not ok and "2/4" in why
    assert check_infra_rate(db, [infra], 0.5)[0]


def test_report_from_stored_runs(db, tmp_path):
    a = _write(db, "base", "autonomous", [0.0, 1.0], family=["fam_a", "fam_b"])
    b = _write(db, "sft", "text_only", [1.0, 1.0], family=["fam_a", "fam_b"])
    out = build_report(db, [a, b], tmp_path / "report", reward_curve=[0.1, 0.4])
    assert out["accuracy"] == {"base": {"autonomous": 0.5}, "sft": {"text_only": 1.0}}
    assert out["family_accuracy"]["base"]["autonomous"] == {"fam_a": 0.0, "fam_b": 1.0}
    assert "| base | autonomous | 50.0 | 50.0 |" in out["markdown_table"]
    assert {p.name for p in (tmp_path / "report").iterdir()} == {
        "report.md", "report.html", "summary.json", "per_family.png", "code_use_vs_accuracy.png",
        "accuracy_over_time.png", "grpo_reward.png"}


@pytest.mark.parametrize(("code", "trivial"), [
    ("print(42)", True),
    ("print('A')\n", True),
    ("answer = 'True'\nprint(answer)", True),
    ("x = -3\nprint(f'{x}')", True),
    ("print(6 * 7)", False),
    ("import math\nprint(math.factorial(5))", False),
    ("x = 3\ny = x + 1\nprint(y)", False),
    ("for i in range(3):\n    print(i)", False),
    ("print(sorted(['b', 'a']))", False),
    ("x = 1", False),
    ("print(", False),
])
def test_trivial_code(code, trivial):
    assert is_trivial_code(code) is trivial


def test_sample_figures():
    traj = Trajectory(item_id="i", family="f", messages=[{"role": "assistant", "content": "x" * 40}],
                      n_code_calls=3, gen_time_s=1.0, exec_time_s=0.5, token_ids=[1, 2, 3, 4], mask=[0, 1, 1, 0],
                      executions=[Execution(code="print(1)", exit_code=0), Execution(code="1/0", exit_code=1),
                                  Execution(code="while True: pass", timed_out=True)])
    fig = sample_figures(traj)
    assert fig["used_code"] and fig["n_code_errors"] == 1 and fig["n_timeouts"] == 1
    assert fig["n_trivial_code"] == 1 and not fig["trivial_code"]
    assert fig["n_gen_tokens"] == 2 and fig["n_total_tokens"] == 4 and fig["latency_s"] == 1.5
    text_level = Trajectory(item_id="i", family="f", messages=[{"role": "assistant", "content": "x" * 40}])
    assert sample_figures(text_level)["n_gen_tokens"] == 10


def test_checkpoint_specs(monkeypatch):
    spec = resolve_checkpoint("sft", "/some/folder")
    assert (spec.kind, spec.path) == ("path", "/some/folder")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://localhost:9/v1")
    spec = resolve_checkpoint("openai:gpt-x", "openai:gpt-x")
    assert (spec.kind, spec.model, spec.path) == ("openai", "gpt-x", "http://localhost:9/v1")
    spec = resolve_checkpoint("e", "openai:m@http://h:1/v1")
    assert (spec.model, spec.path) == ("m", "http://h:1/v1")


def test_checkpoint_fingerprint_follows_content(tmp_path):
    from r1ci_core.evaluation import checkpoint_fingerprint

    a = tmp_path / "a"
    a.mkdir()
    (a / "config.json").write_text("{}")
    (a / "model.safetensors").write_bytes(b"\0" * 100)
    first = checkpoint_fingerprint(a)
    b = tmp_path / "b"
    b.mkdir()
    for f in a.iterdir():
        (b / f.name).write_bytes(f.read_bytes())
    assert checkpoint_fingerprint(b) == first  # same content elsewhere: same key
    (a / "model.safetensors").write_bytes(b"\1" * 100)
    assert checkpoint_fingerprint(a) != first
    assert checkpoint_fingerprint("Org/hub-model").startswith("ref:")
    assert checkpoint_fingerprint("Org/hub-model") != checkpoint_fingerprint("Org/other")
