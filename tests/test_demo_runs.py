"""The committed demo runs load and still reach the numbers recorded in their run.json.

The demo data is regenerated from its seed (the generator is byte-deterministic), so a change
to the generator, the preprocessing or the models that silently degrades the demo fails here.
"""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

import store
from classification.inference import predict_images
from classification.splits import classifier_splits
from imaging import discover
from synthetic.writer import generate_casting_dataset

DEMO_WEIGHTS = store.repo_root() / "weights"
DEMO_RUNS = sorted(p.name for p in DEMO_WEIGHTS.glob("demo_*") if (p / "run.json").exists())
CLASSIFIERS = [n for n in DEMO_RUNS if store.load_run(DEMO_WEIGHTS / n).kind == "classifier"]
# Accuracy may move by one image between CPUs (float rounding near the decision boundary).
TOLERANCE = 0.005
# Grey levels (0-255): renders of the same seed on two CPUs differ far less than this; a change
# to the generator or to the files is meant to move them by more.
PIXEL_TOLERANCE = 0.25

pytestmark = [
    pytest.mark.slow,  # regenerates the 2,000-image demo data set
    pytest.mark.skipif(not DEMO_RUNS, reason="no demo runs committed (make demo)"),
]


@pytest.fixture(scope="module")
def demo_spec(tmp_path_factory):
    """The demo data set, regenerated exactly as `make demo` made it."""
    root = tmp_path_factory.mktemp("demo") / "casting"
    generate_casting_dataset(root, n=2000, seed=0)
    return discover(root)


@pytest.fixture(scope="module")
def demo_test_split(demo_spec):
    return demo_spec.split("test")


def test_every_demo_kind_is_committed():
    kinds = {store.load_run(DEMO_WEIGHTS / n).kind for n in DEMO_RUNS}
    assert kinds == {"classifier", "autoencoder", "lstm"}
    assert {"demo_basic", "demo_noise", "demo_heavy", "demo_crop", "demo_flip"} <= set(DEMO_RUNS)
    assert "demo_mobilenetv2" in DEMO_RUNS


def test_committed_weights_stay_under_25_mb():
    total = sum(p.stat().st_size for p in DEMO_WEIGHTS.glob("demo_*/**/*") if p.is_file())
    assert total < 25 * 2**20, total


def test_mobilenetv2_demo_is_a_real_backbone_explainable_inside_residual_blocks():
    import explain

    run = store.load_run(DEMO_WEIGHTS / "demo_mobilenetv2")
    assert (run.info["model"], run.info["weights"], run.info["alpha"]) == (
        "mobilenetv2",
        "none",
        0.35,
    )
    model = run.load_model()
    layers = explain.candidate_layers(model)
    assert run.info["cam_layer"] == layers[-1] == "out_relu"
    routes = {explain.get_explainer(model, "gradcam", n).route for n in layers[::10]}
    assert routes == {"fast", "fallback"}


def test_demo_data_matches_the_fingerprint_the_runs_were_trained_on(demo_spec):
    """Files, labels, splits and image sizes exactly; pixels within a fraction of a grey level.

    The renders differ by float rounding between CPUs (so do their PNG sizes): nothing here
    compares codec- or CPU-dependent bytes.
    """
    stats = {}
    for name in CLASSIFIERS:
        info = store.load_run(DEMO_WEIGHTS / name).info
        key = (info["val_split"], info["seed"])
        if key not in stats:
            split, _ = classifier_splits(demo_spec, val_fraction=key[0], seed=key[1])
            stats[key] = split.fingerprint(), split.pixel_stats()
        fingerprint, pixels = stats[key]
        assert info["data"]["fingerprint"] == fingerprint, name
        recorded = info["data"]["pixel_stats"]
        assert set(recorded) == set(pixels), name
        for part, values in pixels.items():
            assert recorded[part]["images"] == values["images"], (name, part)
            for stat in ("mean", "std"):
                assert recorded[part][stat] == pytest.approx(values[stat], abs=PIXEL_TOLERANCE)


def test_demo_recipe_lands_in_the_target_band():
    """The data is tuned so the demo classifier is good but not trivially perfect (issue #2/#3)."""
    run = store.load_run(DEMO_WEIGHTS / "demo_flip")
    assert (run.info["model"], run.info["aug"]) == ("simple_cnn", "flip")
    # the band is about the model, so it reads the argmax figures (metrics.json also holds
    # the figures at the run's operating point, which its validation threshold decides)
    argmax = run.metrics.get("argmax", run.metrics)
    assert 0.97 <= argmax["accuracy"] <= 0.997
    assert argmax["accuracy"] >= 0.98
    assert argmax["defect_f1"] >= 0.98


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_demo_classifier_keeps_its_recorded_test_accuracy(name, demo_test_split):
    run = store.load_run(DEMO_WEIGHTS / name)
    frame = predict_images(run, list(demo_test_split["path"]))
    accuracy = float(np.mean(frame["predicted_class"].to_numpy() == demo_test_split["label"]))
    assert accuracy == pytest.approx(run.info["summary"]["accuracy"], abs=TOLERANCE)


# demo_flip's box head on the 228 defective test images (docs/metrics.md, issue #16):
# box hit@0.3 overall and per defect type, as measured when it was trained.
BOX_HEAD_HITS = {
    "all defects": 0.860,
    "blowhole": 0.789,
    "burr": 0.947,
    "edge_chip": 0.947,
    "pinhole": 0.737,
    "scratch": 0.789,
    "shrinkage": 0.947,
}


def test_demo_flip_box_head_meets_the_issue_16_target(demo_spec):
    """Box hit@0.3 of at least 0.85 overall and 0.70 per type with the box head, where the
    heatmap's own boxes reach about 0.72; recomputed within a few images of the record (one
    image is 0.004 overall, 0.026 per type)."""
    from explain.evaluation import evaluate

    assert BOX_HEAD_HITS["all defects"] >= 0.85 and min(BOX_HEAD_HITS.values()) >= 0.70
    run = store.load_run(DEMO_WEIGHTS / "demo_flip")
    assert run.info["box_head"]["layers"][-1] == run.info["cam_layer"]
    summary = evaluate(run, demo_spec.root, boxes="head", limit=228)["summary"]
    for group, recorded in BOX_HEAD_HITS.items():
        measured = summary[group]["box_hit@0.3"]["mean"]
        allowed = 0.01 if group == "all defects" else 0.03
        assert measured == pytest.approx(recorded, abs=allowed), group
    heatmap = evaluate(run, demo_spec.root, limit=228)["summary"]
    assert heatmap["all defects"]["box_hit@0.3"]["mean"] < BOX_HEAD_HITS["all defects"] - 0.1


def test_demo_autoencoder_keeps_its_recorded_image_auroc(demo_test_split):
    from anomaly.scoring import score_images

    (name,) = [n for n in DEMO_RUNS if store.load_run(DEMO_WEIGHTS / n).kind == "autoencoder"]
    run = store.load_run(DEMO_WEIGHTS / name)
    scores, _, _ = score_images(run, list(demo_test_split["path"]))
    auroc = roc_auc_score(demo_test_split["is_defect"].astype(int), scores)
    assert auroc == pytest.approx(run.info["summary"]["image_auroc"], abs=0.01)


def test_demo_anomaly_meets_the_issue_17_targets_and_keeps_its_pixel_metrics(demo_spec):
    """PatchCore demo: image, per-type and pixel AUROC, AUPRO and F1 recomputed on the test
    split match run.json and metrics.json, and the recorded numbers meet issue #17's targets."""
    from anomaly.evaluation import evaluate_detector
    from anomaly.scoring import AnomalyDetector

    run = store.load_run(DEMO_WEIGHTS / "demo_anomaly")
    assert run.info["model"] == "patchcore"
    assert run.info["features"]["source"] in ("run", "random", "imagenet")
    recorded = run.metrics
    assert recorded["image_auroc"] >= 0.95
    assert min(recorded["image_auroc_by_type"].values()) >= 0.90
    assert recorded["pixel_auroc"] >= 0.95
    assert recorded["f1"] >= 0.80
    assert 0 < recorded["aupro"] <= 1
    assert run.info["data"]["fingerprint"] == demo_spec.fingerprint()
    metrics = evaluate_detector(AnomalyDetector.from_run(run), demo_spec, "test")
    for key in ("image_auroc", "pixel_auroc", "aupro"):
        assert metrics[key] == pytest.approx(recorded[key], abs=0.01), key
    for kind, auroc in recorded["image_auroc_by_type"].items():
        assert metrics["image_auroc_by_type"][kind] == pytest.approx(auroc, abs=0.02), kind
    # F1 moves by a part or two when a score sits near the threshold on another CPU
    assert metrics["f1"] == pytest.approx(recorded["f1"], abs=0.02)


def test_demo_lstm_keeps_its_recorded_roc_auc_on_the_test_tail():
    from meltingtank.inference import predict_series
    from synthetic.melting import generate_series

    (name,) = [n for n in DEMO_RUNS if store.load_run(DEMO_WEIGHTS / n).kind == "lstm"]
    run = store.load_run(DEMO_WEIGHTS / name)
    series = generate_series(300_000, seed=0)
    tail = series.iloc[-int(len(series) * 0.15) :]
    predictions = predict_series(run, tail)
    complete = predictions["window_complete"].to_numpy()
    assert len(predictions) == len(tail)
    auroc = roc_auc_score(
        (predictions["TAG"][complete] == "NG").astype(int), predictions["ng_probability"][complete]
    )
    assert auroc == pytest.approx(run.info["summary"]["roc_auc"], abs=0.02)


def test_every_demo_run_records_its_confusion_matrices_with_labels():
    for name in DEMO_RUNS:
        run = store.load_run(DEMO_WEIGHTS / name)
        metrics = run.metrics
        sections = {"": metrics}
        if run.kind == "lstm":
            sections |= {"at_0_5": metrics["at_0_5"]}
            if metrics.get("baseline"):
                sections |= {"baseline": metrics["baseline"]}
                sections |= {"baseline.at_0_5": metrics["baseline"]["at_0_5"]}
        for where, part in sections.items():
            cm = part["confusion_matrix"]
            assert (cm["rows"], cm["columns"]) == ("true class", "predicted class"), name
            assert len(cm["matrix"]) == len(cm["labels"]), (name, where)
            rows = dict(zip(cm["labels"], map(sum, cm["matrix"]), strict=True))
            if run.kind == "autoencoder":
                assert cm["labels"] == ["good", "defect"]
                assert rows["defect"] == metrics["n_defective"]
                assert rows["good"] == metrics["n_images"] - metrics["n_defective"]
            elif run.kind == "lstm":
                assert (cm["labels"], cm["positive_class"]) == (["NG", "OK"], "NG")
                assert rows["NG"] == metrics["ng_windows"], where
                assert sum(rows.values()) == metrics["windows"], where
