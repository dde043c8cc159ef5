"""docs/cli.md is generated from the parsers themselves, so --help and the docs never disagree.

Regenerate after changing a CLI:  UPDATE_CLI_DOCS=1 python -m pytest tests/test_cli_reference.py
(or `make docs`).
"""

from __future__ import annotations

import argparse
import importlib
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "cli.md"
WIDTH = "100"

# (command as a user types it, module, what it is for)
COMMANDS = [
    ("python -m synthetic", "synthetic.__main__", "synthetic data sets"),
    ("python classification/train.py", "classification.train", "train a classifier run"),
    ("python -m classification.preview", "classification.preview", "augmentation recipes"),
    ("python classification/predict.py", "classification.predict", "batch prediction"),
    ("python classification/threshold.py", "classification.threshold", "re-choose a threshold"),
    ("python -m classification.boxhead", "classification.boxhead", "box head on defect masks"),
    ("python anomaly/train.py", "anomaly.train", "train an anomaly detector on good parts"),
    ("python anomaly/predict.py", "anomaly.predict", "anomaly scores and maps"),
    ("python -m anomaly.evaluate", "anomaly.evaluate", "anomaly metrics against masks"),
    ("python meltingtank/train.py", "meltingtank.train", "train the melting-tank LSTM"),
    ("python meltingtank/predict.py", "meltingtank.predict", "NG probability per reading"),
    ("python -m explain.evaluate", "explain.evaluate", "heatmap metrics against masks"),
    ("python -m explain.study", "explain.study", "recipes compared over training seeds"),
    ("python -m inspection", "inspection.__main__", "score a batch or an archive"),
    ("python -m inspection.ray_pool", "inspection.ray_pool", "list or stop standing Ray pools"),
    ("python -m inspection.report", "inspection.report", "audit-ready HTML report"),
    ("python -m serve", "serve.__main__", "the line service"),
]


def _parsers(module_name: str, command: str) -> list[tuple[str, argparse.ArgumentParser]]:
    module = importlib.import_module(module_name)
    if module_name == "synthetic.__main__":
        parser = module.build_parser(["melting"])
        subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        found = [(command, parser)]
        for name, sub in subs.choices.items():
            sub.prog = f"{command} {name}"
            found.append((f"{command} {name}", sub))
        return found
    parser = module.build_parser()
    parser.prog = command
    return [(command, parser)]


def render() -> str:
    """The whole reference as Markdown: one section per command, its --help verbatim."""
    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = WIDTH
    try:
        lines = [
            "# Command-line reference",
            "",
            "Generated from the parsers by `tests/test_cli_reference.py` (`make docs`); a test",
            "fails when a CLI changes and this file does not. Every CLI answers bad input with one",
            "line on stderr and exit code 2 ([bad-input.md](bad-input.md)).",
            "",
            "| command | for |",
            "|---|---|",
        ]
        lines += [f"| `{command}` | {purpose} |" for command, _, purpose in COMMANDS]
        for command, module_name, _ in COMMANDS:
            for title, parser in _parsers(module_name, command):
                lines += ["", f"## `{title}`", "", "```text", parser.format_help().rstrip(), "```"]
        return "\n".join(lines) + "\n"
    finally:
        if previous is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = previous


def test_cli_reference_matches_the_parsers():
    text = render()
    if os.environ.get("UPDATE_CLI_DOCS"):
        DOC.write_text(text, encoding="utf-8")
    assert DOC.exists(), "docs/cli.md is missing: run `make docs`"
    if DOC.read_text(encoding="utf-8") != text:
        pytest.fail("docs/cli.md is out of date with the CLIs' --help: run `make docs`")


def test_every_cli_module_is_in_the_reference():
    listed = {module for _, module, _ in COMMANDS}
    shells = {
        f"{p.parent.name}.{p.stem}"
        for p in ROOT.glob("*/*.py")
        if p.stem in {"train", "predict", "evaluate", "report", "threshold", "__main__"}
        and p.parent.name not in {"tests", "benchmarks", "app"}
    }
    assert shells <= listed, f"add these CLIs to COMMANDS: {sorted(shells - listed)}"
