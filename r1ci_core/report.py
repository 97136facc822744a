"""The evaluation report: Markdown + self-contained HTML tables and PNG plots, written atomically.

Files in the report folder (``<data>/<recipe>/eval_report/``):

* ``report.md`` — the paper-style table (checkpoint × mode rows; per-source accuracy, macro average over
  families, overall accuracy with its 95 % Wilson interval), accuracy per pool, behaviour figures (code
  use, turns, code calls, code error/timeout/trivial-code rates, tokens, latency, infra errors) and
  accuracy per family.
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


def collect(db: Path, run_ids: Sequence[str], version_labels: bool = False) -> dict[str, Any]:
    """The DataFrames the report is made of (runs, overall, per source, per family, per pool, history).

    `version_labels`: a pipeline checkpoint's run (``sft``/``grpo``) is labelled by its model version.
    """
    ids = list(dict.fromkeys(run_ids))
    runs = store.runs(db, ids)
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
        SELECT r.run_id, r.checkpoint, r.mode, r.started_at, a.accuracy, a.n
        FROM eval_runs r JOIN eval_run_accuracy a USING (run_id)
        WHERE list_contains(?, r.recipe) ORDER BY r.started_at""", [recipes])
    return {"ids": ids, "runs": runs, "overall": overall, "by_source": by_source, "by_family": by_family,
            "by_pool": by_pool, "history": history}


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
        main_rows.append([ckpt, mode] + [_pct(getattr(src.get((rid, s)), "accuracy", None)) for s in sources]
                         + [_pct(macro.get(rid)), (_pct(o.accuracy) + ci) if o is not None else "–",
                            str(int(o.n)) if o is not None else "0"])
    main = _Table(["Checkpoint", "Mode"] + [SOURCE_LABELS.get(s, s) for s in sources]
                  + ["Avg (families)", "Overall [95% CI]", "n"], main_rows,
                  "Accuracy (%) per source; Avg = mean of per-family accuracies", "main")

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
                         _fmt(o.mean_gen_tokens, 0), _fmt(o.mean_latency_s, 2), str(int(o.n_infra))])
    behaviour = _Table(["Checkpoint", "Mode", "Code use %", "Turns", "Code calls", "Code errors %",
                        "Timeouts %", "Trivial code %", "Gen tokens", "Latency s", "Infra errors"], beh_rows,
                       "Behaviour per sample (infra-error samples excluded, and counted)", "behaviour")

    fam_acc = {(r.run_id, r.family): r for r in fam.itertuples()}
    families = fam[["family", "source", "pool"]].drop_duplicates().sort_values(["source", "family"]) \
        if len(fam) else fam
    fam_rows = []
    for f in families.itertuples():
        fam_rows.append([f.family, SOURCE_LABELS.get(f.source, f.source), f.pool]
                        + [_pct(getattr(fam_acc.get((rid, f.family)), "accuracy", None)) for rid, _, _ in order])
    per_family = _Table(["Family", "Source", "Pool"] + [f"{c} / {m}" for _, c, m in order], fam_rows,
                        "Accuracy (%) per family", "families")
    return {"main": main, "pools": pool, "behaviour": behaviour, "families": per_family}


# ---------------------------------------------------------------------------------------- plots
def _plots(data: dict[str, Any], out: Path, reward_curve: Sequence[float] | None) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths: dict[str, Path] = {}
    order = _run_order(data["runs"], data["ids"])
    fam = data["by_family"]
    overall = {r.run_id: r for r in data["overall"].itertuples()}
    modes_present = _order([m for _, _, m in order], MODE_ORDER)
    main_mode = modes_present[0] if modes_present else "autonomous"
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]

    # per-family accuracy of each checkpoint (in the first mode of the report: autonomous by default)
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
    fig.tight_layout()
    paths["per_family"] = out / "per_family.png"
    fig.savefig(paths["per_family"], dpi=100)
    plt.close(fig)

    # code-use ratio vs accuracy: one large point per checkpoint × mode, small ones per family
    fig, ax = plt.subplots(figsize=(7, 5))
    markers = {"autonomous": "o", "text_only": "s", "code_first": "^"}
    ckpts = list(dict.fromkeys(c for _, c, _ in order))
    for rid, ckpt, mode in order:
        color = colors[ckpts.index(ckpt) % len(colors)]
        sub = fam[fam["run_id"] == rid] if len(fam) else fam
        if len(sub):
            ax.scatter(100 * sub["code_use_ratio"].astype(float), 100 * sub["accuracy"].astype(float), s=12,
                       alpha=0.25, color=color, marker=markers.get(mode, "o"))
        o = overall.get(rid)
        if o is not None and _num(o.accuracy) is not None:
            x, y = 100 * (_num(o.code_use_ratio) or 0.0), 100 * _num(o.accuracy)
            ax.scatter([x], [y], s=90, color=color, marker=markers.get(mode, "o"), edgecolor="black",
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
    fig.tight_layout()
    paths["code_use_vs_accuracy"] = out / "code_use_vs_accuracy.png"
    fig.savefig(paths["code_use_vs_accuracy"], dpi=100)
    plt.close(fig)

    # overall accuracy of every stored run of the recipe, over time
    hist = data["history"]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    if len(hist):
        styles = {"autonomous": "-", "text_only": ":", "code_first": "--"}
        hist_ckpts = list(dict.fromkeys(ckpts + list(hist["checkpoint"])))
        for (ckpt, mode), sub in hist.groupby(["checkpoint", "mode"], sort=False):
            ax.plot(sub["started_at"], 100 * sub["accuracy"].astype(float), marker=markers.get(mode, "o"),
                    linestyle=styles.get(mode, "-"), label=f"{ckpt} / {mode}",
                    color=colors[hist_ckpts.index(ckpt) % len(colors)])
        ax.legend(fontsize=7, loc="best")
    ax.set_ylim(-5, 105)
    ax.set_ylabel("overall accuracy (%)")
    ax.set_title("Accuracy over time (all stored runs of the recipe)")
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    paths["accuracy_over_time"] = out / "accuracy_over_time.png"
    fig.savefig(paths["accuracy_over_time"], dpi=100)
    plt.close(fig)

    if reward_curve:
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.plot(range(len(reward_curve)), list(reward_curve), marker=".", color=colors[2 % len(colors)])
        ax.set_xlabel("logged step")
        ax.set_ylabel("reward")
        ax.set_title("GRPO reward (the evaluated grpo_checkpoint's run)")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        paths["grpo_reward"] = out / "grpo_reward.png"
        fig.savefig(paths["grpo_reward"], dpi=100)
        plt.close(fig)
    return paths


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
                 version_labels: bool = False) -> dict[str, Any]:
    """Write the report of `run_ids` into `out_dir` (replaced atomically); return its figures.

    Returns report_path, html_path, plot_path, plots {name: path}, markdown_table, accuracy
    {checkpoint: {mode: acc}}, pool_accuracy {checkpoint: {mode: {pool: acc}}}, family_accuracy
    {checkpoint: {mode: {family: acc}}}, code_use_ratio, n_samples, n_infra_errors, infra_errors
    {checkpoint: {mode: n}}.
    """
    data = collect(Path(db), run_ids, version_labels)
    tabs = tables(data)
    order = _run_order(data["runs"], data["ids"])
    overall = {r.run_id: r for r in data["overall"].itertuples()}
    accuracy: dict[str, dict[str, float | None]] = {}
    code_use: dict[str, dict[str, float | None]] = {}
    infra: dict[str, dict[str, int]] = {}
    fam_acc: dict[str, dict[str, dict[str, float | None]]] = {}
    n_samples = n_infra = 0
    for rid, ckpt, mode in order:
        o = overall.get(rid)
        accuracy.setdefault(ckpt, {})[mode] = _num(o.accuracy) if o is not None else None
        code_use.setdefault(ckpt, {})[mode] = _num(o.code_use_ratio) if o is not None else None
        infra.setdefault(ckpt, {})[mode] = int(o.n_infra) if o is not None else 0
        n_samples += int(o.n + o.n_infra) if o is not None else 0
        n_infra += int(o.n_infra) if o is not None else 0
    where = {i: (c, m) for i, c, m in order}
    for r in data["by_family"].itertuples():
        if r.run_id in where:
            ckpt, mode = where[r.run_id]
            fam_acc.setdefault(ckpt, {}).setdefault(mode, {})[r.family] = _num(r.accuracy)
    pool_acc: dict[str, dict[str, dict[str, float | None]]] = {}
    for r in data["by_pool"].itertuples():
        if r.run_id in where:
            ckpt, mode = where[r.run_id]
            pool_acc.setdefault(ckpt, {}).setdefault(mode, {})[r.pool] = _num(r.accuracy)

    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        plots = _plots(data, tmp, reward_curve)
        stamp = ", ".join(sorted({str(v)[:19] for v in data["runs"]["started_at"]})) if len(data["runs"]) else ""
        md = [f"# {title}", "",
              f"Runs: {len(order)} (checkpoint × mode); samples: {n_samples}; infra errors (excluded): {n_infra}. "
              f"Eval run ids are in `eval_runs.run_id` of `{Path(db).name}`.", "",
              "## Accuracy", "", tabs["main"].caption, "", tabs["main"].markdown(), "",
              "## Seen vs unseen families", "", tabs["pools"].markdown(), "",
              "## Behaviour", "", tabs["behaviour"].caption, "", tabs["behaviour"].markdown(), "",
              "## Per family", "", tabs["families"].markdown(), "", "## Plots", ""]
        md += [f"![{name}]({p.name})" for name, p in plots.items()]
        md += ["", "## Runs", "", "| run_id | checkpoint | mode | model version | started (UTC) |",
               "|---|---|---|---|---|"]
        for r in data["runs"].itertuples():
            md.append(f"| `{r.run_id}` | {r.checkpoint} | {r.mode} | {_text(r.model_version)} | {str(r.started_at)[:19]} |")
        (tmp / "report.md").write_text("\n".join(md) + "\n")

        imgs = []
        for name, p in plots.items():
            b64 = base64.b64encode(p.read_bytes()).decode()
            imgs.append(f'<h3>{html.escape(name.replace("_", " "))}</h3>'
                        f'<img id="plot-{name}" alt="{name}" src="data:image/png;base64,{b64}">')
        page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
                f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"
                f"<p class='meta'>recipe {html.escape(recipe)}; runs started {html.escape(stamp)}; "
                f"samples {n_samples}; infra errors excluded: {n_infra}</p>"
                f"<h2>Accuracy</h2>{tabs['main'].html()}<h2>Seen vs unseen families</h2>{tabs['pools'].html()}"
                f"<h2>Behaviour</h2>{tabs['behaviour'].html()}<h2>Plots</h2>{''.join(imgs)}"
                f"<h2>Per family</h2>{tabs['families'].html()}</body></html>")
        (tmp / "report.html").write_text(page)
        summary = {"accuracy": accuracy, "pool_accuracy": pool_acc, "family_accuracy": fam_acc, "code_use_ratio": code_use,
                   "n_samples": n_samples, "n_infra_errors": n_infra, "infra_errors": infra,
                   "run_ids": list(data["ids"])}
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    final_plots = {name: str(out_dir / p.name) for name, p in plots.items()}
    return {
        "report_path": str(out_dir / "report.md"),
        "html_path": str(out_dir / "report.html"),
        "plot_path": final_plots["per_family"],
        "plots": final_plots,
        "markdown_table": tabs["main"].markdown(),
        "accuracy": accuracy,
        "pool_accuracy": pool_acc,
        "family_accuracy": fam_acc,
        "code_use_ratio": code_use,
        "n_samples": n_samples,
        "n_infra_errors": n_infra,
        "infra_errors": infra,
    }
