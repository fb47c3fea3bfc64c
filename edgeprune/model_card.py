"""A finished trial's model card: what the model is, where it came from, what was
measured and which files carry it (model_card.json, and model_card.md rendered from
templates/model_card.md.j2). Read from the run folder alone; `release` adds the
files it wrote and their checks, `tracking` logs the card to MLflow."""
from __future__ import annotations

import datetime as _dt
import json
import math
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Optional

from .config import BASELINE
from .metrics import latency_label
from .run import RunFolder
from .store import TrialRecord

# how each released file is loaded, as the card shows it
LOADERS = {"onnx": "onnxruntime.InferenceSession('{f}')", "int8": "onnxruntime.InferenceSession('{f}')",
           "torchscript": "torch.jit.load('{f}')", "pt2": "torch.export.load('{f}').module()",
           "edgeprune": "edgeprune.load_model('{f}')",
           "state_dict": "model.load_state_dict(torch.load('{f}'))  # into the pruned architecture",
           "openvino": "openvino.Core().compile_model('{f}', 'CPU')",
           "openvino_int8": "openvino.Core().compile_model('{f}', 'CPU')",
           "tvm": "tvm.relax.VirtualMachine(tvm.runtime.load_module('{f}'), tvm.cpu())",
           "litert": "ai_edge_litert.interpreter.Interpreter(model_path='{f}')"}


@lru_cache(maxsize=1)
def _template():
    from jinja2 import Environment, PackageLoader
    return Environment(loader=PackageLoader("edgeprune", "templates"), autoescape=False, trim_blocks=True,
                       lstrip_blocks=True, keep_trailing_newline=True).get_template("model_card.md.j2")


def _plain(v):
    if hasattr(v, "item"):
        v = v.item()
    return None if isinstance(v, float) and math.isnan(v) else v


def card_data(run: RunFolder, record: TrialRecord, cfg, norm: dict, size: int, num_classes: Optional[int],
              files: dict, checks: dict, checked_on: str, problems: list[str]) -> dict:
    """The model card of a finished trial, as data (model_card.json)."""
    import torch

    from . import __version__
    from .results import load_results
    m, spec = record.metrics, record.spec
    settings = spec.get("settings", {})
    row = load_results(run.path).set_index("trial_id").loc[record.trial_id]
    lc = m.get("layer_channels") or {}
    model_spec = spec.get("model", {})
    weights = (f"checkpoint {model_spec['checkpoint']}" if model_spec.get("checkpoint") else
               "published pretrained weights" if model_spec.get("pretrained") else "random initialisation")
    return {
        "trial": {"id": record.trial_id, "run": str(run.path.resolve()), "sweep": cfg.name,
                  "finished_at": _dt.datetime.fromtimestamp(record.finished_at).isoformat(timespec="seconds")
                  if record.finished_at else None},
        "origin": {"model": model_spec.get("name", record.model), "label": record.model, "weights": weights,
                   "num_classes": num_classes},
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
                    "size_bytes": m.get("size_bytes"), "size_kind": m.get("size_kind", "pytorch module"),
                    "latency_ms": m.get("latency_ms"), "latency_p90_ms": m.get("latency_p90_ms"),
                    "latency_measured_on": latency_label(m)},
        "data": {"dataset": settings.get("dataset", {}).get("name"), "root": cfg.dataset.root,
                 **{k: v for k, v in settings.get("dataset", {}).items() if k != "name"}},
        "input": {"shape": [1, 3, size, size], "dtype": "float32", "layout": "NCHW, RGB in [0, 1], then normalised",
                  "mean": norm.get("mean"), "std": norm.get("std")},
        "finetune": {**settings.get("finetune", {}), "steps_run": m.get("finetune_steps"),
                     "epochs_run": m.get("finetune_epochs"), "seconds": m.get("finetune_seconds")},
        "files": {k: {"file": p.name, "load": LOADERS[k].format(f=p.name),
                      **({c: checks[k][c] for c in ("max_abs_diff", "top1_agreement", "accuracy")
                          if checks.get(k, {}).get(c) is not None})}
                  for k, p in files.items() if k in LOADERS},
        "checked_on": checked_on, "layer_channels": lc, "problems": problems,
        "exported_by": {"edgeprune": __version__, "torch": torch.__version__,
                        "at": _dt.datetime.now().isoformat(timespec="seconds")},
    }


def render_card(card: dict, baseline: bool) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _template().render(c=card, baseline=baseline)


def model_card(run: RunFolder, record: TrialRecord) -> tuple[dict, str]:
    """A finished trial's card from what the run recorded (no files, no model built)."""
    m = record.metrics
    lc = m.get("layer_channels") or {}
    card = card_data(run, record, run.config(check_data=False), m.get("normalization") or {},
                     int(m.get("input_size") or 32), int(list(lc.values())[-1][1]) if lc else None, {}, {},
                     "nothing (no files released)", [])
    return card, render_card(card, record.algorithm == BASELINE)


def write_card(folder: Path, card: dict, record: TrialRecord) -> Path:
    """model_card.json and model_card.md in `folder`; returns the .md."""
    (folder / "model_card.json").write_text(json.dumps(card, indent=1, default=_plain) + "\n")
    path = folder / "model_card.md"
    path.write_text(render_card(card, record.algorithm == BASELINE))
    return path
