"""Reading a sweep config: YAML (or a dict), `--set` overrides, validation. Every
problem is raised as a one-line ConfigError that names the key and what is allowed."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Optional, Union

import yaml
from pydantic import ValidationError

from ..errors import ConfigError, EdgepruneError
from ..registry import DATASETS
from .errors import format_validation_error
from .sweep import SweepConfig


def apply_override(raw: dict, assignment: str) -> None:
    """Apply one `key.sub=value` override in place (`models.0.pretrained=false`
    indexes a list); the value is parsed as YAML."""
    key, sep, value = assignment.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {assignment!r}: expected key=value, e.g. --set finetune.epochs=3")
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError as e:
        raise ConfigError(f"--set {assignment!r}: the value is not valid YAML ({getattr(e, 'problem', e)})") from None
    parts = key.strip().split(".")
    node = raw
    for depth, p in enumerate(parts):
        last = depth == len(parts) - 1
        if isinstance(node, list):
            if not p.isdigit() or int(p) >= len(node):
                raise ConfigError(f"--set {assignment!r}: '{p}' is not an index of a list of {len(node)}")
            i = int(p)
            if last:
                node[i] = parsed
                return
            if isinstance(node[i], str):  # a model given by name: promote it to a mapping
                node[i] = {"name": node[i]}
            node = node[i]
        elif isinstance(node, dict):
            if last:
                node[p] = parsed
                return
            node = node.setdefault(p, {})
        else:
            raise ConfigError(f"--set {assignment!r}: '{parts[depth - 1]}' is not a section")


def read_yaml(path: Union[str, Path]) -> dict:
    """A YAML config file as a dict, or a ConfigError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} not found; pass the path of a YAML sweep config")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError:
        raise ConfigError(f"config file {str(path)!r} is not a text file; pass a YAML sweep config") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"config file {str(path)!r}{where}: not valid YAML ({getattr(e, 'problem', e)})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {str(path)!r}: expected a mapping of keys at the top level")
    return raw


def load_config(source: Union[str, Path, dict], overrides: list[str] = (), data_dir: Optional[str] = None,
                out: Optional[str] = None, check_data: bool = True, plugins: list[str] = (),
                weights_dir: Optional[str] = None) -> SweepConfig:
    """Read, override and validate a sweep config; raise ConfigError on any problem.
    `plugins` are imported before validation (as `--plugin` does)."""
    raw = copy.deepcopy(source) if isinstance(source, dict) else read_yaml(source)
    for assignment in overrides:
        apply_override(raw, assignment)
    if data_dir is not None:
        raw.setdefault("dataset", {})["root"] = data_dir
    if weights_dir is not None:
        raw["weights_dir"] = weights_dir
    if out is not None:
        raw["out"] = out
    if plugins:
        given = raw.get("plugins") or []
        raw["plugins"] = list(dict.fromkeys([*([given] if isinstance(given, str) else given), *plugins]))
    try:
        cfg = SweepConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, SweepConfig)) from None
    except EdgepruneError as e:
        raise ConfigError(str(e)) from None
    if check_data:      # the dataset's own check (through its registry entry): fail before anything is written
        source = DATASETS.get(cfg.dataset.name)
        if source.check is not None:
            source.check(cfg.dataset)
    return cfg
