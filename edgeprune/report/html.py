"""The HTML report: one self-contained file (Plotly's script inlined, the data as
JSON in the page), openable offline.

Sections: the set-up (and, comparing runs, the settings that differ), the best
trade-offs, accuracy and parameter reduction vs rate, accuracy vs parameters /
MACs / latency with the Pareto front, algorithms at equal rate, a sortable and
filterable table of every trial (failed ones with their error) and the channels
kept in each layer of any trial (click a row or a point).

The page marks itself when it has drawn everything: `<body data-report-ready="ok">`
(or "errors", with the JavaScript errors listed in #ep-errors); the browser test
reads that.
"""
from __future__ import annotations

import datetime as _dt
import html
import json
import math
import os
from pathlib import Path
from typing import Any, Optional

import plotly.io as pio
from plotly.offline import get_plotlyjs

from .data import BASELINE, ReportData, status_summary
from .pareto import pareto_front
from .plots import algorithm_colors, algorithms_at_rate, layer_heatmap, metric_vs_rate, natural_key, tradeoff

HTML_NAME = "report.html"

# the all-trials table: (column, header, format, tooltip)
COLUMNS = [
    ("run", "run", "text", "run folder (label)"),
    ("model", "model", "text", ""),
    ("algorithm", "algorithm", "text", "'none' is the unpruned baseline"),
    ("rate_label", "rate", "text", "fraction of channels removed per layer; params=/macs= a global target"),
    ("seed", "seed", "int", ""),
    ("status", "status", "status", ""),
    ("accuracy", "acc %", "pct", "top-1 accuracy after fine-tuning"),
    ("delta", "Δ pt", "signed", "accuracy minus the baseline's (same fine-tuning), in points"),
    ("accuracy_pruned", "acc pruned %", "pct", "accuracy right after pruning, before fine-tuning"),
    ("params", "params", "int", ""),
    ("param_reduction", "params −%", "pct", "parameter reduction"),
    ("macs", "MACs (M)", "mega", "multiply-accumulates per image"),
    ("mac_reduction", "MACs −%", "pct", ""),
    ("size_bytes", "size KB", "kb", "serialised state dict"),
    ("latency_ms", "latency ms", "f3", "median CPU latency, batch 1"),
    ("latency_p90_ms", "p90 ms", "f3", "90th percentile latency"),
    ("sparsity", "sparsity %", "pct", "fraction of weights zeroed (unstructured pruning)"),
    ("finetune_seconds", "fine-tune s", "f1", ""),
    ("pareto", "front", "text", "★: on the accuracy-vs-parameters Pareto front of its run"),
    ("trial_id", "trial", "id", "trial id (a prefix is enough for recommend --export)"),
    ("error", "error", "error", "why a trial failed"),
]


def _clean(v: Any) -> Any:
    if isinstance(v, float):
        return None if math.isnan(v) or math.isinf(v) else round(v, 6)
    if hasattr(v, "item"):  # numpy scalars
        return _clean(v.item())
    return v


def _json_script(obj: Any, elem_id: str, raw: Optional[str] = None) -> str:
    text = raw if raw is not None else json.dumps(obj, separators=(",", ":"), allow_nan=False)
    text = text.replace("</", "<\\/")  # never closes the script element early
    return f'<script type="application/json" id="{elem_id}">{text}</script>'


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _pct(v, digits=2) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.{digits}f}"


def _num(v, fmt: str) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


# -- sections ----------------------------------------------------------------------------------------------
def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: d}


def _setup(data: ReportData) -> str:
    parts = []
    for run in data.runs:
        c = run.config or {}
        ds, ft, ms = c.get("dataset", {}), c.get("finetune", {}), c.get("measure", {})
        models = ", ".join(
            (m.get("alias") or m.get("name", "?")) + (f" ({'checkpoint' if m.get('checkpoint') else 'pretrained'})"
                                                      if m.get("checkpoint") or m.get("pretrained") else " (random init)")
            for m in c.get("models", []) if isinstance(m, dict))
        rates = ", ".join(f"{r['value']:g}" if r.get("kind") == "channels" else f"{r.get('kind')}={r['value']:g}"
                          for r in c.get("rates", []) if isinstance(r, dict) and "value" in r)
        items = [("run folder", str(run.path)), ("trials", status_summary(run.counts))]
        if c:
            frac = [f"{k.split('_')[0]} {ds[k]:g}" for k in ("train_fraction", "test_fraction") if ds.get(k, 1) != 1]
            items += [
                ("dataset", f"{ds.get('name', '?')}" + (f" ({', '.join(frac)})" if frac else "")
                 + (f", images resized to {ds['image_size']}" if ds.get("image_size") else "")),
                ("models", models), ("algorithms", ", ".join(c.get("algorithms", []))), ("rates", rates),
                ("fine-tuning", f"{ft.get('epochs', '?')} epoch(s)"
                 + (f", at most {ft['max_steps']} steps" if ft.get("max_steps") else "")
                 + f", {ft.get('optimizer', '?')} lr {ft.get('lr', '?')}, batch {ft.get('batch_size', '?')}"
                 + (f", {ft['order']}" if ft.get("order") else "")),
                ("latency", _latency_setup(ms)),
                ("seed", str(c.get("seed", "?")))]
        rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in items)
        title = f"<h3>{_e(run.label)}</h3>" if data.multi_run else ""
        parts.append(f'<div class="setup">{title}<table class="kv">{rows}</table></div>')
    out = '<div class="setups">' + "".join(parts) + "</div>"
    if data.multi_run:
        flat = [_flatten({k: v for k, v in (r.config or {}).items() if k not in ("out", "name")}) for r in data.runs]
        keys = sorted(set().union(*flat))
        differ = [k for k in keys if len({json.dumps(f.get(k), sort_keys=True) for f in flat}) > 1]
        if differ:
            head = "".join(f"<th>{_e(r.label)}</th>" for r in data.runs)
            body = "".join(f"<tr><th>{_e(k)}</th>" + "".join(f"<td>{_e(f.get(k, '–'))}</td>" for f in flat) + "</tr>"
                           for k in differ)
            out += (f"<h3>Settings that differ between the runs</h3><table class='grid'><tr><th>setting</th>{head}"
                    f"</tr>{body}</table>")
        else:
            out += "<p class='note'>The runs have the same settings.</p>"
    return out


def _latency_setup(ms: dict) -> str:
    how = ms.get("latency", True)
    if how is False or how is None:
        return "not measured"
    backend = "torch on the CPU" if how is True else json.dumps(how)
    return (f"{backend}, batch {ms.get('latency_batch_size', 1)}, {ms.get('latency_threads', '?')} thread(s), "
            f"median of {ms.get('latency_repeats', '?')}")


def _best(data: ReportData) -> str:
    done = data.done
    done = done[done["accuracy"].notna() & done["params"].notna()]
    if done.empty:
        return "<p class='note'>No finished trials yet.</p>"
    seeds = ""
    if data.multi_seed:   # one point per setting: the mean over its seeds
        keys = ["run", "series", "model", "algorithm", "target_kind", "rate", "rate_label"]
        g = done.groupby(keys, sort=False)
        done = g[["accuracy", "accuracy_drop", "params", "param_reduction", "macs", "latency_ms",
                  "size_bytes"]].mean().join(g["key"].first()).join(g.size().rename("n")).reset_index()
        done["name"] = [f"{r.series} {'baseline' if r.algorithm == BASELINE else r.algorithm + ' ' + r.rate_label}"
                        f" ({r.n} seeds)" for r in done.itertuples()]
        seeds = " Each row is the mean over its seeds; a click shows the first seed."
    front = pareto_front(done, "params", by="run")
    head = ("<tr>" + ("<th>run</th>" if data.multi_run else "") + "<th>trial</th><th>acc %</th><th>Δ pt</th>"
            "<th>params</th><th>params −%</th><th>MACs (M)</th><th>latency ms</th><th>size KB</th></tr>")
    body = ""
    for r in front.itertuples():
        body += (f"<tr class='pick' data-key='{_e(r.key)}'>" + (f"<td>{_e(r.run)}</td>" if data.multi_run else "")
                 + f"<td>{_e(r.name)}</td><td>{_pct(r.accuracy)}</td>"
                 f"<td>{_num(-100 * r.accuracy_drop + 0.0, '+.2f')}</td><td>{_num(r.params, ',.0f')}</td>"
                 f"<td>{_pct(r.param_reduction, 1)}</td><td>{_num(r.macs / 1e6, '.2f')}</td>"
                 f"<td>{_num(r.latency_ms, '.3f')}</td><td>{_num(r.size_bytes / 1024, ',.0f')}</td></tr>")
    return ("<p>The Pareto front of accuracy against parameters: no other trial is both smaller and more "
            "accurate than any of these. Click a row for its channels per layer. For a budget, ask "
            "<code>edgeprune recommend RUN --max-latency-ms … --max-params … --min-accuracy …</code>."
            f"{seeds}</p>"
            f"<table class='grid'>{head}{body}</table>")


def _algorithm_tables(data: ReportData) -> str:
    done = data.done
    pruned = done[(done["algorithm"] != BASELINE) & done["accuracy"].notna()]
    if pruned.empty:
        return ""
    out = []
    kinds = {"channels": 0, "params": 1, "macs": 2}
    for s in sorted(pruned["series"].unique()):
        d = pruned[pruned["series"] == s]
        algos = sorted(d["algorithm"].unique())
        if len(algos) < 2:
            continue
        order = sorted(d[["target_kind", "rate", "rate_label"]].drop_duplicates().itertuples(),
                       key=lambda r: (kinds.get(r.target_kind, 9), r.rate))
        stats = d.groupby(["rate_label", "algorithm"])["accuracy"].agg(["mean", "std", "size"])
        wins = dict.fromkeys(algos, 0)
        body = ""
        for r in order:
            lab = r.rate_label
            cells = {a: stats.loc[(lab, a)] for a in algos if (lab, a) in stats.index}
            best = max(cells, key=lambda a: cells[a]["mean"]) if cells else None
            if best and len(cells) > 1:
                wins[best] += 1
            tds = ""
            for a in algos:
                if a not in cells:
                    tds += "<td>–</td>"
                    continue
                st = cells[a]
                spread = f" ± {100 * st['std']:.2f} <span class='n'>({int(st['size'])})</span>" if st["size"] > 1 else ""
                cls = " class='best'" if a == best and len(cells) > 1 else ""
                tds += f"<td{cls}>{100 * st['mean']:.2f}{spread}</td>"
            body += f"<tr><th>{_e(lab)}</th>{tds}</tr>"
        body += "<tr class='wins'><th>best at</th>" + "".join(f"<td>{wins[a]} rate(s)</td>" for a in algos) + "</tr>"
        head = "".join(f"<th>{_e(a)}</th>" for a in algos)
        out.append(f"<h3>{_e(s)}</h3><table class='grid algo'><tr><th>rate</th>{head}</tr>{body}</table>")
    if not out:
        return ""
    seeds = " (mean ± standard deviation over seeds, their number in brackets)" if data.multi_seed else ""
    return (f"<p>Accuracy after fine-tuning in %{seeds}; the best algorithm at each rate in bold.</p>"
            + "".join(out))


def _banner(data: ReportData) -> str:
    unfinished = sum(r.unfinished for r in data.runs)
    if not unfinished:
        return ""
    done = sum(r.counts.get("done", 0) for r in data.runs)
    total = sum(sum(r.counts.values()) for r in data.runs)
    cmd = "edgeprune report RUN --watch" if not data.multi_run else "edgeprune compare RUN… --watch"
    return (f"<div class='banner'>Sweep in progress: {done} of {total} trials done "
            f"({_e(', '.join(status_summary(r.counts) for r in data.runs))}). Regenerate this page with "
            f"<code>{cmd}</code> (or the same command without <code>--watch</code>) and reload it to see new "
            "trials.</div>")


def _rows(data: ReportData, front_keys: set) -> list[dict]:
    df = data.trials.assign(delta=-data.trials["accuracy_drop"] + 0.0,
                            pareto=["★" if k in front_keys else "" for k in data.trials["key"]])
    cols = list(dict.fromkeys(["key"] + [c for c, *_ in COLUMNS] + [
        "name", "finetune_steps", "input_size", "channel_ratio", "layer_rate", "baseline_accuracy", "attempts"]))
    return [{k: _clean(v) for k, v in rec.items()} for rec in df[cols].to_dict("records")]


def _layers_payload(data: ReportData) -> tuple[dict, dict]:
    model_of = dict(zip(data.trials["key"], data.trials["model"]))
    names: dict[str, list[str]] = {}
    for key, lc in data.layers.items():
        names.setdefault(model_of.get(key, "?"), set()).update(lc)   # type: ignore[union-attr]
    names = {m: sorted(n, key=natural_key) for m, n in names.items()}
    payload = {}
    for key, lc in data.layers.items():
        model = model_of.get(key, "?")
        payload[key] = {"model": model, "before": [lc.get(n, [None, None])[0] for n in names[model]],
                        "after": [lc.get(n, [None, None])[1] for n in names[model]]}
    return names, payload


# -- the page ----------------------------------------------------------------------------------------------
def render_html(data: ReportData, files: Optional[list[str]] = None) -> str:
    """The report page for `data` as one HTML string."""
    from .. import __version__
    trials = data.trials
    done = data.done
    figs: list[tuple[str, Any]] = []

    def fig(fig_id: str, figure) -> str:
        figs.append((fig_id, figure))
        return f'<div class="fig" id="{fig_id}"></div>'

    has_done = not done.empty
    front_keys: set = set()
    if has_done:
        d = done[done["accuracy"].notna() & done["params"].notna()]
        front_keys = set(pareto_front(d, "params", by="run")["key"]) if len(d) else set()

    title = (f"edgeprune report · {data.runs[0].name}" if not data.multi_run else
             "edgeprune comparison · " + " vs ".join(r.label for r in data.runs))
    now = _dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    sections = []
    sections.append(("setup", "Set-up", _setup(data)))
    sections.append(("best", "Best trade-offs", _best(data)))
    rate_note = ("<p class='note'>A line per model through its baseline (rate 0); global targets "
                 "(params=…, macs=…) are in the trade-off charts and the table.</p>"
                 if (trials["target_kind"] != "channels").any() else "")
    sections.append(("rate", "Accuracy and size vs pruning rate", rate_note
                     + fig("fig-acc-rate", metric_vs_rate(trials, "accuracy", "accuracy (%)",
                                                          "Accuracy after fine-tuning vs pruning rate"))
                     + fig("fig-params-rate", metric_vs_rate(trials, "param_reduction", "parameter reduction (%)",
                                                             "Parameter reduction vs pruning rate"))))
    lat_note = ""
    if data.multi_run and has_done:
        threads = done.groupby("run")["latency_threads"].first().dropna()
        lat_note = ("<p class='note'>Latency is measured on the machine that ran each sweep"
                    + (f" (threads: {', '.join(f'{k}: {v:g}' for k, v in threads.items())})" if len(threads) else "")
                    + ".</p>")
    sections.append(("tradeoffs", "Accuracy vs parameters, MACs and latency",
                     "<p class='note'>Every finished trial is a point; stars are the unpruned baselines; the "
                     "dashed step is the Pareto front (nothing is both cheaper and more accurate). "
                     "Click a point for its channels per layer.</p>" + lat_note
                     + fig("fig-params", tradeoff(trials, "params")) + fig("fig-macs", tradeoff(trials, "macs"))
                     + fig("fig-latency", tradeoff(trials, "latency_ms"))))
    sections.append(("algorithms", "Algorithms at equal rate",
                     fig("fig-algos", algorithms_at_rate(trials)) + _algorithm_tables(data)))
    sections.append(("trials", "All trials", """
<div class="filters">
  <input id="ep-search" type="search" placeholder="filter: e.g. fpgm 0.5, or words of an error" size="30">
  <span id="ep-selects"></span>
  <label><input type="checkbox" id="ep-failed"> failed only</label>
  <span id="ep-count" class="note"></span>
</div>
<div class="tablewrap"><table id="ep-table" class="grid trials"><thead></thead><tbody></tbody></table></div>
<p class="note">Click a column header to sort (again to reverse); click a row for the trial's details.</p>"""))
    names, layer_payload = _layers_payload(data)
    heat = "".join(fig(f"fig-heat-{i}", layer_heatmap(trials, data.layers, m)) for i, m in enumerate(sorted(names)))
    sections.append(("channels", "Channels per layer", """
<p>Output channels of each pruned layer before pruning (grey) and kept (colour). Pick a trial here,
or click it in the table or in a chart.</p>
<div class="filters"><select id="ep-trial"></select></div>
<div id="ep-detail" class="detail"></div>
<div class="fig" id="ep-layer-chart"></div>""" + heat))
    if files:
        links = " · ".join(f"<a href='{_e(f)}'>{_e(f)}</a>" for f in files)
        sections.append(("files", "Figures as files", f"<p>{links}</p>"))

    nav = " ".join(f"<a href='#{sid}'>{_e(t)}</a>" for sid, t, _ in sections)
    body = "".join(f"<section id='{sid}'><h2>{_e(t)}</h2>{content}</section>" for sid, t, content in sections)

    run_cols = [c for c in COLUMNS if not ((c[0] == "run" and not data.multi_run) or
                                            (c[0] == "seed" and not data.multi_seed))]
    for cols, col in ((("latency_ms", "latency_p90_ms"), "latency_ms"), (("sparsity",), "sparsity")):
        if not trials[col].notna().any():
            run_cols = [c for c in run_cols if c[0] not in cols]
    payload = {
        "columns": [{"key": k, "label": lab, "type": t, "title": tip} for k, lab, t, tip in run_cols],
        "rows": _rows(data, front_keys),
        "layer_names": names,
        "layers": layer_payload,
        "filters": [c for c in ("run", "model", "algorithm", "status") if c != "run" or data.multi_run],
        "colors": algorithm_colors(trials["algorithm"]) if len(trials) else {},
    }
    figs_json = "[" + ",".join(f'{{"id":{json.dumps(i)},"fig":{pio.to_json(f, validate=False)}}}'
                               for i, f in figs) + "]"
    counts = ", ".join(f"{_e(r.label)}: {_e(status_summary(r.counts))}" for r in data.runs)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="edgeprune {_e(__version__)}">
<title>{_e(title)}</title>
<script>{_ERROR_CATCHER}</script>
<style>{_CSS}</style>
<script type="text/javascript">{get_plotlyjs()}</script>
</head><body>
<header><h1>{_e(title)}</h1>
<p class="meta">{counts} · generated {now} by edgeprune {_e(__version__)}</p>
<nav>{nav}</nav></header>
<div id="ep-errors" class="errors" hidden></div>
{_banner(data)}
<main>{body}</main>
{_json_script(payload, "ep-data")}
{_json_script(None, "ep-figs", raw=figs_json)}
<script>{_PAGE_JS}</script>
</body></html>
"""


def write_html(data: ReportData, path: str | Path, files: Optional[list[str]] = None) -> Path:
    """Write the page atomically (a reader reloading mid-write sees the old page)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = render_html(data, files)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


_ERROR_CATCHER = r"""
window.__epErrors = [];
(function () {
  function note(msg) { window.__epErrors.push(String(msg)); var b = document.getElementById('ep-errors');
    if (b) { b.hidden = false; b.textContent = 'JavaScript errors: ' + window.__epErrors.join(' | '); } }
  window.addEventListener('error', function (e) { note((e.message || e) + (e.filename ? ' at ' + e.filename + ':' + e.lineno : '')); });
  window.addEventListener('unhandledrejection', function (e) { note('unhandled rejection: ' + (e.reason && e.reason.message || e.reason)); });
  var ce = console.error; console.error = function () { note(Array.prototype.join.call(arguments, ' ')); ce.apply(console, arguments); };
})();
"""

_CSS = r"""
body { font: 14px/1.45 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; margin: 0; color: #222; background: #fafafa; }
header { background: #1f2937; color: #fff; padding: 14px 24px 10px; position: sticky; top: 0; z-index: 10; }
header h1 { margin: 0; font-size: 20px; } header .meta { margin: 2px 0 6px; color: #cbd5e1; font-size: 12px; }
nav a { color: #93c5fd; margin-right: 14px; text-decoration: none; font-size: 13px; } nav a:hover { text-decoration: underline; }
main { padding: 0 24px 40px; max-width: 1500px; }
section { background: #fff; border: 1px solid #e5e7eb; border-radius: 6px; padding: 6px 18px 14px; margin: 16px 0; }
section h2 { font-size: 17px; border-bottom: 1px solid #eee; padding-bottom: 4px; } h3 { font-size: 14px; margin: 14px 0 6px; }
.fig { width: 100%; min-height: 120px; }
.note { color: #666; font-size: 12.5px; } code { background: #f1f5f9; padding: 1px 4px; border-radius: 3px; }
.banner { background: #fef3c7; border: 1px solid #f59e0b; margin: 14px 24px 0; padding: 8px 14px; border-radius: 6px; }
.errors { background: #fee2e2; border: 1px solid #dc2626; color: #7f1d1d; margin: 14px 24px 0; padding: 8px 14px; }
.setups { display: flex; flex-wrap: wrap; gap: 24px; }
table.kv th { text-align: left; padding: 2px 14px 2px 0; color: #555; font-weight: 600; vertical-align: top; }
table.grid { border-collapse: collapse; font-size: 12.5px; margin: 4px 0 8px; }
table.grid th, table.grid td { border: 1px solid #e5e7eb; padding: 3px 8px; text-align: right; white-space: nowrap; }
table.grid th { background: #f3f4f6; }
table.grid td:first-child, table.grid th:first-child { text-align: left; }
table.algo td.best { font-weight: 700; background: #ecfdf5; } table.algo tr.wins td { color: #555; }
span.n { color: #888; font-size: 11px; }
tr.pick { cursor: pointer; } tr.pick:hover { background: #eff6ff; }
.filters { margin: 6px 0; display: flex; gap: 10px; align-items: center; flex-wrap: wrap; }
.filters select, .filters input { font-size: 13px; padding: 2px 4px; }
.tablewrap { max-height: 640px; overflow: auto; border: 1px solid #e5e7eb; }
table.trials { margin: 0; } table.trials thead th { position: sticky; top: 0; cursor: pointer; user-select: none; z-index: 1; }
table.trials thead th.sorted-asc::after { content: " ▲"; font-size: 9px; } table.trials thead th.sorted-desc::after { content: " ▼"; font-size: 9px; }
table.trials tbody tr { cursor: pointer; } table.trials tbody tr:hover { background: #eff6ff; }
table.trials tbody tr.selected { background: #dbeafe; }
table.trials td.text, table.trials th.text, table.trials td.id, table.trials td.error, table.trials td.status { text-align: left; }
td.error { color: #b91c1c; max-width: 380px; overflow: hidden; text-overflow: ellipsis; }
td.id { font-family: ui-monospace, monospace; color: #555; }
.st-done { color: #15803d; } .st-failed { color: #b91c1c; font-weight: 600; } .st-running { color: #b45309; }
.st-pending { color: #888; } .st-cancelled { color: #7e22ce; }
.detail { font-size: 13px; margin: 6px 0; } .detail pre { white-space: pre-wrap; background: #fef2f2; padding: 6px; max-height: 220px; overflow: auto; }
"""

_PAGE_JS = r"""
(function () {
  var DATA = JSON.parse(document.getElementById('ep-data').textContent);
  var FIGS = JSON.parse(document.getElementById('ep-figs').textContent);
  var CONFIG = { displaylogo: false, responsive: true };
  var ROWS = {}; DATA.rows.forEach(function (r) { ROWS[r.key] = r; });
  var STATUS_ORDER = { done: 0, running: 1, pending: 2, cancelled: 3, failed: 4 };

  function fmt(v, type) {
    if (v === null || v === undefined || v === '') return '';
    switch (type) {
      case 'pct': return (100 * v).toFixed(2);
      case 'signed': return (v >= 0 ? '+' : '−') + Math.abs(100 * v).toFixed(2);
      case 'int': return Math.round(v).toLocaleString('en-US');
      case 'mega': return (v / 1e6).toFixed(2);
      case 'kb': return Math.round(v / 1024).toLocaleString('en-US');
      case 'f1': return Number(v).toFixed(1);
      case 'f3': return Number(v).toFixed(3);
      case 'id': return String(v).slice(0, 8);
      case 'error': { var s = String(v).split('\n')[0]; return s.length > 90 ? s.slice(0, 90) + '…' : s; }
      default: return String(v);
    }
  }
  function esc(s) { return String(s).replace(/[&<>"']/g, function (c) { return { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]; }); }

  // ---- the trials table -----------------------------------------------------------------------------
  var table = document.getElementById('ep-table');
  var sortKey = null, sortDir = 1, selectedKey = null;
  var thead = table.querySelector('thead'), tbody = table.querySelector('tbody');
  var headRow = document.createElement('tr');
  DATA.columns.forEach(function (c) {
    var th = document.createElement('th'); th.textContent = c.label; th.title = c.title || '';
    th.className = (c.type === 'text' || c.type === 'status' || c.type === 'id' || c.type === 'error') ? 'text' : '';
    th.addEventListener('click', function () {
      if (sortKey === c.key) sortDir = -sortDir; else { sortKey = c.key; sortDir = 1; }
      Array.prototype.forEach.call(headRow.children, function (h) { h.classList.remove('sorted-asc', 'sorted-desc'); });
      th.classList.add(sortDir > 0 ? 'sorted-asc' : 'sorted-desc'); renderTable();
    });
    headRow.appendChild(th);
  });
  thead.appendChild(headRow);
  var selects = {};
  var selHolder = document.getElementById('ep-selects');
  DATA.filters.forEach(function (f) {
    var values = Array.from(new Set(DATA.rows.map(function (r) { return r[f]; }))).sort();
    var sel = document.createElement('select'); sel.id = 'ep-filter-' + f;
    sel.innerHTML = '<option value="">all ' + (f === 'status' ? 'statuses' : f + 's') + '</option>' + values.map(function (v) { return '<option>' + esc(v) + '</option>'; }).join('');
    sel.addEventListener('change', renderTable); selHolder.appendChild(sel); selects[f] = sel;
  });
  var TEXT_COLS = ['run', 'model', 'algorithm', 'rate_label', 'status', 'trial_id', 'name', 'pareto'];
  var search = document.getElementById('ep-search'), failedOnly = document.getElementById('ep-failed');
  search.addEventListener('input', renderTable); failedOnly.addEventListener('change', renderTable);

  function cmp(a, b) {
    var x = a[sortKey], y = b[sortKey];
    if (sortKey === 'status') { x = STATUS_ORDER[x]; y = STATUS_ORDER[y]; }
    var xn = (x === null || x === undefined || x === ''), yn = (y === null || y === undefined || y === '');
    if (xn || yn) return xn === yn ? 0 : (xn ? 1 : -1);           // empty cells last, either way
    if (typeof x === 'number' && typeof y === 'number') return sortDir * (x - y);
    return sortDir * String(x).localeCompare(String(y), undefined, { numeric: true });
  }
  function renderTable() {
    var words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
    var rows = DATA.rows.filter(function (r) {
      for (var f in selects) if (selects[f].value && String(r[f]) !== selects[f].value) return false;
      if (failedOnly.checked && r.status !== 'failed') return false;
      if (!words.length) return true;
      // a word matches the start of a word of the row's names (model, algorithm, rate, status, trial id...)
      // or any part of its error
      var tokens = TEXT_COLS.map(function (k) { return r[k] === null || r[k] === undefined ? '' : String(r[k]); })
        .join(' ').toLowerCase().split(/\s+/);
      var err = (r.error || '').toLowerCase();
      return words.every(function (w) {
        return err.indexOf(w) >= 0 || tokens.some(function (t) { return t.indexOf(w) === 0; });
      });
    });
    if (sortKey) rows = rows.slice().sort(cmp);
    var out = [];
    rows.forEach(function (r) {
      out.push('<tr data-key="' + esc(r.key) + '"' + (r.key === selectedKey ? ' class="selected"' : '') + '>');
      DATA.columns.forEach(function (c) {
        var cls = c.type === 'status' ? 'status st-' + r.status : c.type;
        var title = c.type === 'error' && r.error ? ' title="' + esc(r.error) + '"' : (c.type === 'id' ? ' title="' + esc(r.trial_id) + '"' : '');
        out.push('<td class="' + cls + '"' + title + '>' + esc(fmt(r[c.key], c.type)) + '</td>');
      });
      out.push('</tr>');
    });
    tbody.innerHTML = out.join('');
    document.getElementById('ep-count').textContent = 'showing ' + rows.length + ' of ' + DATA.rows.length + ' trials';
  }
  tbody.addEventListener('click', function (e) {
    var tr = e.target.closest('tr'); if (tr) showTrial(tr.getAttribute('data-key'), true);
  });
  document.querySelectorAll('tr.pick').forEach(function (tr) {
    tr.addEventListener('click', function () { showTrial(tr.getAttribute('data-key'), true); });
  });

  // ---- one trial: details and channels per layer -----------------------------------------------------
  var trialSel = document.getElementById('ep-trial');
  var layerKeys = DATA.rows.filter(function (r) { return DATA.layers[r.key]; }).map(function (r) { return r.key; });
  var otherKeys = DATA.rows.filter(function (r) { return !DATA.layers[r.key]; }).map(function (r) { return r.key; });
  function opt(k) { var r = ROWS[k]; return '<option value="' + esc(k) + '">' + esc(r.name + (r.status !== 'done' ? ' [' + r.status + ']' : '')) + '</option>'; }
  trialSel.innerHTML = (layerKeys.length ? '<optgroup label="pruned trials">' + layerKeys.map(opt).join('') + '</optgroup>' : '') +
    (otherKeys.length ? '<optgroup label="without per-layer channels">' + otherKeys.map(opt).join('') + '</optgroup>' : '');
  trialSel.addEventListener('change', function () { showTrial(trialSel.value, false); });

  function showTrial(key, scroll) {
    var r = ROWS[key]; if (!r) return;
    selectedKey = key; trialSel.value = key;
    tbody.querySelectorAll('tr.selected').forEach(function (tr) { tr.classList.remove('selected'); });
    var tr = tbody.querySelector('tr[data-key="' + CSS.escape(key) + '"]'); if (tr) tr.classList.add('selected');
    var bits = ['<b>' + esc(r.name) + '</b>', 'status ' + esc(r.status), 'trial ' + esc(r.trial_id)];
    if (r.accuracy !== null) bits.push('accuracy ' + fmt(r.accuracy, 'pct') + '% (' + fmt(r.delta, 'signed') + ' pt vs baseline; right after pruning ' + fmt(r.accuracy_pruned, 'pct') + '%)');
    if (r.params !== null) bits.push(fmt(r.params, 'int') + ' params (−' + fmt(r.param_reduction, 'pct') + '%)');
    if (r.macs !== null) bits.push(fmt(r.macs, 'mega') + ' M MACs (−' + fmt(r.mac_reduction, 'pct') + '%)');
    if (r.latency_ms !== null && r.latency_ms !== undefined) bits.push(fmt(r.latency_ms, 'f3') + ' ms');
    if (r.channel_ratio !== null && r.channel_ratio !== undefined) bits.push(fmt(r.channel_ratio, 'pct') + '% of targeted channels removed');
    var html = bits.join(' · ');
    if (r.error) html += '<pre>' + esc(r.error) + '</pre>';
    document.getElementById('ep-detail').innerHTML = html;
    var L = DATA.layers[key], chart = document.getElementById('ep-layer-chart');
    if (!L) {
      Plotly.react(chart, [], { height: 140, template: 'plotly_white', xaxis: { visible: false }, yaxis: { visible: false },
        annotations: [{ text: r.algorithm === 'none' ? 'the unpruned baseline: nothing was removed' : 'no per-layer channels recorded for this trial (' + r.status + ')',
          showarrow: false, xref: 'paper', yref: 'paper', x: 0.5, y: 0.5, font: { color: '#777', size: 14 } }] }, CONFIG);
    } else {
      var names = DATA.layer_names[L.model];
      var kept = L.after.map(function (a, i) { return L.before[i] ? a / L.before[i] : null; });
      var color = DATA.colors[r.algorithm] || '#1f77b4';
      Plotly.react(chart, [
        { type: 'bar', x: names, y: L.before, name: 'before', marker: { color: '#d1d5db' }, hovertemplate: '%{x}: %{y} channels before<extra></extra>' },
        { type: 'bar', x: names, y: L.after, name: 'kept', marker: { color: color }, customdata: kept,
          hovertemplate: '%{x}: %{y} kept (%{customdata:.0%})<extra></extra>' }],
        { barmode: 'overlay', height: 380, template: 'plotly_white', margin: { l: 60, r: 20, t: 40, b: 120 },
          title: { text: esc(r.name) + ': output channels per layer', font: { size: 14 } },
          xaxis: { tickangle: -60, tickfont: { size: 9 } }, yaxis: { title: { text: 'output channels' } }, bargap: 0.15 }, CONFIG);
    }
    if (scroll) document.getElementById('channels').scrollIntoView({ behavior: 'smooth', block: 'start' });
  }

  // ---- figures ------------------------------------------------------------------------------------------
  var drawn = FIGS.map(function (f) {
    var el = document.getElementById(f.id); if (!el) return Promise.resolve();
    return Plotly.newPlot(el, f.fig.data || [], f.fig.layout || {}, CONFIG).then(function (gd) {
      gd.on('plotly_click', function (ev) {
        var p = ev && ev.points && ev.points[0]; if (!p || p.customdata === undefined) return;
        var k = Array.isArray(p.customdata) ? p.customdata[0] : p.customdata;
        if (ROWS[k]) showTrial(k, true);
      });
    });
  });
  renderTable();
  var first = layerKeys.find(function (k) { return ROWS[k].status === 'done'; }) || layerKeys[0] || (DATA.rows[0] && DATA.rows[0].key);
  if (first) showTrial(first, false);
  Promise.all(drawn).then(finish, function (e) { console.error('drawing failed: ' + (e && e.message || e)); finish(); });
  function finish() {
    var plots = document.querySelectorAll('.fig'), ok = 0;
    plots.forEach(function (d) { if (d.querySelector('.main-svg')) ok++; });
    document.body.setAttribute('data-figures', String(plots.length));
    document.body.setAttribute('data-figures-drawn', String(ok));
    document.body.setAttribute('data-table-rows', String(tbody.children.length));
    document.body.setAttribute('data-report-ready', window.__epErrors.length ? 'errors' : 'ok');
  }
})();
"""
