"""Batch Review page: triage filters, and an AppTest flow from upload to restored decisions.

The flow uploads real files through the page's file uploader, scores them with tiny runs
trained by the domain train functions (`build_tiny_runs`), records decisions, then opens a
fresh AppTest session (a reload) and finds everything restored from the review log.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest
from test_inspection import build_tiny_runs

from store.review import ReviewLog

APP_DIR = Path(__file__).resolve().parents[1] / "app"
APP = APP_DIR / "Home.py"
PAGE = "views/batch_review.py"
TIMEOUT = 180

sys.path.insert(0, str(APP_DIR))
from ui.batch_table import (  # noqa: E402
    Filters,
    apply_filters,
    item_label,
    neighbours,
    triage_table,
)

# ---------------------------------------------------------------- triage table (no Streamlit)


def items_frame() -> pd.DataFrame:
    rows = [
        # item, class, p(defect), anomaly score, flag, risk, error, verdict
        (1, "ok_front", 0.10, 0.02, False, 0.30, None, None),
        (2, "def_front", 0.90, 0.01, False, 0.90, None, "confirmed_defect"),
        (3, "ok_front", 0.20, 0.09, True, 0.70, None, None),
        (4, None, None, None, None, None, "bad.png: not an image", None),
        (5, "def_front", 0.60, None, None, 0.60, None, None),
    ]
    frame = pd.DataFrame(
        rows,
        columns=[
            "item_id",
            "predicted_class",
            "defect_probability",
            "anomaly_score",
            "anomaly_flag",
            "risk_score",
            "error",
            "verdict",
        ],
    )
    frame["file_name"] = [f"p{i}.png" for i in frame["item_id"]]
    frame["boxes"] = [[], [{"x_min": 1, "y_min": 1, "x_max": 5, "y_max": 5}], [], None, []]
    return frame


def test_triage_puts_the_riskiest_first_and_leaves_unreadable_out():
    table = triage_table(items_frame(), "ok_front")
    assert list(table["item_id"]) == [2, 3, 5, 1]
    assert list(table["n_boxes"]) == [1, 0, 0, 0]


def test_disagreement_needs_an_autoencoder_verdict():
    table = triage_table(items_frame(), "ok_front").set_index("item_id")
    assert table.loc[2, "disagree"] and table.loc[3, "disagree"]
    assert not table.loc[1, "disagree"] and not table.loc[5, "disagree"]


def test_filters_combine_and_ranges_keep_items_without_that_score():
    table = triage_table(items_frame(), "ok_front")
    assert list(apply_filters(table, Filters(disagree_only=True))["item_id"]) == [2, 3]
    assert list(apply_filters(table, Filters(classes=("ok_front",)))["item_id"]) == [3, 1]
    narrow = Filters(anomaly_score=(0.05, 0.1))
    assert list(apply_filters(table, narrow)["item_id"]) == [3, 5]
    assert list(apply_filters(table, Filters(risk=(0.5, 0.8)))["item_id"]) == [3, 5]
    assert list(apply_filters(table, Filters(review="reviewed"))["item_id"]) == [2]
    assert list(apply_filters(table, Filters(review="unreviewed"))["item_id"]) == [3, 5, 1]


def test_previous_and_next_follow_the_filtered_order():
    assert neighbours([7, 3, 9], 3) == (7, 9)
    assert neighbours([7, 3, 9], 7) == (None, 3)
    assert neighbours([7, 3, 9], 9) == (3, None)
    assert neighbours([7, 3, 9], 42) == (None, 7)


def test_item_label_shows_risk_and_verdict():
    row = triage_table(items_frame(), "ok_front").iloc[0]
    assert item_label(row) == "p2.png · risk 0.90 · Confirm defect"


# ---------------------------------------------------------------- the page in AppTest


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_runs(tmp_path_factory.mktemp("batch_review"))


@pytest.fixture
def review_env(tiny, monkeypatch, tmp_path):
    monkeypatch.setenv("DEFECTLENS_WEIGHTS", str(tiny["weights"]))
    monkeypatch.setenv("DEFECTLENS_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("DEFECTLENS_DB_URL", raising=False)
    return tmp_path


def open_batch_review() -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    at.switch_page(PAGE).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def uploads(tiny, n: int) -> list[tuple[str, bytes, str]]:
    paths = sorted(tiny["images"].rglob("*.png"))[:n]
    return [(p.name, p.read_bytes(), "image/png") for p in paths]


def zip_of(files: list[tuple[str, bytes, str]]) -> bytes:
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data, _ in files:
            zf.writestr(f"shift/{name}", data)
        zf.writestr("../escape.png", files[0][1])
    return buffer.getvalue()


@pytest.mark.slow
@pytest.mark.xdist_group("batch_review_app")
def test_upload_review_reload_and_export(tiny, review_env):
    files = uploads(tiny, 6)
    at = open_batch_review()
    assert at.selectbox(key="batch_id").value == 0  # no batch yet: the upload form
    at.text_input(key="batch_reviewer").set_value("alice")
    at.text_input(key="batch_new_name").set_value("shift 7")
    at.file_uploader[0].set_value(
        [
            *files[:4],
            ("more.zip", zip_of(files[4:]), "application/zip"),
            ("broken.png", b"\x89PNG\r\n\x1a\n garbage", "image/png"),
            ("again.png", files[0][1], "image/png"),
        ]
    )
    at.run()
    at.button(key="batch_score").click().run()
    assert not at.exception, [e.value for e in at.exception]

    assert "Stored 6 scored images and 1 unreadable files" in at.success[0].value
    messages = at.expander[0].markdown[0].value
    assert "again.png: same image as" in messages and "escape.png" in messages
    assert "broken.png" in at.expander[1].dataframe[0].value["file_name"].tolist()
    table = at.dataframe[1].value
    assert len(table) == 6 and table["risk_score"].is_monotonic_decreasing
    with ReviewLog() as review:
        batch_id = int(review.batches()["batch_id"].iloc[0])
    assert at.selectbox(key="batch_id").value == batch_id

    # Review the two riskiest parts: record, then record-and-next.
    first = at.selectbox(key="batch_item").value
    at.radio(key=f"batch_verdict_{first}").set_value("confirmed_defect")
    at.selectbox(key=f"batch_type_{first}").set_value("blowhole")
    at.text_input(key=f"batch_comment_{first}").set_value("clear pore at the hub")
    at.button(key=f"FormSubmitter:batch_decision_{first}-Record and next").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.success[-1].value.startswith("Recorded “Confirm defect” for")
    second = at.selectbox(key="batch_item").value
    assert second == int(table["item_id"].iloc[1])
    at.radio(key=f"batch_verdict_{second}").set_value("false_alarm")
    at.button(key=f"FormSubmitter:batch_decision_{second}-Record decision").click().run()
    at.radio(key=f"batch_verdict_{second}").set_value("ok")
    at.button(key=f"FormSubmitter:batch_decision_{second}-Record decision").click().run()
    assert not at.exception, [e.value for e in at.exception]
    history = [d.value for d in at.dataframe if "decision_id" in d.value.columns]
    assert list(history[0]["verdict"]) == ["False alarm", "OK"]

    # Reload: a fresh session reopens the batch with every decision restored.
    at = open_batch_review()
    assert at.selectbox(key="batch_id").value == batch_id
    restored = at.dataframe[1].value.set_index("item_id")
    assert restored.loc[first, "verdict"] == "Confirm defect"
    assert restored.loc[second, "verdict"] == "OK"
    assert restored.loc[first, "reviewer"] == "alice"
    assert at.radio(key=f"batch_verdict_{first}").value == "confirmed_defect"
    assert {b.label for b in at.download_button} == {"CSV (one row per image)", "COCO JSON"}

    # The export the page offers is the review log's: decisions as recorded through the page.
    with ReviewLog() as review:
        buffer = io.StringIO()
        review.export_csv(batch_id, buffer)
        coco = review.export_coco(batch_id)
    csv = pd.read_csv(io.StringIO(buffer.getvalue())).set_index("item_id")
    assert csv.loc[first, "verdict"] == "confirmed_defect"
    assert csv.loc[first, "defect_type"] == "blowhole"
    assert csv.loc[first, "comment"] == "clear pore at the hub"
    assert csv.loc[second, "verdict"] == "ok" and csv.loc[second, "n_decisions"] == 2
    assert {image["id"] for image in coco["images"]} == {first, second}


@pytest.mark.slow
@pytest.mark.xdist_group("batch_review_app")
def test_filters_narrow_the_table_and_the_review_list(tiny, review_env):
    from inspection import Inspector, inspect_into_review

    inspector = Inspector.from_runs(tiny["classifier"], tiny["autoencoder"])
    with ReviewLog() as review:
        batch = review.create_batch("lot 3", "tiny_cnn", "tiny_ae")
        files = [(name, data) for name, data, _ in uploads(tiny, 5)]
        inspect_into_review(review, batch, files, inspector)
    at = open_batch_review()
    assert len(at.dataframe[0].value) == 5
    at.slider(key=f"batch_risk_{batch}").set_value((0.0, 0.0)).run()
    assert len(at.dataframe[0].value) == 0
    assert not at.exception


def test_decision_times_are_shown_in_the_browser_zone():
    from ui.batch_table import local_times

    times = pd.Series([pd.Timestamp("2026-01-15 12:00:00")])  # stored naive = UTC
    assert local_times(times, "Europe/Berlin").tolist() == ["2026-01-15 13:00:00"]
    assert local_times(times, "Not/AZone").tolist() == ["2026-01-15 12:00:00"]
