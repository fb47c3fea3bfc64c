"""A run folder, and the one place that knows its layout:

    RUN/results.db      the results store (edgeprune.store)
    RUN/config.yaml     the config that made the trials (what the folder holds)
    RUN/adapted/        unpruned models with an adapted head, one file per model
    RUN/allocation/     what layer-wise allocations share: sensitivity maps (per model x algorithm),
                        runtime profiles and latency models (per model), JSON, measured once per run
    RUN/models/         saved trial models (save_models, or kept for a variant or a child)
    RUN/onnx/           kept ONNX files
    RUN/report/         `edgeprune report`
    RUN/deploy/TRIAL/   `edgeprune deploy`
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import yaml

from .errors import ConfigError, EdgepruneError
from .store import DB_NAME, ResultStore, TrialRecord

CONFIG_NAME = "config.yaml"


class RunFolder:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __str__(self) -> str:
        return str(self.path)

    # -- paths -------------------------------------------------------------------
    @property
    def db(self) -> Path:
        return self.path / DB_NAME

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_NAME

    @property
    def report_dir(self) -> Path:
        return self.path / "report"

    def deploy_dir(self, trial_id: str) -> Path:
        return self.path / "deploy" / trial_id

    def adapted_path(self, model_label: str, key_hash: str, seed: int) -> Path:
        """The adapted unpruned model of one model spec and seed."""
        name = model_label.replace("/", "_").replace(":", "_")
        return self.path / "adapted" / f"{name}-{key_hash}-seed{seed}.pt"

    def allocation_path(self, kind: str, label: str, key_hash: str) -> Path:
        """One measured input of allocated trials (kind: sensitivity | runtime | latency)."""
        name = label.replace("/", "_").replace(":", "_")
        return self.path / "allocation" / f"{kind}-{name}-{key_hash}.json"

    def allocation_files(self, kind: str = "*") -> list[Path]:
        return sorted((self.path / "allocation").glob(f"{kind}-*.json"))

    # relative to the run's storage (the folder itself, or an fsspec URL: ArtifactStore)
    @staticmethod
    def model_file(trial_id: str) -> str:
        return f"models/{trial_id}.pt"

    @staticmethod
    def onnx_file(name: str) -> str:
        return f"onnx/{name}"

    def exists(self) -> bool:
        return self.db.is_file()

    # -- the store ---------------------------------------------------------------
    def store(self, readonly: bool = True) -> ResultStore:
        """The results store; read-only unless a sweep writes it."""
        return ResultStore(self.path, create=not readonly, readonly=readonly)

    def trials(self) -> list[TrialRecord]:
        with self.store() as store:
            return store.trials()

    def find_trial(self, prefix: str, done: bool = False) -> TrialRecord:
        """The trial whose id is `prefix`, or the only one that starts with it; with
        `done`, it must have finished. One rule for every command that takes an id."""
        prefix = str(prefix).strip()
        trials = self.trials()
        exact = [t for t in trials if t.trial_id == prefix]
        hits = exact or [t for t in trials if prefix and t.trial_id.startswith(prefix)]
        if not hits:
            raise EdgepruneError(f"no trial {prefix!r} in {str(self.path)!r}; `edgeprune show {self.path}` lists "
                                 "their ids")
        if len(hits) > 1:
            raise EdgepruneError(f"trial id {prefix!r} is ambiguous in {str(self.path)!r} (it starts "
                                 f"{', '.join(t.trial_id for t in hits[:5])}{', ...' if len(hits) > 5 else ''}); "
                                 "give more characters")
        t = hits[0]
        if done and t.status != "done":
            raise EdgepruneError(f"trial {t.trial_id} is {t.status}: only finished trials can be used here")
        return t

    # -- the config --------------------------------------------------------------
    def raw_config(self) -> Optional[dict]:
        """RUN/config.yaml as a dict, or None when it is missing or unreadable."""
        try:
            data = yaml.safe_load(self.config_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            return None
        return data if isinstance(data, dict) else None

    def config(self, data_dir: Optional[str] = None, weights_dir: Optional[str] = None, check_data: bool = True):
        """The run's SweepConfig (`data_dir` / `weights_dir` override where its files are).
        Its `out` is this folder, wherever the folder now is: a run copied or moved elsewhere
        is resumed and refined where it lies, never written back to where it was made."""
        from .config import load_config
        raw = self.raw_config()
        if raw is None:
            raise ConfigError(f"{str(self.config_path)!r} is missing or unreadable; it records the sweep that "
                              "made this run folder")
        return load_config({**raw, "out": str(self.path)}, data_dir=data_dir, weights_dir=weights_dir,
                           check_data=check_data)

    def write_config(self, cfg, merge: bool = False) -> None:
        """Record the config: what the folder holds (atomically: a reader never sees
        half a file). With `merge`, the models, algorithms and rates already recorded
        are kept beside the new ones (a sweep that extends the folder)."""
        self.path.mkdir(parents=True, exist_ok=True)
        data = cfg.model_dump(mode="json")
        old = self.raw_config() if merge else None
        if old:
            for key, ident in (("models", lambda m: m.get("alias") or m.get("name")), ("algorithms", str),
                               ("rates", lambda r: (r.get("kind"), r.get("value")))):
                known = {ident(x) for x in data[key]}
                data[key] = [x for x in old.get(key, []) if ident(x) not in known] + data[key]
        tmp = self.config_path.with_suffix(".yaml.tmp")
        tmp.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        tmp.replace(self.config_path)
