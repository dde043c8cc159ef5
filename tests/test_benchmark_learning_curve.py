"""benchmarks/learning_curve.py on a toy scale: JSON rows, summary per size, resume, plot."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import cv2
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "learning_curve.py"


@pytest.fixture(scope="module")
def learning_curve():
    spec = importlib.util.spec_from_file_location("learning_curve", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_summary_gives_mean_spread_and_flags_per_size_and_masks(learning_curve):
    runs = [
        {"parts": 120, "test_accuracy": 0.8, "warnings": []},  # before --masks: labels only
        {"parts": 120, "test_accuracy": 0.9, "warnings": ["collapse"], "masks": "off"},
        {"parts": 240, "test_accuracy": 0.95, "warnings": []},
        {"parts": 120, "test_accuracy": 0.97, "warnings": [], "masks": "auto"},
    ]
    rows = learning_curve.summarize(runs)
    assert [(r["masks"], r["parts"]) for r in rows] == [("off", 120), ("off", 240), ("auto", 120)]
    assert rows[0] == {
        "masks": "off",
        "parts": 120,
        "runs": 2,
        "mean": 0.85,
        "std": pytest.approx(0.0707, abs=1e-4),
        "min": 0.8,
        "max": 0.9,
        "flagged": 1,
    }
    assert rows[1]["std"] is None and rows[1]["mean"] == 0.95
    assert rows[2]["mean"] == 0.97 and rows[2]["runs"] == 1


@pytest.mark.slow  # trains toy runs
def test_toy_curve_writes_json_and_plot_and_resumes(learning_curve, tmp_path, capsys):
    out, plot = tmp_path / "curve.json", tmp_path / "curve.png"
    argv = [
        "--sizes",
        "24",
        "32",
        "--seeds",
        "0",
        "--epochs",
        "1",
        "--img-size",
        "32",
        "--min-steps",
        "0",
        "--data-root",
        str(tmp_path / "data"),
        "--out",
        str(out),
        "--plot",
        str(plot),
    ]
    assert learning_curve.main(argv) == 0
    results = json.loads(out.read_text())
    assert [(r["parts"], r["seed"], r["masks"]) for r in results["runs"]] == [
        (24, 0, "auto"),
        (32, 0, "auto"),
    ]
    # The synthetic sets have masks and under 500 training images: auto supervises with them.
    assert all(r["mask_supervised"] for r in results["runs"])
    assert all(0.0 <= r["test_accuracy"] <= 1.0 for r in results["runs"])
    assert [r["parts"] for r in results["summary"]] == [24, 32]
    assert set(results["load_average"]) == {"before", "after"}
    assert cv2.imread(str(plot)).shape == (420, 720, 3)
    table = capsys.readouterr().out
    assert "masks  parts runs   mean" in table and "load average before" in table
    # A second call finds both points done and trains nothing.
    assert learning_curve.main(argv) == 0
    assert len(json.loads(out.read_text())["runs"]) == 2
    assert "test accuracy" not in capsys.readouterr().out.split("parts runs")[0]
    # --masks off is another curve: trained anew, next to the first.
    assert learning_curve.main([*argv, "--sizes", "24", "--masks", "off"]) == 0
    results = json.loads(out.read_text())
    assert [r["masks"] for r in results["runs"]] == ["auto", "auto", "off"]
    assert not results["runs"][-1]["mask_supervised"]
    assert [(r["masks"], r["parts"]) for r in results["summary"]] == [
        ("off", 24),
        ("auto", 24),
        ("auto", 32),
    ]


def test_too_small_a_set_is_refused_in_one_line(learning_curve, capsys):
    assert learning_curve.main(["--sizes", "10"]) == 2
    assert capsys.readouterr().err.strip() == "error: --sizes: every set needs at least 20 parts"
