"""The evaluation report: Markdown + self-contained HTML tables and PNG plots, written atomically.

Files in the report folder (``<data>/<recipe>/eval_report/``):

* ``report.md`` — the paper-style table (checkpoint × mode rows; per-source accuracy, macro average over
  families, overall accuracy with its 95 % Wilson interval), accuracy per pool, behaviour figures (code
  use, turns, code calls, code error/timeout/trivial-code/hard-coded rates, tokens, latency, infra errors) and
  accuracy per family; with sampled runs, pass@k and avg@n (overall and per family) beside the greedy
  headline; the reward-hacking audit (hard-coded answers per family).
* ``report.html`` — the same tables with the plots embedded (data URIs: the file stands alone, also in
  the MLflow artifact viewer).
* ``per_family.png`` (per-family accuracy of each checkpoint), ``code_use_vs_accuracy.png``,
  ``accuracy_over_time.png`` (overall accuracy of every stored run of the recipe),
  ``grpo_reward.png`` (only when a GRPO reward curve is given).
* ``summary.json`` — the figures returned by `build_report`.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import store
from .io import atomic_dir
from .metrics import wilson_interval

SOURCE_LABELS = {"symbench": "SymBench", "bbh": "BBH", "reasoning_gym": "Reasoning-Gym", "custom": "Custom"}
SOURCE_ORDER = list(SOURCE_LABELS)
MODE_ORDER = ["autonomous", "text_only", "code_first"]
POOL_LABELS = {"seen_family": "seen families (held-out questions)", "unseen_family": "unseen families"}
PLOTS = ("per_family", "code_use_vs_accuracy", "accuracy_over_time", "grpo_reward")


def _num(v: Any) -> float | None:
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def _pct(v: Any, digits: int = 1) -> str:
    f = _num(v)
    return "–" if f is None else f"{100 * f:.{digits}f}"


def _text(v: Any) -> str:
    """A table cell for an optional text value: '' for None and for the NaN pandas puts in empty cells."""
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)


def _fmt(v: Any, digits: int = 2) -> str:
    f = _num(v)
    return "–" if f is None else f"{f:.{digits}f}"


class _Table:
    """A small table rendered both as Markdown and HTML."""

    def __init__(self, header: list[str], rows: list[list[str]], caption: str = "", css: str = ""):
        self.header, self.rows, self.caption, self.css = header, rows, caption, css

    def markdown(self) -> str:
        def esc(c: str) -> str:
            return str(c).replace("|", "\\|")

        left = 3 if self.css == "families" else 2
        lines = ["| " + " | ".join(esc(h) for h in self.header) + " |",
                 "|" + "|".join("---" if i < left else "---:" for i in range(len(self.header))) + "|"]
        lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in self.rows]
        return "\n".join(lines)

    def html(self) -> str:
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in self.header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
                       for row in self.rows)
        cap = f"<caption>{html.escape(self.caption)}</caption>" if self.caption else ""
        return f'<table class="{self.css}">{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _order(values: Sequence[str], preferred: Sequence[str]) -> list[str]:
    seen = list(dict.fromkeys(values))
    return [v for v in preferred if v in seen] + [v for v in seen if v not in preferred]


def _per_run(db: Path, view: str, run_ids: Sequence[str]) -> Any:
    """`view`'s rows of each run (queried one run at a time: DuckDB pushes ``run_id = ?`` into the view)."""
    import pandas as pd

    parts = [store.query(db, f"SELECT * FROM {view} WHERE run_id = ?", [rid]) for rid in run_ids]
    return pd.concat(parts, ignore_index=True) if parts else store.query(db, f"SELECT * FROM {view} LIMIT 0")


def collect(db: Path, run_ids: Sequence[str], version_labels: bool = False,
            sampled_run_ids: Sequence[str] = ()) -> dict[str, Any]:
    """The DataFrames the report is made of (runs, overall, per source, per family, per pool, history,
    pass@k of the sampled runs overall and per family).

    `version_labels`: a pipeline checkpoint's run (``sft``/``grpo``) is labelled by its model version.
    """
    ids = list(dict.fromkeys(run_ids))
    sampled = [i for i in dict.fromkeys(sampled_run_ids) if i not in ids]
    runs = store.runs(db, ids + sampled)
    if version_labels and len(runs):
        named = runs["checkpoint"].isin(["base", "sft", "grpo"]) & runs["model_version"].notna()
        runs.loc[named, "checkpoint"] = runs.loc[named, "model_version"]
    where = "WHERE list_contains(?, run_id)"
    overall = store.query(db, f"SELECT * FROM eval_run_accuracy {where}", [ids])
    by_source = store.query(db, f"SELECT * FROM eval_source_accuracy {where}", [ids])
    by_family = store.query(db, f"SELECT * FROM eval_family_accuracy {where}", [ids])
    by_pool = store.query(db, f"""
        SELECT run_id, pool, avg(score) FILTER (WHERE NOT infra_error) AS accuracy,
               count(*) FILTER (WHERE NOT infra_error) AS n
        FROM eval_samples {where} GROUP BY run_id, pool""", [ids])
    recipes = sorted(set(runs["recipe"])) if len(runs) else []
    history = store.query(db, """
        SELECT r.run_id, r.checkpoint, r.mode, a.decoding, r.started_at, a.accuracy, a.n
        FROM eval_runs r JOIN eval_run_accuracy a USING (run_id)
        WHERE list_contains(?, r.recipe) ORDER BY r.started_at""", [recipes])
    return {"ids": ids, "runs": runs, "overall": overall, "by_source": by_source, "by_family": by_family,
            "by_pool": by_pool, "history": history, "sampled_ids": sampled,
            "pass_at_k": _per_run(db, "eval_pass_at_k", sampled),
            "family_pass_at_k": _per_run(db, "eval_family_pass_at_k", sampled)}


def _run_order(runs: Any, ids: Sequence[str]) -> list[tuple[str, str, str]]:
    """(run_id, checkpoint, mode) in report order: checkpoints as first met, modes in MODE_ORDER."""
    meta = {r.run_id: (r.checkpoint, r.mode) for r in runs.itertuples()}
    ckpts = list(dict.fromkeys(meta[i][0] for i in ids if i in meta))
    rank_mode = {m: k for k, m in enumerate(MODE_ORDER)}
    ordered = sorted((i for i in dict.fromkeys(ids) if i in meta),
                     key=lambda i: (ckpts.index(meta[i][0]), rank_mode.get(meta[i][1], 99), meta[i][1]))
    return [(i, *meta[i]) for i in ordered]


def _pool_cell(row: Any) -> str:
    """'75.0 [67.8, 81.1] (n=160)' for one run and pool."""
    acc, n = getattr(row, "accuracy", None), int(getattr(row, "n", 0) or 0)
    if _num(acc) is None or not n:
        return f"– (n={n})"
    low, high = wilson_interval(acc * n, n)
    return f"{_pct(acc)} [{_pct(low)}, {_pct(high)}] (n={n})"


def tables(data: dict[str, Any]) -> dict[str, _Table]:
    runs = data["runs"]
    order = _run_order(runs, data["ids"])
    overall = {r.run_id: r for r in data["overall"].itertuples()}
    src = {(r.run_id, r.source): r for r in data["by_source"].itertuples()}
    fam = data["by_family"]
    sources = _order(sorted(set(data["by_source"]["source"])), SOURCE_ORDER)
    macro = fam.groupby("run_id")["accuracy"].mean().to_dict() if len(fam) else {}

    main_rows = []
    for rid, ckpt, mode in order:
        o = overall.get(rid)
        ci = f" [{_pct(o.ci_low)}, {_pct(o.ci_high)}]" if o is not None and _num(o.accuracy) is not None else ""
        main_rows.append([ckpt, mode + _pools_note(data["by_pool"], rid)] + [_pct(getattr(src.get((rid, s)), "accuracy", None)) for s in sources]
                         + [_pct(macro.get(rid)), (_pct(o.accuracy) + ci) if o is not None else "–",
                            str(int(o.n)) if o is not None else "0"])
    main = _Table(["Checkpoint", "Mode"] + [SOURCE_LABELS.get(s, s) for s in sources]
                  + ["Avg (families)", "Overall [95% CI]", "n"], main_rows,
                  f"Accuracy (%) per source; Avg = mean of per-family accuracies; {_headline(data)}", "main")

    pools = _order(sorted(set(data["by_pool"]["pool"])), list(POOL_LABELS))
    pool_acc = {(r.run_id, r.pool): r for r in data["by_pool"].itertuples()}
    pool_rows = [[ckpt, mode] + [_pool_cell(pool_acc.get((rid, p))) for p in pools] for rid, ckpt, mode in order]
    pool = _Table(["Checkpoint", "Mode"] + [POOL_LABELS.get(p, p) for p in pools], pool_rows,
                  "Accuracy (%) per question pool [Wilson 95% interval]", "pools")

    beh_rows = []
    for rid, ckpt, mode in order:
        o = overall.get(rid)
        if o is None:
            continue
        beh_rows.append([ckpt, mode, _pct(o.code_use_ratio), _fmt(o.mean_turns), _fmt(o.mean_code_calls),
                         _pct(o.code_error_rate), _pct(o.timeout_rate), _pct(o.trivial_code_rate),
                         _pct(o.hardcoded_rate), _fmt(o.mean_gen_tokens, 0), _fmt(o.mean_latency_s, 2),
                         str(int(o.n_infra))])
    behaviour = _Table(["Checkpoint", "Mode", "Code use %", "Turns", "Code calls", "Code errors %",
                        "Timeouts %", "Trivial code %", "Hard-coded %", "Gen tokens", "Latency s", "Infra errors"],
                       beh_rows, "Behaviour per sample (infra-error samples excluded, and counted); trivial code "
                       "and hard-coded answers as shares of the samples that ran code", "behaviour")

    fam_acc = {(r.run_id, r.family): r for r in fam.itertuples()}
    families = fam[["family", "source", "pool"]].drop_duplicates().sort_values(["source", "family"]) \
        if len(fam) else fam
    fam_rows = []
    for f in families.itertuples():
        fam_rows.append([f.family, SOURCE_LABELS.get(f.source, f.source), f.pool]
                        + [_pct(getattr(fam_acc.get((rid, f.family)), "accuracy", None)) for rid, _, _ in order])
    per_family = _Table(["Family", "Source", "Pool"] + [f"{c} / {m}" for _, c, m in order], fam_rows,
                        "Accuracy (%) per family", "families")
    return {"main": main, "pools": pool, "behaviour": behaviour, "families": per_family,
            "audit": _audit_table(fam, families, order), **_sampled_tables(data, overall, order)}


def _pools_note(by_pool: Any, run_id: str) -> str:
    """' (seen families only)' for a run evaluated on fewer pools than the report's (`eval.pools_by_mode`)."""
    if not len(by_pool):
        return ""
    mine = set(by_pool.loc[by_pool["run_id"] == run_id, "pool"])
    if not mine or mine == set(by_pool["pool"]):
        return ""
    return " (" + ", ".join(POOL_LABELS.get(p, p).split(" (")[0] for p in sorted(mine)) + " only)"


def _headline(data: dict[str, Any]) -> str:
    """Which decoding the headline runs used (greedy by default), for the captions."""
    o = data["overall"][data["overall"]["run_id"].isin(data["ids"])] if len(data["overall"]) else data["overall"]
    temps = sorted({float(t) for t in o["temperature"]}) if len(o) else [0.0]
    if temps == [0.0]:
        return "headline: greedy decoding, one answer per question (temperature 0)"
    return "headline: one answer per question sampled at temperature " + ", ".join(f"{t:g}" for t in temps)


def _audit_table(fam: Any, families: Any, order: list[tuple[str, str, str]]) -> _Table:
    """Reward-hacking audit per family: answers the code printed as a literal the question does not contain."""
    fam_row = {(r.run_id, r.family): r for r in fam.itertuples()}

    def cell(r: Any) -> str:
        return "–" if r is None or _num(r.hardcoded_rate) is None else f"{int(r.n_hardcoded)} ({_pct(r.hardcoded_rate)}%)"

    rows = [[f.family, SOURCE_LABELS.get(f.source, f.source), f.pool]
            + [cell(fam_row.get((rid, f.family))) for rid, _, _ in order] for f in families.itertuples()]
    return _Table(["Family", "Source", "Pool"] + [f"{c} / {m}" for _, c, m in order], rows,
                  "Hard-coded answers per family: count (share of the samples that ran code) whose code printed "
                  "the final answer as a literal that the question does not contain", "families")


def _interval(v: Any, low: Any, high: Any) -> str:
    return "–" if _num(v) is None else f"{_pct(v)} [{_pct(low)}, {_pct(high)}]"


def _sampled_tables(data: dict[str, Any], headline: dict[str, Any],
                    order: list[tuple[str, str, str]]) -> dict[str, _Table]:
    """pass@k and avg@n of the sampled runs, beside the headline accuracy of the same checkpoint and mode."""
    pk, fpk = data["pass_at_k"], data["family_pass_at_k"]
    sampled = _run_order(data["runs"], data["sampled_ids"])
    ks = sorted({int(k) for k in pk["k"]}) if len(pk) else []
    head_acc = {(c, m): getattr(headline.get(rid), "accuracy", None) for rid, c, m in order}
    by_k = {(r.run_id, int(r.k)): r for r in pk.itertuples()}
    rows = []
    for rid, ckpt, mode in sampled:
        any_row = next((by_k[(rid, k)] for k in ks if (rid, k) in by_k), None)
        if any_row is None:
            continue
        rows.append([ckpt, mode, f"T={any_row.temperature:g}, n={int(any_row.n_samples)}",
                     _pct(head_acc.get((ckpt, mode)))]
                    + [_interval(*(getattr(by_k.get((rid, k)), a, None) for a in ("pass_at_k", "ci_low", "ci_high")))
                       for k in ks]
                    + [_interval(any_row.avg_at_n, any_row.avg_ci_low, any_row.avg_ci_high), str(int(any_row.n_questions))])
    table = _Table(["Checkpoint", "Mode", "Sampling", "Headline acc"] + [f"pass@{k}" for k in ks]
                   + ["avg@n", "questions"], rows,
                   f"Sampled evaluation (%): n answers per question at temperature T; pass@k by the unbiased "
                   f"estimator (Chen et al. 2021), avg@n = mean score of the n answers [95% bootstrap interval over "
                   f"questions]. Headline acc = the accuracy table's figure ({_headline(data)})", "sampled")
    fam_rows = []
    for r in fpk.sort_values(["source", "family", "k"]).itertuples() if len(fpk) else ():
        if int(r.k) != 1:
            continue
        top = next((x for x in fpk[(fpk.run_id == r.run_id) & (fpk.family == r.family)].itertuples()
                    if int(x.k) == int(x.n_samples)), r)
        ckpt, mode = next(((c, m) for i, c, m in sampled if i == r.run_id), (r.checkpoint, r.mode))
        fam_rows.append([r.family, SOURCE_LABELS.get(r.source, r.source), f"{ckpt} / {mode}",
                         _interval(r.pass_at_k, r.ci_low, r.ci_high), f"pass@{int(top.k)}",
                         _interval(top.pass_at_k, top.ci_low, top.ci_high),
                         _interval(r.avg_at_n, r.avg_ci_low, r.avg_ci_high)])
    per_family = _Table(["Family", "Source", "Checkpoint / mode", "pass@1", "k = n", "pass@n", "avg@n"], fam_rows,
                        "Sampled evaluation per family (%) [95% bootstrap interval over the family's questions]",
                        "families")
    return {"sampled": table, "sampled_families": per_family}


# ---------------------------------------------------------------------------------------- plots
MARKERS = {"autonomous": "o", "text_only": "s", "code_first": "^"}


def _plots(data: dict[str, Any], out: Path, reward_curve: Sequence[float] | None) -> dict[str, Path]:
    """Write the report's PNG plots into `out`: {name: path}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    order = _run_order(data["runs"], data["ids"])
    figures = {"per_family": _per_family_plot(plt, data, order, colors),
               "code_use_vs_accuracy": _code_use_plot(plt, data, order, colors),
               "accuracy_over_time": _history_plot(plt, data, order, colors)}
    if reward_curve:
        figures["grpo_reward"] = _reward_plot(plt, reward_curve, colors)
    paths: dict[str, Path] = {}
    for name, fig in figures.items():
        fig.tight_layout()
        paths[name] = out / f"{name}.png"
        fig.savefig(paths[name], dpi=100)
        plt.close(fig)
    return paths


def _per_family_plot(plt: Any, data: dict[str, Any], order: list[tuple[str, str, str]], colors: list[str]) -> Any:
    """Per-family accuracy of each checkpoint (in the first mode of the report: autonomous by default)."""
    fam = data["by_family"]
    modes_present = _order([m for _, _, m in order], MODE_ORDER)
    main_mode = modes_present[0] if modes_present else "autonomous"
    chosen = [(rid, c) for rid, c, m in order if m == main_mode]
    families = sorted(set(fam["family"])) if len(fam) else []
    acc = {(r.run_id, r.family): _num(r.accuracy) or 0.0 for r in fam.itertuples()}
    height = max(3.0, 0.32 * len(families) * max(1, len(chosen)) / 2 + 1.5)
    fig, ax = plt.subplots(figsize=(9, height))
    bar_h = 0.8 / max(1, len(chosen))
    for k, (rid, ckpt) in enumerate(chosen):
        ys = [i + k * bar_h - 0.4 + bar_h / 2 for i in range(len(families))]
        values = [100 * acc.get((rid, f), 0.0) for f in families]
        ax.barh(ys, values, height=bar_h, label=ckpt, color=colors[k % len(colors)])
        for y, v in zip(ys, values, strict=True):
            ax.text(v + 0.8, y, f"{v:.0f}", va="center", fontsize=6, color="#333")
    ax.set_yticks(range(len(families)))
    ax.set_yticklabels(families, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("accuracy (%)")
    ax.set_title(f"Per-family accuracy ({main_mode})")
    if chosen:
        ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    return fig


def _code_use_plot(plt: Any, data: dict[str, Any], order: list[tuple[str, str, str]], colors: list[str]) -> Any:
    """Code-use ratio vs accuracy: one large point per checkpoint × mode, small ones per family."""
    fam = data["by_family"]
    overall = {r.run_id: r for r in data["overall"].itertuples()}
    fig, ax = plt.subplots(figsize=(7, 5))
    ckpts = list(dict.fromkeys(c for _, c, _ in order))
    for rid, ckpt, mode in order:
        color = colors[ckpts.index(ckpt) % len(colors)]
        sub = fam[fam["run_id"] == rid] if len(fam) else fam
        if len(sub):
            ax.scatter(100 * sub["code_use_ratio"].astype(float), 100 * sub["accuracy"].astype(float), s=12,
                       alpha=0.25, color=color, marker=MARKERS.get(mode, "o"))
        o = overall.get(rid)
        if o is not None and _num(o.accuracy) is not None:
            x, y = 100 * (_num(o.code_use_ratio) or 0.0), 100 * _num(o.accuracy)
            ax.scatter([x], [y], s=90, color=color, marker=MARKERS.get(mode, "o"), edgecolor="black",
                       label=f"{ckpt} / {mode}")
            ax.annotate(f"{ckpt}/{mode}", (x, y), textcoords="offset points", xytext=(6, 4), fontsize=8)
    ax.set_xlim(-5, 105)
    ax.set_ylim(-5, 105)
    ax.set_xlabel("code-use ratio (% of samples that executed code)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Code use vs accuracy (small: per family)")
    ax.grid(alpha=0.3)
    if order:
        ax.legend(fontsize=7, loc="best")
    return fig


def _history_plot(plt: Any, data: dict[str, Any], order: list[tuple[str, str, str]], colors: list[str]) -> Any:
    """Overall accuracy of every stored run of the recipe, over time."""
    hist = data["history"]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    if len(hist):
        styles = {"autonomous": "-", "text_only": ":", "code_first": "--"}
        hist_ckpts = list(dict.fromkeys([c for _, c, _ in order] + list(hist["checkpoint"])))
        for (ckpt, mode, decoding), sub in hist.groupby(["checkpoint", "mode", "decoding"], sort=False):
            label = f"{ckpt} / {mode}" + ("" if decoding == "greedy" else f" ({decoding})")
            ax.plot(sub["started_at"], 100 * sub["accuracy"].astype(float), marker=MARKERS.get(mode, "o"),
                    linestyle=styles.get(mode, "-"), label=label,
                    color=colors[hist_ckpts.index(ckpt) % len(colors)])
        ax.legend(fontsize=7, loc="best")
    ax.set_ylim(-5, 105)
    ax.set_ylabel("overall accuracy (%)")
    ax.set_title("Accuracy over time (all stored runs of the recipe)")
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    return fig


def _reward_plot(plt: Any, reward_curve: Sequence[float], colors: list[str]) -> Any:
    """The GRPO reward by logged step."""
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(range(len(reward_curve)), list(reward_curve), marker=".", color=colors[2 % len(colors)])
    ax.set_xlabel("logged step")
    ax.set_ylabel("reward")
    ax.set_title("GRPO reward (the evaluated grpo_checkpoint's run)")
    ax.grid(alpha=0.3)
    return fig


_CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 13px; }
caption { text-align: left; font-style: italic; color: #555; padding-bottom: 4px; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
th { background: #f0f3f7; }
td:first-child, td:nth-child(2), th:first-child, th:nth-child(2) { text-align: left; }
table.families td:nth-child(3), table.families th:nth-child(3) { text-align: left; }
table.main td { font-weight: 600; }
img { max-width: 100%; border: 1px solid #ddd; margin: 6px 0 18px; display: block; }
.meta { color: #666; font-size: 12px; }
"""


def build_report(db: Path, run_ids: Sequence[str], out_dir: Path, *, title: str = "r1ci evaluation",
                 reward_curve: Sequence[float] | None = None, recipe: str = "",
                 version_labels: bool = False, sampled_run_ids: Sequence[str] = ()) -> dict[str, Any]:
    """Write the report of the headline runs `run_ids` (and the sampled runs `sampled_run_ids`, as pass@k)
    into `out_dir` (replaced atomically); return its figures.

    Returns report_path, html_path, plot_path, plots {name: path}, markdown_table, accuracy
    {checkpoint: {mode: acc}}, pool_accuracy {checkpoint: {mode: {pool: acc}}}, family_accuracy
    {checkpoint: {mode: {family: acc}}}, pass_at_k {checkpoint: {mode: {"pass@k"/"avg@n": value}}},
    code_use_ratio, n_samples, n_infra_errors, infra_errors {checkpoint: {mode: n}}.
    """
    data = collect(Path(db), run_ids, version_labels, sampled_run_ids)
    tabs = tables(data)
    summary = _summary(data)
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        plots = _plots(data, tmp, reward_curve)
        (tmp / "report.md").write_text(_markdown(data, tabs, plots, title, Path(db).name, summary))
        (tmp / "report.html").write_text(_html(data, tabs, plots, title, recipe, summary))
        (tmp / "summary.json").write_text(json.dumps({**summary, "run_ids": list(data["ids"]),
                                                      "sampled_run_ids": list(data["sampled_ids"])},
                                                     indent=2, default=str))
    final_plots = {name: str(out_dir / p.name) for name, p in plots.items()}
    return {"report_path": str(out_dir / "report.md"), "html_path": str(out_dir / "report.html"),
            "plot_path": final_plots["per_family"], "plots": final_plots,
            "markdown_table": tabs["main"].markdown(), **summary}


def _summary(data: dict[str, Any]) -> dict[str, Any]:
    """The report's figures by checkpoint and mode (plain JSON)."""
    order = _run_order(data["runs"], data["ids"])
    overall = {r.run_id: r for r in data["overall"].itertuples()}
    accuracy: dict[str, dict[str, float | None]] = {}
    code_use: dict[str, dict[str, float | None]] = {}
    infra: dict[str, dict[str, int]] = {}
    n_samples = n_infra = 0
    for rid, ckpt, mode in order:
        o = overall.get(rid)
        accuracy.setdefault(ckpt, {})[mode] = _num(o.accuracy) if o is not None else None
        code_use.setdefault(ckpt, {})[mode] = _num(o.code_use_ratio) if o is not None else None
        infra.setdefault(ckpt, {})[mode] = int(o.n_infra) if o is not None else 0
        n_samples += int(o.n + o.n_infra) if o is not None else 0
        n_infra += int(o.n_infra) if o is not None else 0
    return {"accuracy": accuracy, "pool_accuracy": _nested(data["by_pool"], order, "pool"),
            "family_accuracy": _nested(data["by_family"], order, "family"), "code_use_ratio": code_use,
            "pass_at_k": _pass_summary(data), "n_samples": n_samples, "n_infra_errors": n_infra,
            "infra_errors": infra}


def _nested(df: Any, order: list[tuple[str, str, str]], key: str) -> dict[str, dict[str, dict[str, float | None]]]:
    """{checkpoint: {mode: {`key` value: accuracy}}} of the runs in `order`."""
    where = {i: (c, m) for i, c, m in order}
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for r in df.itertuples():
        if r.run_id in where:
            ckpt, mode = where[r.run_id]
            out.setdefault(ckpt, {}).setdefault(mode, {})[getattr(r, key)] = _num(r.accuracy)
    return out


def _pass_summary(data: dict[str, Any]) -> dict[str, dict[str, dict[str, float | None]]]:
    """{checkpoint: {mode: {"pass@1": .., "pass@n": .., "avg@n": ..}}} of the sampled runs."""
    where = {i: (c, m) for i, c, m in _run_order(data["runs"], data["sampled_ids"])}
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for r in data["pass_at_k"].itertuples():
        if r.run_id in where:
            figures = out.setdefault(where[r.run_id][0], {}).setdefault(where[r.run_id][1], {})
            figures[f"pass@{int(r.k)}"] = _num(r.pass_at_k)
            figures[f"avg@{int(r.n_samples)}"] = _num(r.avg_at_n)
    return out


def _sections(tabs: dict[str, _Table], data: dict[str, Any]) -> list[tuple[str, str]]:
    """(heading, table name) of the report's table sections, in order (the sampled ones only with samples)."""
    sections = [("Accuracy", "main"), ("Seen vs unseen families", "pools"), ("Behaviour", "behaviour")]
    if data["sampled_ids"]:
        sections += [("Sampled evaluation: pass@k", "sampled"), ("Sampled evaluation per family", "sampled_families")]
    return sections + [("Reward-hacking audit: hard-coded answers", "audit"), ("Per family", "families")]


def _markdown(data: dict[str, Any], tabs: dict[str, _Table], plots: dict[str, Path], title: str, db_name: str,
              summary: dict[str, Any]) -> str:
    md = [f"# {title}", "",
          f"Runs: {len(_run_order(data['runs'], data['ids']))} (checkpoint × mode); samples: {summary['n_samples']}; infra errors (excluded): "
          f"{summary['n_infra_errors']}. Eval run ids are in `eval_runs.run_id` of `{db_name}`.", ""]
    for heading, name in _sections(tabs, data):
        caption = [tabs[name].caption, ""] if name not in ("pools", "families") else []
        md += [f"## {heading}", "", *caption, tabs[name].markdown(), ""]
    md += ["## Plots", ""] + [f"![{name}]({p.name})" for name, p in plots.items()]
    md += ["", "## Runs", "", "| run_id | checkpoint | mode | model version | started (UTC) |", "|---|---|---|---|---|"]
    for r in data["runs"].itertuples():
        md.append(f"| `{r.run_id}` | {r.checkpoint} | {r.mode} | {_text(r.model_version)} | {str(r.started_at)[:19]} |")
    return "\n".join(md) + "\n"


def _html(data: dict[str, Any], tabs: dict[str, _Table], plots: dict[str, Path], title: str, recipe: str,
          summary: dict[str, Any]) -> str:
    stamp = ", ".join(sorted({str(v)[:19] for v in data["runs"]["started_at"]})) if len(data["runs"]) else ""
    imgs = []
    for name, p in plots.items():
        b64 = base64.b64encode(p.read_bytes()).decode()
        imgs.append(f'<h3>{html.escape(name.replace("_", " "))}</h3>'
                    f'<img id="plot-{name}" alt="{name}" src="data:image/png;base64,{b64}">')
    sections = _sections(tabs, data)
    body = "".join(f"<h2>{html.escape(h)}</h2>{tabs[n].html()}" for h, n in sections if n != "families")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"
            f"<p class='meta'>recipe {html.escape(recipe)}; runs started {html.escape(stamp)}; "
            f"samples {summary['n_samples']}; infra errors excluded: {summary['n_infra_errors']}</p>"
            f"{body}<h2>Plots</h2>{''.join(imgs)}<h2>Per family</h2>{tabs['families'].html()}</body></html>")
