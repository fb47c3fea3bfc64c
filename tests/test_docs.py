"""The docs say what the code does: their YAML validates, the generated reference lists
every config key, command and metric, the README's links resolve, and the site builds
with `mkdocs build --strict`."""
from __future__ import annotations

import copy
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S)
MARK = re.compile(r"<!--\s*(fragment|not-a-config:[^>]*)\s*-->\s*$")
SNIPPET = re.compile(r'^\s*--8<--\s+"([^"]+)"\s*$', re.M)
MINIMAL = {"models": ["resnet20"]}      # what a fragment is merged into


def _reference():
    spec = importlib.util.spec_from_file_location("docs_reference", DOCS / "_gen" / "reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pages() -> list[Path]:
    return [ROOT / "README.md", *sorted(p for p in DOCS.rglob("*.md") if "_gen" not in p.parts)]


def _yaml_blocks():
    """(page, line, marker or None, YAML text) of every yaml block, snippet includes expanded."""
    for page in _pages():
        text = page.read_text(encoding="utf-8")
        for m in FENCE.finditer(text):
            if m.group("lang") not in ("yaml", "yml"):
                continue
            before = text[:m.start()].rstrip("\n").rsplit("\n", 1)[-1]
            mark = MARK.search(before)
            body = "\n".join(line[len(m.group("indent")):] for line in m.group("body").splitlines())
            body = SNIPPET.sub(lambda s: (ROOT / s.group(1)).read_text(encoding="utf-8"), body)
            yield page, text[:m.start()].count("\n") + 1, mark.group(1) if mark else None, body


def _merge(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def test_every_yaml_config_in_the_docs_validates():
    from edgeprune.config import load_config
    blocks = list(_yaml_blocks())
    assert len(blocks) >= 8, "the docs' YAML blocks were not found: has the fence syntax changed?"
    for page, line, mark, body in blocks:
        where = f"{page.relative_to(ROOT)}:{line}"
        if mark and mark.startswith("not-a-config"):
            continue
        raw = yaml.safe_load(body)
        assert isinstance(raw, dict), f"{where}: a YAML block is a mapping of config keys"
        if mark == "fragment":
            raw = _merge(MINIMAL, raw)
        else:
            assert "models" in raw, (f"{where}: a YAML block without `models:` is part of a config: put "
                                     "<!-- fragment --> on the line before it")
        load_config(raw, check_data=False)      # raises ConfigError naming the key


def test_a_config_fragment_with_a_wrong_key_is_caught():
    from edgeprune.config import load_config
    from edgeprune.errors import ConfigError
    with pytest.raises(ConfigError, match="finetun"):
        load_config(_merge(MINIMAL, {"finetun": {"epochs": 1}}), check_data=False)


def _sections(markdown: str) -> dict[str, str]:
    """The generated config page cut at its '## ... {#cfg-...}' headings: anchor -> text."""
    parts = re.split(r"^## .*\{#(cfg-[\w-]+)\}\s*$", markdown, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def _schema_fields(model, path=""):
    """(section path, field name) of every field, walked here independently of the generator."""
    import typing

    from pydantic import BaseModel

    def nested(t):
        if isinstance(t, type) and issubclass(t, BaseModel):
            yield t
        for a in typing.get_args(t):
            yield from nested(a)

    for name, field in model.model_fields.items():
        yield path, name
        for sub in dict.fromkeys(nested(field.annotation)):
            yield from _schema_fields(sub, f"{path}.{name}" if path else name)


def test_config_reference_lists_every_field_of_the_schema():
    from edgeprune.config import SweepConfig
    sections = _sections(_reference().render_config())
    fields = list(_schema_fields(SweepConfig))
    assert len(fields) > 80
    for path, name in fields:
        anchor = "cfg-" + (path.replace(".", "-") or "top")
        assert anchor in sections, f"no section for {path!r} in the config reference"
        assert f"| `{name}` |" in sections[anchor], f"{path or 'top level'}: {name} missing from the reference"
    for must in ("latency_warmup", "latency_input_size", "eval_batch_size"):     # once missing from the README
        assert f"| `{must}` |" in sections["cfg-measure"]


def test_config_notes_name_real_keys_the_schema_does_not_describe():
    ref = _reference()
    keys = set(ref.config_keys())
    from edgeprune.config import SweepConfig
    described = {}
    for path, model in ref._sections(SweepConfig):
        for name, field in model.model_fields.items():
            described[f"{path}.{name}" if path else name] = field.description
    for key in ref._notes():
        assert key in keys, f"docs/_gen/config_notes.yaml: {key!r} is not a config key (renamed?)"
        assert not described[key], (f"docs/_gen/config_notes.yaml: {key!r} now has a description in the schema; "
                                    "delete the note")


def test_cli_reference_lists_every_command_and_option():
    import argparse

    from edgeprune.cli import build_parser
    text = _reference().render_cli()
    parser = build_parser()
    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert subparsers, "build_parser() has no subcommands"
    names = [n for a in subparsers for n in a.choices]
    assert {"sweep", "report", "recommend", "deploy"} <= set(names)
    for a in subparsers:
        for name, sub in a.choices.items():
            head = f"### `edgeprune {name}`"
            assert head in text, f"command {name!r} missing from the CLI reference"
            section = text.split(head, 1)[1].split("\n### `edgeprune ", 1)[0]
            for action in sub._actions:
                for option in action.option_strings:
                    if option not in ("-h", "--help"):
                        assert f"`{option}`" in section, f"edgeprune {name} {option} missing from the reference"


def test_metrics_reference_lists_every_metric():
    from edgeprune.metrics import METRICS
    text = _reference().render_metrics()
    for key in METRICS:
        assert f"| `{key}` |" in text


def test_python_api_reference_points_at_the_functions():
    import importlib

    import edgeprune
    text = _reference().render_api()
    for name in _reference().API:
        obj = getattr(importlib.import_module(f"edgeprune.{edgeprune._LAZY[name]}"), name)
        assert f"::: {obj.__module__}.{obj.__qualname__}" in text


def _links(page: Path) -> list[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    return re.findall(r"!?\[[^\]]*\]\(([^)\s]+)\)", text)


@pytest.mark.parametrize("name", ["README.md", "DEVELOPERS.md"])
def test_relative_links_of_the_top_level_pages_resolve(name):
    page = ROOT / name
    links = [link for link in _links(page) if not re.match(r"[a-z]+:", link)]
    assert links, f"{name} links nowhere"
    for link in links:
        target = (page.parent / link.split("#", 1)[0]).resolve()
        assert target.exists(), f"{name}: the link {link!r} leads nowhere"
    assert name != "README.md" or any(link.startswith("docs/assets/") for link in links), "README has no picture"


@pytest.mark.slow
def test_the_python_example_runs():
    """The prune_model example of docs/how-to/own-model.md, as written."""
    text = (DOCS / "how-to" / "own-model.md").read_text(encoding="utf-8")
    code = next(m.group("body") for m in FENCE.finditer(text) if "prune_model(" in m.group("body"))
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        exec(compile(code, "own-model.md", "exec"), {})
    finally:
        torch.set_num_threads(threads)


@pytest.mark.slow
def test_the_site_builds_strict(tmp_path):
    missing = [m for m in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python") if not _has(m)]
    if missing:
        reason = f"the docs extra is not installed ({', '.join(missing)}): python3 -m pip install -e '.[docs]'"
        print(reason)
        pytest.skip(reason)
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
                           "-d", str(site)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    for page in ("reference/config", "reference/cli", "reference/metrics", "reference/python-api",
                 "tutorial/quickstart", "how-to/runtimes", "explanation/latency", "develop/layout"):
        assert (site / page / "index.html").is_file(), f"{page} was not built"
    config_page = (site / "reference" / "config" / "index.html").read_text(encoding="utf-8")
    assert "latency_input_size" in config_page and "eval_batch_size" in config_page
    assert "load_config" in (site / "reference" / "python-api" / "index.html").read_text(encoding="utf-8")


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False
