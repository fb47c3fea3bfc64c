"""The candidates of a search: every model unpruned, and every model x algorithm x
allocation x quantize variant cut to meet the hard goals (or, without one, at each
of the search's rates). A candidate is its screen trial; its rungs continue that
trial's model."""
from __future__ import annotations

from dataclasses import dataclass
from ..config import BASELINE, NO_VARIANT, SweepConfig
from ..sweep.plan import TrialSpec
from ..sweep.settings import TrialSettings

LATENCY_AIM = 0.95     # a latency goal is cut for at 95 % of it: the cut is searched within 5 % of its target
COUNT_AIM = 0.95       # MACs and parameter goals: their cut is searched within a tolerance of its target
SIZE_AIM = 0.97        # a size goal, as parameters (4 bytes each in fp32, 1 in int8), with room for the file's rest
_BYTES_PER_PARAM = {NO_VARIANT: 4.0}


@dataclass(frozen=True)
class Candidate:
    spec: TrialSpec               # its screen trial

    @property
    def key(self) -> str:
        return self.spec.trial_id

    @property
    def is_baseline(self) -> bool:
        return self.spec.is_baseline

    @property
    def label(self) -> str:
        return self.spec.describe()

    @property
    def trained_key(self) -> str:
        """The trial whose model the candidate's rungs train (an int8 candidate's fp32 twin)."""
        return self.spec.trained_twin().trial_id

    def params(self) -> dict:
        """What it is, as the study records it."""
        s = self.spec
        return {"model": s.model_label, "algorithm": s.algorithm, "allocation": s.allocation,
                "target": s.rate_label if not s.is_baseline else "unpruned", "quantize": s.quantize}


def baselines(cfg: SweepConfig) -> list[Candidate]:
    settings = TrialSettings.from_config(cfg)
    return [Candidate(TrialSpec(m.model_dump(mode="json"), BASELINE, "channels", 0.0, cfg.seed, settings, q))
            for m in cfg.models for q in cfg.quantize]


def _targets(cfg: SweepConfig, base: dict, quantize: str) -> list[tuple[str, float]]:
    """(target kind, value) the candidate is cut at: the hard goal that removes most,
    measured latency first; else the search's rates."""
    goals = cfg.search.goals
    if goals.max_latency_ms is not None:
        return [("latency_ms", round(goals.max_latency_ms * LATENCY_AIM, 6))]
    shares = []            # (kind, share of the unpruned model's count to remove)
    if goals.max_macs is not None:
        shares.append(("macs", 1 - COUNT_AIM * goals.max_macs / base["macs_base"]))
    if goals.max_params is not None:
        shares.append(("params", 1 - COUNT_AIM * goals.max_params / base["params_base"]))
    if goals.max_size is not None:
        per_param = _BYTES_PER_PARAM.get(quantize, 1.0)
        shares.append(("params", 1 - SIZE_AIM * goals.max_size / per_param / base["params_base"]))
    if shares:
        kind, share = max(shares, key=lambda s: s[1])
        return [(kind, round(min(max(share, 0.0), 0.99), 6))]
    return [("channels", float(r)) for r in (cfg.search.rates or [t.value for t in cfg.rates if t.kind == "channels"])]


def pruned(cfg: SweepConfig, base_rows: dict[str, dict], skip_models: frozenset = frozenset()) -> list[Candidate]:
    """The pruned candidates, for the models whose unpruned row is in `base_rows`
    (model label -> row), but not the (model label, quantize) pairs in `skip_models`."""
    settings = TrialSettings.from_config(cfg)
    out = []
    for m in cfg.models:
        label = m.label
        if label not in base_rows:
            continue
        model = m.model_dump(mode="json")
        for algorithm in cfg.algorithms:
            for allocation in cfg.allocation:
                for q in cfg.quantize:
                    if (label, q) in skip_models:
                        continue
                    for kind, value in _targets(cfg, base_rows[label], q):
                        if kind != "channels" and value <= 0:
                            continue             # the unpruned model meets it: nothing to cut
                        out.append(Candidate(TrialSpec(model, algorithm, kind, value, cfg.seed, settings, q,
                                                       allocation=allocation)))
    return out


def rung_spec(candidate: Candidate, parent: str, steps: int) -> TrialSpec:
    """The trial that fine-tunes `parent`'s model `steps` more, for `candidate`."""
    from dataclasses import replace
    from ..sweep.plan import RUNG
    return replace(candidate.spec, parent=parent, stage=RUNG, budget=float(steps))
