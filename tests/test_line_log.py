"""LineLog.record_parts: a micro-batch in one transaction answers exactly as record_part would
(items, duplicates, alerts and their order), on SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest
from serve_runs import part_png

from store.line import LineLog, PartRecord
from store.review import ReviewError

RISKS = [0.9, 0.2, 0.85, 0.1]


def predictions(risk: float) -> dict:
    return {
        "predicted_class": "def_front" if risk >= 0.5 else "ok_front",
        "defect_probability": risk,
        "risk_score": risk,
        "classifier_run": "demo_flip",
    }


def parts(offset: int = 0) -> list[PartRecord]:
    return [
        PartRecord(f"p{i + offset}.png", part_png(i + offset), predictions(risk))
        for i, risk in enumerate(RISKS)
    ]


def test_a_batch_lands_like_parts_one_by_one(review_url, tmp_path):
    with LineLog(review_url, tmp_path / "a") as log:
        placed = log.record_parts("L1", parts(), alert_threshold=0.8)
    with LineLog(review_url, tmp_path / "a") as log:  # what a second process reads back
        items = log.items(placed[0].batch_id)
        alerts = log.alerts_since(0)
        stored = [log.image_path(p.item_id).read_bytes() for p in placed]
    assert [p.duplicate for p in placed] == [False] * 4
    assert list(items.item_id) == [p.item_id for p in placed]
    assert list(items.file_name) == [f"p{i}.png" for i in range(4)]
    assert list(items.risk_score) == pytest.approx(RISKS)
    # Alerts for the two parts at risk >= 0.8, in part order, with their messages returned.
    assert [p.alert_seq is not None for p in placed] == [True, False, True, False]
    assert [a["seq"] for a in alerts] == [placed[0].alert_seq, placed[2].alert_seq]
    assert placed[0].alert_seq < placed[2].alert_seq
    assert [p.alert for p in placed if p.alert] == alerts
    assert alerts[0]["file_name"] == "p0.png" and alerts[1]["risk_score"] == pytest.approx(0.85)
    assert stored == [part_png(i) for i in range(4)]


def test_repeats_in_a_batch_and_across_batches_are_stored_and_alert_once(review_url, tmp_path):
    with LineLog(review_url, tmp_path / "b") as log:
        first = log.record_parts("L1", parts()[:1], alert_threshold=0.8)
        again = log.record_parts("L1", [*parts()[:1], *parts(10)[:1], *parts(10)[:1]], 0.8)
        items = log.items(first[0].batch_id)
        alerts = log.alerts_since(0)
    assert [p.duplicate for p in again] == [True, False, True]
    assert again[0].item_id == first[0].item_id and again[2].item_id == again[1].item_id
    assert again[0].alert_seq is None and again[2].alert_seq is None
    assert len(items) == 2 and len(alerts) == 2


def test_stations_get_their_own_batches_and_bad_input_stores_nothing(review_url, tmp_path):
    with LineLog(review_url, tmp_path / "c") as log:
        one = log.record_parts("L1", parts()[:1], 0.8)[0]
        two = log.record_parts("L2", parts()[1:2], 0.8)[0]
        assert one.batch_id != two.batch_id
        bad = [*parts(20)[:1], PartRecord("", b"x", predictions(0.1))]
        with pytest.raises(ReviewError, match="name"):
            log.record_parts("L1", bad, 0.8)
        with pytest.raises(ReviewError, match="station"):
            log.record_parts("bad station!", parts(30)[:1], 0.8)
        assert len(log.items(one.batch_id)) == 1
        assert log.record_parts("L1", [], 0.8) == []
