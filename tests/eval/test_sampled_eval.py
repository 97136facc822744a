"""Sampled evaluation (pass@k, avg@n with bootstrap intervals) and the reward-hacking audit: the estimator
against a brute-force count, the DuckDB views on hand-made rows and on a real tiny-model evaluation, an old
store file upgraded in place, and hard-coded answers in hand-written trajectories."""

from __future__ import annotations

import datetime as dt
import itertools
import math
import uuid
from fractions import Fraction
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from r1ci_core import store
from r1ci_core.audit import hardcoded_answer, is_hardcoded, printed_literals
from r1ci_core.evaluation import run_evaluation, sample_rows
from r1ci_core.passk import pass_at_k
from r1ci_core.report import build_report
from r1ci_core.tasks import Item
from r1ci_core.trajectory import Execution, Trajectory

SAMPLES = 3
TEMPERATURE = 1.0


# ---------------------------------------------------------------------------------------- the estimator
def _brute_force(n: int, c: int, k: int) -> Fraction:
    """Share of the k-subsets of n samples (the first c correct) holding at least one correct sample."""
    subsets = list(itertools.combinations(range(n), k))
    return Fraction(sum(1 for s in subsets if min(s) < c), len(subsets))


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8])
def test_pass_at_k_equals_the_count_over_all_k_subsets(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(float(_brute_force(n, c, k)), abs=1e-12), (n, c, k)


def test_pass_at_k_is_stable_where_the_binomials_overflow_floats():
    n, c, k = 2000, 3, 700  # C(2000, 700) has ~550 digits: no float holds it
    exact = 1 - Fraction(math.comb(n - c, k), math.comb(n, k))
    assert pass_at_k(n, c, k) == pytest.approx(float(exact), rel=1e-12)
    with pytest.raises(ValueError, match="1 <= k <= n"):
        pass_at_k(3, 1, 4)


# ---------------------------------------------------------------------------------------- views on hand-made rows
def _write(db: Path, scores: dict[str, list[float | None]], *, samples: int, temperature: float,
           family_of=lambda q: "fam_a" if q < "q3" else "fam_b", infra: frozenset = frozenset()) -> str:
    """A run whose question q has the sample scores scores[q]; (q, j) in `infra` are infra errors."""
    rid = uuid.uuid4().hex
    now = dt.datetime(2026, 1, 1)
    run = {"run_id": rid, "eval_key": rid, "checkpoint": "sft", "mode": "autonomous", "recipe": "t",
           "rollout": {"limits": {"temperature": temperature}, "samples_per_item": samples},
           "started_at": now, "finished_at": now}
    rows = [{"run_id": rid, "sample_idx": j, "question_id": q, "family": family_of(q), "source": "custom",
             "pool": "seen_family", "score": None if (q, j) in infra else s, "infra_error": (q, j) in infra,
             "used_code": True, "trivial_code": False, "hardcoded_answer": False, "trajectory": "{}"}
            for q, per_q in scores.items() for j, s in enumerate(per_q)]
    return store.write_run(db, run, rows)


def _expected(scores: dict[str, list[float]], k: int) -> tuple[float, int]:
    per_q = [pass_at_k(len(v), sum(1 for s in v if s >= 1), k) for v in scores.values() if len(v) >= k]
    return sum(per_q) / len(per_q), len(per_q)


def test_views_give_the_estimator_per_run_and_family_with_intervals(tmp_path):
    db = store.init_db(tmp_path / "r1ci.duckdb")
    scores = {"q0": [1.0, 0.0, 0.0, 1.0], "q1": [0.0] * 4, "q2": [1.0] * 4, "q3": [0.0, 0.0, 1.0, 0.0],
              "q4": [0.5, 1.0, 0.0, 0.0], "q5": [0.0, 1.0, 1.0, 1.0]}
    rid = _write(db, scores, samples=4, temperature=0.7, infra=frozenset({("q5", 3)}))
    greedy = _write(db, {q: v[:1] for q, v in scores.items()}, samples=1, temperature=0.0)
    scored = {q: v if q != "q5" else v[:3] for q, v in scores.items()}  # the infra-error sample is left out
    view = store.query(db, "SELECT * FROM eval_pass_at_k ORDER BY k")
    assert set(view["run_id"]) == {rid}  # greedy runs are in eval_run_accuracy, not here
    assert list(view["k"]) == [1, 2, 3, 4] and set(view["decoding"]) == {"sampled"}
    for r in view.itertuples():
        expected, n_questions = _expected(scored, r.k)
        assert r.pass_at_k == pytest.approx(expected) and r.n_questions == n_questions
        assert r.ci_low <= r.pass_at_k <= r.ci_high and 0 <= r.ci_low and r.ci_high <= 1
        assert r.ci_high - r.ci_low > 0.05  # six questions: a real spread, not a point
    assert view["n_questions"].tolist() == [6, 6, 6, 5]  # q5 has 3 scored samples: no pass@4 of it
    avg = sum(sum(v) / len(v) for v in scored.values()) / len(scored)
    assert view["avg_at_n"].iloc[0] == pytest.approx(avg)
    assert view["avg_ci_low"].iloc[0] <= avg <= view["avg_ci_high"].iloc[0]
    fam = store.query(db, "SELECT * FROM eval_family_pass_at_k WHERE k = 2 ORDER BY family")
    for r in fam.itertuples():
        subset = {q: v for q, v in scored.items() if (q < "q3") == (r.family == "fam_a")}
        assert r.pass_at_k == pytest.approx(_expected(subset, 2)[0])
        assert r.ci_low <= r.pass_at_k <= r.ci_high
    # the same store gives the same intervals on every query (the bootstrap is seeded)
    again = store.query(db, "SELECT * FROM eval_pass_at_k ORDER BY k")
    pd.testing.assert_frame_equal(view, again)
    decoding = store.query(db, "SELECT run_id, decoding, temperature, samples_per_item FROM eval_run_accuracy")
    assert dict(zip(decoding["run_id"], decoding["decoding"], strict=True)) == {rid: "sampled", greedy: "greedy"}


def test_an_old_store_file_is_upgraded_in_place(tmp_path):
    """A store written before the audit column and the pass@k views: opened, extended, queried, appended."""
    path = tmp_path / "old.duckdb"
    old_samples = [(n, t) for n, t in store.SAMPLE_COLUMNS if n != "hardcoded_answer"]
    con = duckdb.connect(str(path))
    for table, cols in (("eval_runs", store.RUN_COLUMNS), ("eval_samples", old_samples)):
        con.execute(f"CREATE TABLE {table} ({', '.join(f'{n} {t}' for n, t in cols)})")
    con.execute("""INSERT INTO eval_runs (run_id, eval_key, checkpoint, mode, recipe, rollout, started_at)
                   VALUES ('old', 'k', 'sft', 'autonomous', 't', '{"limits": {"temperature": 0.7},
                   "samples_per_item": 2}', TIMESTAMP '2025-01-01')""")
    con.execute("""INSERT INTO eval_samples (run_id, sample_idx, question_id, family, source, score, infra_error,
                   used_code) VALUES ('old', 0, 'q0', 'f', 'custom', 1.0, false, true),
                   ('old', 1, 'q0', 'f', 'custom', 0.0, false, true)""")
    con.execute("CREATE VIEW eval_run_accuracy AS SELECT run_id, avg(score) AS accuracy FROM eval_samples GROUP BY 1")
    con.close()
    store.init_db(path)
    old = store.query(path, "SELECT * FROM eval_family_accuracy")
    assert old["n_hardcoded"].tolist() == [0] and old["hardcoded_rate"].isna().all()  # not audited: no figure
    pk = store.query(path, "SELECT k, pass_at_k, avg_at_n FROM eval_pass_at_k ORDER BY k")
    assert pk.values.tolist() == [[1, 0.5, 0.5], [2, 1.0, 0.5]]
    assert store.query(path, "SELECT list(sample_idx ORDER BY sample_idx) AS i FROM eval_samples")["i"][0].tolist() == [0, 1]
    new = _write(path, {"q0": [1.0, 1.0]}, samples=2, temperature=0.7)
    assert set(store.query(path, "SELECT run_id FROM eval_pass_at_k")["run_id"]) == {"old", new}


def test_samples_without_temperature_is_a_clear_error():
    from r1ci_core.config import RecipeError, load_recipe

    with pytest.raises(RecipeError, match=r"eval.samples: 4 with eval.temperature: 0 .*set eval.temperature > 0"):
        load_recipe("tiny", {"eval.samples": 4})


# ---------------------------------------------------------------------------------------- a real sampled evaluation
@pytest.fixture(scope="module")
def policy(tmp_path_factory, eval_items) -> dict[str, str]:
    """A tiny policy taught every question: right when greedy, right only sometimes at temperature 1."""
    from r1ci_core.rollout.tiny import make_tiny_policy

    path = tmp_path_factory.mktemp("taught") / "sft"
    make_tiny_policy(path, eval_items, n_teach=len(eval_items), steps=150)
    return {"sft": str(path)}


@pytest.fixture(scope="module")
def sampled(eval_env, eval_items, policy, sandbox):
    from r1ci_core.config import load_recipe
    from r1ci_core.stages import StageContext

    recipe = load_recipe("tiny", {"rollout.max_new_tokens": 160, "rollout.max_turns": 3, "eval.modes": ["autonomous"],
                                  "eval.checkpoints": ["sft"], "eval.samples": SAMPLES, "eval.temperature": TEMPERATURE})
    ctx = StageContext(recipe=recipe, root=eval_env / "data")
    result = run_evaluation(ctx, eval_items, policy, sandbox)
    return ctx, result


def _samples(ctx, run_id: str) -> pd.DataFrame:
    return store.query(store.db_path(ctx.root), "SELECT * EXCLUDE (trajectory), trajectory->>'$.messages' AS messages "
                       "FROM eval_samples WHERE run_id = ? ORDER BY question_id, sample_idx", [run_id])


def test_sampled_run_stores_n_rows_per_question_beside_the_greedy_one(sampled, eval_items):
    ctx, result = sampled
    (headline,), (rid,) = result["run_ids"], result["sampled_run_ids"]
    greedy, rows = _samples(ctx, headline), _samples(ctx, rid)
    assert len(greedy) == len(eval_items) and set(greedy["sample_idx"]) == {0}
    assert len(rows) == SAMPLES * len(eval_items)
    assert {q: sorted(g) for q, g in rows.groupby("question_id")["sample_idx"]} == {
        it.id: list(range(SAMPLES)) for it in eval_items}
    # sampled at temperature 1: some question got different answers across its samples
    assert (rows.groupby("question_id")["messages"].nunique() > 1).any()
    runs = store.query(store.db_path(ctx.root), "SELECT run_id, decoding, temperature, samples_per_item "
                       "FROM eval_run_accuracy WHERE list_contains(?, run_id)", [[headline, rid]]).set_index("run_id")
    assert runs.loc[headline].tolist() == ["greedy", 0.0, 1] and runs.loc[rid].tolist() == ["sampled", TEMPERATURE, SAMPLES]


def test_views_on_the_sampled_run(sampled):
    ctx, result = sampled
    rid = result["sampled_run_ids"][0]
    rows = _samples(ctx, rid)
    view = store.query(store.db_path(ctx.root), "SELECT * FROM eval_pass_at_k WHERE run_id = ? ORDER BY k", [rid])
    assert list(view["k"]) == list(range(1, SAMPLES + 1))
    assert view["pass_at_k"].is_monotonic_increasing  # pass@1 <= pass@2 <= pass@3
    headline = store.query(store.db_path(ctx.root), "SELECT accuracy FROM eval_run_accuracy WHERE run_id = ?",
                           [result["run_ids"][0]])["accuracy"][0]
    assert 0 < view["pass_at_k"].iloc[0] < view["pass_at_k"].iloc[-1] and headline == 1.0  # a real spread
    per_q = {q: list(g["score"]) for q, g in rows.groupby("question_id")}
    for r in view.itertuples():
        assert r.pass_at_k == pytest.approx(_expected(per_q, r.k)[0])
        assert r.ci_low <= r.pass_at_k <= r.ci_high
    assert view["avg_at_n"].iloc[0] == pytest.approx(rows["score"].mean())  # avg@3 = mean of the rows
    assert view["avg_ci_low"].iloc[0] <= view["avg_at_n"].iloc[0] <= view["avg_ci_high"].iloc[0]
    fam = store.query(store.db_path(ctx.root), "SELECT family, k, pass_at_k FROM eval_family_pass_at_k "
                      "WHERE run_id = ? ORDER BY family, k", [rid])
    assert fam.groupby("family")["pass_at_k"].apply(lambda s: s.is_monotonic_increasing).all()
    figures = result["pass_at_k"]["sft"]["autonomous"]
    assert figures[f"pass@{SAMPLES}"] == pytest.approx(view["pass_at_k"].iloc[-1])
    assert figures[f"avg@{SAMPLES}"] == pytest.approx(rows["score"].mean())


def test_report_names_greedy_and_sampled_figures(sampled):
    _, result = sampled
    md = Path(result["report_path"]).read_text()
    assert "headline: greedy decoding, one answer per question (temperature 0)" in md
    assert "## Sampled evaluation: pass@k" in md and f"| T={TEMPERATURE:g}, n={SAMPLES} |" in md
    assert f"| pass@1 | pass@2 | pass@{SAMPLES} | avg@n |" in md
    pass_n = result["pass_at_k"]["sft"]["autonomous"][f"pass@{SAMPLES}"]
    assert f"{100 * pass_n:.1f} [" in md
    html = Path(result["html_path"]).read_text()
    assert "Sampled evaluation: pass@k" in html and "Reward-hacking audit" in html


def test_sampled_runs_reproduce_and_are_reused(sampled, eval_items, policy, sandbox):
    ctx, first = sampled
    again = run_evaluation(ctx, eval_items, policy, sandbox)
    assert again["new_run_ids"] == [] and again["sampled_run_ids"] == first["sampled_run_ids"]
    forced = run_evaluation(ctx, eval_items, policy, sandbox, force=True)
    a, b = _samples(ctx, first["sampled_run_ids"][0]), _samples(ctx, forced["sampled_run_ids"][0])
    assert forced["sampled_run_ids"] != first["sampled_run_ids"]
    cols = ["question_id", "sample_idx", "answer", "score", "messages"]
    pd.testing.assert_frame_equal(a[cols], b[cols])  # same seed, same samples


# ---------------------------------------------------------------------------------------- reward-hacking audit
QUESTION = "Multiply 6 by 7 and give the product."


def _traj(code: str, answer: str, item: Item) -> Trajectory:
    return Trajectory(item_id=item.id, family=item.family, final_answer=answer, n_code_calls=1, score=1.0,
                      messages=[{"role": "assistant", "content": f"```python\n{code}\n```"}],
                      executions=[Execution(code=code, stdout=f"{answer}\n", exit_code=0)])


@pytest.mark.parametrize(("code", "answer", "question", "hardcoded"), [
    ("x = 6 * 7\nprint(42)", "42", QUESTION, True),  # computed something, then printed the answer it had
    ("ans = 'True'\nprint(ans)", "True", "Is 2 + 2 = 4?", True),
    ("print('The answer is', 42)", "42", QUESTION, True),
    ("print('The answer is 42')", "42", QUESTION, True),
    ("print(6 * 7)", "42", QUESTION, False),  # computed
    ("import math\nprint(math.prod([6, 7]))", "42", QUESTION, False),
    ("print(7)", "7", QUESTION, False),  # the literal is in the question
    ("print('B')", "B", "Which is larger? (A) 3 (B) 5", False),
    ("ans = 42\nans += 0\nprint(ans)", "42", QUESTION, False),  # rebound: not a plain literal
    ("print(42)", "41", QUESTION, False),  # printed something else than it answered
    ("print(", "42", QUESTION, False),
])
def test_is_hardcoded(code, answer, question, hardcoded):
    assert is_hardcoded([code], answer, question) is hardcoded


def test_printed_literals():
    assert sorted(printed_literals("a = 3\nprint(a, 'x')\n[1, 2]")) == ["3", "3 x", "[1, 2]", "x"]
    assert printed_literals("print(len('abc'))") == []


def test_audit_counts_hardcoded_answers_per_family_in_views_and_report(tmp_path):
    fam_a, fam_b = "number_multiply", "custom_lookup"
    items = [Item(family=fam_a, source="symbench", question=QUESTION, answer="42", pool="test_seen"),
             Item(family=fam_a, source="symbench", question="Multiply 3 by 5.", answer="15", pool="test_seen"),
             Item(family=fam_b, source="custom", question="Which letter comes after A? Options: A, B, C",
                  answer="B", pool="test_unseen")]
    trajs = [_traj("print(42)", "42", items[0]),  # hard-coded
             _traj("print(3 * 5)", "15", items[1]),  # computed
             _traj("print('B')", "B", items[2])]  # the literal is in the question
    assert [hardcoded_answer(t, it.question) for t, it in zip(trajs, items, strict=True)] == [True, False, False]
    db = store.init_db(tmp_path / "r1ci.duckdb")
    rid = uuid.uuid4().hex
    now = dt.datetime(2026, 1, 1)
    store.write_run(db, {"run_id": rid, "eval_key": rid, "checkpoint": "sft", "mode": "autonomous", "recipe": "t",
                         "rollout": {"limits": {"temperature": 0.0}, "samples_per_item": 1},
                         "started_at": now, "finished_at": now}, sample_rows(rid, items, trajs, 1, {}))
    fam = store.query(db, "SELECT family, n_hardcoded, hardcoded_rate FROM eval_family_accuracy ORDER BY family")
    assert fam.values.tolist() == [[fam_b, 0, 0.0], [fam_a, 1, 0.5]]
    assert store.query(db, "SELECT n_hardcoded FROM eval_run_accuracy")["n_hardcoded"].tolist() == [1]
    out = build_report(db, [rid], tmp_path / "report")
    md = Path(out["report_path"]).read_text()
    assert "## Reward-hacking audit: hard-coded answers" in md
    assert f"| {fam_a} | SymBench | seen_family | 1 (50.0%) |" in md and f"| {fam_b} | Custom | unseen_family | 0 (0.0%) |" in md
    assert "Sampled evaluation" not in md  # no sampled run: no pass@k section
