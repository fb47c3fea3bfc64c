"""The HTML report and `compare`: built from hand-made stores, checked as text, and
rendered in a real headless Chromium (skipped, saying why, where there is none)."""
import json
import re
import time

import numpy as np
import pytest
from PIL import Image

from edgeprune.cli import main
from edgeprune.report import compare, load_runs, pareto_front, pareto_mask, report, watch_report
from edgeprune.report.browser import check_page, find_chromium
from edgeprune.report.data import unique_labels
from edgeprune.store import ResultStore

from fake_runs import make_run

CHROMIUM = find_chromium()
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium here: install Debian's `chromium` (.ci/run does) to render the report")


def _payload(html: str, elem_id: str):
    m = re.search(rf'<script type="application/json" id="{elem_id}">(.*?)</script>', html, re.S)
    return json.loads(m.group(1).replace("<\\/", "</"))


@pytest.fixture(scope="module")
def rich_run(tmp_path_factory):
    """Two models, three algorithms (one always fails), a global target, three seeds,
    and the sweep still running."""
    return make_run(tmp_path_factory.mktemp("rich") / "run", models=("resnet20", "mobilenet_v2"),
                    algorithms=("l1", "fpgm", "random"), rates=(0.3, 0.5, 0.7, ("params", 0.5)),
                    seeds=(0, 1, 2), failed="random", unfinished=3)


@pytest.fixture(scope="module")
def rich_report(rich_run):
    files = report(rich_run)
    return rich_run, files, files[-1].read_text()


# -- the Pareto front -----------------------------------------------------------------------------------------
def test_pareto_mask_keeps_what_nothing_beats():
    costs = [1, 2, 2, 3, 4, 4, 5, np.nan, 6]
    accs = [0.5, 0.7, 0.6, 0.65, 0.8, 0.8, 0.8, 0.99, np.nan]
    # (2, .6) loses to (2, .7); (3, .65) to (2, .7); (5, .8) to (4, .8); both (4, .8) stay; NaNs never
    assert pareto_mask(costs, accs).tolist() == [True, True, False, False, True, True, False, False, False]
    assert pareto_mask([], []).tolist() == []
    assert pareto_mask([3], [0.1]).tolist() == [True]


def test_pareto_front_by_run_is_sorted_by_cost(rich_run, tmp_path):
    other = make_run(tmp_path / "b", epochs=3)
    data = load_runs([rich_run, other], labels=["a", "b"])
    front = pareto_front(data.done, "params", by="run")
    assert set(front["run"]) == {"a", "b"}
    for _, g in front.groupby("run"):
        assert g["params"].is_monotonic_increasing and g["accuracy"].is_monotonic_increasing
        assert (g["algorithm"] == "none").any()           # the most accurate point is a baseline
    assert front["status"].eq("done").all()


# -- the page as text ---------------------------------------------------------------------------------------
def test_report_writes_a_self_contained_page_and_the_figures(rich_report):
    run, files, html = rich_report
    names = {f.name for f in files}
    assert {"report.html", "accuracy_vs_rate.png", "accuracy_vs_rate.svg", "param_reduction_vs_rate.png",
            "param_reduction_vs_rate.svg", "accuracy_vs_cost.png", "accuracy_vs_cost.svg"} == names
    # (no recovery_path.png: this run neither recalibrated nor rebuilt; the page says so in its place)
    assert files[-1] == run / "report" / "report.html"
    # offline: Plotly inlined once, nothing fetched from anywhere
    assert html.count("plotly.js v") >= 1 and len(html) > 3_000_000
    assert not re.search(r'<(script|link|img)[^>]+(src|href)="(https?:)?//', html)
    assert "<script src" not in html.split("</head>")[1]    # (Plotly's own code only names a topojson URL for maps)
    figs = _payload(html, "ep-figs")
    assert [f["id"] for f in figs][:9] == ["fig-acc-rate", "fig-params-rate", "fig-params", "fig-macs",
                                           "fig-latency", "fig-runtimes", "fig-algos", "fig-recovery", "fig-heat-0"]
    # mid-sweep: a banner, and every trial in the table, failed ones with their error
    assert "Sweep in progress" in html
    data = _payload(html, "ep-data")
    with ResultStore(run, create=False) as store:
        assert len(data["rows"]) == len(store.trials())
    statuses = {r["status"] for r in data["rows"]}
    assert statuses == {"done", "failed", "running", "pending"}
    failed = [r for r in data["rows"] if r["status"] == "failed"]
    assert failed and all(r["error"].startswith("RuntimeError: cannot prune") for r in failed)
    assert {c["key"] for c in data["columns"]} >= {"model", "algorithm", "rate_label", "seed", "status", "accuracy",
                                                   "params", "macs", "latency_ms", "error"}
    assert data["filters"] == ["model", "algorithm", "status"]


def test_report_holds_the_channels_of_every_pruned_trial(rich_report):
    _, _, html = rich_report
    data = _payload(html, "ep-data")
    done_pruned = [r for r in data["rows"] if r["status"] == "done" and r["algorithm"] != "none"]
    assert done_pruned and all(r["key"] in data["layers"] for r in done_pruned)
    names = data["layer_names"]["mobilenet_v2"]
    assert names.index("features.2.conv.0.0") < names.index("features.10.conv.0.0")   # natural order
    r = next(r for r in done_pruned if r["model"] == "resnet20" and r["rate_label"] == "0.5")
    lc = data["layers"][r["key"]]
    i = data["layer_names"]["resnet20"].index("layer3.0.conv1")
    assert (lc["before"][i], lc["after"][i]) == (64, 32)


def test_equal_rate_comparison_lists_mean_and_spread_over_seeds(rich_report):
    _, _, html = rich_report
    algos = html[html.index('id="algorithms"'):html.index('id="trials"')]
    # fpgm beats l1 at every rate in the fake data, with three seeds each
    assert algos.count('class="best"') == 8 and "4 rate(s)" in algos and "(3)" in algos
    fig = next(f for f in _payload(html, "ep-figs") if f["id"] == "fig-algos")["fig"]
    means = [t for t in fig["data"] if t.get("name") in ("l1", "fpgm")]
    assert means and all(t["error_y"]["visible"] for t in means)
    assert fig["layout"]["scattermode"] == "group"


def test_tradeoff_charts_mark_front_and_baselines(rich_report):
    _, _, html = rich_report
    figs = {f["id"]: f["fig"] for f in _payload(html, "ep-figs")}
    for fid in ("fig-params", "fig-macs", "fig-latency"):
        names = [t["name"] for t in figs[fid]["data"]]
        assert "Pareto front" in names
        assert {"baseline · resnet20", "baseline · mobilenet_v2"} <= set(names)
        stars = [t for t in figs[fid]["data"] if t["name"].startswith("baseline")]
        assert all(t["marker"]["symbol"] == "star" for t in stars)
    assert figs["fig-params"]["layout"]["xaxis"]["type"] == "log"    # 23k .. 2.2M parameters


def test_single_trial_and_empty_runs(tmp_path):
    one = make_run(tmp_path / "one", algorithms=(), rates=())          # just a baseline
    files = report(one, figures=False)
    html = files[-1].read_text()
    assert len(_payload(html, "ep-data")["rows"]) == 1 and "Sweep in progress" not in html
    planned = make_run(tmp_path / "planned", unfinished=7)             # nothing has finished yet
    files = report(planned, tmp_path / "out")   # no figure to draw: only the page
    assert [f.name for f in files] == ["report.html"]
    assert "no finished trials yet" in files[0].read_text()


def test_latency_not_measured_is_said_not_drawn(tmp_path):
    run = make_run(tmp_path / "run", latency=False)
    html = report(run, figures=False)[-1].read_text()
    assert "latency was not measured" in html
    assert "latency_ms" not in [c["key"] for c in _payload(html, "ep-data")["columns"]]


@pytest.mark.slow
def test_500_trials_render_quickly_and_stay_small(tmp_path):
    run = make_run(tmp_path / "big", models=("resnet20", "mobilenet_v2", "vgg11", "resnet56", "googlenet"),
                   algorithms=("l1", "l2", "fpgm", "random", "taylor"), rates=[round(0.1 * i, 1) for i in range(1, 10)],
                   seeds=(0, 1), failed="taylor", unfinished=20)
    with ResultStore(run, create=False) as store:
        assert len(store.trials()) == 460
    start = time.perf_counter()
    files = report(run)
    took = time.perf_counter() - start
    size = files[-1].stat().st_size
    assert took < 60, took
    assert size < 9_000_000, size        # Plotly's 4.8 MB plus the data
    assert len(_payload(files[-1].read_text(), "ep-data")["rows"]) == 460


def test_watch_regenerates_when_a_trial_finishes(tmp_path):
    run = make_run(tmp_path / "run", unfinished=2)
    writes = []
    watch_report([run], tmp_path / "out", interval=0, on_write=writes.append, max_rounds=2, figures=False)
    assert len(writes) == 1                          # nothing changed between the two checks
    with ResultStore(run, create=False) as store:
        for t in store.to_run():
            store.mark_running(t.trial_id)
            store.mark_done(t.trial_id, {"accuracy": 0.5, "params": 10, "macs": 10})
    files = watch_report([run], tmp_path / "out", interval=0, on_write=writes.append,
                         figures=False)                  # returns by itself: every trial has finished
    assert len(writes) == 2 and "Sweep in progress" not in files[-1].read_text()


# -- compare ---------------------------------------------------------------------------------------------------
def test_compare_overlays_runs_and_lists_the_settings_that_differ(rich_run, tmp_path):
    three = make_run(tmp_path / "ft3" / "run", models=("resnet20", "mobilenet_v2"), epochs=3, name="three")
    files = compare([rich_run, three], tmp_path / "cmp", labels=["1 epoch", "3 epochs"], figures=False)
    html = files[-1].read_text()
    assert "edgeprune comparison · 1 epoch vs 3 epochs" in html
    diff = html[html.index("Settings that differ"):]
    assert "<tr><th>finetune.epochs</th><td>1.0</td><td>3</td></tr>" in diff
    assert "<th>algorithms</th>" in diff and "<th>dataset.name</th>" not in diff   # same dataset: not listed
    data = _payload(html, "ep-data")
    assert {r["run"] for r in data["rows"]} == {"1 epoch", "3 epochs"}
    assert data["filters"][0] == "run" and data["columns"][0]["key"] == "run"
    figs = {f["id"]: f["fig"] for f in _payload(html, "ep-figs")}
    names = {t["name"] for t in figs["fig-params"]["data"]}
    assert {"Pareto front · 1 epoch", "Pareto front · 3 epochs"} <= names
    assert any("3 epochs · resnet20" in t["name"] for t in figs["fig-acc-rate"]["data"])


def test_run_labels_default_to_distinct_folder_names(tmp_path):
    assert unique_labels([tmp_path / "a" / "run", tmp_path / "b" / "run"]) == ["a/run", "b/run"]
    assert unique_labels([tmp_path / "x", tmp_path / "y"]) == ["x", "y"]


@pytest.mark.slow
def test_cli_report_compare_and_their_errors(rich_run, tmp_path, capsys):
    assert main(["report", str(rich_run), "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out.split()
    assert out[-1].endswith("report.html") and len(out) == 7
    other = make_run(tmp_path / "b", epochs=2)
    assert main(["compare", str(rich_run), str(other), "--labels", "a,b", "--out", str(tmp_path / "c")]) == 0
    assert (tmp_path / "c" / "report.html").is_file()
    capsys.readouterr()
    assert main(["compare", str(rich_run), str(other), "--labels", "a"]) == 2
    assert "1 labels for 2 runs" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert "no results" in capsys.readouterr().err


# -- in a real browser -------------------------------------------------------------------------------------------
# Runs after the page's own script: sorts, filters and clicks like a user, and writes what it saw into the DOM.
_USER = """<script>
(function () {
  var out = {}, body = document.body, tbody = document.querySelector('#ep-table tbody');
  var heads = Array.from(document.querySelectorAll('#ep-table thead th'));
  var th = heads.find(function (h) { return h.textContent === 'acc %'; }), col = heads.indexOf(th);
  function accs() { return Array.from(tbody.querySelectorAll('tr')).map(function (tr) {
    return tr.children[col].textContent; }).filter(function (t) { return t; }).map(Number); }
  th.click(); th.click();                                   // descending
  var a = accs(); out.sorted_desc = a.every(function (v, i) { return i === 0 || a[i - 1] >= v; }) && a.length > 10;
  var q = document.getElementById('ep-search'); q.value = 'fpgm 0.5'; q.dispatchEvent(new Event('input'));
  out.search_rows = tbody.querySelectorAll('tr').length;
  q.value = ''; q.dispatchEvent(new Event('input'));
  var sel = document.getElementById('ep-filter-status'); sel.value = 'failed'; sel.dispatchEvent(new Event('change'));
  out.failed_rows = tbody.querySelectorAll('tr').length;
  var row = tbody.querySelector('tr'); row.click();
  out.detail_has_error = document.getElementById('ep-detail').textContent.indexOf('RuntimeError: cannot prune') >= 0;
  sel.value = ''; sel.dispatchEvent(new Event('change'));
  body.setAttribute('data-user', JSON.stringify(out));
})();
</script></body>"""


@needs_chromium
def test_report_renders_in_chromium_without_errors(rich_report, tmp_path):
    _, files, html = rich_report
    shot = tmp_path / "report.png"
    page = check_page(files[-1], screenshot=shot, width=1400, height=2600)
    assert page.errors == [] and page.ready == "ok", page.errors
    assert page.figures == 11 and page.figures_drawn == 11          # 9 charts, 2 heatmaps... every one drawn
    with ResultStore(files[-1].parent.parent, create=False) as store:
        assert page.table_rows == len(store.trials())
    assert 'class="main-svg"' in page.dom and "scatterlayer" in page.dom
    # the screenshot shows charts: many distinct colours, not a blank or an error page
    img = np.asarray(Image.open(shot).convert("RGB"))
    assert img.shape[:2] == (2600, 1400)
    colors = {tuple(c) for c in img[::7, ::7].reshape(-1, 3)}
    assert len(colors) > 200
    assert (img[::7, ::7] < 100).all(axis=2).mean() > 0.002          # dark ink: text and markers
    # the table sorts, filters and shows a trial's details when a user clicks
    driven = tmp_path / "driven.html"
    driven.write_text(html.replace("</body>", _USER))
    page = check_page(driven)
    assert page.ok, page.errors
    user = json.loads(re.search(r'data-user="([^"]*)"', page.dom).group(1).replace("&quot;", '"'))
    assert user == {"sorted_desc": True, "search_rows": 6, "failed_rows": 21, "detail_has_error": True}


@needs_chromium
def test_tiny_and_compare_pages_render_in_chromium(tmp_path, rich_run):
    one = make_run(tmp_path / "one", algorithms=(), rates=())
    page = check_page(report(one, figures=False)[-1])
    assert page.ok, page.errors
    other = make_run(tmp_path / "b", epochs=3, latency=False)
    page = check_page(compare([rich_run, other], tmp_path / "cmp", figures=False)[-1])
    assert page.ok and page.table_rows == 78 + 7, page.errors


@needs_chromium
def test_a_broken_page_is_caught(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><div id='ep-errors' hidden></div><script>"
                   "window.__epErrors=[];window.addEventListener('error',function(e){"
                   "var b=document.getElementById('ep-errors');b.hidden=false;b.textContent=e.message;});"
                   "</script><script>undefinedFunction();</script></body></html>")
    page = check_page(bad)
    assert not page.ok and any("undefinedFunction" in e for e in page.errors)
