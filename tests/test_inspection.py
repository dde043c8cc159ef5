"""Batch inspection: every input gets a row, bad ones named, scores and boxes in original pixels.

`build_tiny_runs` trains a tiny classifier and autoencoder with the domain train functions
on a small synthetic casting set (about 15 s on 2 cores), once per module.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from imaging.archive import UploadEntry
from inspection import (
    InspectionError,
    Inspector,
    anomaly_ratio,
    disagreement,
    inspect_batch,
    inspect_into_review,
    iter_inspect,
    risk_score,
)
from inspection.__main__ import main as cli_main
from inspection.__main__ import manifest_files
from store import load_run
from store.review import ReviewLog

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("inspection")]
IMAGE_SIZE = 96


def build_tiny_runs(root: Path) -> dict[str, Path]:
    """A 32-image casting set under root/data and runs tiny_cnn, tiny_ae under root/weights."""
    env = {"DEFECTLENS_WEIGHTS": str(root / "weights"), "DEFECTLENS_DATA": str(root / "data")}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        from anomaly.train import TrainConfig as AutoencoderConfig
        from anomaly.train import train as train_autoencoder
        from classification.train import TrainConfig, train
        from synthetic.writer import generate_casting_dataset

        data = root / "data" / "casting"
        generate_casting_dataset(data, n=32, size=IMAGE_SIZE, seed=0, workers=1)
        train(
            TrainConfig(
                data=str(data), epochs=1, batch_size=8, img_size=32, name="tiny_cnn", patience=1
            ),
            verbose=0,
        )
        train_autoencoder(
            AutoencoderConfig(
                data=str(data), name="tiny_ae", img_size=32, epochs=1, batch_size=8, latent_dim=4
            )
        )
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return {
        "weights": root / "weights",
        "data": root / "data",
        "classifier": root / "weights" / "tiny_cnn",
        "autoencoder": root / "weights" / "tiny_ae",
        "images": data / "test",
    }


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    return build_tiny_runs(tmp_path_factory.mktemp("inspection"))


@pytest.fixture(scope="module")
def inspector(tiny) -> Inspector:
    return Inspector.from_runs(tiny["classifier"], tiny["autoencoder"])


def part_files(tiny, n: int) -> list[tuple[str, bytes]]:
    paths = sorted(tiny["images"].rglob("*.png"))[:n]
    assert len(paths) == n
    return [(p.name, p.read_bytes()) for p in paths]


@pytest.fixture(scope="module")
def mixed_results(tiny, inspector) -> pd.DataFrame:
    """4 good parts, a corrupt file, a duplicate and an upload problem, in chunks of 3."""
    files = part_files(tiny, 4)
    entries = [
        *files[:2],
        ("corrupt.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 40),
        *files[2:],
        ("again.png", files[0][1]),
        UploadEntry("shift.zip/../evil.png", problem="shift.zip: ../evil.png: path traversal"),
    ]
    return inspect_batch(entries, inspector, batch_size=3)


def test_every_input_gets_a_row_in_order(mixed_results):
    assert list(mixed_results["status"]) == [
        "ok",
        "ok",
        "error",
        "ok",
        "ok",
        "duplicate",
        "error",
    ]
    assert mixed_results["file_name"].iloc[2] == "corrupt.png"


def test_bad_inputs_are_named_in_their_errors(mixed_results, tiny):
    errors = mixed_results.set_index("file_name")["error"]
    assert errors["corrupt.png"].startswith("corrupt.png: ")
    first = part_files(tiny, 1)[0][0]
    assert errors["again.png"] == f"again.png: same image as {first}; skipped"
    assert "path traversal" in errors["shift.zip/../evil.png"]


def test_scored_rows_carry_both_models_and_the_original_size(mixed_results):
    ok = mixed_results[mixed_results["status"] == "ok"]
    assert set(ok["predicted_class"]) <= {"def_front", "ok_front"}
    assert (ok["width"] == IMAGE_SIZE).all() and (ok["height"] == IMAGE_SIZE).all()
    for probs in ok["class_probabilities"]:
        assert sum(probs.values()) == pytest.approx(1.0, abs=1e-4)
    assert ok["anomaly_score"].notna().all() and ok["anomaly_flag"].notna().all()
    assert ((ok["risk_score"] >= ok["defect_probability"]) & (ok["risk_score"] <= 1)).all()
    assert set(ok["classifier_run"]) == {"tiny_cnn"} and set(ok["autoencoder_run"]) == {"tiny_ae"}


def test_boxes_are_in_original_pixels_and_only_where_a_model_worries(mixed_results):
    ok = mixed_results[mixed_results["status"] == "ok"]
    for row in ok.itertuples():
        if row.predicted_class != "def_front" and not row.anomaly_flag:
            assert row.boxes == []
        for box in row.boxes:
            assert 0 <= box["x_min"] < box["x_max"] <= IMAGE_SIZE
            assert 0 <= box["y_min"] < box["y_max"] <= IMAGE_SIZE
            assert box["label"] == "def_front"
    assert any(row.boxes for row in ok.itertuples())


def test_anomaly_fields_follow_the_run_threshold(mixed_results, inspector):
    ok = mixed_results[mixed_results["status"] == "ok"]
    threshold = inspector.threshold
    assert list(ok["anomaly_flag"]) == list(ok["anomaly_score"] > threshold)
    assert list(ok["anomaly_ratio"]) == pytest.approx(list(ok["anomaly_score"] / threshold))


def test_progress_reports_each_chunk_up_to_the_total(tiny, inspector):
    calls = []
    inspect_batch(part_files(tiny, 5), inspector, batch_size=2, progress=lambda *a: calls.append(a))
    assert calls == [(2, 5), (4, 5), (5, 5)]


def test_inputs_are_streamed_a_chunk_at_a_time(tiny, inspector):
    files = part_files(tiny, 6)
    pulled = []

    def entries():
        for item in files:
            pulled.append(item[0])
            yield item

    results = iter_inspect(entries(), inspector, batch_size=2)
    next(results)
    assert len(pulled) == 2


def test_without_an_autoencoder_risk_is_the_defect_probability(tiny):
    frame = inspect_batch(part_files(tiny, 2), tiny["classifier"])
    assert frame["anomaly_score"].isna().all() and frame["autoencoder_run"].isna().all()
    assert list(frame["risk_score"]) == list(frame["defect_probability"])
    assert not frame["disagree"].any()


def test_runs_of_the_wrong_kind_are_refused(tiny):
    with pytest.raises(InspectionError, match="autoencoder run; pick a classifier"):
        Inspector.from_runs(tiny["autoencoder"])
    with pytest.raises(InspectionError, match="pick an autoencoder run"):
        Inspector.from_runs(tiny["classifier"], load_run(tiny["classifier"]))


def test_risk_is_one_half_on_the_threshold_and_takes_the_worse_model():
    assert anomaly_ratio(0.02, 0.04) == pytest.approx(0.5)
    assert risk_score(0.1, anomaly_ratio(0.04, 0.04)) == pytest.approx(0.5)
    assert risk_score(0.9, anomaly_ratio(0.01, 0.04)) == pytest.approx(0.9)
    assert risk_score(0.3, None) == pytest.approx(0.3)
    assert anomaly_ratio(0.02, None) is None


def test_disagreement_needs_both_verdicts():
    assert disagreement(True, False) and disagreement(False, True)
    assert not disagreement(True, True) and not disagreement(True, None)


def test_intake_stores_scored_and_unreadable_items_and_reports_the_rest(tiny, inspector):
    files = part_files(tiny, 3)
    entries = [
        *files,
        ("broken.jpg", b"\xff\xd8\xff\xe0 truncated"),
        ("copy.png", files[1][1]),
        UploadEntry("notes.txt", problem="notes.txt: not an image type ('.txt')"),
    ]
    with ReviewLog() as review:
        batch = review.create_batch("shift", "tiny_cnn", "tiny_ae")
        report = inspect_into_review(review, batch, entries, inspector, batch_size=2)
        items = review.items(batch)
    assert (report.added, report.failed) == (3, 1)
    assert report.duplicates == [f"copy.png: same image as {files[1][0]}; skipped"]
    assert any(m.startswith("notes.txt") for m in report.messages)
    assert list(items["file_name"]) == [*(f[0] for f in files), "broken.jpg"]
    assert items["error"].iloc[3].startswith("broken.jpg: ")
    scored = items.iloc[:3]
    assert scored["risk_score"].notna().all() and scored["anomaly_score"].notna().all()
    assert set(scored["autoencoder_run"]) == {"tiny_ae"}


def test_a_second_upload_of_the_same_image_into_a_batch_is_reported(tiny, inspector):
    files = part_files(tiny, 1)
    with ReviewLog() as review:
        batch = review.create_batch("shift", "tiny_cnn")
        inspect_into_review(review, batch, files, inspector)
        report = inspect_into_review(review, batch, [("later.png", files[0][1])], inspector)
    assert report.added == 0 and "later.png" in report.duplicates[0]


def test_cli_writes_csv_sorted_by_risk_and_a_review_batch(tiny, tmp_path, capsys):
    out = tmp_path / "results.csv"
    args = ["--classifier", str(tiny["classifier"]), "--autoencoder", str(tiny["autoencoder"])]
    code = cli_main([*args, "--images", str(tiny["images"]), "--out", str(out), "--db-batch", "s1"])
    assert code == 0
    frame = pd.read_csv(out)
    n_images = len(list(tiny["images"].rglob("*.png")))
    assert len(frame) == n_images
    assert frame["risk_score"].is_monotonic_decreasing
    with ReviewLog() as review:
        batches = review.batches()
    assert list(batches["name"]) == ["s1"] and batches["n_items"].iloc[0] == n_images
    assert "wrote" in capsys.readouterr().out


def test_cli_scores_a_csv_manifest_in_its_row_order(tiny, tmp_path, monkeypatch):
    import imaging.layout_csv

    reads = []
    real_read = imaging.layout_csv.read_csv
    monkeypatch.setattr(
        imaging.layout_csv, "read_csv", lambda path: reads.append(path) or real_read(path)
    )
    images = sorted(tiny["images"].rglob("*.png"))[:3]
    shelf = tmp_path / "archive" / "line3"
    shelf.mkdir(parents=True)
    (shelf / "a.png").write_bytes(images[0].read_bytes())
    (shelf / "b.png").write_bytes(images[1].read_bytes())
    manifest = tmp_path / "archive" / "manifest.csv"
    # relative rows keep their name, an absolute row is named by its full path without the root
    pd.DataFrame(
        {"path": ["line3/b.png", "line3/a.png", str(images[2])], "shift": ["n", "n", "d"]}
    ).to_csv(manifest, index=False)
    out = tmp_path / "results.csv"
    args = ["--classifier", str(tiny["classifier"]), "--images", str(manifest)]
    assert cli_main([*args, "--out", str(out)]) == 0
    frame = pd.read_csv(out)
    assert sorted(frame["file_name"]) == sorted(
        ["line3/b.png", "line3/a.png", images[2].as_posix().lstrip("/")]
    )
    assert (frame["status"] == "ok").all()
    assert reads == [manifest.resolve()]  # checked, counted and scored from one read
    manifest.write_text("path\nline3/a.png\n")
    assert [name for name, _ in manifest_files(manifest.resolve())] == ["line3/a.png"]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ({"file": ["x.png"]}, "needs a 'path' column"),
        ({"path": ["gone.png", "also_gone.png"]}, "2 listed files not found"),
        ({"path": [""]}, "lists no paths"),
    ],
)
def test_cli_refuses_a_bad_manifest_in_one_line(tiny, tmp_path, capsys, rows, message):
    manifest = tmp_path / "m.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    out = tmp_path / "results.csv"
    code = cli_main(
        ["--classifier", str(tiny["classifier"]), "--images", str(manifest), "--out", str(out)]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and str(manifest) in err, err
    assert len(err.splitlines()) == 1 and not out.exists()


def test_cli_reports_the_images_beyond_max_files(tiny, tmp_path):
    out = tmp_path / "results.csv"
    args = ["--classifier", str(tiny["classifier"]), "--images", str(tiny["images"])]
    assert cli_main([*args, "--out", str(out), "--max-files", "2"]) == 0
    frame = pd.read_csv(out)
    assert (frame["status"] == "ok").sum() == 2
    assert frame["error"].fillna("").str.contains("more than 2 images").any()
