"""`edgeprune find`: screen every candidate cut to the hard goals and rebuilt (no
fine-tuning), then fine-tune the promising ones in rungs of growing budget
(successive halving), and stop when the goals are met and another rung cannot
change the winner by more than the margin, or when the budget is spent.

Every screen and rung is a sweep over the same run folder (the engine schedules,
runs in parallel on Ray and stores them): a killed search resumes at its last
finished rung, and a trial that finished is never trained again.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import pandas as pd

from ..config import BASELINE, SweepConfig
from ..errors import EdgepruneError, first_line
from ..run import RunFolder
from ..sweep import SilentProgress, run_sweep
from .. import search_record as rec
from .candidates import Candidate, baselines, pruned, rung_spec
from .goals import Goals
from .schedule import RungPlan, Study, plan_rungs


def prepare(cfg: SweepConfig) -> SweepConfig:
    """The sweep settings a search runs with: its screen fine-tunes nothing (rungs say how
    many steps), every model is kept (rungs continue them), the latency goal's backend
    is timed first (the latency column and the cut are on it)."""
    if cfg.search is None:
        raise EdgepruneError("the config has no `search:` section; give its goals and budget, e.g. search: {goals: "
                             "{max_latency_ms: 5}, budget: {steps: 2000}} (docs: how-to/find)")
    cfg = cfg.model_copy(deep=True)
    cfg.finetune.max_steps = 0
    cfg.baseline, cfg.save_models = True, True
    on = cfg.search.goals.latency_on
    backends = cfg.measure.latency_backends()
    if on is not None and backends and backends[0].label != on:
        cfg.measure.latency = sorted(backends, key=lambda b: b.label != on)
    return cfg


def _name(row: pd.Series) -> str:
    what = "unpruned" if row["algorithm"] == BASELINE else f"{row['algorithm']} at {row['rate_label']}"
    return f"{row['model']} {what}"


class _Search:
    def __init__(self, cfg: SweepConfig, progress: SilentProgress, retry_failed: bool):
        self.cfg, self.progress, self.retry_failed = cfg, progress, retry_failed
        self.search = cfg.search
        self.goals = Goals(self.search)
        self.run = RunFolder(cfg.out)

    # -- running trials --------------------------------------------------------------------------------
    def sweep(self, specs) -> pd.DataFrame:
        if specs:
            run_sweep(self.cfg, progress=self.progress, retry_failed=self.retry_failed, extend=True, planned=specs)
        from ..report.data import load_runs
        df = load_runs(self.run.path).trials
        return df.set_index("trial_id", drop=False)

    def row(self, df: pd.DataFrame, trial_id: str) -> Optional[pd.Series]:
        if trial_id not in df.index:
            return None
        r = df.loc[trial_id]
        return r if r.get("status") == "done" else None

    # -- the screen ------------------------------------------------------------------------------------
    def lineages(self) -> int:
        """Models trained in the first rung at most: pruned candidates that share no training."""
        goals = self.search.goals
        targets = 1 if goals.hard else len(self.search.rates or [t for t in self.cfg.rates if t.kind == "channels"])
        return len(self.cfg.models) * len(self.cfg.algorithms) * len(self.cfg.allocation) * targets

    def check_budget(self) -> RungPlan:
        plan = plan_rungs(self.lineages(), self.search.reduction, self.search.min_steps, self.search.budget.steps)
        steps = self.search.budget.steps
        first = plan.counts[0] * self.search.min_steps
        if steps is not None and steps < first:
            raise EdgepruneError(f"search.budget.steps {steps} cannot pay for the first rung: {plan.counts[0]} "
                                 f"candidate(s) x search.min_steps {self.search.min_steps} = {first} steps; raise "
                                 f"budget.steps to at least {first}, or lower search.min_steps")
        return plan

    def screen(self, record: rec.SearchRecord) -> tuple[list[Candidate], list[Candidate], pd.DataFrame]:
        """Every candidate's screen trial, run; returns (baselines, trainable candidates, rows)."""
        base = baselines(self.cfg)
        df = self.sweep([c.spec for c in base])
        base_rows, skip = {}, set()
        for c in base:
            r = self.row(df, c.key)
            record.candidates.setdefault(c.key, rec.CandidateRecord(c.label, [c.key], baseline=True))
            if r is None:
                record.stop(c.key, f"failed: {df.loc[c.key].get('error') if c.key in df.index else 'not run'}", 0)
                continue
            if not c.spec.is_variant:
                base_rows[c.spec.model_label] = r
            if self.search.objective == "accuracy" and not self.goals.misses(r, self.goals.hard):
                skip.add((c.spec.model_label, c.spec.quantize))   # unpruned, it meets the cost goals: no cut beats it
        cands = pruned(self.cfg, base_rows, frozenset(skip))
        df = self.sweep([c.spec for c in base + cands])
        trainable = []
        for c in cands:
            record.candidates.setdefault(c.key, rec.CandidateRecord(c.label, [c.key]))
            r = self.row(df, c.key)
            if r is None:
                error = df.loc[c.key].get("error") if c.key in df.index else "not run"
                record.stop(c.key, f"failed: {error}", 0)
            elif self.goals.misses(r, self.goals.hard):
                record.stop(c.key, "misses " + "; ".join(self.goals.misses(r, self.goals.hard)), 0)
            elif not (r.get("channel_ratio") or 0) > 0:
                record.stop(c.key, "removed no channel: the unpruned model is the same network", 0)
            else:
                trainable.append(c)
        for model, q in sorted(skip):
            self.progress.note(f"{model}{'' if q == 'none' else ' ' + q} unpruned meets "
                               f"{', '.join(g.describe() for g in self.goals.hard)}: its cuts are not searched")
        self.unreachable(base + cands, df)
        return base, trainable, df

    def unreachable(self, cands: list[Candidate], df: pd.DataFrame) -> None:
        """No candidate meets the cost goals: end here, naming the closest."""
        rows = [r for r in (self.row(df, c.key) for c in cands) if r is not None]
        if any(not self.goals.misses(r, self.goals.hard) for r in rows):
            return
        if not self.goals.hard:
            return
        for goal in self.goals.hard:
            measured = [r for r in rows if not pd.isna(r.get(goal.metric))]
            if all(goal.met(r) for r in measured) and measured:
                continue
            if not measured:
                raise EdgepruneError(f"search: no candidate meets {goal.describe()} (none was measured; "
                                     f"`edgeprune show {self.run.path}` says why)")
            best = min(measured, key=lambda r: float(r[goal.metric]))
            failed = [df.loc[c.key] for c in cands if c.key in df.index and df.loc[c.key].get("status") == "failed"]
            why = (f" ({len(failed)} cut(s) failed, e.g. {failed[0]['model']} {failed[0]['algorithm']}: "
                   f"{first_line(str(failed[0].get('error')))})" if failed else "")
            raise EdgepruneError(f"search: no candidate meets {goal.describe()}; the closest is {_name(best)} with "
                                 f"{goal.show(best)}{why}: relax the goal, or add smaller models")
        raise EdgepruneError(f"search: no candidate meets {self.goals.describe()} all at once; "
                             f"`edgeprune show {self.run.path}` lists what each reached")

    # -- the rungs -------------------------------------------------------------------------------------
    def afford(self, keys: list[str], steps: int, scores: dict, record: rec.SearchRecord, rung: int,
               plan: RungPlan, clock: rec.Clock, seconds_per_step: Optional[float]) -> list[str]:
        """The promoted candidates the rung can pay for, most promising first: at most the
        plan's count, within the budget's steps or minutes (candidates sharing a trained
        model cost it once)."""
        ranked = sorted(keys, key=lambda k: -scores[k] if not math.isnan(scores[k]) else math.inf)
        limit = plan.counts[min(rung, len(plan.counts)) - 1]
        budget = self.search.budget
        kept, models = [], set()
        for key in ranked:
            twin = self.by_key[key].trained_key
            extra = 0 if twin in models else steps
            over_count = len({self.by_key[k].trained_key for k in kept} | {twin}) > limit
            if budget.steps is not None:
                over_budget = record.steps_spent + (len(models) * steps) + extra > budget.steps
            else:
                cost = (len(models) * steps + extra) * (seconds_per_step or 0.0)
                over_budget = clock.seconds + cost > budget.minutes * 60
            if over_count or over_budget:
                record.stop(key, f"rung {rung}: {'budget' if over_budget and not over_count else 'successive halving'}"
                            f" (score {scores[key]:.4f})", rung - 1)
                continue
            kept.append(key)
            models.add(twin)
        return kept

    def winner(self, rows: dict[str, pd.Series]) -> Optional[str]:
        """The candidate that meets every goal and is best by the objective (then accuracy)."""
        fits = [(k, r) for k, r in rows.items() if r is not None and self.goals.meets(r)]
        if not fits:
            return None
        return max(fits, key=lambda kr: (self.goals.objective(kr[1]), float(kr[1]["accuracy"]),
                                         -list(rows).index(kr[0])))[0]

    def converged(self, winner: Optional[str], rows: dict, alive: list[str], gains: dict) -> bool:
        """The goals are met and no candidate that goes on can beat the winner by more
        than the margin in another rung, if it gains there what it gained in the last."""
        if winner is None:
            return False
        best = self.goals.score(rows[winner])
        margin = self.search.margin / 100 if self.search.objective == "accuracy" else 0.0    # points
        for key in alive:
            hope = self.goals.score(rows[key], optimistic_gain=max(gains.get(key, 0.0), 0.0))
            if hope - best > margin:
                return False
        return True

    def rungs(self, record: rec.SearchRecord, plan: RungPlan, base: list[Candidate], trainable: list[Candidate],
              df: pd.DataFrame, clock: rec.Clock) -> None:
        self.by_key = {c.key: c for c in base + trainable}
        latest = {c.key: c.spec for c in base + trainable}
        rows = {k: self.row(df, s.trial_id) for k, s in latest.items()}     # each candidate's latest result
        scores = {c.key: self.goals.score(rows[c.key]) for c in trainable}
        for c in trainable:
            record.candidates[c.key].scores = [scores[c.key]]
        record.ended = rec.NONE_LEFT
        if not trainable:
            record.winner = self._winner_trial(rows, latest)
            return
        # the rungs for the candidates the screen left (the plan before it counted every cut)
        lineages = len({c.trained_key for c in trainable})
        plan = plan_rungs(lineages, self.search.reduction, self.search.min_steps, self.search.budget.steps)
        record.plan.update(first_rung_steps=plan.steps, candidates_per_rung=list(plan.counts),
                           planned_steps=plan.total, trainable=lineages)
        study = Study(self.run.path, trainable, self.search.reduction, self.cfg.seed, self.cfg.name)
        alive = study.promote(0, scores)
        for key in scores:
            if key not in alive:
                record.stop(key, f"screen: successive halving (score {scores[key]:.4f})", 0)
        gains: dict[str, float] = {}
        seconds_per_step, rung = None, 0
        while alive:
            rung += 1
            if rung > len(plan.counts) and self.search.budget.steps is None:
                record.ended = rec.LAST_RUNG       # a time budget goes no further than the plan
                break
            steps = plan.steps_at(rung)            # past the plan (budget left, not converged): the last few, longer
            alive = self.afford(alive, steps, scores, record, rung, plan, clock, seconds_per_step)
            if not alive:
                record.ended = rec.BUDGET
                break
            specs = {}
            for key in alive:
                spec = rung_spec(self.by_key[key], latest[key].trained_twin().trial_id, steps)
                specs.setdefault(spec.trained_twin().trial_id, spec.trained_twin())
                specs.setdefault(spec.trial_id, spec)
            self.progress.note(f"search: rung {rung}, {len(alive)} candidate(s), {steps} fine-tune steps each")
            df = self.sweep(list(specs.values()))
            trained = [self.row(df, i) for i, s in specs.items() if not s.is_variant]
            done = [r for r in trained if r is not None]
            record.steps_spent += int(sum(float(r.get("finetune_steps") or 0) for r in done))
            spent_s = sum(float(r.get("finetune_seconds") or 0) for r in done)
            spent_n = sum(float(r.get("finetune_steps") or 0) for r in done)
            seconds_per_step = spent_s / spent_n if spent_n else seconds_per_step
            ran = {}
            for key in alive:
                spec = rung_spec(self.by_key[key], latest[key].trained_twin().trial_id, steps)
                r = self.row(df, spec.trial_id)
                if r is None:
                    error = df.loc[spec.trial_id].get("error") if spec.trial_id in df.index else "not run"
                    record.stop(key, f"rung {rung}: failed: {error}", rung)
                    continue
                gains[key] = float(r["accuracy"]) - float(rows[key]["accuracy"])
                latest[key], rows[key] = spec, r
                record.candidates[key].trials.append(spec.trial_id)
                new = self.goals.score(r)
                scores[key] = new
                record.candidates[key].scores.append(new)
                ran[key] = new
            winner = self.winner(rows)
            alive = study.promote(rung, ran)
            record.rungs.append(rec.RungRecord(rung, steps, list(ran), list(alive)))
            for key in ran:
                if key not in alive:
                    record.stop(key, f"rung {rung}: successive halving (score {ran[key]:.4f})", rung)
            record.seconds = clock.seconds
            rec.write(self.run.path, record)
            if self.converged(winner, rows, alive, gains):
                record.ended = rec.CONVERGED
                break
            if self.search.budget.steps is not None and record.steps_spent >= self.search.budget.steps:
                record.ended = rec.BUDGET
                break
            if self.search.budget.minutes is not None and clock.seconds >= self.search.budget.minutes * 60:
                record.ended = rec.BUDGET
                break
        study.finish(scores)
        record.winner = self._winner_trial(rows, latest)

    def _winner_trial(self, rows: dict, latest: dict) -> Optional[str]:
        key = self.winner(rows)
        return None if key is None else latest[key].trial_id



def find(cfg: SweepConfig, progress: Optional[SilentProgress] = None, retry_failed: bool = False,
         export: bool = True) -> "FindResult":
    """Run (or resume) the search `cfg.search` describes over the candidates `cfg`
    names; returns the winner (exported, verified, for its runtime) and the rungs."""
    from .result import FindResult, export_winner
    progress = progress or SilentProgress()
    cfg = prepare(cfg)
    s = _Search(cfg, progress, retry_failed)
    plan = s.check_budget()                 # a budget too small for one rung: said before anything runs
    before = rec.read(cfg.out)
    clock = rec.Clock(before.seconds if before else 0.0)
    record = rec.SearchRecord(s.goals.describe(), cfg.search.objective,
                              {"first_rung_steps": plan.steps, "candidates_per_rung": list(plan.counts),
                               "reduction": plan.reduction, "planned_steps": plan.total})
    base, trainable, df = s.screen(record)
    s.rungs(record, plan, base, trainable, df, clock)
    record.seconds = clock.seconds
    rec.write(cfg.out, record)
    result = FindResult(Path(cfg.out), record, s.goals, s.sweep([]))
    if export and record.winner is not None:
        result.release, result.export_error = export_winner(cfg, record.winner)
    return result
