"""Line Monitor page in AppTest: the review log's line traffic as tiles, rate and alert feed."""

from __future__ import annotations

from pathlib import Path

import pytest
from serve_runs import part_png
from streamlit.testing.v1 import AppTest

from store.line import LineLog

APP = Path(__file__).resolve().parents[1] / "app" / "Home.py"
PAGE = "views/line_monitor.py"
TIMEOUT = 120


@pytest.fixture(autouse=True)
def sqlite_log(monkeypatch):
    monkeypatch.delenv("DEFECTLENS_DB_URL", raising=False)


def open_page() -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    at.switch_page(PAGE).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def seed() -> list[int]:
    """Three parts of station L1 (risks 0.9, 0.2, 0.7) and one of L2; alerts at risk >= 0.8."""
    seqs = []
    with LineLog() as log:
        for i, (station, risk) in enumerate([("L1", 0.9), ("L1", 0.2), ("L1", 0.7), ("L2", 0.1)]):
            predictions = {
                "predicted_class": "def_front" if risk >= 0.5 else "ok_front",
                "defect_probability": risk,
                "risk_score": risk,
                "classifier_run": "gone_run",
            }
            part = log.record_part(station, f"p{i}.png", part_png(i), predictions, 0.8)
            seqs.append(part.alert_seq)
    return seqs


def test_empty_review_log_says_how_to_get_traffic():
    at = open_page()
    assert any("No line traffic yet" in info.value for info in at.info)


def test_parts_rate_and_alerts_are_shown():
    seqs = seed()
    assert [s is not None for s in seqs] == [True, False, False, False]
    at = open_page()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Parts, latest hour"] == "4"
    assert metrics["Defect rate, latest hour"] == "50.0%"
    assert metrics["Alerts, last 24 h"] == "1"
    captions = [c.value for c in at.caption if "risk" in c.value]
    assert len(captions) == 4 and captions[0].startswith("**ok_front** · risk 0.10 · L2")
    alerts = at.dataframe[0].value
    assert alerts.seq.tolist() == [seqs[0]] and alerts.file_name.tolist() == ["p0.png"]


def test_station_filter_shows_one_station():
    seed()
    at = open_page()
    at.sidebar.selectbox(key="line_station").select("L2").run()
    captions = [c.value for c in at.caption if "risk" in c.value]
    assert len(captions) == 1 and "L2" in captions[0]
    assert {m.label: m.value for m in at.metric}["Alerts, last 24 h"] == "0"
