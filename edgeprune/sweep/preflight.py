"""Everything a sweep checks before it writes a byte: the run folder it would
resume, the data it would read, the weights it would load. A start that fails
leaves no run folder behind, or leaves an existing one as it was."""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import Optional

from ..config import SweepConfig
from ..data import DataSplits
from ..errors import ConfigError, EdgepruneError, RunError
from ..lock import driver_alive
from ..models import check_weights
from ..run import RunFolder
from ..store import IDENTITY_VERSION, UNFINISHED
from .plan import TrialSpec


@dataclass
class Existing:
    """What a run folder already holds (nothing, for a new one)."""
    settings: Optional[dict] = None
    fingerprint: Optional[str] = None
    trials: dict = field(default_factory=dict)        # trial id -> TrialRecord

    @property
    def new(self) -> bool:
        return self.settings is None and not self.trials


def _first_difference(a, b, path: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                return _first_difference(a.get(k), b.get(k), f"{path}.{k}" if path else k)
    return f"{path}: {a!r} -> {b!r}"


def read_existing(run: RunFolder) -> Existing:
    if run.path.exists() and not run.path.is_dir():
        raise EdgepruneError(f"--out {str(run.path)!r} is a file; name a folder for the run")
    if not run.exists():
        return Existing()
    alive, holder = driver_alive(run.path)
    if alive:
        raise RunError(f"run folder {str(run.path)!r} is in use by another sweep"
                       + (f" ({holder.describe()})" if holder else "") + "; wait for it to end (`edgeprune status` "
                       "follows it) or use another --out")
    with run.store() as store:
        identity = store.get_meta("identity_version") or 1
        found = read_stored(store)
    if identity != IDENTITY_VERSION:
        raise EdgepruneError(f"run folder {str(run.path)!r} was made by an edgeprune whose trial ids follow rule "
                             f"{identity} (this one: {IDENTITY_VERSION}), so it cannot be resumed; read it "
                             "(show, report, export) or start the sweep in another --out")
    return found


def read_stored(store) -> Existing:
    return Existing(store.get_meta("settings"), store.get_meta("data_fingerprint"),
                    {t.trial_id: t for t in store.trials()})


def check_resumable(existing: Existing, settings: dict, specs: list[TrialSpec], run: RunFolder,
                    extend: bool) -> None:
    """The folder must hold this sweep: the same settings, and the same trials unless
    `extend` (then the new trials are added)."""
    if existing.settings is not None and existing.settings != settings:
        diff = _first_difference(existing.settings, settings)
        hint = (" (this machine fine-tunes in another precision: set finetune.amp to match the run, e.g. "
                "finetune.amp: off)" if diff.startswith("precision") else "")
        raise EdgepruneError(f"run folder {str(run.path)!r} holds a sweep with other settings ({diff}){hint}; "
                             "use another --out, or restore the settings to resume it")
    if existing.new or extend:
        return
    planned = {s.trial_id for s in specs}
    added = [s for s in specs if s.trial_id not in existing.trials and not s.is_refinement]
    missing = [t for i, t in existing.trials.items() if i not in planned and t.spec.get("stage") not in ("refine", "rung")]
    if added or missing:
        parts = ([f"{len(added)} new trial(s), e.g. {added[0].describe()}"] if added else []) + \
            ([f"{len(missing)} of its trials are not named, e.g. {missing[0].model} {missing[0].algorithm} "
              f"{missing[0].rate:g}"] if missing else [])
        raise EdgepruneError(f"run folder {str(run.path)!r} holds other trials than the config names "
                             f"({'; '.join(parts)}); pass --extend to add the new trials to it, or use another --out")


def todo(specs: list[TrialSpec], existing: Existing, retry_failed: bool) -> list[TrialSpec]:
    wanted = UNFINISHED + (("failed",) if retry_failed else ())
    return [s for s in specs if s.trial_id not in existing.trials or existing.trials[s.trial_id].status in wanted]


def fingerprint(data: DataSplits) -> str:
    """A hash of the images and labels a sweep trains and tests on (after the
    fractions): a resumed run must see the same data."""
    h = hashlib.sha256()
    for split in (data.train, data.test):
        images = getattr(split, "images", None)
        if hasattr(images, "numpy"):
            h.update(images.contiguous().numpy().tobytes())
            h.update(split.labels.numpy().tobytes())
        else:                               # streamed from disk: the files, their sizes and times
            for path, label in split.files():
                st = os.stat(path)
                h.update(f"{path}|{label}|{st.st_size}|{int(st.st_mtime)}".encode())
    return h.hexdigest()[:16]


def check_data(existing: Existing, found: str, run: RunFolder) -> None:
    if existing.fingerprint is not None and existing.fingerprint != found:
        raise EdgepruneError(f"the data set is not the one run folder {str(run.path)!r} was made with (fingerprint "
                             f"{found} vs {existing.fingerprint}): point --data-dir at the same images, or use "
                             "another --out")


def check_normalization(cfg: SweepConfig, data: DataSplits) -> None:
    """The data set's own statistics, where a trial would normalise with them, must
    have no channel with std 0 (every value would become infinite)."""
    uses_dataset = cfg.dataset.normalization == "dataset" or (
        cfg.dataset.normalization == "auto" and any(not (m.pretrained or m.checkpoint) for m in cfg.models))
    std = getattr(data.train, "std", (1.0,))
    if uses_dataset and min(std) <= 1e-6:
        raise ConfigError(f"the training images have a channel that never varies (per-channel std {tuple(std)}, "
                          "std 0): normalising by it divides by zero; set dataset.normalization: imagenet, or give "
                          "[[mean, mean, mean], [std, std, std]]")


def check_device(cfg: SweepConfig) -> None:
    """`device: cuda` needs a GPU here (the local executor; Ray workers are placed by Ray)."""
    if cfg.device == "cuda" and cfg.executor == "local":
        import torch
        if not torch.cuda.is_available():
            raise EdgepruneError("device: cuda asked for, but torch sees no CUDA GPU; use device: auto or cpu")


def check_backends(cfg: SweepConfig) -> None:
    """Every latency backend's runtime (and QAT's packages) is installed here (the local
    executor; Ray workers may carry runtimes the driver lacks, and report a missing one
    per trial)."""
    if cfg.executor != "local":
        return
    from ..config.variants import variant_name
    from ..registry import LATENCY_BACKENDS
    if any(variant_name(q) == "qat" for q in cfg.quantize):
        from ..deploy.qat import missing
        why = missing()
        if why:
            raise EdgepruneError(why)
    for spec in cfg.measure.latency_backends():
        missing = getattr(LATENCY_BACKENDS.get(spec.backend), "missing", None)
        why = missing() if missing else None
        if why:
            raise EdgepruneError(why)


def check_models(cfg: SweepConfig, specs: list[TrialSpec], num_classes: int) -> None:
    """Each model's weights can be had and fit: checkpoints read and checked against
    the architecture, published weights found (or downloaded)."""
    names = {s.model["name"] for s in specs}
    for m in cfg.models:
        if m.name in names and (m.checkpoint or m.pretrained):
            check_weights(m.name, num_classes, m.pretrained, m.checkpoint, cfg.weights_dir)


def with_reconstruction_images(prune, data: DataSplits, seed: int = 0, check: bool = True) -> DataSplits:
    """The data trials run on, with the user's own images for rebuilding pruned layers
    when `prune.reconstruct_from` names a folder. A count set on purpose that the source
    cannot give is refused in one line before anything is written; the default (1024, left
    out or written) takes what a smaller training split holds. `check=False`: a trial run again to get
    its model back (it ran with this data before)."""
    from ..data.unlabeled import load_unlabeled
    if not prune.reconstruct:
        return data
    if prune.reconstruct_from == "train":
        available = len(data.train)
        default = type(prune).model_fields["reconstruct"].default
        # the default count, whether left out or written back by a run folder's config.yaml, takes
        # what a smaller split holds; another count is the user's own, and refused if it cannot be had
        if check and prune.reconstruct > available and prune.reconstruct != default:
            raise ConfigError(f"prune.reconstruct: {prune.reconstruct} images asked for, but the training split "
                              f"holds {available}; lower prune.reconstruct (or dataset.train_fraction's cut)")
        return data
    if data.unlabeled is None or len(data.unlabeled) < prune.reconstruct:
        data.unlabeled = load_unlabeled(prune.reconstruct_from, prune.reconstruct, data.train.image_size, data.train,
                                        seed)
    return data
