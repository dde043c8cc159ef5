"""The review log: round trip, append-only history, reopening, validation, exports and schema
migrations, on SQLite and on a real PostgreSQL server (the `review_url` fixture runs each test
once per backend; SQLite-only behaviour has its own tests)."""

import io
import json
import sqlite3

import pandas as pd
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from store import data_dir
from store.migrate import INITIAL_REVISION, alembic_config, head_revision
from store.review import DuplicateItem, ReviewError, ReviewLog, make_engine
from store.review_models import Base

PREDICTIONS = {
    "predicted_class": "def_front",
    "defect_probability": 0.92,
    "class_probabilities": {"def_front": 0.92, "ok_front": 0.08},
    "anomaly_score": 0.031,
    "anomaly_flag": True,
    "boxes": [(10, 20, 40, 60, 0.8), {"x_min": 100, "y_min": 100, "x_max": 120, "y_max": 130}],
    "risk_score": 0.95,
    "width": 300,
    "height": 300,
}


@pytest.fixture(autouse=True)
def no_shared_database(monkeypatch):
    monkeypatch.delenv("DEFECTLENS_DB_URL", raising=False)


@pytest.fixture
def log(review_url):
    with ReviewLog(review_url) as review_log:
        yield review_log


@pytest.fixture
def sqlite_log():
    with ReviewLog() as review_log:
        yield review_log


@pytest.fixture
def batch(log):
    return log.create_batch("shift 7", classifier_run="cnn-baseline", autoencoder_run="ae-1")


def test_default_database_lives_in_the_data_folder_in_wal_mode(sqlite_log):
    path = data_dir() / "review.db"
    assert path.exists()
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_every_connection_gets_busy_timeout_and_foreign_keys(sqlite_log):
    with sqlite_log.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_item_round_trip_keeps_predictions_and_runs(log, batch):
    item = log.add_item(batch, "part_001.png", b"png-bytes", PREDICTIONS)
    row = log.items(batch).iloc[0]
    assert row.item_id == item and row.file_name == "part_001.png"
    assert row.predicted_class == "def_front" and row.defect_probability == 0.92
    assert row.class_probabilities == {"def_front": 0.92, "ok_front": 0.08}
    assert row.anomaly_flag is True or row.anomaly_flag == 1
    assert row.boxes[0] == {"x_min": 10, "y_min": 20, "x_max": 40, "y_max": 60, "score": 0.8}
    assert row.classifier_run == "cnn-baseline" and row.autoencoder_run == "ae-1"
    assert pd.isna(row.verdict) and row.n_decisions == 0


def test_image_copy_is_content_addressed_and_shared(log, batch):
    other = log.create_batch("shift 8")
    first = log.add_item(batch, "a.png", b"same bytes")
    second = log.add_item(other, "b.png", b"same bytes")
    path = log.image_path(first)
    assert path == log.image_path(second)
    assert path.read_bytes() == b"same bytes"
    assert path.parent.name == path.stem[:2] and path.suffix == ".png"
    assert path.is_relative_to(data_dir() / "review_images")


def test_duplicate_in_a_batch_is_reported_not_added(log, batch):
    first = log.add_item(batch, "a.png", b"same bytes")
    duplicate = log.add_item(batch, "copy_of_a.png", b"same bytes")
    assert isinstance(duplicate, DuplicateItem)
    assert duplicate.item_id == first
    assert "copy_of_a.png" in duplicate.message and "a.png" in duplicate.message
    assert len(log.items(batch)) == 1


def test_failed_item_is_stored_with_its_error(log, batch):
    log.add_item(batch, "broken.png", b"\x89PNG", {"error": "broken.png: truncated file"})
    row = log.items(batch).iloc[0]
    assert row.error == "broken.png: truncated file" and pd.isna(row.predicted_class)


def test_latest_decision_wins_and_history_is_kept_in_order(log, batch):
    item = log.add_item(batch, "a.png", b"a")
    log.record_decision(item, "unsure", "ana")
    log.record_decision(item, "confirmed_defect", "ana", defect_type="blowhole", comment="rim")
    log.record_decision(item, "false_alarm", "ben", comment="dust")
    row = log.items(batch).iloc[0]
    assert (row.verdict, row.reviewer, row.comment) == ("false_alarm", "ben", "dust")
    assert row.n_decisions == 3
    history = log.history(item)
    assert list(history.verdict) == ["unsure", "confirmed_defect", "false_alarm"]
    assert history.created.is_monotonic_increasing
    assert history.created.iloc[0].tzinfo is not None
    assert history.defect_type.iloc[1] == "blowhole"


def test_timestamps_keep_microseconds(log, batch):
    item = log.add_item(batch, "a.png", b"a")
    for _ in range(3):
        log.record_decision(item, "ok", "ana")
    created = log.history(item).created
    assert created.is_unique
    assert any(t.microsecond != 0 for t in created)


def test_reopening_restores_items_and_latest_decisions(batch, log):
    items = [log.add_item(batch, f"p{i}.png", bytes([i]), PREDICTIONS) for i in range(3)]
    log.record_decision(items[0], "ok", "ana")
    log.record_decision(items[0], "unsure", "ana")
    log.record_decision(items[2], "confirmed_defect", "ben", defect_type="burr")
    before = log.items(batch)
    log.close()
    with ReviewLog(log.url) as reopened:
        after = reopened.items(batch)
        assert reopened.batches().batch_id.tolist() == [batch]
    pd.testing.assert_frame_equal(before, after)
    assert after.verdict.iloc[0] == "unsure" and after.verdict.iloc[2] == "confirmed_defect"
    assert pd.isna(after.verdict.iloc[1])


def test_batches_list_counts_items_and_reviewed(log, batch):
    a = log.add_item(batch, "a.png", b"a")
    log.add_item(batch, "b.png", b"b")
    log.record_decision(a, "ok", "ana")
    log.record_decision(a, "ok", "ana")
    newer = log.create_batch("shift 9", reviewer="ben")
    frame = log.batches()
    assert frame.batch_id.tolist() == [newer, batch]
    row = frame.set_index("batch_id").loc[batch]
    assert (row.n_items, row.n_reviewed, row.status) == (2, 1, "open")


def test_batch_status_can_be_closed(log, batch):
    log.set_batch_status(batch, "closed")
    assert log.batch(batch)["status"] == "closed"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"verdict": "maybe", "reviewer": "ana"}, "verdict"),
        ({"verdict": "ok", "reviewer": "  "}, "reviewer"),
        ({"verdict": "ok", "reviewer": None}, "reviewer"),
        ({"verdict": "ok", "reviewer": "ana", "comment": 3}, "comment"),
    ],
)
def test_bad_decisions_name_the_field(log, batch, kwargs, field):
    item = log.add_item(batch, "a.png", b"a")
    with pytest.raises(ReviewError, match=f"^{field}:") as info:
        log.record_decision(item, **kwargs)
    assert info.value.field == field
    assert log.history(item).empty


def test_decision_on_unknown_item_is_refused(log):
    with pytest.raises(ReviewError, match="item_id: no review item with id 99"):
        log.record_decision(99, "ok", "ana")


@pytest.mark.parametrize(
    ("predictions", "field"),
    [
        ({"predicted_clas": "x"}, "predictions"),
        ({"defect_probability": "high"}, "defect_probability"),
        ({"boxes": [(1, 2, 3)]}, "boxes"),
        ({"class_probabilities": [0.1, 0.9]}, "class_probabilities"),
    ],
)
def test_bad_predictions_name_the_field(log, batch, predictions, field):
    with pytest.raises(ReviewError, match=f"^{field}:"):
        log.add_item(batch, "a.png", b"a", predictions)


def test_item_for_unknown_batch_is_refused(log):
    with pytest.raises(ReviewError, match="batch_id: no review batch"):
        log.add_item(42, "a.png", b"a")


@pytest.mark.parametrize(
    "statement",
    ["UPDATE review_decisions SET verdict='unsure'", "DELETE FROM review_decisions"],
)
def test_database_refuses_to_change_or_delete_decisions(log, batch, statement):
    item = log.add_item(batch, "a.png", b"a")
    log.record_decision(item, "ok", "ana")
    with pytest.raises(DBAPIError, match="append-only"), log.engine.begin() as conn:
        conn.exec_driver_sql(statement)
    assert log.history(item).verdict.tolist() == ["ok"]


def test_csv_export_matches_the_items(log, batch):
    a = log.add_item(batch, "a.png", b"a", PREDICTIONS)
    log.add_item(batch, "b.png", b"b", {"predicted_class": "ok_front", "defect_probability": 0.1})
    log.record_decision(a, "unsure", "ana")
    log.record_decision(a, "confirmed_defect", "ana", defect_type="blowhole", comment="two, pits")
    buffer = io.StringIO()
    assert log.export_csv(batch, buffer) == 2
    exported = pd.read_csv(io.StringIO(buffer.getvalue()))
    items = log.items(batch)
    assert exported.item_id.tolist() == items.item_id.tolist()
    assert exported.file_name.tolist() == ["a.png", "b.png"]
    assert exported.verdict.iloc[0] == "confirmed_defect" and pd.isna(exported.verdict.iloc[1])
    assert exported.comment.iloc[0] == "two, pits"
    assert exported.n_decisions.tolist() == [2, 0]
    assert pd.Timestamp(exported.decided_at.iloc[0]) == items.decided_at.iloc[0]
    assert pd.isna(exported.decided_at.iloc[1])
    assert json.loads(exported.boxes.iloc[0]) == items.boxes.iloc[0]
    assert exported.defect_probability.tolist() == pytest.approx([0.92, 0.1])


def test_csv_export_writes_to_a_path(log, batch, tmp_path):
    log.add_item(batch, "a.png", b"a")
    log.export_csv(batch, tmp_path / "batch.csv")
    assert pd.read_csv(tmp_path / "batch.csv").file_name.tolist() == ["a.png"]


def _check_coco(coco):
    assert set(coco) >= {"info", "images", "annotations", "categories"}
    image_ids = {image["id"] for image in coco["images"]}
    category_ids = {category["id"] for category in coco["categories"]}
    assert len(image_ids) == len(coco["images"])
    for image in coco["images"]:
        assert {"id", "file_name", "width", "height"} <= set(image)
    for ann in coco["annotations"]:
        assert ann["image_id"] in image_ids and ann["category_id"] in category_ids
        x, y, w, h = ann["bbox"]
        assert w > 0 and h > 0 and ann["area"] == w * h and ann["iscrowd"] == 0
    json.dumps(coco)


def test_coco_export_of_reviewed_items(log, batch):
    defect = log.add_item(batch, "a.png", b"a", PREDICTIONS)
    false_alarm = log.add_item(batch, "b.png", b"b", PREDICTIONS)
    log.add_item(batch, "c.png", b"c", PREDICTIONS)
    unsure = log.add_item(batch, "d.png", b"d", PREDICTIONS)
    log.record_decision(defect, "confirmed_defect", "ana", defect_type="blowhole")
    log.record_decision(false_alarm, "false_alarm", "ana")
    log.record_decision(unsure, "unsure", "ana")
    coco = log.export_coco(batch)
    _check_coco(coco)
    assert [image["id"] for image in coco["images"]] == [defect, false_alarm]
    assert coco["images"][0]["width"] == 300 and coco["images"][0]["verdict"] == "confirmed_defect"
    assert (log.images_dir / coco["images"][0]["file_name"]).read_bytes() == b"a"
    assert [c["name"] for c in coco["categories"]] == ["blowhole"]
    assert [a["image_id"] for a in coco["annotations"]] == [defect, defect]
    assert coco["annotations"][0]["bbox"] == [10, 20, 30, 40]


def test_coco_export_of_predicted_boxes(log, batch):
    log.add_item(batch, "a.png", b"a", PREDICTIONS)
    labelled = {
        **PREDICTIONS,
        "boxes": [{"x_min": 0, "y_min": 0, "x_max": 5, "y_max": 5, "label": "burr"}],
    }
    log.add_item(batch, "b.png", b"b", labelled)
    log.add_item(batch, "bad.png", b"c", {"error": "bad.png: not an image"})
    coco = log.export_coco(batch, boxes="predicted")
    _check_coco(coco)
    assert len(coco["images"]) == 2 and len(coco["annotations"]) == 3
    assert {c["name"] for c in coco["categories"]} == {"def_front", "burr"}
    assert coco["annotations"][0]["score"] == 0.8


def test_coco_export_refuses_an_unknown_box_source(log, batch):
    with pytest.raises(ReviewError, match="^boxes:"):
        log.export_coco(batch, boxes="everything")


def test_db_url_environment_variable_chooses_the_database(monkeypatch, tmp_path):
    monkeypatch.setenv("DEFECTLENS_DB_URL", f"sqlite:///{tmp_path / 'team' / 'shared.db'}")
    with ReviewLog() as log:
        log.create_batch("shared")
    assert (tmp_path / "team" / "shared.db").exists()
    assert not (data_dir() / "review.db").exists()


def test_migrations_make_exactly_the_models_schema(log):
    with log.engine.connect() as conn:
        context = MigrationContext.configure(conn)
        assert context.get_current_revision() == head_revision()
        assert compare_metadata(context, Base.metadata) == []


def test_database_made_before_migrations_is_stamped_and_upgraded(review_url):
    engine = make_engine(review_url)
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), INITIAL_REVISION)
        conn.execute(text("DROP TABLE alembic_version"))
        conn.execute(
            text(
                "INSERT INTO review_batches (name, created, status) "
                "VALUES ('old', CURRENT_TIMESTAMP, 'open')"
            )
        )
    engine.dispose()
    with ReviewLog(review_url) as log:
        assert log.batches().name.tolist() == ["old"]
        assert log.batch(1)["station"] is None
        with log.engine.connect() as conn:
            assert MigrationContext.configure(conn).get_current_revision() == head_revision()


def test_missing_values_from_a_dataframe_row_are_stored_as_missing(log, batch):
    row = pd.DataFrame(
        {"predicted_class": [pd.NA], "anomaly_score": [float("nan")], "anomaly_flag": [None]}
    ).astype({"predicted_class": "string"})
    log.add_item(batch, "a.png", b"a", row.iloc[0].to_dict())
    item = log.items(batch).iloc[0]
    assert pd.isna(item.predicted_class) and pd.isna(item.anomaly_score)


def test_threads_sharing_one_log_lose_no_decision(log, batch):
    from concurrent.futures import ThreadPoolExecutor

    item = log.add_item(batch, "a.png", b"a")
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda n: log.record_decision(item, "ok", f"t{n % 4}"), range(40)))
    assert len(log.history(item)) == 40
