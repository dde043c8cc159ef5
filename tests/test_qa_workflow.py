"""The QA workflow end to end on a tiny trained run: the Experiments slider and save, clicking
a confusion-matrix cell on Error Analysis, and the audit report (sections, headless chromium).

`qa_dirs` trains one tiny classifier (32 px, 1 epoch) on a 32-image synthetic casting set and
copies it as a second run, once per module.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import store
from classification.evaluation import decisions, predict_split
from inspection.audit import BATCH_SECTIONS, RUN_SECTIONS, batch_report_html, run_report_html
from inspection.report import main as report_main
from store.review import ReviewLog
from store.thresholds import run_threshold

APP = Path(__file__).resolve().parents[1] / "app" / "Home.py"
CHROMIUM = Path("/usr/bin/chromium")
TIMEOUT = 180
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("qa")]


@pytest.fixture(scope="module")
def qa_dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("qa")
    env = {"DEFECTLENS_WEIGHTS": str(root / "weights"), "DEFECTLENS_DATA": str(root / "data")}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        from classification.train import TrainConfig, train
        from synthetic.writer import generate_casting_dataset

        data = root / "data" / "casting"
        generate_casting_dataset(data, n=32, size=96, seed=0, workers=1)
        run = train(
            TrainConfig(data=str(data), epochs=1, batch_size=8, img_size=32, name="qa_cnn"),
            verbose=0,
        )
    shutil.copytree(run, root / "weights" / "qa_twin")
    return {"root": root, "weights": root / "weights", "data": root / "data", "run": run}


@pytest.fixture
def qa_env(qa_dirs, monkeypatch):
    monkeypatch.setenv("DEFECTLENS_WEIGHTS", str(qa_dirs["weights"]))
    monkeypatch.setenv("DEFECTLENS_DATA", str(qa_dirs["data"]))
    return qa_dirs


def _open(script: str) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    at.switch_page(f"views/{script}").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_training_records_a_validation_threshold(qa_env):
    info = store.load_run(qa_env["run"]).info
    (record,) = info["threshold_history"]
    assert record["policy"] == "f1" or record["policy"].startswith("fixed")
    assert record["split"] == "validation"
    assert info["threshold"] == record["value"]
    metrics = store.load_run(qa_env["run"]).metrics
    assert metrics["threshold"] == record["value"] and "argmax" in metrics


def test_experiments_slider_moves_the_live_figures_and_save_records_it(qa_env, monkeypatch):
    monkeypatch.setenv("DEFECTLENS_USER", "qa-tester")
    at = _open("experiments.py")
    at.selectbox(key="experiments_focus").set_value("qa_cnn").run()
    slider = at.slider(key="experiments_threshold_qa_cnn")
    assert slider.value == pytest.approx(run_threshold(store.load_run(qa_env["run"]).info))
    slider.set_value(0.0).run()
    assert _metric(at, "Recall") == "100.0%"  # everything is flagged at 0
    assert _metric(at, "Escapes / 1,000") == "0.0"
    slider = at.slider(key="experiments_threshold_qa_cnn").set_value(1.0).run()
    frame = predict_split(store.load_run(qa_env["run"]), "test")
    expected_alarms = 1000 * float(np.mean(~frame.is_defect & (frame.defect_probability >= 1.0)))
    assert _metric(at, "False alarms / 1,000") == f"{expected_alarms:.1f}"
    at.slider(key="experiments_threshold_qa_cnn").set_value(0.25).run()
    at.button(key="experiments_save_qa_cnn").click().run()
    assert not at.exception
    info = store.load_run(qa_env["run"]).info
    assert info["threshold"] == pytest.approx(0.25)
    assert info["threshold_history"][-1]["set_by"] == "qa-tester"
    assert len(info["threshold_history"]) == 2

    # Every page now decides at the saved threshold: Error Analysis starts there.
    at = _open("error_analysis.py")
    at.selectbox(key="run_classifier").set_value("qa_cnn").run()
    assert at.slider(key="errors_threshold_qa_cnn").value == pytest.approx(0.25)
    at25 = decisions(store.load_run(qa_env["run"]), frame, 0.25)
    cell = at.button(key="errors_cell_def_front_def_front").label
    assert int(cell) == int((at25.outcome == "TP").sum())


@pytest.mark.parametrize(
    ("true", "predicted"), [("def_front", "ok_front"), ("ok_front", "ok_front")]
)
def test_clicking_a_matrix_cell_lists_exactly_that_cells_images(qa_env, true, predicted):
    run = store.load_run(qa_env["weights"] / "qa_twin")
    threshold = run_threshold(run.info)
    decided = decisions(run, predict_split(run, "test"), threshold)
    expected = decided[(decided.label == true) & (decided.predicted_class == predicted)]
    at = _open("error_analysis.py")
    at.selectbox(key="run_classifier").set_value("qa_twin").run()
    at.button(key=f"errors_cell_{true}_{predicted}").click().run()
    assert not at.exception
    assert at.radio(key="errors_view").value == "cell"
    listed = next(d.value for d in at.dataframe if "outcome" in d.value.columns)
    assert sorted(listed["file"]) == sorted(Path(p).name for p in expected["path"])
    shown = sum(len(image.value) for image in at.image)  # the gallery (+ the two-run pair)
    assert shown >= min(len(expected), at.slider(key="errors_limit").value)


def _open_in_chromium(html_path: Path) -> tuple[list[str], int]:
    """Console errors and page errors of a file opened in headless chromium; section count."""
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page()
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(html_path.as_uri())
        page.wait_for_load_state("load")
        broken = page.evaluate(
            "() => [...document.images].filter(i => !i.complete || i.naturalWidth === 0).length"
        )
        sections = page.evaluate("() => document.querySelectorAll('section').length")
        browser.close()
    return problems + [f"{broken} images did not decode"] * bool(broken), sections


def _batch(tmp_path: Path, images: list[Path], images_dir: Path | None = None):
    log = ReviewLog(f"sqlite:///{tmp_path / 'review.db'}", images_dir or tmp_path / "images")
    batch = log.create_batch("shift A", classifier_run="qa_cnn", reviewer="anna")
    scored = [
        {"predicted_class": c, "defect_probability": p, "risk_score": p}
        for c, p in (("def_front", 0.9), ("ok_front", 0.1))
    ]
    first = log.add_item(batch, images[0].name, images[0].read_bytes(), scored[0])
    log.add_item(batch, images[1].name, images[1].read_bytes(), scored[1])
    log.record_decision(first, "false_alarm", "anna", comment="glint")
    log.record_decision(first, "confirmed_defect", "ben", defect_type="scratch")
    return log, batch


@pytest.mark.browser
def test_reports_hold_every_section_and_open_in_chromium_without_errors(qa_env, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium (`make browser` installs it)")
    run_html = run_report_html(qa_env["run"])
    for section in RUN_SECTIONS:
        assert f'<section id="{section}">' in run_html
    assert "data:image/png;base64," in run_html and "<script" not in run_html
    assert store.load_run(qa_env["run"]).info["data"]["fingerprint"] in run_html

    images = sorted((qa_env["data"] / "casting" / "test").rglob("*.png"))
    log, batch = _batch(tmp_path, images)
    batch_html = batch_report_html(batch, log)
    log.close()
    for section in BATCH_SECTIONS:
        assert f'<section id="{section}">' in batch_html
    assert batch_html.count("<td>anna</td>") >= 1 and "<td>ben</td>" in batch_html
    assert "false_alarm" in batch_html and "confirmed_defect" in batch_html

    for name, text, n in (("run", run_html, 7), ("batch", batch_html, 3)):
        path = tmp_path / f"{name}.html"
        path.write_text(text, encoding="utf-8")
        problems, sections = _open_in_chromium(path)
        assert problems == [], name
        assert sections == n


def test_report_cli_writes_the_file_and_refuses_bad_input(qa_env, tmp_path, capsys):
    out = tmp_path / "r.html"
    assert report_main(["--run", "qa_cnn", "--out", str(out), "--worst", "2"]) == 0
    assert out.read_text().count("<section") == len(RUN_SECTIONS)
    assert report_main(["--run", "nope", "--out", str(tmp_path / "x.html")]) == 2
    assert "no run named 'nope'" in capsys.readouterr().err
    (tmp_path / "file").write_text("a file where a folder should be")
    assert report_main(["--run", "qa_cnn", "--out", str(tmp_path / "file" / "x.html")]) == 2
    assert "--out" in capsys.readouterr().err
    assert not (tmp_path / "x.html").exists()
    monkey_db = f"sqlite:///{tmp_path / 'empty.db'}"
    os.environ["DEFECTLENS_DB_URL"] = monkey_db
    try:
        assert report_main(["--batch", "99", "--out", str(tmp_path / "b.html")]) == 2
        assert "no review batch with id 99" in capsys.readouterr().err
    finally:
        del os.environ["DEFECTLENS_DB_URL"]


def test_report_buttons_offer_the_html_on_experiments_and_batch_review(qa_env, monkeypatch):
    at = _open("experiments.py")
    at.selectbox(key="experiments_focus").set_value("qa_cnn").run()
    at.button(key="experiments_build_report_qa_cnn").click().run()
    assert not at.exception
    assert "Download report (HTML)" in {b.label for b in at.download_button}

    root = qa_env["root"] / "review"
    monkeypatch.setenv("DEFECTLENS_DB_URL", f"sqlite:///{root / 'review.db'}")
    images = sorted((qa_env["data"] / "casting" / "test").rglob("*.png"))
    root.mkdir(exist_ok=True)
    log, batch = _batch(root, images, store.data_dir() / "review_images")
    log.close()
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    at.switch_page("views/batch_review.py").run()
    at.selectbox(key="batch_id").set_value(batch).run()
    at.button(key="batch_build_report").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Download report (HTML)" in {b.label for b in at.download_button}
