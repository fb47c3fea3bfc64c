"""The rungs: the promising candidates fine-tuned with a growing budget, each rung
continuing the previous rung's model, successive halving (Optuna's pruner) deciding
who goes on; the stop rule; the winner."""
from __future__ import annotations

import math
from typing import Optional

import pandas as pd

from .. import search_record as rec
from .candidates import Candidate, rung_spec
from .reach import ceilings, out_of_reach
from .runner import Search
from .schedule import RungPlan, Study, plan_rungs


def afford(s: Search, keys: list[str], steps: int, scores: dict, record: rec.SearchRecord, rung: int,
           plan: RungPlan, clock: rec.Clock, seconds_per_step: Optional[float]) -> list[str]:
    """The promoted candidates the rung can pay for, most promising first: at most the
    plan's count, within the budget's steps or minutes (candidates sharing a trained
    model cost it once)."""
    ranked = sorted(keys, key=lambda k: -scores[k] if not math.isnan(scores[k]) else math.inf)
    limit = plan.counts[min(rung, len(plan.counts)) - 1]
    budget = s.search.budget
    kept, models = [], set()
    for key in ranked:
        twin = s.by_key[key].trained_key
        extra = 0 if twin in models else steps
        over_count = len({s.by_key[k].trained_key for k in kept} | {twin}) > limit
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


def winner(s: Search, rows: dict[str, pd.Series]) -> Optional[str]:
    """The candidate that meets every goal and is best by the objective; among equals the
    more accurate, then the faster, then the smaller file (an unmeasured cost loses a tie)."""
    fits = [(k, r) for k, r in rows.items() if r is not None and s.goals.meets(r)]
    if not fits:
        return None
    order = list(rows)

    def cheaper(r: pd.Series, metric: str) -> float:
        v = r.get(metric)
        return -math.inf if v is None or pd.isna(v) else -float(v)

    return max(fits, key=lambda kr: (s.goals.objective(kr[1]), float(kr[1]["accuracy"]),
                                     cheaper(kr[1], "latency_ms"), cheaper(kr[1], "size_bytes"),
                                     -order.index(kr[0])))[0]


def converged(s: Search, leader: Optional[str], rows: dict, alive: list[str], gains: dict) -> bool:
    """The goals are met and no candidate that goes on can beat the winner by more
    than the margin in another rung, if it gains there what it gained in the last."""
    if leader is None:
        return False
    best = s.goals.score(rows[leader])
    margin = s.search.margin / 100 if s.search.objective == "accuracy" else 0.0    # points
    for key in alive:
        hope = s.goals.score(rows[key], optimistic_gain=max(gains.get(key, 0.0), 0.0))
        if hope - best > margin:
            return False
    return True


def run_rungs(s: Search, record: rec.SearchRecord, plan: RungPlan, base: list[Candidate],
              trainable: list[Candidate], df: pd.DataFrame, clock: rec.Clock) -> None:
    s.by_key = {c.key: c for c in base + trainable}
    latest = {c.key: c.spec for c in base + trainable}
    rows = {k: s.row(df, spec.trial_id) for k, spec in latest.items()}     # each candidate's latest result
    scores = {c.key: s.goals.score(rows[c.key]) for c in trainable}
    for c in trainable:
        record.candidates[c.key].scores = [scores[c.key]]
    record.ended = rec.NONE_LEFT
    bounds = ceilings(base, rows)
    leader = winner(s, rows)
    hopeless = out_of_reach(s, trainable, rows, leader, bounds)
    for key, why in hopeless.items():
        record.stop(key, f"screen: {why}", 0)
    if hopeless:
        s.progress.note(f"search: {len(hopeless)} cut(s) not fine-tuned: their unpruned models cannot beat "
                        f"what the screen found")
    trainable = [c for c in trainable if c.key not in hopeless]
    if not trainable:
        record.ended = rec.CONVERGED if hopeless and leader is not None else rec.NONE_LEFT
        record.winner = None if leader is None else latest[leader].trial_id
        return
    scores = {c.key: scores[c.key] for c in trainable}
    # the rungs for the candidates the screen left (the plan before it counted every cut)
    lineages = len({c.trained_key for c in trainable})
    plan = plan_rungs(lineages, s.search.reduction, s.search.min_steps, s.search.budget.steps)
    record.plan.update(first_rung_steps=plan.steps, candidates_per_rung=list(plan.counts),
                       planned_steps=plan.total, trainable=lineages)
    study = Study(s.run.path, trainable, s.search.reduction, s.cfg.seed, s.cfg.name)
    alive = study.promote(0, scores)
    for key in scores:
        if key not in alive:
            record.stop(key, f"screen: successive halving (score {scores[key]:.4f})", 0)
    gains: dict[str, float] = {}
    seconds_per_step, rung = None, 0
    while alive:
        rung += 1
        if rung > len(plan.counts) and s.search.budget.steps is None:
            record.ended = rec.LAST_RUNG       # a time budget goes no further than the plan
            break
        steps = plan.steps_at(rung)            # past the plan (budget left, not converged): the last few, longer
        alive = afford(s, alive, steps, scores, record, rung, plan, clock, seconds_per_step)
        if not alive:
            record.ended = rec.BUDGET
            break
        specs = {}
        for key in alive:
            spec = rung_spec(s.by_key[key], latest[key].trained_twin().trial_id, steps)
            specs.setdefault(spec.trained_twin().trial_id, spec.trained_twin())
            specs.setdefault(spec.trial_id, spec)
        s.progress.note(f"search: rung {rung}, {len(alive)} candidate(s), {steps} fine-tune steps each")
        df = s.sweep(list(specs.values()))
        trained = [s.row(df, i) for i, spec in specs.items() if not spec.is_variant]
        done = [r for r in trained if r is not None]
        record.steps_spent += int(sum(float(r.get("finetune_steps") or 0) for r in done))
        spent_s = sum(float(r.get("finetune_seconds") or 0) for r in done)
        spent_n = sum(float(r.get("finetune_steps") or 0) for r in done)
        seconds_per_step = spent_s / spent_n if spent_n else seconds_per_step
        ran = {}
        for key in alive:
            spec = rung_spec(s.by_key[key], latest[key].trained_twin().trial_id, steps)
            r = s.row(df, spec.trial_id)
            if r is None:
                error = df.loc[spec.trial_id].get("error") if spec.trial_id in df.index else "not run"
                record.stop(key, f"rung {rung}: failed: {error}", rung)
                continue
            gains[key] = float(r["accuracy"]) - float(rows[key]["accuracy"])
            latest[key], rows[key] = spec, r
            record.candidates[key].trials.append(spec.trial_id)
            new = s.goals.score(r)
            scores[key] = new
            record.candidates[key].scores.append(new)
            ran[key] = new
        leader = winner(s, rows)
        alive = study.promote(rung, ran)
        for key, why in out_of_reach(s, [s.by_key[k] for k in alive], rows, leader, bounds).items():
            record.stop(key, f"rung {rung}: {why}", rung)
            study.stop(key, "out of reach")
            alive.remove(key)
        record.rungs.append(rec.RungRecord(rung, steps, list(ran), list(alive)))
        for key in ran:
            if key not in alive:
                record.stop(key, f"rung {rung}: successive halving (score {ran[key]:.4f})", rung)
        record.seconds = clock.seconds
        rec.write(s.run.path, record)
        if converged(s, leader, rows, alive, gains):
            record.ended = rec.CONVERGED
            break
        if s.search.budget.steps is not None and record.steps_spent >= s.search.budget.steps:
            record.ended = rec.BUDGET
            break
        if s.search.budget.minutes is not None and clock.seconds >= s.search.budget.minutes * 60:
            record.ended = rec.BUDGET
            break
    study.finish(scores)
    record.winner = _winner_trial(s, rows, latest)


def _winner_trial(s: Search, rows: dict, latest: dict) -> Optional[str]:
    key = winner(s, rows)
    return None if key is None else latest[key].trial_id


