"""`edgeprune recommend`: the trials that fit a device's budget, best first, and
the chosen one exported with a model card.

    rec = recommend("runs/quickstart", max_latency_ms=5, max_params=1e6, min_accuracy=0.9)
    print(rec.format())                    # what the command prints
    rec.best                               # the winning row (a pandas Series) or None
    edgeprune.release.release_trial("runs/quickstart", rec.best.trial_id, "deploy/")

Only finished trials are candidates. A trial fits when it meets every constraint;
a constraint on a metric the trial lacks (latency not measured) is not met.
Fitting trials are ranked by the objective, then by accuracy, fewer parameters,
fewer MACs, lower latency, smaller size and finally plan order, so the ranking is
deterministic; equal objective values are reported as a tie.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import pandas as pd

from .errors import EdgepruneError
from .metrics import fmt, latency_label, short_bytes
from .report.table import Column, fit_table, identity_columns, metric_columns
from .config import BASELINE
from .report.data import load_runs, status_summary
from .units import parse_count, parse_fraction, parse_ms, parse_points, parse_size


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


@dataclass(frozen=True)
class Budget:
    """A kind of constraint: what it bounds, and how a user writes it."""
    metric: str       # column of load_runs()
    upper: bool       # True: metric <= value; False: metric >= value
    flag: str         # the command-line option
    what: str         # words for messages
    parse: Callable[[str, str], float]   # the option's text -> the value recommend() takes
    metavar: str
    help: str


# keyword of recommend() -> the budget; the command line's options are made from this table
CONSTRAINTS = {
    "max_latency_ms": Budget("latency_ms", True, "--max-latency-ms", "latency", parse_ms, "MS",
                             "median latency on the run's first latency backend, e.g. 5"),
    "max_params": Budget("params", True, "--max-params", "parameters", parse_count, "N",
                         "parameters, e.g. 1e6 or 250k"),
    "max_macs": Budget("macs", True, "--max-macs", "MACs", parse_count, "N", "MACs per image, e.g. 20M"),
    "max_size_bytes": Budget("size_bytes", True, "--max-size", "size", parse_size, "BYTES",
                             "size of the weights, e.g. 500KB, 2MiB or bytes"),
    "min_accuracy": Budget("accuracy", False, "--min-accuracy", "accuracy", parse_fraction, "ACC",
                           "top-1 accuracy, a fraction (0.9) or 90%%"),
    "max_accuracy_drop": Budget("accuracy_drop", True, "--max-accuracy-drop", "accuracy drop from the baseline",
                                parse_points, "DROP", "accuracy lost against the model's baseline trial, in "
                                "points: 1 (or 1pt) is one point"),
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
        return short_bytes(v)
    return f"{v:g}"


def flag_value(metric: str, v: float, upper: bool = True) -> str:
    """A bound as the command line takes it back, rounded so that `v` still meets it."""
    digits = 4 if metric in ("accuracy", "accuracy_drop") else 3 if metric == "latency_ms" else 0
    scale = 10 ** digits
    bound = (math.ceil(v * scale - 1e-9) if upper else math.floor(v * scale + 1e-9)) / scale
    return f"{bound:.{digits}f}"


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

    @property
    def latency_labels(self) -> list[str]:
        """What latency_ms is, for the trials shown (backend, threads, batch)."""
        return sorted({latency_label(r) for _, r in self.shown.iterrows() if not _missing(r.get("latency_ms"))})

    def format(self, console_width: int = 100, wide: bool = False) -> str:
        """The text `edgeprune recommend` prints (its table fits `console_width`)."""
        from rich.console import Console
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
        keys = ["accuracy", "accuracy_drop", "params", "latency_ms", "macs", "size_bytes"]
        columns = (identity_columns("rank", *(["run"] if multi_run else []), "trial", "model", "algorithm", "rate",
                                    *(["seed"] if multi_seed else []))
                   + metric_columns(keys, mark=metric))
        columns = [c if c.key != "accuracy_drop" else Column(c.key, c.header, always=True) for c in columns]
        rows = [{"rank": f"{int(r['rank'])}", "run": r["run"], "trial": r["trial_id"][:8], "model": r["model"],
                 "algorithm": r["algorithm"], "rate": r["rate_label"], "seed": str(int(r["seed"])),
                 **{k: fmt(k, r[k], empty="–") for k in keys}} for _, r in self.shown.iterrows()]
        for row, (_, r) in zip(rows, self.shown.iterrows()):
            if r.get("int8_slower") == 1:           # an int8 file slower than its fp32 twin (see the note)
                row["latency_ms"] += " !"
        lines.append(f"{len(self.ranked)} of {len(self.candidates)} meet it"
                     + (f"; the best {len(self.shown)}:" if len(self.ranked) > len(self.shown) else ":"))
        table = fit_table(rows, columns, console_width, wide)
        console = Console(width=console_width, record=True, file=_NullIO(), highlight=False, color_system=None)
        if wide:
            console = Console(width=max(console_width, table.natural_width), record=True, file=_NullIO(),
                              highlight=False, color_system=None)
        console.print(table)
        lines += [ln.rstrip() for ln in console.export_text().rstrip().splitlines()]
        if self.latency_labels:
            lines.append(f"latency: {'; '.join(self.latency_labels)}")
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


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


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
              algorithms: Optional[Sequence[str]] = None, labels: Optional[Sequence[str]] = None,
              all_budgets: bool = False) -> Recommendation:
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
        b = CONSTRAINTS[key]
        metric, upper, flag, what = b.metric, b.upper, b.flag, b.what
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
    if not all_budgets:      # a trial refined further is ranked by its best (largest) budget: the refinement
        superseded = set(cand.loc[cand["stage"] == "refine", "parent"].dropna())
        if superseded:
            notes.append(f"{len(superseded & set(cand['trial_id']))} screened trial(s) ranked by their refinement "
                         "(--all-budgets ranks every row)")
            cand = cand[~cand["trial_id"].isin(superseded)]
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
    if objective == "latency" or max_latency_ms is not None:
        notes += _slower_int8_pick(ranked)
    reasons = [] if len(ranked) else _why_nothing_fits(cand, constraints, ok, objective)
    return Recommendation(constraints, objective, cand, ranked, top, data.runs, violations, reasons, notes)


def _slower_int8_pick(ranked: pd.DataFrame) -> list[str]:
    """When latency matters and the pick is an int8 variant that runs slower than its
    fp32 twin (the paired timings say so, however its own median ranked), say so."""
    if ranked.empty or "int8_slower" not in ranked or ranked.iloc[0]["int8_slower"] != 1:
        return []
    b = ranked.iloc[0]
    twin = str(b.get("fp32_trial_id") or "")
    fits = ranked[ranked["trial_id"] == twin]
    where = (f"its fp32 twin (trial {twin[:8]}, rank {int(fits.iloc[0]['rank'])}) meets the budget too"
             if len(fits) else f"its fp32 twin (trial {twin[:8]}) does not meet the budget")
    return [f"the pick {b['name']} (trial {b['trial_id'][:8]}) is an int8 variant SLOWER than its fp32 twin on "
            f"{b.get('int8_slower_on') or b.get('latency_backend')} (int8 / fp32 latency, paired with the "
            f"unpruned model); {where}"]


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
