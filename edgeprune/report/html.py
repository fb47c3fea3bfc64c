"""The HTML report: one self-contained file (Plotly's script inlined, the data as
JSON in the page), openable offline, rendered from a Jinja2 template
(templates/report.html.j2, autoescaped) with its script and style from static/.

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
import json
import math
import os
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Optional

import plotly.io as pio
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from plotly.offline import get_plotlyjs

from ..config import BASELINE, rate_label
from ..metrics import fmt, latency_label, metric
from .data import ReportData, status_summary
from .recovery_figure import recovery_path
from .search_figure import candidate_rows, rung_rows, search_records, search_rungs
from .sensitivity_figure import sensitivity_map_figure, sensitivity_maps
from .figures import (algorithm_colors, algorithms_at_rate, layer_heatmap, metric_vs_rate, natural_key, rate_order,
                      runtimes, tradeoff)
from ..pareto import pareto_front
from .render_plotly import render_plotly

HTML_NAME = "report.html"

# the all-trials table: metric keys, plus these identity columns; (key, header, type, tooltip)
_IDENTITY_COLUMNS = [
    ("run", "run", "text", "run folder (label)"),
    ("model", "model", "text", ""),
    ("algorithm", "algorithm", "text", "'none' is the unpruned baseline"),
    ("rate_label", "rate", "text", "fraction of channels removed per layer; params=/macs= a global target"),
    ("seed", "seed", "int", ""),
    ("status", "status", "status", ""),
]
_METRIC_COLUMNS = ["accuracy", "accuracy_drop", "accuracy_pruned", "params", "param_reduction", "macs",
                   "mac_reduction", "size_bytes", "latency_ms", "int8_vs_fp32", "latency_p90_ms", "sparsity",
                   "finetune_seconds"]
_TAIL_COLUMNS = [("pareto", "front", "text", "★: on the accuracy-vs-parameters Pareto front of its run"),
                 ("trial_id", "trial", "id", "trial id (a prefix is enough for deploy and recommend --export)"),
                 ("error", "error", "error", "why a trial failed")]
_JS_TYPES = {"fraction": "pct", "points": "drop", "count": "int", "mega": "mega", "bytes": "kb", "ms": "f3",
             "seconds": "f1", "int": "int", "float": "f3", "ratio": "f3", "text": "text"}


@lru_cache(maxsize=1)
def _environment() -> Environment:
    return Environment(loader=PackageLoader("edgeprune.report", "templates"), autoescape=select_autoescape(["j2"]),
                       trim_blocks=False, lstrip_blocks=False)


@lru_cache(maxsize=1)
def _static() -> dict:
    folder = resources.files("edgeprune.report") / "static"
    return {key: Markup((folder / name).read_text(encoding="utf-8"))
            for key, name in (("css", "report.css"), ("js", "report.js"), ("errors_js", "errors.js"))}


def _script_json(text: str) -> Markup:
    """JSON for a <script type=application/json> element: never closes it early."""
    return Markup(text.replace("</", "<\\/"))


def _clean(v: Any) -> Any:
    if isinstance(v, float):
        return None if math.isnan(v) or math.isinf(v) else round(v, 6)
    if hasattr(v, "item"):  # numpy scalars
        return _clean(v.item())
    return v


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: d}


# -- sections ----------------------------------------------------------------------------------------------
def _setup_items(run) -> list[tuple[str, str]]:
    c = run.config or {}
    items = [("run folder", str(run.path)), ("trials", status_summary(run.counts))]
    if not c:
        return items
    ds, ft, ms = c.get("dataset", {}), c.get("finetune", {}), c.get("measure", {})
    models = ", ".join(
        (m.get("alias") or m.get("name", "?")) + (f" ({'checkpoint' if m.get('checkpoint') else 'pretrained'})"
                                                  if m.get("checkpoint") or m.get("pretrained") else " (random init)")
        for m in c.get("models", []) if isinstance(m, dict))
    rates = ", ".join(rate_label("", r.get("kind", "channels"), r["value"])
                      for r in c.get("rates", []) if isinstance(r, dict) and "value" in r)
    frac = [f"{k.split('_')[0]} {ds[k]:g}" for k in ("train_fraction", "test_fraction") if ds.get(k, 1) != 1]
    latency = ms.get("latency", True)
    backend = ("not measured" if latency in (False, None) else
               f"{'torch on the CPU' if latency is True else json.dumps(latency)}, batch "
               f"{ms.get('latency_batch_size', 1)}, {ms.get('latency_threads', '?')} thread(s), median of "
               f"{ms.get('latency_repeats', '?')}")
    return items + [
        ("dataset", f"{ds.get('name', '?')}" + (f" ({', '.join(frac)})" if frac else "")
         + (f", images resized to {ds['image_size']}" if ds.get("image_size") else "")),
        ("models", models), ("algorithms", ", ".join(c.get("algorithms", []))), ("rates", rates),
        ("fine-tuning", f"{ft.get('epochs', '?')} epoch(s)" + (f", at most {ft['max_steps']} steps"
                                                               if ft.get("max_steps") else "")
         + f", {ft.get('optimizer', '?')} lr {ft.get('lr', '?')}, batch {ft.get('batch_size', '?')}"
         + (f", {ft['order']}" if ft.get("order") else "")),
        ("latency", backend), ("seed", str(c.get("seed", "?")))]


def _differ(data: ReportData) -> list[tuple[str, list]]:
    flat = [_flatten({k: v for k, v in (r.config or {}).items() if k not in ("out", "name")}) for r in data.runs]
    keys = sorted(set().union(*flat))
    return [(k, [f.get(k, "–") for f in flat]) for k in keys
            if len({json.dumps(f.get(k), sort_keys=True) for f in flat}) > 1]


_BEST_COLUMNS = ["accuracy", "accuracy_drop", "params", "param_reduction", "macs", "latency_ms", "size_bytes"]


def _best(data: ReportData) -> dict:
    done = data.done
    done = done[done["accuracy"].notna() & done["params"].notna()]
    if done.empty:
        return {"rows": []}
    if data.multi_seed:   # one point per setting: the mean over its seeds
        keys = ["run", "series", "model", "algorithm", "target_kind", "rate", "rate_label"]
        g = done.groupby(keys, sort=False)
        done = g[_BEST_COLUMNS].mean().join(g["key"].first()).join(g.size().rename("n")).reset_index()
        done["name"] = [f"{r.series} {'baseline' if r.algorithm == BASELINE else r.algorithm + ' ' + r.rate_label}"
                        f" ({r.n} seeds)" for r in done.itertuples()]
    front = pareto_front(done, "params", by="run")
    header = ([{"label": "run", "title": ""}] if data.multi_run else []) + [{"label": "trial", "title": ""}] + \
        [{"label": metric(k).header, "title": metric(k).description} for k in _BEST_COLUMNS]
    rows = [{"key": r["key"], "cells": ([r["run"]] if data.multi_run else []) + [r["name"]]
             + [fmt(k, r[k], short=False, empty="–") for k in _BEST_COLUMNS]} for _, r in front.iterrows()]
    return {"rows": rows, "header": header, "seeds": data.multi_seed}


def _algorithm_tables(data: ReportData) -> list[dict]:
    done = data.done
    pruned = done[(done["algorithm"] != BASELINE) & done["accuracy"].notna()]
    tables = []
    for s in sorted(pruned["series"].unique()):
        d = pruned[pruned["series"] == s]
        algos = sorted(d["algorithm"].unique())
        if len(algos) < 2:
            continue
        stats = d.groupby(["rate_label", "algorithm"])["accuracy"].agg(["mean", "std", "size"])
        wins = dict.fromkeys(algos, 0)
        rows = []
        for lab in rate_order(d):
            cells = {a: stats.loc[(lab, a)] for a in algos if (lab, a) in stats.index}
            best = max(cells, key=lambda a: cells[a]["mean"]) if len(cells) > 1 else None
            if best:
                wins[best] += 1
            rows.append({"rate": lab, "cells": [
                {"mean": 100 * cells[a]["mean"], "std": 100 * (0 if math.isnan(cells[a]["std"]) else cells[a]["std"]),
                 "n": int(cells[a]["size"]), "best": a == best} if a in cells else {"mean": None}
                for a in algos]})
        tables.append({"series": s, "algorithms": algos, "rows": rows, "wins": [wins[a] for a in algos]})
    return tables


def _slower_int8(data: ReportData) -> list[dict]:
    """The int8 variants that run slower than their fp32 twin (in any backend that timed both)."""
    done = data.done
    if "int8_slower_on" not in done:
        return []
    slow = done[done["int8_slower_on"].notna()]
    return [{"name": r["name"], "trial": r["trial_id"][:8], "on": r["int8_slower_on"],
             "twin": str(r.get("fp32_trial_id") or "")[:8]} for _, r in slow.iterrows()]


def _cpu_int8(data: ReportData) -> str:
    """The int8 instructions of the CPUs the latencies were measured on."""
    done = data.done
    values = sorted({v for v in done["cpu_int8"].dropna()}) if "cpu_int8" in done else []
    return ", ".join(values)


def _banner(data: ReportData) -> Optional[dict]:
    if not sum(r.unfinished for r in data.runs):
        return None
    return {"done": sum(r.counts.get("done", 0) for r in data.runs),
            "total": sum(sum(r.counts.values()) for r in data.runs),
            "summary": ", ".join(status_summary(r.counts) for r in data.runs),
            "command": "edgeprune report RUN --watch" if not data.multi_run else "edgeprune compare RUN… --watch"}


def _columns(data: ReportData) -> list[dict]:
    trials = data.trials
    cols = [c for c in _IDENTITY_COLUMNS if not ((c[0] == "run" and not data.multi_run) or
                                                  (c[0] == "seed" and not data.multi_seed))]
    cols += [(k, metric(k).header + (" (kB)" if metric(k).kind == "bytes" else ""),
              _JS_TYPES.get(metric(k).kind, "f3"), metric(k).description)
             for k in _METRIC_COLUMNS if trials[k].notna().any() or k in ("accuracy", "params")]
    cols += _TAIL_COLUMNS
    return [{"key": k, "label": lab, "type": t, "title": tip} for k, lab, t, tip in cols]


def _rows(data: ReportData, front_keys: set) -> list[dict]:
    df = data.trials.assign(pareto=["★" if k in front_keys else "" for k in data.trials["key"]])
    cols = list(dict.fromkeys(["key", *[c for c, *_ in _IDENTITY_COLUMNS], *_METRIC_COLUMNS,
                               *[c for c, *_ in _TAIL_COLUMNS], "name", "finetune_steps", "input_size",
                               "channel_ratio", "layer_rate", "baseline_accuracy", "attempts"]))
    return [{k: _clean(v) for k, v in rec.items()} for rec in df[cols].to_dict("records")]


def _layers_payload(data: ReportData) -> tuple[dict, dict]:
    model_of = dict(zip(data.trials["key"], data.trials["model"]))
    names: dict[str, set] = {}
    for key, lc in data.layers.items():
        names.setdefault(model_of.get(key, "?"), set()).update(lc)
    ordered = {m: sorted(n, key=natural_key) for m, n in names.items()}
    payload = {key: {"model": model_of.get(key, "?"),
                     "before": [lc.get(n, [None, None])[0] for n in ordered[model_of.get(key, "?")]],
                     "after": [lc.get(n, [None, None])[1] for n in ordered[model_of.get(key, "?")]]}
               for key, lc in data.layers.items()}
    return ordered, payload


# -- the page ----------------------------------------------------------------------------------------------
def render_html(data: ReportData, files: Optional[list[str]] = None) -> str:
    """The report page for `data` as one HTML string."""
    from .. import __version__
    trials, done = data.trials, data.done
    front_keys: set = set()
    if not done.empty:
        d = done[done["accuracy"].notna() & done["params"].notna()]
        front_keys = set(pareto_front(d, "params", by="run")["key"]) if len(d) else set()
    layer_names, layer_payload = _layers_payload(data)
    searches, maps = search_records(data), sensitivity_maps(data)
    heatmaps = {f"fig-heat-{i}": m for i, m in enumerate(sorted(layer_names))}
    figures = [
        metric_vs_rate(trials, "accuracy", "accuracy (%)", "Accuracy after fine-tuning vs pruning rate", "fig-acc-rate"),
        metric_vs_rate(trials, "param_reduction", "parameter reduction (%)", "Parameter reduction vs pruning rate",
                       "fig-params-rate"),
        tradeoff(trials, "params", "fig-params"), tradeoff(trials, "macs", "fig-macs"),
        tradeoff(trials, "latency_ms", "fig-latency"), runtimes(trials, "fig-runtimes"),
        algorithms_at_rate(trials, "fig-algos"), recovery_path(trials, "fig-recovery"),
        *([search_rungs(trials, searches, "fig-search")] if searches else []),
        *([sensitivity_map_figure(maps, "fig-sensitivity")] if maps else []),
        *[layer_heatmap(trials, data.layers, m, fig_id) for fig_id, m in heatmaps.items()]]
    figs_json = "[" + ",".join(f'{{"id":{json.dumps(f.id)},"fig":{pio.to_json(render_plotly(f), validate=False)}}}'
                               for f in figures) + "]"
    latency_note = ""
    if data.multi_run and not done.empty:
        threads = done.groupby("run")["latency_threads"].first().dropna()
        latency_note = ("Latency is measured on the machine that ran each sweep"
                        + (f" (threads: {', '.join(f'{k}: {v:g}' for k, v in threads.items())})" if len(threads)
                           else "") + ".")
    labels = sorted({latency_label(r) for _, r in done.iterrows()}) if not done.empty else []
    payload = {"columns": _columns(data), "rows": _rows(data, front_keys), "layer_names": layer_names,
               "layers": layer_payload,
               "filters": [c for c in ("run", "model", "algorithm", "status") if c != "run" or data.multi_run],
               "colors": algorithm_colors(trials["algorithm"]) if len(trials) else {}}
    title = (f"edgeprune report · {data.runs[0].name}" if not data.multi_run else
             "edgeprune comparison · " + " vs ".join(r.label for r in data.runs))
    sections = [("setup", "Set-up"), ("best", "Best trade-offs"), ("rate", "Accuracy and size vs pruning rate"),
                ("tradeoffs", "Accuracy vs parameters, MACs and latency"), ("algorithms", "Algorithms at equal rate"),
                ("recovery", "Recovery path")] + ([("sensitivity", "Sensitivity maps")] if maps else []) + (
                    [("search", "Search")] if searches else []) + [
                ("trials", "All trials"), ("channels", "Channels per layer")] + ([("files", "Figures as files")]
                                                                                 if files else [])
    return _environment().get_template("report.html.j2").render(
        version=__version__, title=title, now=_dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
        static=_static(), plotly_js=Markup(get_plotlyjs()),
        runs=[{"label": r.label, "summary": status_summary(r.counts), "settings": _setup_items(r)} for r in data.runs],
        multi_run=data.multi_run, multi_seed=data.multi_seed, differ=_differ(data) if data.multi_run else [],
        sections=[{"id": i, "title": t} for i, t in sections], banner=_banner(data), best=_best(data),
        global_targets=bool((trials["target_kind"] != "channels").any()), latency_note=latency_note,
        latency_label="; ".join(labels) or "not measured", algorithm_tables=_algorithm_tables(data),
        slower_int8=_slower_int8(data), cpu_int8=_cpu_int8(data),
        has_maps=bool(maps), searches=[{"run": label, "goals": r.goals, "objective": r.objective, "ended": r.ended,
                   "steps": r.steps_spent, "minutes": r.seconds / 60, "plan": r.plan, "rungs": rung_rows(r),
                   "candidates": candidate_rows(r, trials)} for label, r in searches.items()],
        heatmaps=list(heatmaps), files=files or [],
        data_json=_script_json(json.dumps(payload, separators=(",", ":"), allow_nan=False)),
        figs_json=_script_json(figs_json))


def write_html(data: ReportData, path: str | Path, files: Optional[list[str]] = None) -> Path:
    """Write the page atomically (a reader reloading mid-write sees the old page)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = render_html(data, files)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
