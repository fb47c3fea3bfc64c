"""`edgeprune recommend`: the trials that fit a device's budget, best first, and
the chosen one exported with a model card.

    rec = recommend("runs/quickstart", max_latency_ms=5, max_params=1e6, min_accuracy=0.9)
    print(rec.format())                    # what the command prints
    rec.best                               # the winning row (a pandas Series) or None
    export_trial("runs/quickstart", rec.best.trial_id, "deploy/")

Only finished trials are candidates. A trial fits when it meets every constraint;
a constraint on a metric the trial lacks (latency not measured) is not met.
Fitting trials are ranked by the objective, then by accuracy, fewer parameters,
fewer MACs, lower latency, smaller size and finally plan order, so the ranking is
deterministic; equal objective values are reported as a tie.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import pandas as pd

from .errors import EdgepruneError
from .report.data import BASELINE, load_runs, status_summary


# -- constraints and objectives ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Constraint:
    key: str          # keyword of recommend()
    metric: str       # column of load_runs()
    upper: bool       # True: metric <= value; False: metric >= value
    value: float
    flag: str         # the command-line option
    what: str         # words for messages

    def ok(self, s: pd.Series) -> pd.Series:
        """True where met (NaN: not met). A hair of slack so that floating-point noise
        (0.90 - 0.88 = 0.02000000000000002) does not turn a bound met exactly into a miss."""
        eps = 1e-9 * max(1.0, abs(self.value))
        return (s <= self.value + eps) if self.upper else (s >= self.value - eps)

    def show(self, v: Optional[float] = None) -> str:
        return show_metric(self.metric, self.value if v is None else v)

    def describe(self) -> str:
        return f"{self.what} {'≤' if self.upper else '≥'} {self.show()}"

    def flag_text(self, v: float) -> str:
        return f"{self.flag} {flag_value(self.metric, v, self.upper)}"


# keyword -> (metric, upper bound?, command-line flag, words)
CONSTRAINTS = {
    "max_latency_ms": ("latency_ms", True, "--max-latency-ms", "latency"),
    "max_params": ("params", True, "--max-params", "parameters"),
    "max_macs": ("macs", True, "--max-macs", "MACs"),
    "max_size_bytes": ("size_bytes", True, "--max-size", "size"),
    "min_accuracy": ("accuracy", False, "--min-accuracy", "accuracy"),
    "max_accuracy_drop": ("accuracy_drop", True, "--max-accuracy-drop", "accuracy drop from the baseline"),
}

# objective -> (metric, higher is better?)
OBJECTIVES = {
    "accuracy": ("accuracy", True),
    "accuracy_drop": ("accuracy_drop", False),
    "latency": ("latency_ms", False),
    "params": ("params", False),
    "macs": ("macs", False),
    "size": ("size_bytes", False),
}
# after the objective: accuracy, then the cheaper, then plan order
TIE_BREAK = [("accuracy", False), ("params", True), ("macs", True), ("latency_ms", True), ("size_bytes", True),
             ("run_order", True), ("position", True)]


def show_metric(metric: str, v: float) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if metric == "accuracy":
        return f"{100 * v:.2f}%"
    if metric == "accuracy_drop":
        return f"{100 * v:.2f} pt"
    if metric == "latency_ms":
        return f"{v:.3f} ms"
    if metric == "params":
        return f"{v:,.0f}"
    if metric == "macs":
        return f"{v / 1e6:,.2f} M"
    if metric == "size_bytes":
        return f"{v / 1024:,.0f} KiB"
    return f"{v:g}"


def flag_value(metric: str, v: float, upper: bool = True) -> str:
    """A bound as the command line takes it back, rounded so that `v` still meets it."""
    digits = 4 if metric in ("accuracy", "accuracy_drop") else 3 if metric == "latency_ms" else 0
    scale = 10 ** digits
    bound = (math.ceil(v * scale - 1e-9) if upper else math.floor(v * scale + 1e-9)) / scale
    return f"{bound:.{digits}f}"


# -- parsing values a user types ----------------------------------------------------------------------------
_COUNT = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "b": 1e9}
_SIZE = {"": 1, "b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "k": 1024, "kib": 1024, "m": 1024 ** 2,
         "mib": 1024 ** 2, "g": 1024 ** 3, "gib": 1024 ** 3}


def _split(text: str, what: str) -> tuple[float, str]:
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([A-Za-z%]*)\s*", str(text))
    if not m:
        raise EdgepruneError(f"{what}: cannot read {text!r} as a number")
    return float(m.group(1)), m.group(2).lower()


def _parse_units(text: str | float, what: str, units: dict, hint: str) -> float:
    if isinstance(text, (int, float)):
        return float(text)
    v, unit = _split(text, what)
    if unit not in units:
        raise EdgepruneError(f"{what}: unknown unit {unit!r} in {text!r} (use {hint})")
    return v * units[unit]


def parse_count(text: str | float, what: str = "count") -> float:
    """'1e6', '1000000', '1M', '250k', '1.5G' -> a number."""
    return _parse_units(text, what, _COUNT, "k, M or G")


def parse_size(text: str | float, what: str = "size") -> float:
    """Bytes: '123456', '500KB' / '2MB' (powers of 1000), '500KiB' / '2MiB' (powers of 1024)."""
    return _parse_units(text, what, _SIZE, "KB, MB, KiB or MiB")


def parse_fraction(text: str | float, what: str = "accuracy") -> float:
    """'0.9', '90%' or '90' (a number above 1 is read as a percentage) -> 0.9."""
    if isinstance(text, (int, float)):
        v, unit = float(text), ""
    else:
        v, unit = _split(text, what)
    if unit in ("%", "pt", "pts", "pp"):
        return v / 100
    if unit:
        raise EdgepruneError(f"{what}: unknown unit {unit!r} in {text!r} (give a fraction like 0.9, or 90%)")
    if v > 100:
        raise EdgepruneError(f"{what}: {text!r} is more than 100%")
    return v / 100 if v > 1 else v


def parse_ms(text: str | float, what: str = "latency") -> float:
    if isinstance(text, (int, float)):
        return float(text)
    v, unit = _split(text, what)
    if unit in ("", "ms"):
        return v
    if unit == "s":
        return v * 1000
    if unit == "us":
        return v / 1000
    raise EdgepruneError(f"{what}: unknown unit {unit!r} in {text!r} (use ms)")


# -- the recommendation --------------------------------------------------------------------------------------
@dataclass
class Recommendation:
    constraints: list[Constraint]
    objective: str
    candidates: pd.DataFrame          # finished trials considered (after the model/algorithm filters)
    ranked: pd.DataFrame              # those meeting every constraint, best first; column `rank` (ties share it)
    top: int
    runs: list                        # RunInfo of each run
    violations: dict[str, int] = field(default_factory=dict)     # constraint key -> trials that fail it
    reasons: list[str] = field(default_factory=list)             # why nothing fits (empty when something does)
    notes: list[str] = field(default_factory=list)
    exported: bool = False            # set by the command once --export wrote it (changes the last hint)

    @property
    def best(self) -> Optional[pd.Series]:
        return None if self.ranked.empty else self.ranked.iloc[0]

    @property
    def shown(self) -> pd.DataFrame:
        return self.ranked.head(self.top)

    def describe_budget(self) -> str:
        return ", ".join(c.describe() for c in self.constraints) or "no constraints"

    def to_dict(self) -> dict:
        cols = ["rank", "run", "trial_id", "model", "algorithm", "rate_label", "seed", "accuracy", "accuracy_drop",
                "baseline_accuracy", "params", "param_reduction", "macs", "mac_reduction", "size_bytes",
                "latency_ms", "run_path"]
        rows = [{k: _plain(r[k]) for k in cols} for _, r in self.shown.iterrows()]
        return {"objective": self.objective,
                "constraints": [{"metric": c.metric, "op": "<=" if c.upper else ">=", "value": c.value}
                                for c in self.constraints],
                "candidates": len(self.candidates), "fitting": len(self.ranked), "recommendations": rows,
                "violations": self.violations, "reasons": self.reasons, "notes": self.notes}

    def format(self, console_width: int = 160) -> str:
        """The text `edgeprune recommend` prints."""
        from rich.console import Console
        from rich.table import Table
        metric, higher = OBJECTIVES[self.objective]
        where = ", ".join(str(r.path) for r in self.runs)
        lines = [f"{where}: {len(self.candidates)} finished trials; budget: {self.describe_budget()}; "
                 f"ranked by {self.objective} ({'highest' if higher else 'lowest'} first)"]
        lines += [f"note: {note}" for note in self.notes]
        if self.ranked.empty:
            lines.append("no trial meets the budget:")
            lines += [f"  - {reason}" for reason in self.reasons]
            return "\n".join(lines) + "\n"
        multi_run = len(self.runs) > 1
        multi_seed = self.candidates["seed"].nunique() > 1
        table = Table(header_style="bold", show_edge=False, pad_edge=False, box=None)
        heads = ["#"] + (["run"] if multi_run else []) + ["trial", "model", "algorithm", "rate"] + \
            (["seed"] if multi_seed else []) + ["acc %", "Δ pt", "params", "MACs (M)", "size KB", "latency ms"]
        objective_col = {"accuracy": "acc %", "accuracy_drop": "Δ pt", "latency": "latency ms", "params": "params",
                         "macs": "MACs (M)", "size": "size KB"}[self.objective]
        for h in heads:
            table.add_column(h + ("*" if h == objective_col else ""),
                             justify="left" if h in ("run", "trial", "model", "algorithm", "rate") else "right")
        for _, r in self.shown.iterrows():
            cells = [f"{int(r['rank'])}"] + ([r["run"]] if multi_run else []) + [
                r["trial_id"][:8], r["model"], r["algorithm"], r["rate_label"]] + \
                ([str(int(r["seed"]))] if multi_seed else []) + [
                _f(100 * r["accuracy"], ".2f"), _f(-100 * r["accuracy_drop"] + 0.0, "+.2f"), _f(r["params"], ",.0f"),
                _f(r["macs"] / 1e6, ".2f"), _f(r["size_bytes"] / 1024, ",.0f"), _f(r["latency_ms"], ".3f")]
            table.add_row(*cells)
        lines.append(f"{len(self.ranked)} of {len(self.candidates)} meet it"
                     + (f"; the best {len(self.shown)}:" if len(self.ranked) > len(self.shown) else ":"))
        console = Console(width=console_width, record=True, file=_NullIO(), highlight=False, color_system=None)
        console.print(table)
        lines += [ln.rstrip() for ln in console.export_text().rstrip().splitlines()]
        ties = self.ranked[self.ranked["rank"] == 1]
        if len(ties) > 1:
            lines.append(f"tie: {len(ties)} trials share the best {self.objective} "
                         f"({show_metric(metric, ties.iloc[0][metric])}); among them the order follows "
                         "accuracy, then fewer parameters, fewer MACs, lower latency, smaller size")
        ruled = [f"{self.violations[c.key]} by {c.describe()}" for c in self.constraints if self.violations.get(c.key)]
        if ruled:
            lines.append("ruled out: " + "; ".join(ruled))
        b = self.best
        lines.append(f"pick: {b['name']} (trial {b['trial_id'][:8]}" + (f" in {b['run_path']}" if multi_run else "")
                     + f"): accuracy {show_metric('accuracy', b['accuracy'])} "
                     f"({-100 * b['accuracy_drop'] + 0.0:+.2f} pt vs baseline), {show_metric('params', b['params'])} "
                     f"params, {show_metric('macs', b['macs'])} MACs, {show_metric('latency_ms', b['latency_ms'])}"
                     + ("" if self.exported else "; add --export DIR to write it with a model card"))
        return "\n".join(lines) + "\n"


class _NullIO:
    def write(self, s):
        return len(s)

    def flush(self):
        pass


def _f(v, fmt: str) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def _plain(v: Any) -> Any:
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def recommend(run_dirs: str | Path | Sequence[str | Path], *, max_latency_ms: Optional[float] = None,
              max_params: Optional[float] = None, max_macs: Optional[float] = None,
              max_size_bytes: Optional[float] = None, min_accuracy: Optional[float] = None,
              max_accuracy_drop: Optional[float] = None, objective: str = "accuracy", top: int = 5,
              include_baseline: bool = True, models: Optional[Sequence[str]] = None,
              algorithms: Optional[Sequence[str]] = None, labels: Optional[Sequence[str]] = None) -> Recommendation:
    """The finished trials of one or more runs that meet every given constraint,
    best first by `objective` (accuracy, accuracy_drop, latency, params, macs, size).

    Accuracies are fractions (0.9), the drop is in accuracy (0.01 = one point) from
    the baseline trial of the same model; sizes are bytes.
    """
    if objective not in OBJECTIVES:
        raise EdgepruneError(f"unknown objective {objective!r}; choose from {', '.join(OBJECTIVES)}")
    if top < 1:
        raise EdgepruneError(f"top must be at least 1, not {top}")
    given = dict(max_latency_ms=max_latency_ms, max_params=max_params, max_macs=max_macs,
                 max_size_bytes=max_size_bytes, min_accuracy=min_accuracy, max_accuracy_drop=max_accuracy_drop)
    constraints = []
    for key, value in given.items():
        if value is None:
            continue
        metric, upper, flag, what = CONSTRAINTS[key]
        value = float(value)
        if math.isnan(value) or value < 0:
            raise EdgepruneError(f"{flag}: {value:g} is not a budget (give a number >= 0)")
        if metric in ("accuracy", "accuracy_drop") and value > 1:
            raise EdgepruneError(f"{flag}: {value:g} is more than 1 (accuracies are fractions: 0.9 is 90%)")
        constraints.append(Constraint(key, metric, upper, value, flag, what))

    data = load_runs(run_dirs, labels)
    df = data.trials.assign(run_order=data.trials["run"].map({r.label: i for i, r in enumerate(data.runs)}),
                            run_path=data.trials["run"].map({r.label: str(r.path) for r in data.runs}))
    notes = []
    for f_name, values, col in (("model", models, "model"), ("algorithm", algorithms, "algorithm")):
        if values:
            unknown = sorted(set(values) - set(df[col]))
            if unknown:
                raise EdgepruneError(f"no {f_name} {', '.join(map(repr, unknown))} in the run; it has "
                                     f"{', '.join(sorted(set(df[col])))}")
            df = df[df[col].isin(values)]
    unfinished = int(df["status"].isin(["pending", "running"]).sum())
    if unfinished:
        notes.append(f"the sweep is still running ({status_summary(_counts(df))}); "
                     "unfinished trials are not considered")
    failed = int((df["status"] == "failed").sum())
    if failed:
        notes.append(f"{failed} failed trial(s) left out")
    cand = df[(df["status"] == "done") & df["accuracy"].notna()]
    if not include_baseline:
        cand = cand[cand["algorithm"] != BASELINE]
    if cand.empty:
        raise EdgepruneError("no finished trial to recommend yet" + (f" ({status_summary(_counts(df))})"
                                                                    if len(df) else "; the run has no trials"))
    for c in constraints:
        missing = int(cand[c.metric].isna().sum())
        if missing:
            why = "latency was not measured" if c.metric == "latency_ms" else f"no {c.what} recorded"
            notes.append(f"{missing} trial(s) cannot meet {c.describe()}: {why}")

    ok = {c.key: c.ok(cand[c.metric]) for c in constraints}
    fits = pd.Series(True, index=cand.index)
    for m in ok.values():
        fits &= m
    violations = {k: int((~m).sum()) for k, m in ok.items()}
    ranked = _rank(cand[fits], objective)
    reasons = [] if len(ranked) else _why_nothing_fits(cand, constraints, ok, objective)
    return Recommendation(constraints, objective, cand, ranked, top, data.runs, violations, reasons, notes)


def _counts(df: pd.DataFrame) -> dict:
    return df["status"].value_counts().to_dict()


def _rank(df: pd.DataFrame, objective: str) -> pd.DataFrame:
    metric, higher = OBJECTIVES[objective]
    keys = [(metric, not higher)] + [(k, asc) for k, asc in TIE_BREAK if k != metric]
    ranked = df.sort_values([k for k, _ in keys], ascending=[a for _, a in keys], na_position="last",
                            kind="mergesort")
    # competition ranking on the objective: equal values share a rank (1, 1, 3)
    values = ranked[metric].to_numpy()
    ranks, prev = [], None
    for i, v in enumerate(values):
        if prev is None or not (v == prev or math.isclose(v, prev, rel_tol=1e-9, abs_tol=1e-12)):
            rank = i + 1
        ranks.append(rank)
        prev = v
    return ranked.assign(rank=ranks)


def _why_nothing_fits(cand: pd.DataFrame, constraints: list[Constraint], ok: dict, objective: str) -> list[str]:
    """Which constraint rules the trials out, and how far it would have to give."""
    n = len(cand)
    reasons = []
    if len(constraints) > 1:
        for c in constraints:
            if int((~ok[c.key]).sum()) == n:
                vals = cand[c.metric].dropna()
                nearest = (vals.min() if c.upper else vals.max()) if len(vals) else math.nan
                reasons.append(f"{c.describe()} alone rules out every trial ({'lowest' if c.upper else 'highest'}"
                               f": {show_metric(c.metric, nearest)})")
    for c in constraints:
        others = pd.Series(True, index=cand.index)
        for k, m in ok.items():
            if k != c.key:
                others &= m
        pool = cand[others & cand[c.metric].notna()]
        if pool.empty:
            continue
        nearest = pool.sort_values([c.metric, "accuracy"], ascending=[c.upper, False]).iloc[0]
        rest = [x.describe() for x in constraints if x.key != c.key]
        head = (f"{c.describe()} rules out all {n} trials" if not rest else
                f"{c.describe()} rules out the {len(pool)} trial(s) that meet {' and '.join(rest)}")
        facts = [f"{c.what} {show_metric(c.metric, nearest[c.metric])}"]
        if c.metric != "accuracy":
            facts.append(f"accuracy {show_metric('accuracy', nearest['accuracy'])}")
        reasons.append(f"{head}: {c.flag_text(nearest[c.metric])} would admit {nearest['name']} "
                       f"(trial {nearest['trial_id'][:8]}: {', '.join(facts)})")
    if not any("would admit" in r for r in reasons):
        reasons.append("no single constraint is to blame: relaxing any one of them still leaves no trial; "
                       "trials failing each: " + "; ".join(f"{c.describe()}: {int((~ok[c.key]).sum())} of {n}"
                                                             for c in constraints))
    return reasons


# -- export --------------------------------------------------------------------------------------------------
@dataclass
class ExportResult:
    out_dir: Path
    files: list[Path]
    card: dict
    problems: list[str]


def _find_trial(run_dir: Path, trial_id: str):
    from .store import ResultStore
    with ResultStore(run_dir, create=False) as store:
        trials = store.trials()
    hits = [t for t in trials if t.trial_id.startswith(trial_id)]
    if not hits:
        raise EdgepruneError(f"no trial {trial_id!r} in {str(run_dir)!r}; `edgeprune show` lists them")
    if len(hits) > 1:
        raise EdgepruneError(f"trial prefix {trial_id!r} is ambiguous in {str(run_dir)!r} "
                             f"({', '.join(t.trial_id for t in hits[:5])}); give more characters")
    t = hits[0]
    if t.status != "done":
        raise EdgepruneError(f"trial {t.trial_id} is {t.status}, not done: only finished trials can be exported")
    return t, trials


def _normalization(settings: dict, meta: Optional[dict], run_dir: Path, data_dir: Optional[str]) -> dict:
    """The input normalisation the trial was trained and measured with."""
    from .data import IMAGENET_STATS
    setting = settings.get("dataset", {}).get("normalization", "auto")
    meta = meta or {}
    if isinstance(setting, (list, tuple)):
        return {"mean": list(setting[0]), "std": list(setting[1]), "source": "set in the sweep config"}
    if setting == "imagenet":
        return {"mean": list(IMAGENET_STATS[0]), "std": list(IMAGENET_STATS[1]), "source": "ImageNet statistics"}
    if setting == "auto" and meta.get("weights", "random") != "random" and meta.get("mean"):
        return {"mean": list(meta["mean"]), "std": list(meta["std"]),
                "source": "the statistics the original weights were trained with"}
    try:  # the dataset's own statistics: read the data set the run used
        import yaml
        from .config import load_config
        from .data import load_dataset
        cfg = load_config(yaml.safe_load((run_dir / "config.yaml").read_text()), data_dir=data_dir)
        data = load_dataset(cfg.dataset, seed=cfg.seed)
        return {"mean": [float(x) for x in data.train.mean], "std": [float(x) for x in data.train.std],
                "source": "the fine-tuning data set's statistics"}
    except Exception as e:  # noqa: BLE001 - the card says so instead
        return {"mean": None, "std": None, "source": f"the data set's statistics (could not be read: {e})"}


def export_trial(run_dir: str | Path, trial_id: str, out_dir: str | Path, data_dir: Optional[str] = None,
                 verify: bool = True) -> ExportResult:
    """Write a finished trial's model, loadable without edgeprune, with its model card:

        model.pt2             torch.export program: torch.export.load(path).module()
        model.torchscript.pt  TorchScript (also for C++ / mobile runtimes): torch.jit.load(path)
        state_dict.pt         the weights (needs the pruned architecture to load into)
        model_full.pt         the whole pickled module (torch.load(..., weights_only=False); needs the
                              classes it was built from importable, e.g. edgeprune's CIFAR ResNets)
        model_card.md / model_card.json

    The model comes from the run's saved file, else the trial is run again
    (`data_dir` overrides the dataset root recorded in RUN/config.yaml).
    """
    import torch

    from . import __version__
    from .report.data import load_runs as _load
    from .sweep import trial_model

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    record, _ = _find_trial(run_dir, trial_id)
    row = _load(run_dir).trials.set_index("trial_id").loc[record.trial_id]
    model = trial_model(run_dir, record.trial_id, data_dir=data_dir).eval()
    m = record.metrics
    size = int(m.get("input_size") or 32)
    out_dir.mkdir(parents=True, exist_ok=True)
    example = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference = model(example)
    files, problems, formats = [], [], {}

    def check(loaded_out, name):
        diff = float((loaded_out - reference).abs().max())
        if verify and not diff <= 1e-4 * max(1.0, float(reference.abs().max())):
            problems.append(f"{name}: output differs from the trial model by {diff:.3g}")
        return diff

    try:
        try:   # any batch size
            program = torch.export.export(model, (example.repeat(2, 1, 1, 1),),
                                          dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},))
        except Exception:  # noqa: BLE001 - a model that fixes its batch: export it for batch 1
            program = torch.export.export(model, (example,))
        path = out_dir / "model.pt2"
        torch.export.save(program, path)
        files.append(path)
        formats["model.pt2"] = {"load": "torch.export.load('model.pt2').module()",
                                "max_abs_diff": check(torch.export.load(path).module()(example).detach(), "model.pt2")}
    except Exception as e:  # noqa: BLE001 - some architectures do not export; the others still do
        problems.append(f"model.pt2 (torch.export) failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with torch.no_grad():
                traced = torch.jit.trace(model, example, check_trace=False)
            path = out_dir / "model.torchscript.pt"
            traced.save(str(path))
            loaded = torch.jit.load(str(path))
            with torch.no_grad():
                out = loaded(example)
        files.append(path)
        formats["model.torchscript.pt"] = {"load": "torch.jit.load('model.torchscript.pt')",
                                           "max_abs_diff": check(out, "model.torchscript.pt")}
    except Exception as e:  # noqa: BLE001
        problems.append(f"model.torchscript.pt (TorchScript) failed: {type(e).__name__}: "
                        f"{str(e).splitlines()[0][:200]}")
    if not formats:
        raise EdgepruneError(f"trial {record.trial_id} could not be written in a standalone format: "
                             + "; ".join(problems))
    torch.save(model.state_dict(), out_dir / "state_dict.pt")
    torch.save(model, out_dir / "model_full.pt")
    files += [out_dir / "state_dict.pt", out_dir / "model_full.pt"]

    spec = record.spec
    settings = spec.get("settings", {})
    meta = getattr(model, "edgeprune_meta", None)
    config = {}
    if (run_dir / "config.yaml").is_file():
        import yaml
        config = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    lc = m.get("layer_channels") or {}
    card = {
        "trial": {"id": record.trial_id, "run": str(run_dir.resolve()), "sweep": config.get("name"),
                  "finished_at": _dt.datetime.fromtimestamp(record.finished_at).isoformat(timespec="seconds")
                  if record.finished_at else None},
        "origin": {"model": spec.get("model", {}).get("name", record.model), "label": record.model,
                   "weights": _weights(spec.get("model", {})), "num_classes": _num_classes(reference)},
        "pruning": {"algorithm": record.algorithm, "target": record.target_kind, "rate": record.rate,
                    "seed": record.seed, "layers": settings.get("target"), "round_to": settings.get("round_to"),
                    "channel_ratio": m.get("channel_ratio"), "layer_rate": m.get("layer_rate"),
                    "sparsity": m.get("sparsity"),
                    "channels_before": sum(v[0] for v in lc.values()) if lc else None,
                    "channels_after": sum(v[1] for v in lc.values()) if lc else None},
        "metrics": {"accuracy": m.get("accuracy"), "accuracy_right_after_pruning": m.get("accuracy_pruned"),
                    "baseline_accuracy": _plain(row["baseline_accuracy"]),
                    "original_accuracy_before_finetuning": m.get("base_accuracy"),
                    "params": m.get("params"), "params_original": m.get("params_base"),
                    "param_reduction": m.get("param_reduction"), "macs": m.get("macs"),
                    "macs_original": m.get("macs_base"), "mac_reduction": m.get("mac_reduction"),
                    "size_bytes": m.get("size_bytes"), "latency_ms": m.get("latency_ms"),
                    "latency_p90_ms": m.get("latency_p90_ms"), "latency_threads": m.get("latency_threads"),
                    "latency_measured_on": "CPU of the machine that ran the sweep, batch 1"},
        "data": {"dataset": settings.get("dataset", {}).get("name"),
                 "root": (config.get("dataset") or {}).get("root"),
                 **{k: v for k, v in settings.get("dataset", {}).items() if k != "name"}},
        "input": {"shape": [1, 3, size, size], "dtype": "float32", "layout": "NCHW, RGB in [0, 1], then normalised",
                  **_normalization(settings, meta, run_dir, data_dir)},
        "finetune": {**settings.get("finetune", {}), "steps_run": m.get("finetune_steps"),
                     "epochs_run": m.get("finetune_epochs"), "seconds": m.get("finetune_seconds")},
        "files": {**formats, "state_dict.pt": {"load": "model.load_state_dict(torch.load('state_dict.pt'))"},
                  "model_full.pt": {"load": "torch.load('model_full.pt', weights_only=False)",
                                    "needs": "the module classes importable (edgeprune for its CIFAR models)"}},
        "layer_channels": lc,
        "problems": problems,
        "exported_by": {"edgeprune": __version__, "torch": torch.__version__,
                        "at": _dt.datetime.now().isoformat(timespec="seconds")},
    }
    (out_dir / "model_card.json").write_text(json.dumps(card, indent=1, default=_plain) + "\n")
    (out_dir / "model_card.md").write_text(_card_markdown(card))
    files += [out_dir / "model_card.json", out_dir / "model_card.md"]
    return ExportResult(out_dir, files, card, problems)


def _weights(model_spec: dict) -> str:
    if model_spec.get("checkpoint"):
        return f"checkpoint {model_spec['checkpoint']}"
    if model_spec.get("pretrained"):
        return "published pretrained weights (torchvision / the model's own)"
    return "random initialisation"


def _num_classes(out) -> Optional[int]:
    return int(out.shape[-1]) if hasattr(out, "shape") and len(out.shape) == 2 else None


def _card_markdown(c: dict) -> str:
    t, o, p, mt, d, i, ft = c["trial"], c["origin"], c["pruning"], c["metrics"], c["data"], c["input"], c["finetune"]
    rate = "baseline (not pruned)" if p["algorithm"] == BASELINE else (
        f"{p['rate']:g} of the output channels of every targeted layer" if p["target"] == "channels"
        else f"{p['target']} reduction target {p['rate']:g}")

    def pct(v):
        return "–" if v is None else f"{100 * v:.2f}%"

    def num(v, fmt=",.0f"):
        return "–" if v is None else format(v, fmt)

    lines = [
        f"# {o['label']} · {p['algorithm']} · {rate.split(' of')[0]}", "",
        f"Pruned and fine-tuned by edgeprune {c['exported_by']['edgeprune']} (trial `{t['id']}` of sweep "
        f"`{t['sweep']}`, run folder `{t['run']}`).", "",
        "## Origin", "",
        f"- architecture: `{o['model']}`" + (f" (label `{o['label']}`)" if o["label"] != o["model"] else ""),
        f"- weights before pruning: {o['weights']}",
        f"- classes: {o['num_classes']}", "",
        "## Pruning", "",
        f"- algorithm: `{p['algorithm']}`, seed {p['seed']}",
        f"- rate: {rate}",
        f"- targeted layers: {json.dumps(p['layers'])}" + (f", rounded to {p['round_to']}" if p["round_to"] else ""),
    ]
    if p["channels_before"]:
        lines.append(f"- output channels of the targeted layers: {p['channels_before']:,} → {p['channels_after']:,}")
    if p["sparsity"] is not None:
        lines.append(f"- sparsity: {pct(p['sparsity'])}")
    lines += [
        "", "## Metrics", "",
        "| metric | this model | unpruned |", "| --- | ---: | ---: |",
        f"| top-1 accuracy (after fine-tuning) | {pct(mt['accuracy'])} | {pct(mt['baseline_accuracy'])} "
        "(baseline trial, same fine-tuning) |",
        f"| accuracy right after pruning, before fine-tuning | {pct(mt['accuracy_right_after_pruning'])} | "
        f"{pct(mt['original_accuracy_before_finetuning'])} (the original model) |",
        f"| parameters | {num(mt['params'])} | {num(mt['params_original'])} |",
        f"| MACs per image | {num(mt['macs'])} | {num(mt['macs_original'])} |",
        f"| size (state dict) | {num(mt['size_bytes'])} B | |",
        f"| latency (median / p90) | {num(mt['latency_ms'], '.3f')} / {num(mt['latency_p90_ms'], '.3f')} ms | |",
        "", f"Latency: {mt['latency_measured_on']}, {mt['latency_threads']} thread(s).", "",
        "## Data and fine-tuning", "",
        f"- dataset: {d.get('dataset')} (root `{d.get('root')}`; train fraction {d.get('train_fraction')}, "
        f"test fraction {d.get('test_fraction')}, augmentation {d.get('augment')})",
        f"- fine-tuning: {ft.get('epochs')} epoch(s) ({ft.get('steps_run')} steps) of {ft.get('optimizer')}, "
        f"lr {ft.get('lr')}, batch {ft.get('batch_size')}, weight decay {ft.get('weight_decay')}, "
        f"warm-up {ft.get('warmup_epochs')} epoch(s), label smoothing {ft.get('label_smoothing')}, "
        f"order {ft.get('order')}",
        "", "## Input", "",
        f"- a float32 tensor of shape {tuple(i['shape'])} (batch × RGB × height × width), pixels in [0, 1]",
        f"- normalised per channel: mean {i.get('mean')}, std {i.get('std')} ({i.get('source')})",
        "", "## Files", "",
    ]
    for name, info in c["files"].items():
        extra = f" (max abs difference to the trial's model: {info['max_abs_diff']:.2g})" if "max_abs_diff" in info else ""
        lines.append(f"- `{name}`: `{info['load']}`{extra}" + (f"; needs {info['needs']}" if "needs" in info else ""))
    lines.append(f"- ONNX and int8 ONNX, verified on the test images: `edgeprune deploy {t['run']} {t['id'][:8]} "
                 "--onnx --int8`")
    lines += ["", "```python", "import torch",
              f"model = {next(iter(c['files'].values()))['load']}",
              f"x = torch.rand(1, 3, {i['shape'][2]}, {i['shape'][3]})       # an RGB image in [0, 1]"]
    if i.get("mean"):
        lines += [f"mean = torch.tensor({[round(v, 4) for v in i['mean']]}).view(1, 3, 1, 1)",
                  f"std = torch.tensor({[round(v, 4) for v in i['std']]}).view(1, 3, 1, 1)",
                  "logits = model((x - mean) / std)"]
    else:
        lines += ["logits = model(x)   # normalise x as the card says first"]
    lines += ["```", ""]
    if c["problems"]:
        lines += ["## Problems", ""] + [f"- {p_}" for p_ in c["problems"]] + [""]
    return "\n".join(lines)
