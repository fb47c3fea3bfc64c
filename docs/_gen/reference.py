"""The reference pages, generated from the code at build time so that they cannot drift.

mkdocs loads this file as a hook (`hooks:` in mkdocs.yml); `on_files` adds the pages.
The render_* functions need no mkdocs, so tests/test_docs.py calls them directly.
Each imports only the part of edgeprune it documents: the config schema, the argparse
parser, the metrics table.
"""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import types
import typing
from typing import Any

GENERATED = "<!-- generated at build time by docs/_gen/reference.py: edit the code, not this page -->\n"


# ----------------------------------------------------------------------------- config

def _is_model(t: Any) -> bool:
    from pydantic import BaseModel
    return isinstance(t, type) and issubclass(t, BaseModel)


def _models_in(annotation: Any) -> list:
    """The pydantic models named anywhere in a type (list[X], Optional[X], Union[...])."""
    if _is_model(annotation):
        return [annotation]
    found = []
    for arg in typing.get_args(annotation):
        found += [m for m in _models_in(arg) if m not in found]
    return found


def _type_text(t: Any, anchors: dict) -> str:
    origin, args = typing.get_origin(t), typing.get_args(t)
    if t is type(None):
        return "null"
    if origin is typing.Annotated:
        return _type_text(args[0], anchors)
    if origin is typing.Literal:
        return " or ".join(f"`{a}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_text(a, anchors) for a in args)
    if origin is list:
        return f"list of {_type_text(args[0], anchors)}" if args else "list"
    if origin is tuple:
        return "[" + ", ".join(_type_text(a, anchors) for a in args) + "]"
    if origin is dict or t is dict:
        return "mapping"
    if _is_model(t):
        path = anchors.get(t)
        return f"[section](#{_anchor(path)})" if path else t.__name__
    return getattr(t, "__name__", str(t))


def _constraints(field) -> str:
    words = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<", "min_length": "at least", "max_length": "at most"}
    parts = []
    for m in field.metadata:
        for attr, word in words.items():
            v = getattr(m, attr, None)
            if v is not None:
                parts.append(f"{word} {v:g}" if isinstance(v, float) else f"{word} {v}")
    return ", ".join(parts)


def _value(v: Any) -> str:
    if _is_model(type(v)):
        v = v.model_dump(mode="json")
    elif isinstance(v, list) and v and _is_model(type(v[0])):
        v = [x.model_dump(mode="json") for x in v]
    return "`" + json.dumps(v, ensure_ascii=False) + "`"


def _default(field, anchors: dict) -> str:
    if field.is_required():
        return "**required**"
    value = field.default_factory() if field.default_factory is not None else field.default
    if _is_model(type(value)) and type(value) in anchors:
        return f"[its section](#{_anchor(anchors[type(value)])})"
    return _value(value)


def _cell(text: str) -> str:
    """One table cell: on one line, pipes escaped, <angle brackets> shown outside code spans."""
    parts = " ".join(text.split()).split("`")
    for i in range(0, len(parts), 2):       # the even parts lie outside code spans
        parts[i] = parts[i].replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts).replace("|", "\\|")


def _registry_of(field) -> Any:
    """The registry a field's name is checked against, if its validator holds one: its
    names are the allowed values (built-ins and the plugins installed here)."""
    for m in [*field.metadata, *(x for a in typing.get_args(field.annotation) for x in getattr(a, "__metadata__", ()))]:
        for cell in getattr(getattr(m, "func", None), "__closure__", None) or ():
            obj = cell.cell_contents
            if hasattr(obj, "names") and hasattr(obj, "kind"):
                return obj
    return None


def _notes() -> dict:
    import yaml
    from pathlib import Path
    return yaml.safe_load((Path(__file__).with_name("config_notes.yaml")).read_text(encoding="utf-8")) or {}


def _anchor(path: str) -> str:
    return "cfg-" + (path.replace(".", "-").replace("[]", "") or "top")


def _sections(root) -> list[tuple[str, type]]:
    """(dotted path, model) of every section, depth first in field order: '' is the top."""
    out, seen = [], set()

    def walk(path: str, model) -> None:
        if model in seen:
            return
        seen.add(model)
        out.append((path, model))
        for name, field in model.model_fields.items():
            many = typing.get_origin(field.annotation) is list or any(
                typing.get_origin(a) is list for a in typing.get_args(field.annotation))
            for sub in _models_in(field.annotation):
                walk(f"{path + '.' if path else ''}{name}{'[]' if many else ''}", sub)
    walk("", root)
    return out


def render_config() -> str:
    from edgeprune.config import SweepConfig
    sections = _sections(SweepConfig)
    anchors = {model: path for path, model in sections}
    notes = _notes()
    lines = [GENERATED, "# Config reference", "",
             "Every key a sweep config (YAML) may hold, read from the schema that validates it "
             "(`edgeprune.config.SweepConfig`). Unknown keys are refused. Any key can be set on the "
             "command line too: `--set finetune.epochs=3`, `--set models.0.pretrained=false`.", "",
             "A `[]` in a section's name means a list of such items (`models[]`: each model).", ""]
    for path, model in sections:
        title = f"`{path}`" if path else "Top level"
        lines += [f"## {title} {{#{_anchor(path)}}}", ""]
        doc = inspect.getdoc(model) if model.__doc__ else None
        if doc:
            lines += [doc, ""]
        lines += ["| key | type | default | allowed | description |", "|---|---|---|---|---|"]
        for name, field in model.model_fields.items():
            key = f"{path + '.' if path else ''}{name}"
            allowed = _constraints(field)
            registry = _registry_of(field)
            if registry is not None:
                allowed = ", ".join(x for x in (allowed, ", ".join(f"`{n}`" for n in registry.names())) if x)
            description = field.description or notes.get(key, "")
            lines.append(f"| `{name}` | {_cell(_type_text(field.annotation, anchors))} | "
                         f"{_cell(_default(field, anchors))} | {_cell(allowed)} | {_cell(description)} |")
        lines.append("")
    return "\n".join(lines)


def config_keys() -> list[str]:
    """Every dotted key of the schema (for the tests)."""
    from edgeprune.config import SweepConfig
    return [f"{path + '.' if path else ''}{name}" for path, model in _sections(SweepConfig)
            for name in model.model_fields]


# ----------------------------------------------------------------------------- CLI

def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    """(name, one-line help, parser) of each subcommand, in the parser's order."""
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, sub in action.choices.items():
                if sub not in [s for _, _, s in out]:       # aliases point at the same parser
                    out.append((name, helps.get(name, ""), sub))
    return out


def _help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    if not action.help:
        return ""
    try:
        return parser._get_formatter()._expand_help(action)      # %(default)s and %% as --help prints them
    except (TypeError, ValueError, KeyError):
        return action.help.replace("%%", "%")


def _argument_rows(parser: argparse.ArgumentParser) -> list[str]:
    rows = []
    for a in parser._actions:
        if isinstance(a, (argparse._HelpAction, argparse._SubParsersAction)) or a.help == argparse.SUPPRESS:
            continue
        if a.option_strings:
            name = ", ".join(f"`{o}`" for o in a.option_strings)
            takes = a.nargs != 0
            value = ("one of " + ", ".join(f"`{c}`" for c in a.choices)) if a.choices else \
                (f"`{a.metavar or a.dest.upper()}`" if takes else "")
            if takes and a.nargs in ("+", "*"):
                value += " ..."
            if a.nargs == "?":
                value = f"[{value}]"
        else:
            name = f"`{a.metavar or a.dest}`" + (" ..." if a.nargs in ("+", "*") else "")
            value = ("one of " + ", ".join(f"`{c}`" for c in a.choices)) if a.choices else ""
        default = "" if a.default in (None, False, [], argparse.SUPPRESS) or a.nargs == 0 else f"`{a.default}`"
        if isinstance(a, argparse._AppendAction) and "repeatable" not in (a.help or ""):
            value += " (repeatable)"
        rows.append(f"| {name} | {_cell(value)} | {_cell(default)} | {_cell(_help(parser, a))} |")
    return rows


def _usage(parser: argparse.ArgumentParser) -> str:
    """The usage lines without argparse's 'usage: ' (continuation lines moved left to match)."""
    prefix = "usage: "
    lines = parser.format_usage().rstrip().splitlines()
    if not lines or not lines[0].startswith(prefix):
        return "\n".join(lines)
    return "\n".join([lines[0][len(prefix):]] + [line[len(prefix):] if line.startswith(" " * len(prefix)) else line
                                                  for line in lines[1:]])


def _render_command(lines: list, title: str, summary: str, parser: argparse.ArgumentParser, level: int) -> None:
    lines += [f"{'#' * level} `{title}`", ""]
    if summary:
        lines += [summary[0].upper() + summary[1:] + ("" if summary.endswith(".") else "."), ""]
    if parser.description and parser.description != summary:
        lines += [parser.description, ""]
    lines += ["```text", _usage(parser), "```", ""]
    rows = _argument_rows(parser)
    if rows:
        lines += ["| argument | value | default | meaning |", "|---|---|---|---|", *rows, ""]
    for name, help_, sub in _subcommands(parser):
        _render_command(lines, f"{title} {name}", help_, sub, min(level + 1, 6))


def render_cli() -> str:
    import os
    from edgeprune.cli import build_parser
    parser = build_parser()
    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"      # argparse wraps usage lines to the terminal: the page must not depend on it
    try:
        return _render_cli(parser)
    finally:
        if columns is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = columns


def _render_cli(parser: argparse.ArgumentParser) -> str:
    lines = [GENERATED, "# Command reference", "",
             "Every command and option of `edgeprune`, read from its argument parser "
             "(`edgeprune.cli.build_parser()`). Exit codes: 0 done, 1 the run could not go on (or trials "
             "failed), 2 bad input; every failure is one line on stderr.", "",
             "| command | what it does |", "|---|---|"]
    lines += [f"| [`{name}`](#edgeprune-{name}) | {_cell(help_)} |" for name, help_, _ in _subcommands(parser)]
    lines.append("")
    _render_command(lines, parser.prog, "", parser, 2)
    return "\n".join(lines)


def cli_commands() -> list[str]:
    from edgeprune.cli import build_parser
    return [name for name, _, _ in _subcommands(build_parser())]


# ----------------------------------------------------------------------------- metrics

def render_metrics() -> str:
    import edgeprune.metrics as metrics_module
    from edgeprune.metrics import METRICS
    lines = [GENERATED, "# Metrics reference", "",
             "The scalars a trial stores (`edgeprune show`, the CSV of `edgeprune export`, the report, "
             "`recommend`'s budgets), read from `edgeprune.metrics.METRICS`. A trial measured in several "
             "runtimes also stores per-runtime figures: see [Latency measurement]"
             "(../explanation/latency.md#what-a-trial-stores).", ""]
    doc = inspect.getdoc(metrics_module)
    if doc:
        lines += ["\n\n".join(" ".join(p.split()) for p in doc.split("\n\n")), ""]
    names = [f.name for f in dataclasses.fields(next(iter(METRICS.values())))]
    lines += ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    for m in METRICS.values():
        cells = []
        for n in names:
            v = getattr(m, n)
            cells.append(f"`{v}`" if n == names[0] else _cell("" if v is None else str(v)))
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    return "\n".join(lines)


def metric_keys() -> list[str]:
    from edgeprune.metrics import METRICS
    return list(METRICS)


# ----------------------------------------------------------------------------- Python API

API = ["load_config", "run_sweep", "load_results", "create_model", "prune_model", "report", "release_trial"]


def render_api() -> str:
    """mkdocstrings directives for the top-level functions, each at the module that defines it
    (found by importing it, so a move in the code moves the page with it)."""
    import edgeprune
    lines = [GENERATED, "# Python API", "",
             "The `edgeprune` package's top-level functions, from their docstrings. "
             "`from edgeprune import load_config, run_sweep, load_results` is all a script needs for a sweep:", "",
             "```python",
             "from edgeprune import create_model, prune_model, load_config, run_sweep, load_results",
             "",
             'model = create_model("mobilenet_v2", num_classes=10, pretrained=False)',
             'result = prune_model(model, "fpgm", 0.5, input_size=32)     # a pruned copy; `model` is untouched',
             'print(result.channel_ratio, result.layer_channels["features.1.conv.1"])',
             "",
             'run_dir = run_sweep(load_config("examples/quickstart.yaml", data_dir="data"))',
             "df = load_results(run_dir)                                   # pandas, one row per trial",
             "```", ""]
    import importlib
    for name in API:
        # through the lazy table: `edgeprune.report` is also the name of a subpackage, which
        # replaces the function on the package once anything imports that subpackage
        obj = getattr(importlib.import_module(f"edgeprune.{edgeprune._LAZY[name]}"), name)
        lines += [f"::: {obj.__module__}.{obj.__qualname__}", "    options:", "      show_root_heading: true",
                  "      show_root_full_path: false", "      heading_level: 2", ""]
    lines += ["## Plugins: `edgeprune.plugins` {#plugins}", "",
              "See [Write a plugin](../how-to/plugins.md) for how a plugin is found.", "",
              "::: edgeprune.plugins", "    options:", "      show_root_heading: false",
              "      show_root_toc_entry: false", "      members_order: source", "      filters: [\"!^_\"]", ""]
    return "\n".join(lines)


PAGES = {"reference/config.md": render_config, "reference/cli.md": render_cli,
         "reference/metrics.md": render_metrics, "reference/python-api.md": render_api}


def on_files(files, config):
    """mkdocs hook: add the generated pages to the build."""
    from mkdocs.structure.files import File
    for path, render in PAGES.items():
        files.append(File.generated(config, path, content=render()))
    return files
