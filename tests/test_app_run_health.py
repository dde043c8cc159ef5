"""Flagged runs (issue #21): a warning badge in the run pickers and on the Experiments page,
from hand-written run folders (no training)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

import store

APP = Path(__file__).resolve().parents[1] / "app" / "Home.py"
TIMEOUT = 60
COLLAPSE = "predictions collapse to one class: 100% of 28 validation images predicted 'def_front'"


@pytest.fixture
def runs_on_disk():
    """A flagged classifier, a sound one, and one from before the guard rails existed."""
    from classification.models import build_model

    model = build_model("simple_cnn", 2, 32)
    for name, health in (
        ("collapsed", store.health_record([COLLAPSE], {"mode_gap": 0.02})),
        ("sound", store.health_record([], {"mode_gap": 0.01})),
        ("older", None),
    ):
        info = {"kind": "classifier", "class_names": ["ok_front", "def_front"], "model": "x"}
        info["summary"] = {"accuracy": {"collapsed": 0.57, "sound": 0.95, "older": 0.9}[name]}
        if health is not None:
            info["health"] = health
        if name == "sound":
            info["mask_supervision"] = {"masked": 92, "layer": "last_conv", "grid": [16, 16]}
        elif name == "collapsed":
            info["mask_supervision"] = None
        run_dir = store.create_run_dir(name)
        store.save_model(run_dir, model)  # pages that open a run load its model
        info.update(img_size=32, preprocess={"size": 32, "crop": 1.0, "clahe": False})
        info.update(normal_class="ok_front", cam_layer="last_conv", model="simple_cnn")
        store.write_run_info(run_dir, info)


def _experiments() -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    at.switch_page("views/experiments.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_experiments_marks_the_flagged_run_and_says_why(runs_on_disk):
    at = _experiments()
    table = at.dataframe[0].value.set_index("run")
    assert table.loc["collapsed", "health"] == "⚠️ flagged"
    assert table.loc["sound", "health"] == "ok"
    # How each run was trained: with defect masks, on labels alone, or from before --masks.
    assert table.loc["sound", "masks"] == "92 masked, last_conv"
    assert table.loc["collapsed", "masks"] == "labels only"
    assert pd.isna(table.loc["older", "masks"])
    warnings = [w.value for w in at.warning if "is flagged" in w.value]
    assert len(warnings) == 1
    assert "collapsed" in warnings[0] and COLLAPSE in warnings[0]


def test_run_pickers_badge_only_the_flagged_run(runs_on_disk):
    at = _experiments()
    options = at.multiselect(key="experiments_runs_classifier").options
    assert sorted(options) == sorted(["⚠️ collapsed", "sound", "older"])
    at.multiselect(key="experiments_runs_classifier").set_value(["sound"]).run()
    assert not [w for w in at.warning if "is flagged" in w.value]  # none flagged among them


def _picker_page() -> None:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path.cwd() / "app"))
    from ui.sidebar import pick_run

    pick_run("classifier")


def test_the_single_run_picker_badges_and_explains_a_flagged_run(runs_on_disk):
    at = AppTest.from_function(_picker_page, default_timeout=TIMEOUT).run()
    assert not at.exception, [e.value for e in at.exception]
    picker = at.sidebar.selectbox(key="run_classifier")
    assert "⚠️ collapsed" in picker.options and "sound" in picker.options
    assert picker.value == "sound"  # the best run, not flagged
    assert not [w for w in at.sidebar.warning if "is flagged" in w.value]
    picker.set_value("collapsed").run()
    assert COLLAPSE in at.sidebar.warning[0].value
