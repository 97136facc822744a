"""The evaluation store: one DuckDB file (``<data dir>/r1ci.duckdb``) that only ever grows.

Tables
------
``eval_runs`` — one row per evaluation of one checkpoint in one mode:

=====================  ==========  ===================================================================
column                 type        meaning
=====================  ==========  ===================================================================
run_id                 VARCHAR     primary key (uuid hex); joins ``eval_samples.run_id``
eval_key               VARCHAR     fingerprint of checkpoint content + items + mode + rollout settings;
                                   an unforced evaluation with a key already present is a no-op
checkpoint             VARCHAR     ``base`` / ``sft`` / ``grpo`` / a model version (``r1ci-tiny-sft/3``) /
                                   an endpoint model name (``openai:<model>``)
checkpoint_path        VARCHAR     folder, ``models:/`` URI or endpoint URL evaluated
checkpoint_fingerprint VARCHAR     content hash of the checkpoint files (endpoint: its name)
model_version          VARCHAR     MLflow registered model version (``r1ci-tiny-sft/3``), if known
mlflow_run_id          VARCHAR     the ``eval_report`` MLflow run that produced it
dagster_run_id         VARCHAR     the orchestrator run ('' from the CLI)
recipe                 VARCHAR     recipe name
mode                   VARCHAR     ``autonomous`` / ``text_only`` / ``code_first``
backend                VARCHAR     rollout backend (``transformers`` / ``vllm`` / ``openai``)
rollout                JSON        rollout settings (limits, sampling), seed, samples per item
pools                  VARCHAR     comma-separated pools covered (``seen_family,unseen_family``)
n_items                INTEGER     distinct questions
n_samples              INTEGER     rows in eval_samples for the run
n_infra_errors         INTEGER     samples excluded because the sandbox itself failed
accuracy               DOUBLE      mean score over non-infra samples
forced                 BOOLEAN     the run repeated an existing eval_key on request
started_at             TIMESTAMP   UTC start
finished_at            TIMESTAMP   UTC end
duration_s             DOUBLE      wall time of the rollouts
=====================  ==========  ===================================================================

``eval_samples`` — one row per sampled answer to one question (``sample_idx`` > 0 only with several
samples per question):

run_id, sample_idx, question_id (the item id), family, source (``symbench`` / ``bbh`` /
``reasoning_gym`` / ``custom``), pool (``unseen_family`` = held-out test family, ``seen_family`` =
held-out question of a training family), question, gold, answer (text inside ``<<<>>>``, NULL if none),
score (DOUBLE in [0, 1]; NULL for infra errors), parseable, infra_error (BOOLEAN), finish_reason,
n_turns, n_code_calls, used_code (BOOLEAN), n_code_errors (executions with a non-zero exit),
n_timeouts, n_trivial_code (blocks that only print constants), trivial_code (every block trivial),
hardcoded_answer (the code printed the final answer as a literal the question does not contain, see
`r1ci_core.audit`; NULL in rows stored before the audit),
n_gen_tokens (policy tokens; estimated at 4 characters a token for text-level backends),
n_total_tokens, gen_time_s, exec_time_s, latency_s (= gen + exec), trajectory (JSON: the full
`Trajectory.to_row()`).

Views (infra-error samples are excluded from accuracy and counted in ``n_infra``)
-----------------------------------------------------------------------------------
``eval_family_accuracy``  per run × family (+ source, pool): n, n_infra, accuracy, ci_low, ci_high
                          (Wilson 95 %), code_use_ratio, mean_turns, mean_code_calls, code_error_rate,
                          timeout_rate, trivial_code_rate, n_hardcoded, hardcoded_rate (of the samples that
                          ran code), mean_gen_tokens, mean_latency_s, with the run's checkpoint, mode,
                          recipe, started_at, decoding (``greedy``: temperature 0 and one sample per question;
                          else ``sampled``), temperature and samples_per_item.
``eval_source_accuracy``  the same per run × source.
``eval_run_accuracy``     the same per run (overall).
``eval_pass_at_k``        per sampled run × k (1..n): n_questions, n_samples, pass_at_k (unbiased estimator,
                          a sample is correct at score 1), ci_low, ci_high, avg_at_n (mean score of the
                          samples, averaged over questions), avg_ci_low, avg_ci_high; 95 % percentile
                          intervals from `BOOTSTRAP_REPLICATES` resamplings of the questions, seeded.
``eval_family_pass_at_k`` the same per sampled run × family (+ source, pool) × k.

Each run's ``eval_runs`` row and all its samples are written in one transaction: a crash leaves no
partial run. Nothing is updated or deleted.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

Z95 = 1.959963984540054  # two-sided 95 % normal quantile (as metrics.Z95)

DB_NAME = "r1ci.duckdb"

RUN_COLUMNS: list[tuple[str, str]] = [
    ("run_id", "VARCHAR PRIMARY KEY"),
    ("eval_key", "VARCHAR"),
    ("checkpoint", "VARCHAR"),
    ("checkpoint_path", "VARCHAR"),
    ("checkpoint_fingerprint", "VARCHAR"),
    ("model_version", "VARCHAR"),
    ("mlflow_run_id", "VARCHAR"),
    ("dagster_run_id", "VARCHAR"),
    ("recipe", "VARCHAR"),
    ("mode", "VARCHAR"),
    ("backend", "VARCHAR"),
    ("rollout", "JSON"),
    ("pools", "VARCHAR"),
    ("n_items", "INTEGER"),
    ("n_samples", "INTEGER"),
    ("n_infra_errors", "INTEGER"),
    ("accuracy", "DOUBLE"),
    ("forced", "BOOLEAN"),
    ("started_at", "TIMESTAMP"),
    ("finished_at", "TIMESTAMP"),
    ("duration_s", "DOUBLE"),
]

SAMPLE_COLUMNS: list[tuple[str, str]] = [
    ("run_id", "VARCHAR NOT NULL"),
    ("sample_idx", "INTEGER"),
    ("question_id", "VARCHAR NOT NULL"),
    ("family", "VARCHAR NOT NULL"),
    ("source", "VARCHAR"),
    ("pool", "VARCHAR"),
    ("question", "VARCHAR"),
    ("gold", "VARCHAR"),
    ("answer", "VARCHAR"),
    ("score", "DOUBLE"),
    ("parseable", "BOOLEAN"),
    ("infra_error", "BOOLEAN"),
    ("finish_reason", "VARCHAR"),
    ("n_turns", "INTEGER"),
    ("n_code_calls", "INTEGER"),
    ("used_code", "BOOLEAN"),
    ("n_code_errors", "INTEGER"),
    ("n_timeouts", "INTEGER"),
    ("n_trivial_code", "INTEGER"),
    ("trivial_code", "BOOLEAN"),
    ("hardcoded_answer", "BOOLEAN"),
    ("n_gen_tokens", "INTEGER"),
    ("n_total_tokens", "INTEGER"),
    ("gen_time_s", "DOUBLE"),
    ("exec_time_s", "DOUBLE"),
    ("latency_s", "DOUBLE"),
    ("trajectory", "JSON"),
]

_AGG = """
    count(*) FILTER (WHERE NOT s.infra_error)                         AS n,
    count(*) FILTER (WHERE s.infra_error)                             AS n_infra,
    avg(s.score) FILTER (WHERE NOT s.infra_error)                     AS accuracy,
    avg(CASE WHEN s.used_code THEN 1.0 ELSE 0.0 END) FILTER (WHERE NOT s.infra_error) AS code_use_ratio,
    avg(s.n_turns) FILTER (WHERE NOT s.infra_error)                   AS mean_turns,
    avg(s.n_code_calls) FILTER (WHERE NOT s.infra_error)              AS mean_code_calls,
    sum(s.n_code_errors) FILTER (WHERE NOT s.infra_error)
        / nullif(sum(s.n_code_calls) FILTER (WHERE NOT s.infra_error), 0) AS code_error_rate,
    sum(s.n_timeouts) FILTER (WHERE NOT s.infra_error)
        / nullif(sum(s.n_code_calls) FILTER (WHERE NOT s.infra_error), 0) AS timeout_rate,
    avg(CASE WHEN s.trivial_code THEN 1.0 ELSE 0.0 END) FILTER (WHERE NOT s.infra_error AND s.used_code)
                                                                      AS trivial_code_rate,
    count(*) FILTER (WHERE NOT s.infra_error AND s.hardcoded_answer)  AS n_hardcoded,
    avg(CASE WHEN s.hardcoded_answer THEN 1.0 ELSE 0.0 END)
        FILTER (WHERE NOT s.infra_error AND s.used_code AND s.hardcoded_answer IS NOT NULL) AS hardcoded_rate,
    avg(s.n_gen_tokens) FILTER (WHERE NOT s.infra_error)              AS mean_gen_tokens,
    avg(s.latency_s) FILTER (WHERE NOT s.infra_error)                 AS mean_latency_s"""

# Wilson 95 % interval over the accuracy (z = 1.95996...), computed from the aggregate above.
_WILSON = f"""
    CASE WHEN agg.n > 0 THEN least(agg.accuracy, greatest(0.0, (agg.accuracy + {Z95}^2/(2*agg.n)
        - {Z95}*sqrt(agg.accuracy*(1-agg.accuracy)/agg.n + {Z95}^2/(4*agg.n*agg.n))) / (1 + {Z95}^2/agg.n))) END AS ci_low,
    CASE WHEN agg.n > 0 THEN greatest(agg.accuracy, least(1.0, (agg.accuracy + {Z95}^2/(2*agg.n)
        + {Z95}*sqrt(agg.accuracy*(1-agg.accuracy)/agg.n + {Z95}^2/(4*agg.n*agg.n))) / (1 + {Z95}^2/agg.n))) END AS ci_high"""


# How a run decoded, from its rollout settings (runs stored before `eval.samples` read as greedy when so).
_TEMPERATURE = "coalesce(TRY_CAST(r.rollout->>'$.limits.temperature' AS DOUBLE), 0.0)"
_SAMPLES = "coalesce(TRY_CAST(r.rollout->>'$.samples_per_item' AS INTEGER), 1)"
_DECODING = f"""
       CASE WHEN {_TEMPERATURE} = 0 AND {_SAMPLES} = 1 THEN 'greedy' ELSE 'sampled' END AS decoding,
       {_TEMPERATURE} AS temperature, {_SAMPLES} AS samples_per_item,"""
_RUN_META = f"r.checkpoint, r.mode, r.recipe, r.started_at,{_DECODING}"


def _view(name: str, keys: Sequence[str]) -> str:
    group = "".join(f", s.{k}" for k in keys)
    picked = "".join(f", agg.{k}" for k in keys)
    excluded = ", ".join(["run_id", *keys])
    return f"""
CREATE OR REPLACE VIEW {name} AS
WITH agg AS (
    SELECT s.run_id{group},{_AGG}
    FROM eval_samples s GROUP BY s.run_id{group}
)
SELECT {_RUN_META} agg.run_id{picked},
       agg.* EXCLUDE ({excluded}),{_WILSON}
FROM agg JOIN eval_runs r USING (run_id)
"""


# pass@k of one question with n scored samples, c of them fully correct (`passk.pass_at_k`, product form)
PASS_AT_K_SQL = """CASE WHEN q.c = 0 THEN 0.0 WHEN q.n - q.c < k THEN 1.0
        ELSE 1.0 - list_product(list_transform(range(q.n - q.c + 1, q.n + 1), lambda i: 1.0 - k / i)) END"""
BOOTSTRAP_REPLICATES = 1000
BOOTSTRAP_SEED = 0  # the resampling is a hash of (run, group, replicate, draw, seed): the same on every query


def _pass_view(name: str, keys: Sequence[str]) -> str:
    """pass@k for k = 1..n and avg@n per run (× `keys`), with percentile bootstrap-over-questions 95 %
    intervals (clamped to contain the estimate, as the Wilson ones)."""
    part = ", ".join(["run_id", *keys])
    on = f"USING ({part})"
    return f"""
CREATE OR REPLACE VIEW {name} AS
WITH q AS (  -- one row per question of a sampled run: n scored samples, c fully correct, their mean score
    SELECT {part}, question_id, count(*) AS n, count(*) FILTER (WHERE score >= 1) AS c, avg(score) AS mean_score
    FROM eval_samples WHERE NOT infra_error AND score IS NOT NULL
        AND run_id IN (SELECT run_id FROM eval_runs r WHERE NOT ({_TEMPERATURE} = 0 AND {_SAMPLES} = 1))
    GROUP BY {part}, question_id
), qi AS (
    SELECT *, row_number() OVER (PARTITION BY {part} ORDER BY question_id) - 1 AS qi,
           count(*) OVER (PARTITION BY {part}) AS nq FROM q
), qk AS (
    SELECT q.*, k, {PASS_AT_K_SQL} AS p FROM qi q, unnest(range(1, q.n + 1)) t(k)
), draws AS (  -- each bootstrap replicate draws nq questions with replacement
    SELECT {part}, b, (hash({part}, b, j, {BOOTSTRAP_SEED}) % nq::UBIGINT)::BIGINT AS qi
    FROM (SELECT DISTINCT {part}, nq FROM qi) g, range({BOOTSTRAP_REPLICATES}) t1(b), unnest(range(g.nq)) t2(j)
), rep_k AS (
    SELECT {part}, b, k, avg(p) AS p FROM draws JOIN qk USING ({part}, qi) GROUP BY {part}, b, k
), rep_avg AS (
    SELECT {part}, b, avg(mean_score) AS m FROM draws JOIN qi USING ({part}, qi) GROUP BY {part}, b
), point_k AS (
    SELECT {part}, k, count(*) AS n_questions, avg(p) AS pass_at_k FROM qk GROUP BY {part}, k
), point_avg AS (
    SELECT {part}, max(n) AS n_samples, avg(mean_score) AS avg_at_n FROM qi GROUP BY {part}
), ci_k AS (
    SELECT {part}, k, quantile_cont(p, 0.025) AS lo, quantile_cont(p, 0.975) AS hi FROM rep_k GROUP BY {part}, k
), ci_avg AS (
    SELECT {part}, quantile_cont(m, 0.025) AS lo, quantile_cont(m, 0.975) AS hi FROM rep_avg GROUP BY {part}
)
SELECT {_RUN_META} {", ".join(f"point_k.{k}" for k in ["run_id", *keys])}, point_k.k, point_k.n_questions,
       point_avg.n_samples, point_k.pass_at_k,
       least(point_k.pass_at_k, ci_k.lo) AS ci_low, greatest(point_k.pass_at_k, ci_k.hi) AS ci_high,
       point_avg.avg_at_n, least(point_avg.avg_at_n, ci_avg.lo) AS avg_ci_low,
       greatest(point_avg.avg_at_n, ci_avg.hi) AS avg_ci_high
FROM point_k JOIN ci_k USING ({part}, k) JOIN point_avg {on} JOIN ci_avg {on} JOIN eval_runs r USING (run_id)
"""


VIEWS = {
    "eval_family_accuracy": _view("eval_family_accuracy", ["family", "source", "pool"]),
    "eval_source_accuracy": _view("eval_source_accuracy", ["source"]),
    "eval_run_accuracy": _view("eval_run_accuracy", []),
    "eval_family_pass_at_k": _pass_view("eval_family_pass_at_k", ["family", "source", "pool"]),
    "eval_pass_at_k": _pass_view("eval_pass_at_k", []),
}


def db_path(root: Path) -> Path:
    return Path(root) / DB_NAME


LOCK_WAIT_ENV = "R1CI_DB_LOCK_WAIT_S"
DEFAULT_LOCK_WAIT_S = 600.0
LOOKUP_WAIT_S = 5.0  # a lookup that can be skipped (is this evaluation stored already?) waits only this long


class StoreLocked(RuntimeError):
    """Another process kept the DuckDB file locked for longer than this process was willing to wait."""


def lock_wait_s() -> float:
    """How long to wait for another process's lock on the store: `$R1CI_DB_LOCK_WAIT_S`, else 10 minutes."""
    raw = os.environ.get(LOCK_WAIT_ENV, "")
    try:
        return float(raw) if raw else DEFAULT_LOCK_WAIT_S
    except ValueError:
        raise ValueError(f"${LOCK_WAIT_ENV}={raw!r} is not a number of seconds: set it to e.g. 600") from None


def _is_lock_error(err: Exception) -> bool:
    return "lock" in str(err).lower()


@contextlib.contextmanager
def connect(path: Path, read_only: bool = False, wait_s: float | None = None) -> Iterator[Any]:
    """A short-lived connection; waits (with jitter, up to `wait_s`, default `lock_wait_s()`) while another
    process holds the file's lock, logging what it waits for; then raises `StoreLocked`."""
    import duckdb

    path = Path(path)
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    wait_s = lock_wait_s() if wait_s is None else wait_s
    t0 = time.monotonic()
    next_log = t0
    delay = 0.05
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.IOException as err:
            if not _is_lock_error(err):
                raise
            waited = time.monotonic() - t0
            if waited >= wait_s:
                raise StoreLocked(f"{path} is still locked by another process after {waited:.0f}s "
                                  f"({str(err).splitlines()[0]}): close that process (a duckdb CLI, a notebook) "
                                  f"or raise ${LOCK_WAIT_ENV}") from err
            if time.monotonic() >= next_log:
                log.warning("evaluation store %s is locked by another process (%s): waiting for it, %.0fs so far "
                            "(up to %.0fs, $%s)", path, str(err).splitlines()[0], waited, wait_s, LOCK_WAIT_ENV)
                next_log = time.monotonic() + 10.0
            time.sleep(min(delay + random.random() * delay, max(0.01, wait_s - waited)))
            delay = min(delay * 1.6, 2.0)
    try:
        yield con
    finally:
        con.close()


def ensure_schema(con: Any) -> None:
    """Create the tables and views; add any column a newer version defines (never drop one)."""
    for table, columns in (("eval_runs", RUN_COLUMNS), ("eval_samples", SAMPLE_COLUMNS)):
        body = ", ".join(f"{n} {t}" for n, t in columns)
        con.execute(f"CREATE TABLE IF NOT EXISTS {table} ({body})")
        have = {r[0] for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ?", [table]).fetchall()}
        for name, typ in columns:
            if name not in have:
                con.execute(f"ALTER TABLE {table} ADD COLUMN {name} {typ.replace('PRIMARY KEY', '').replace('NOT NULL', '')}")
    for sql in VIEWS.values():
        con.execute(sql)


def init_db(path: Path, wait_s: float | None = None) -> Path:
    with connect(path, wait_s=wait_s) as con:
        ensure_schema(con)
    return Path(path)


def find_run(path: Path, eval_key: str, wait_s: float | None = None) -> str | None:
    """The latest run_id already stored for `eval_key`, or None."""
    if not Path(path).exists():
        return None
    with connect(path, read_only=True, wait_s=wait_s) as con:
        row = con.execute("SELECT run_id FROM eval_runs WHERE eval_key = ? ORDER BY started_at DESC LIMIT 1",
                          [eval_key]).fetchone()
    return row[0] if row else None


def missing_runs(path: Path, run_ids: Sequence[str]) -> set[str]:
    """The run ids of `run_ids` that the store does not hold."""
    wanted = set(run_ids)
    if not wanted or not Path(path).exists():
        return wanted
    with connect(path, read_only=True) as con:
        have = {r[0] for r in con.execute("SELECT run_id FROM eval_runs WHERE list_contains(?, run_id)",
                                          [sorted(wanted)]).fetchall()}
    return wanted - have


class AlreadyStored(RuntimeError):
    """Another process stored a run with the same eval_key meanwhile (unforced write)."""

    def __init__(self, run_id: str):
        super().__init__(run_id)
        self.run_id = run_id


def frames(run: dict[str, Any], samples: list[dict[str, Any]]) -> tuple[Any, Any]:
    """The eval_runs row and the samples as DataFrames with the store's column types."""
    import pandas as pd

    run = dict(run)
    if isinstance(run.get("rollout"), dict | list):
        run["rollout"] = json.dumps(run["rollout"], sort_keys=True)
    run_df = pd.DataFrame([{n: run.get(n) for n, _ in RUN_COLUMNS}])
    sample_df = pd.DataFrame([{n: s.get(n) for n, _ in SAMPLE_COLUMNS} for s in samples],
                             columns=[n for n, _ in SAMPLE_COLUMNS])
    for name, typ in SAMPLE_COLUMNS:  # keep pandas from guessing object/float types for all-NULL columns
        if typ.startswith("INTEGER"):
            sample_df[name] = sample_df[name].astype("Int64")
        elif typ.startswith("DOUBLE"):
            sample_df[name] = sample_df[name].astype("float64")
        elif typ.startswith("BOOLEAN"):
            sample_df[name] = sample_df[name].astype("boolean")
        else:
            sample_df[name] = sample_df[name].astype("object")
    return run_df, sample_df


def write_run(path: Path, run: dict[str, Any], samples: list[dict[str, Any]], *, force: bool = False) -> str:
    """Insert one eval_runs row and its samples in ONE transaction; returns the run_id.

    Unless `force`, raises `AlreadyStored` when a run with the same eval_key appeared in the meantime.
    """
    return insert_frames(path, run, frames(run, samples)[1], force=force)


def insert_frames(path: Path, run: dict[str, Any], sample_df: Any, *, force: bool = False) -> str:
    """`write_run` for samples already in a DataFrame of the store's columns (a staged run's)."""
    run_df = frames(run, [])[0]
    with connect(path) as con:
        ensure_schema(con)
        con.execute("BEGIN TRANSACTION")
        try:
            if not force:
                row = con.execute("SELECT run_id FROM eval_runs WHERE eval_key = ? LIMIT 1",
                                  [run["eval_key"]]).fetchone()
                if row:
                    raise AlreadyStored(row[0])
            con.register("_run_df", run_df)
            con.register("_sample_df", sample_df)
            con.execute("INSERT INTO eval_runs BY NAME SELECT * FROM _run_df")
            con.execute("INSERT INTO eval_samples BY NAME SELECT * FROM _sample_df")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        finally:
            with contextlib.suppress(Exception):
                con.unregister("_run_df")
                con.unregister("_sample_df")
    return run["run_id"]


def query(path: Path, sql: str, params: Sequence[Any] | None = None) -> Any:
    """Run read-only `sql` on the store and return a pandas DataFrame."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no evaluation store at {path}: run the eval_report stage first")
    with connect(path, read_only=True) as con:
        return con.execute(sql, list(params or [])).df()


def runs(path: Path, run_ids: Sequence[str] | None = None) -> Any:
    """eval_runs rows (all, or those of `run_ids`) as a DataFrame, oldest first."""
    if run_ids is None:
        return query(path, "SELECT * FROM eval_runs ORDER BY started_at")
    return query(path, "SELECT * FROM eval_runs WHERE list_contains(?, run_id) ORDER BY started_at", [list(run_ids)])


def samples(path: Path, run_ids: Sequence[str], with_trajectory: bool = False) -> Any:
    """eval_samples rows of `run_ids` joined with their run's checkpoint and mode."""
    cols = "s.*" if with_trajectory else "s.* EXCLUDE (trajectory)"
    return query(path, f"SELECT r.checkpoint, r.mode, {cols} FROM eval_samples s JOIN eval_runs r USING (run_id) "
                       "WHERE list_contains(?, s.run_id) ORDER BY r.started_at, s.family, s.question_id, s.sample_idx",
                 [list(run_ids)])
