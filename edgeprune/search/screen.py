"""The screen: every model measured unpruned, every other candidate cut to the hard
goals and rebuilt, and its accuracy measured without fine-tuning. Candidates that miss
a cost goal stop here; goals no candidate meets end the search here, in one line."""
from __future__ import annotations

import pandas as pd

from .. import search_record as rec
from ..errors import EdgepruneError, first_line
from .candidates import Candidate, baselines, pruned
from .runner import Search, _name


def screen(s: Search, record: rec.SearchRecord) -> tuple[list[Candidate], list[Candidate], pd.DataFrame]:
    """Every candidate's screen trial, run; returns (baselines, trainable candidates, rows)."""
    base = baselines(s.cfg)
    df = s.sweep([c.spec for c in base])
    base_rows, skip = {}, set()
    for c in base:
        r = s.row(df, c.key)
        record.candidates.setdefault(c.key, rec.CandidateRecord(c.label, [c.key], baseline=True))
        if r is None:
            record.stop(c.key, f"failed: {df.loc[c.key].get('error') if c.key in df.index else 'not run'}", 0)
            continue
        if not c.spec.is_variant:
            base_rows[c.spec.model_label] = r
        if s.search.objective == "accuracy" and not s.goals.misses(r, s.goals.hard):
            skip.add((c.spec.model_label, c.spec.quantize))   # unpruned, it meets the cost goals: no cut beats it
    cands = pruned(s.cfg, base_rows, frozenset(skip))
    df = s.sweep([c.spec for c in base + cands])
    trainable = []
    for c in cands:
        record.candidates.setdefault(c.key, rec.CandidateRecord(c.label, [c.key]))
        r = s.row(df, c.key)
        if r is None:
            error = df.loc[c.key].get("error") if c.key in df.index else "not run"
            record.stop(c.key, f"failed: {error}", 0)
        elif s.goals.misses(r, s.goals.hard):
            record.stop(c.key, "misses " + "; ".join(s.goals.misses(r, s.goals.hard)), 0)
        elif not (r.get("channel_ratio") or 0) > 0:
            record.stop(c.key, "removed no channel: the unpruned model is the same network", 0)
        else:
            trainable.append(c)
    for model, q in sorted(skip):
        s.progress.note(f"{model}{'' if q == 'none' else ' ' + q} unpruned meets "
                           f"{', '.join(g.describe() for g in s.goals.hard)}: its cuts are not searched")
    unreachable(s, base + cands, df)
    return base, trainable, df


def unreachable(s: Search, cands: list[Candidate], df: pd.DataFrame) -> None:
    """No candidate meets the cost goals: end here, naming the closest."""
    rows = [r for r in (s.row(df, c.key) for c in cands) if r is not None]
    if any(not s.goals.misses(r, s.goals.hard) for r in rows):
        return
    if not s.goals.hard:
        return
    for goal in s.goals.hard:
        measured = [r for r in rows if not pd.isna(r.get(goal.metric))]
        if all(goal.met(r) for r in measured) and measured:
            continue
        if not measured:
            raise EdgepruneError(f"search: no candidate meets {goal.describe()} (none was measured; "
                                 f"`edgeprune show {s.run.path}` says why)")
        best = min(measured, key=lambda r: float(r[goal.metric]))
        failed = [df.loc[c.key] for c in cands if c.key in df.index and df.loc[c.key].get("status") == "failed"]
        why = (f" ({len(failed)} cut(s) failed, e.g. {failed[0]['model']} {failed[0]['algorithm']}: "
               f"{first_line(str(failed[0].get('error')))})" if failed else "")
        raise EdgepruneError(f"search: no candidate meets {goal.describe()}; the closest is {_name(best)} with "
                             f"{goal.show(best)}{why}: relax the goal, or add smaller models")
    raise EdgepruneError(f"search: no candidate meets {s.goals.describe()} all at once; "
                         f"`edgeprune show {s.run.path}` lists what each reached")

