"""The dashboard, page by page, in Streamlit's AppTest on tiny runs trained here.

`build_app_fixture` trains real (tiny) runs with the domain train functions into a temporary
weights folder: two classifiers under different recipes, an autoencoder and an LSTM, plus a
small synthetic casting data set. It is built once per module (about a minute on 2 cores).
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

APP = Path(__file__).resolve().parents[1] / "app" / "Home.py"
TIMEOUT = 180
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("app")]


def build_app_fixture(root: Path) -> dict[str, Path]:
    """Tiny data set and runs (2 classifiers, autoencoder, LSTM) under root/weights, root/data."""
    env = {"DEFECTLENS_WEIGHTS": str(root / "weights"), "DEFECTLENS_DATA": str(root / "data")}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        from anomaly.train import TrainConfig as AnomalyConfig
        from anomaly.train import train as train_autoencoder
        from classification.train import TrainConfig, train
        from meltingtank.train import build_parser
        from meltingtank.train import train as train_lstm
        from synthetic.melting import generate_series, write_csv
        from synthetic.writer import generate_casting_dataset

        data = root / "data" / "casting"
        generate_casting_dataset(data, n=32, size=96, seed=0, workers=1)
        for aug in ("basic", "noise"):
            train(
                TrainConfig(
                    data=str(data),
                    aug=aug,
                    epochs=1,
                    batch_size=8,
                    img_size=32,
                    name=f"tiny_{aug}",
                    patience=1,
                ),
                verbose=0,
            )
        train_autoencoder(
            AnomalyConfig(
                data=str(data), name="tiny_ae", img_size=32, epochs=1, batch_size=8, latent_dim=4
            )
        )
        csv = write_csv(generate_series(3000, seed=0), root / "melting.csv")
        args = ["--csv", str(csv), "--name", "tiny_lstm", "--epochs", "1", "--units", "4"]
        train_lstm(build_parser().parse_args([*args, "--baseline", "none"]))
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return {"weights": root / "weights", "data": root / "data"}


@pytest.fixture(scope="module")
def app_dirs(tmp_path_factory) -> dict[str, Path]:
    return build_app_fixture(tmp_path_factory.mktemp("app_fixture"))


@pytest.fixture
def app(app_dirs, monkeypatch):
    """A fresh AppTest session reading the fixture runs; call open(page) to visit one."""
    monkeypatch.setenv("DEFECTLENS_WEIGHTS", str(app_dirs["weights"]))
    monkeypatch.setenv("DEFECTLENS_DATA", str(app_dirs["data"]))
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    return at


def open_page(at: AppTest, script: str) -> AppTest:
    at.switch_page(f"views/{script}").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def image_urls(at: AppTest) -> list[str]:
    return [url for img in at.image for url in img.value]


def heatmaps(at: AppTest) -> list[dict]:
    """The heatmap traces (confusion matrices) of the page's Plotly charts."""
    specs = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    return [t for spec in specs for t in spec["data"] if t.get("type") == "heatmap"]


def png(value: int = 128, size: int = 96) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.full((size, size), value, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


# ---------------------------------------------------------------- Home


def test_home_lists_the_runs_and_the_data_set(app):
    assert not app.exception
    table = app.dataframe[0].value
    assert {"tiny_basic", "tiny_noise", "tiny_ae", "tiny_lstm"} <= set(table["run"])
    datasets = app.dataframe[1].value
    assert "casting" in set(datasets["data set"])
    assert len(app.page_link) >= 6


def test_home_without_runs_says_how_to_make_them(tmp_path, monkeypatch):
    monkeypatch.setenv("DEFECTLENS_WEIGHTS", str(tmp_path / "empty"))
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    assert not at.exception
    assert "make demo" in texts(at.info)


# ---------------------------------------------------------------- Experiments


def test_experiments_compares_classifiers_and_switches_kind(app):
    at = open_page(app, "experiments.py")
    assert set(at.dataframe[0].value["run"]) == {"tiny_basic", "tiny_noise"}
    assert at.selectbox(key="experiments_curve").value == "loss"
    at.segmented_control(key="experiments_kind").set_value("lstm").run()
    assert list(at.dataframe[0].value["run"]) == ["tiny_lstm"]


LABELS = {
    "classifier": ["ok_front", "def_front"],
    "autoencoder": ["good", "defect"],
    "lstm": ["NG", "OK"],
}


def test_experiments_shows_a_confusion_matrix_for_every_kind(app):
    at = open_page(app, "experiments.py")
    for kind in ("classifier", "autoencoder", "lstm"):
        at.segmented_control(key="experiments_kind").set_value(kind).run()
        assert not at.exception
        assert "has a confusion matrix" not in texts(at.info), kind
        matrices = heatmaps(at)
        assert matrices, kind
        for matrix in matrices:
            assert matrix["x"] == matrix["y"] == LABELS[kind], kind


# ---------------------------------------------------------------- CAM Inspector


def test_cam_inspector_shows_image_overlay_and_prediction(app):
    at = open_page(app, "cam_inspector.py")
    assert at.selectbox(key="cam_colormap").value == "jet"
    assert at.slider(key="cam_opacity").value == pytest.approx(0.45)
    assert at.selectbox(key="cam_method").value == "Grad-CAM"
    assert at.metric[0].value in ("ok_front", "def_front")
    assert len(image_urls(at)) == 3  # the image, the overlay and its colour bar
    assert at.download_button(key="cam_download") is not None


def test_cam_inspector_method_change_changes_the_overlay(app):
    at = open_page(app, "cam_inspector.py")
    before = image_urls(at)[1]
    at.selectbox(key="cam_method").set_value("LayerCAM").run()
    assert not at.exception
    assert image_urls(at)[1] != before
    assert "LayerCAM" in texts(at.markdown)


def test_cam_inspector_image_change_changes_what_is_shown(app):
    at = open_page(app, "cam_inspector.py")
    picker = at.selectbox(key="gallery_image")
    before = image_urls(at)[0]
    picker.select_index(len(picker.options) - 1).run()
    assert not at.exception
    assert image_urls(at)[0] != before


def test_cam_inspector_next_button_steps_through_the_gallery(app):
    at = open_page(app, "cam_inspector.py")
    first = at.selectbox(key="gallery_image").index
    at.button(key="gallery_next").click().run()
    assert at.selectbox(key="gallery_image").index == first + 1
    at.button(key="gallery_previous").click().run()
    assert at.selectbox(key="gallery_image").index == first


def test_cam_inspector_refuses_a_bad_upload_by_name(app):
    at = open_page(app, "cam_inspector.py")
    at.segmented_control(key="image_source").set_value("Upload").run()
    at.file_uploader(key="cam_upload").upload("broken.png", b"not an image", "image/png").run()
    assert not at.exception
    assert "broken.png" in texts(at.error)


def test_cam_inspector_accepts_a_good_upload(app):
    at = open_page(app, "cam_inspector.py")
    at.segmented_control(key="image_source").set_value("Upload").run()
    at.file_uploader(key="cam_upload").upload("part.png", png(), "image/png").run()
    assert not at.exception and not at.error
    assert len(image_urls(at)) == 3  # image, overlay, colour bar


# ---------------------------------------------------------------- Augmentation Comparison


def test_augmentation_shows_images_by_runs_grid(app):
    at = open_page(app, "augmentation.py")
    assert set(at.multiselect(key="runs_classifier").value) == {"tiny_basic", "tiny_noise"}
    count = at.slider(key="compare_count").value
    assert len(image_urls(at)) == count * 3 + 2  # plus one colour bar per run


def test_augmentation_reports_heatmap_metrics_per_run(app):
    at = open_page(app, "augmentation.py")
    table = at.dataframe[0].value
    assert set(table.index) == {"tiny_basic", "tiny_noise"}
    assert {"energy_inside", "entropy", "blobs"} <= set(table.columns)
    assert table["energy_inside"].between(0, 1).all()


def test_augmentation_fewer_runs_fewer_columns(app):
    at = open_page(app, "augmentation.py")
    at.slider(key="compare_count").set_value(2).run()
    at.multiselect(key="runs_classifier").set_value(["tiny_basic"]).run()
    assert not at.exception
    assert len(image_urls(at)) == 2 * 2 + 1  # plus the run's colour bar


def test_augmentation_shows_the_seed_study_when_there_is_one(app, app_dirs):
    from test_explain_study import study_frame

    from explain import study

    at = open_page(app, "augmentation.py")
    assert any("make study" in c.value for c in at.caption)  # none yet: how to make one
    report = {
        "created": "2026-12-01T20:00:00+00:00",
        "method": "gradcam",
        "faithfulness_images": 24,
        "runs": {r: [f"{r}_s{s}" for s in range(3)] for r in ("good", "same", "worse")},
        "seeds": {r: [0, 1, 2] for r in ("good", "same", "worse")},
        "defective_test_images": 24,
        **study.summarize(study_frame(), n_boot=200),
        "box_hit@0.3_per_type": {"good": {"pinhole": 0.5}, "same": {"pinhole": 0.25}},
    }
    saved = app_dirs["weights"] / study.STUDY_FILE
    saved.write_text(json.dumps(report))
    try:
        at = open_page(app, "augmentation.py")
        assert not at.exception
        table = next(d.value for d in at.dataframe if "pointing" in d.value.columns)
        assert list(table.index) == ["good", "same", "worse"]
        good = report["intervals"]["pointing_hit"]["good"]
        assert table.loc["good", "pointing"] == (
            f"{good['mean']:.3f} [{good['low']:.3f}, {good['high']:.3f}]"
        )
        text = " ".join(m.value for m in at.markdown)
        assert "good better than same" in text and "Holm" in text
        at.segmented_control(key="study_metric").set_value("deletion AUC").run()
        assert not at.exception
    finally:
        saved.unlink()


# ---------------------------------------------------------------- Heatmap to Boxes


def test_heatmap_boxes_min_area_removes_boxes(app):
    at = open_page(app, "heatmap_boxes.py")
    at.segmented_control(key="boxes_mode").set_value("Fixed").run()
    at.slider(key="boxes_fraction").set_value(0.95).run()
    at.slider(key="boxes_min_area").set_value(0).run()
    assert not at.exception
    assert "0 found" not in texts(at.markdown)
    at.slider(key="boxes_min_area").set_value(2000).run()
    assert "0 found" in texts(at.markdown)


def test_heatmap_boxes_exports_csv_and_coco(app):
    at = open_page(app, "heatmap_boxes.py")
    at.segmented_control(key="boxes_mode").set_value("Fixed").run()
    at.slider(key="boxes_fraction").set_value(0.2).run()
    at.number_input(key="boxes_export_limit").set_value(4).run()
    at.button(key="boxes_export_run").click().run()
    assert not at.exception
    records = at.session_state["boxes_export"]["records"]
    assert len(records) == 4
    # boxes only where the classifier says defective (finding 1 of issue 20)
    assert all(r.predicted_defect or not r.boxes for r in records)
    assert all(0.0 <= r.defect_probability <= 1.0 for r in records)
    labels = {b.label for b in at.download_button}
    assert {"Download CSV", "Download COCO JSON"} <= labels


def test_heatmap_boxes_shows_both_box_steps_for_a_run_with_a_box_head(
    app_dirs, tmp_path, monkeypatch
):
    import shutil

    from classification.boxhead import train_box_head

    weights = tmp_path / "weights"
    shutil.copytree(app_dirs["weights"], weights)
    for name in ("tiny_basic", "tiny_noise"):
        train_box_head(str(weights / name), str(app_dirs["data"] / "casting"), 1, progress=False)
    monkeypatch.setenv("DEFECTLENS_WEIGHTS", str(weights))
    monkeypatch.setenv("DEFECTLENS_DATA", str(app_dirs["data"]))
    at = open_page(AppTest.from_file(str(APP), default_timeout=TIMEOUT).run(), "heatmap_boxes.py")
    step = at.segmented_control(key="boxes_step_True")
    assert step.value == "Box head" and not step.disabled
    shown = texts(at.markdown)
    assert "**Heatmap boxes** ·" in shown and "**Box head boxes** (chosen) ·" in shown
    at.number_input(key="boxes_export_limit").set_value(4).run()
    at.button(key="boxes_export_run").click().run()
    assert not at.exception
    assert "box head boxes" in at.session_state["boxes_export"]["settings"]
    step.set_value("Heatmap").run()
    assert not at.exception
    assert "**Heatmap boxes** (chosen) ·" in texts(at.markdown)


def test_heatmap_boxes_without_a_box_head_keeps_the_heatmap_step(app):
    at = open_page(app, "heatmap_boxes.py")
    step = at.segmented_control(key="boxes_step_False")
    assert step.value == "Heatmap" and step.disabled
    assert "python -m classification.boxhead" in step.help
    assert "Box head boxes" not in texts(at.markdown)


# ---------------------------------------------------------------- Anomaly


def test_anomaly_threshold_moves_precision_and_recall(app):
    at = open_page(app, "anomaly.py")
    slider = at.slider(key="anomaly_threshold_tiny_ae")
    at.slider(key="anomaly_threshold_tiny_ae").set_value(slider.min).run()
    assert not at.exception
    recall_low = at.metric[1].value
    at.slider(key="anomaly_threshold_tiny_ae").set_value(slider.max).run()
    recall_high = at.metric[1].value
    assert recall_low == "100.0%"
    assert recall_high == "0.0%"
    assert at.metric[0].value == "n/a"  # nothing flagged: no precision, not 0 %


def test_anomaly_split_change_keeps_the_threshold_and_names_the_split(app):
    at = open_page(app, "anomaly.py")
    slider = at.slider(key="anomaly_threshold_tiny_ae")
    chosen = slider.min + 0.3 * (slider.max - slider.min)
    at.slider(key="anomaly_threshold_tiny_ae").set_value(chosen).run()
    at.selectbox(key="anomaly_split").set_value("all").run()
    assert not at.exception
    assert at.slider(key="anomaly_threshold_tiny_ae").value == pytest.approx(chosen)
    assert any(m.label.startswith("Image AUROC (all") for m in at.metric)


def test_anomaly_shows_image_reconstruction_and_score(app):
    at = open_page(app, "anomaly.py")
    assert len(image_urls(at)) == 4  # image, reconstruction, error map, colour bar
    assert any(m.label == "Score" for m in at.metric)


# ---------------------------------------------------------------- Melting Tank


def test_melting_tank_threshold_drives_the_confusion_metrics(app):
    at = open_page(app, "melting_tank.py")
    at.select_slider(key="melt_rows").set_value(10_000).run()
    assert not at.exception
    at.slider(key="melt_threshold_tiny_lstm").set_value(0.0).run()
    assert at.metric[1].value == "100.0%"
    (matrix,) = heatmaps(at)
    assert matrix["x"] == matrix["y"] == ["NG", "OK"]
    # everything is flagged NG at 0: the predicted-OK column is empty
    assert [row[1].split("<br>")[0] for row in matrix["text"]] == ["0", "0"]
    at.slider(key="melt_threshold_tiny_lstm").set_value(1.0).run()
    assert at.metric[1].value == "0.0%"


def test_melting_tank_reports_a_bad_csv_clearly(app):
    at = open_page(app, "melting_tank.py")
    at.segmented_control(key="melt_source").set_value("Upload").run()
    bad = b"STD_DT,MELT_TEMP,MOTORSPEED,TAG\n2020-03-04 00:00:00,abc,10,OK\n"
    at.file_uploader(key="melt_upload").upload("kamp.csv", bad, "text/csv").run()
    assert not at.exception
    assert "kamp.csv" in texts(at.error)


def test_melting_tank_window_narrows_to_raw_rows(app):
    at = open_page(app, "melting_tank.py")
    at.select_slider(key="melt_rows").set_value(10_000).run()
    at.segmented_control(key="melt_span").set_value("All").run()
    assert "Showing 10,000 of 10,000 rows (downsampled" in texts(at.caption)
    at.segmented_control(key="melt_span").set_value("1 hour").run()
    assert not at.exception
    assert "Showing 601 of 10,000 rows (raw)" in texts(at.caption)
