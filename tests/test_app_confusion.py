"""Experiments page: confusion matrices of every kind of run, in the current metrics.json record
and in the bare lists older runs stored, drawn from hand-written run folders (no training)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import store

APP = Path(__file__).resolve().parents[1] / "app" / "Home.py"
TIMEOUT = 60


def _run(name: str, info: dict, metrics: dict) -> None:
    run_dir = store.create_run_dir(name)
    store.write_run_info(run_dir, info)
    store.write_metrics(run_dir, metrics)


@pytest.fixture
def runs_on_disk():
    """A classifier, two autoencoders and two LSTMs (one of each in the older bare lists)."""
    _run(
        "clf",
        {"kind": "classifier", "class_names": ["ok_front", "def_front"]},
        {
            "confusion_matrix": store.confusion_record(
                [[155, 18], [37, 191]], ["ok_front", "def_front"], "def_front"
            )
        },
    )
    _run(
        "ae",
        {"kind": "autoencoder"},
        {
            "confusion_matrix": store.confusion_record(
                [[168, 5], [139, 89]], ["good", "defect"], "defect"
            )
        },
    )
    _run(
        "ae_old",
        {"kind": "autoencoder"},
        {
            "confusion_matrix": [[170, 3], [120, 108]],
            "confusion_labels": ["good", "defect"],
            "positive_class": "defect",
        },
    )
    _run(
        "lstm_new",
        {"kind": "lstm"},
        {"confusion_matrix": store.confusion_record([[493, 96], [463, 43939]], ["NG", "OK"], "NG")},
    )
    _run(
        "lstm_old",
        {"kind": "lstm"},
        {
            "confusion_matrix": [[381, 208], [206, 44196]],
            "labels": ["NG", "OK"],
            "positive_class": "NG",
        },
    )


def _figures(at: AppTest) -> dict[str, dict]:
    """Plotly figures on the page by title: {title: {"labels", "counts"}}."""
    found = {}
    for element in at.get("plotly_chart"):
        spec = json.loads(element.proto.spec)
        heatmap = spec["data"][0]
        if heatmap.get("type") != "heatmap":
            continue
        title = spec["layout"]["title"]["text"]
        counts = [[int(cell.split("<br>")[0]) for cell in row] for row in heatmap["text"]]
        found[title] = {"x": heatmap["x"], "y": heatmap["y"], "counts": counts}
    return found


def _experiments(kind: str) -> dict[str, dict]:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    at.switch_page("views/experiments.py").run()
    at.segmented_control(key="experiments_kind").set_value(kind).run()
    assert not at.exception, [e.value for e in at.exception]
    return _figures(at)


def test_experiments_draws_each_kinds_confusion_record(runs_on_disk):
    assert _experiments("classifier")["clf (positive: def_front)"] == {
        "x": ["ok_front", "def_front"],
        "y": ["ok_front", "def_front"],
        "counts": [[155, 18], [37, 191]],
    }
    autoencoders = _experiments("autoencoder")
    assert autoencoders["ae (positive: defect)"] == {
        "x": ["good", "defect"],
        "y": ["good", "defect"],
        "counts": [[168, 5], [139, 89]],
    }
    assert autoencoders["ae_old (positive: defect)"] == {
        "x": ["good", "defect"],
        "y": ["good", "defect"],
        "counts": [[170, 3], [120, 108]],
    }


def test_experiments_reads_current_and_older_lstm_runs_alike(runs_on_disk):
    figures = _experiments("lstm")
    assert figures["lstm_new (positive: NG)"]["counts"] == [[493, 96], [463, 43939]]
    assert figures["lstm_old (positive: NG)"]["counts"] == [[381, 208], [206, 44196]]
    for figure in figures.values():
        assert figure["x"] == figure["y"] == ["NG", "OK"]
