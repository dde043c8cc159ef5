"""PatchCore / PaDiM: coreset, nearest neighbours, Mahalanobis, and a tiny run end to end."""

import numpy as np
import pytest
from PIL import Image
from test_anomaly_pipeline import make_dataset

import store
from anomaly.feature_detector import FeatureDetector
from anomaly.features import FeatureError, FeatureSpec, build_extractor, extract, with_projection
from anomaly.memory import (
    MemoryBankError,
    fit_padim,
    fit_patchcore,
    greedy_coreset,
    nearest_distances,
    score_padim,
    score_patchcore,
)
from anomaly.scoring import AnomalyDetector
from anomaly.train import main as train_main

pytestmark = pytest.mark.xdist_group("anomaly_tiny")


def _covering_radius(x: np.ndarray, chosen: np.ndarray) -> float:
    d = np.linalg.norm(x[:, None, :] - x[chosen][None, :, :], axis=2)
    return float(d.min(axis=1).max())


def test_greedy_coreset_takes_the_farthest_point_each_time():
    x = np.array([[0.0], [1.0], [10.0], [11.0], [5.0], [0.5]], np.float32)
    chosen = greedy_coreset(x, 3, projection_dim=None, seed=0)
    # whichever point it starts from, the 3 picks cover the three clusters {0,0.5,1}, {5}, {10,11}
    clusters = {0: 0, 1: 0, 5: 0, 4: 1, 2: 2, 3: 2}
    assert sorted(clusters[int(i)] for i in chosen) == [0, 1, 2]
    # the second pick is the point farthest from the first
    first = x[chosen[0], 0]
    assert abs(x[chosen[1], 0] - first) == np.abs(x[:, 0] - first).max()


def test_greedy_coreset_covers_better_than_a_random_subset():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(c, 0.1, (200, 8)) for c in (0, 3, 6, 9, 20)]).astype("f4")
    chosen = greedy_coreset(x, 10, projection_dim=None)
    random = rng.choice(len(x), 10, replace=False)
    assert len(set(chosen.tolist())) == 10
    assert _covering_radius(x, chosen) < _covering_radius(x, random)
    assert _covering_radius(x, chosen) < 1.5  # every cluster got a member
    # projected distances still find every cluster
    assert _covering_radius(x, greedy_coreset(x, 10, projection_dim=4)) < 3.0
    assert len(greedy_coreset(x, 5000)) == len(x)
    with pytest.raises(MemoryBankError, match="at least 1"):
        greedy_coreset(x, 0)


def test_nearest_distances_match_brute_force():
    rng = np.random.default_rng(2)
    queries, bank = rng.normal(size=(300, 16)), rng.normal(size=(50, 16))
    brute = np.sqrt(((queries[:, None] - bank[None]) ** 2).sum(-1)).min(1)
    np.testing.assert_allclose(nearest_distances(queries, bank), brute, rtol=1e-4, atol=1e-4)
    assert np.allclose(nearest_distances(bank, bank), 0.0, atol=1e-3)
    with pytest.raises(MemoryBankError, match="must be"):
        nearest_distances(queries, bank[:, :3])


def test_patchcore_maps_are_distances_to_the_bank():
    rng = np.random.default_rng(3)
    good = rng.normal(size=(6, 4, 4, 5)).astype("f4")
    bank = fit_patchcore(good, coreset=96)  # keep every patch
    assert bank.shape == (96, 5)
    assert np.allclose(score_patchcore(good, bank), 0.0, atol=1e-3)
    odd = good[:1].copy()
    odd[0, 2, 3] += 50.0
    maps = score_patchcore(odd, bank)
    assert maps.shape == (1, 4, 4)
    assert np.unravel_index(maps[0].argmax(), (4, 4)) == (2, 3)
    assert fit_patchcore(good, coreset=10).shape == (10, 5)


def test_padim_scores_are_mahalanobis_distances():
    rng = np.random.default_rng(4)
    good = rng.normal(size=(50, 2, 2, 3)).astype("f4")
    mean, inv_cov = fit_padim(good, eps=0.01)
    query = rng.normal(size=(2, 2, 2, 3)).astype("f4")
    got = score_padim(query, mean, inv_cov)
    for h in range(2):
        for w in range(2):
            cov = np.cov(good[:, h, w].T) + 0.01 * np.eye(3)
            d = query[:, h, w] - good[:, h, w].mean(0)
            want = np.sqrt(np.einsum("ni,ij,nj->n", d, np.linalg.inv(cov), d))
            np.testing.assert_allclose(got[:, h, w], want, rtol=1e-3)
    with pytest.raises(MemoryBankError, match="do not match"):
        score_padim(query[:, :1], mean, inv_cov)


def _classifier_run(root, size=32):
    from classification.models import SIMPLE_CNN_CAM_LAYER, build_model
    from imaging import Preprocess

    run_dir = store.create_run_dir("tiny_cnn", root=root)
    store.save_model(run_dir, build_model("simple_cnn", 2, size))
    store.write_run_info(
        run_dir,
        {
            "kind": "classifier",
            "model": "simple_cnn",
            "img_size": size,
            "class_names": ["ok_front", "def_front"],
            "normal_class": "ok_front",
            "preprocess": Preprocess(size=size).to_dict(),
            "cam_layer": SIMPLE_CNN_CAM_LAYER,
        },
    )
    return store.load_run(run_dir)


def test_extractor_with_pca_projection_matches_numpy(tmp_path):
    run = _classifier_run(tmp_path)
    spec = FeatureSpec("run", run=run.name)
    model = build_extractor(spec, 32, run.load_model())
    assert spec.layers == ("block2_relu", "block3_relu")
    x = np.random.default_rng(0).random((5, 32, 32, 1)).astype("f4")
    feats = extract(model, x)
    assert feats.shape == (5, 4, 4, 64 + 96)
    projected_model, projected = with_projection(model, feats, 8)
    np.testing.assert_allclose(extract(projected_model, x), projected, atol=1e-3)
    with pytest.raises(FeatureError, match="no layer"):
        build_extractor(FeatureSpec("run", ("nope",)), 32, run.load_model())


@pytest.fixture(scope="module")
def patchcore_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("patchcore")
    data = make_dataset(base / "data")
    cnn = _classifier_run(base / "cls")
    mp = pytest.MonkeyPatch()
    mp.setenv("DEFECTLENS_WEIGHTS", str(base / "weights"))
    argv = ["--data", str(data), "--name", "pc", "--model", "patchcore", "--img-size", "32"]
    argv += ["--backbone-run", str(cnn.path), "--coreset", "40", "--feature-dim", "16"]
    assert train_main(argv) == 0
    mp.undo()
    return data, base / "weights" / "pc"


def test_patchcore_run_saves_without_pickles_and_reloads(patchcore_run):
    _, run_dir = patchcore_run
    run = store.load_run(run_dir)
    assert run.info["model"] == "patchcore"
    assert run.info["features"]["source"] == "run"
    assert run.info["features"]["run_trained_on_labelled_defects"] is True
    assert run.info["memory"]["memory_bank"] == [40, 16]
    assert (run_dir / "memory_bank.npy").exists()
    assert run.info["pixel_threshold"] > 0
    assert {"aupro", "pixel_auroc", "image_auroc"} <= set(run.metrics)
    detector = AnomalyDetector.from_run(run_dir)
    assert isinstance(detector, FeatureDetector)
    x = detector.preprocess.apply_batch([np.full((40, 48), 20, np.uint8)] * 2)
    scores, maps, images = detector.score_arrays(x)
    assert scores.shape == (2,) and maps.shape == (2, 32, 32) and images.shape == (2, 32, 32)


def test_training_without_a_feature_source_exits_2(patchcore_run, capsys):
    data, _ = patchcore_run
    argv = ["--data", str(data), "--name", "x", "--model", "padim", "--img-size", "32"]
    assert train_main(argv) == 2
    errors = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "--backbone-run" in errors[0]


def test_imagenet_weights_offline_fail_with_one_line(patchcore_run, capsys, monkeypatch):
    import keras

    def offline(*args, **kwargs):
        raise OSError("URL fetch failure: Temporary failure in name resolution")

    monkeypatch.setattr(keras.applications, "MobileNetV2", offline)
    data, _ = patchcore_run
    argv = ["--data", str(data), "--name", "x", "--model", "patchcore", "--img-size", "32"]
    assert train_main([*argv, "--backbone", "mobilenetv2", "--weights", "imagenet"]) == 2
    err = capsys.readouterr().err
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in err  # one line, no traceback
    assert "ImageNet weights for mobilenetv2" in errors[0] and "--backbone-run" in errors[0]


def test_flagged_parts_get_anomaly_boxes_in_results_and_coco(patchcore_run, tmp_path):
    from inspection import Inspector, inspect_into_review
    from store.review import ReviewLog

    data, run_dir = patchcore_run
    inspector = Inspector(_classifier_run(tmp_path / "cls"), store.load_run(run_dir))
    # flag every part and let its hottest pixels form regions, so the wiring is what is tested
    inspector.detector.threshold = -1.0
    inspector.detector.pixel_threshold = 1e-6
    paths = sorted((data / "test" / "def_front").glob("*.png"))[:2]
    with ReviewLog(f"sqlite:///{tmp_path / 'r.db'}", tmp_path / "images") as review:
        batch = review.create_batch("t", inspector.classifier.name)
        report = inspect_into_review(review, batch, paths, inspector)
        assert report.added == 2
        coco = review.export_coco(batch, boxes="predicted")
    anomaly_boxes = [
        a
        for a in coco["annotations"]
        if a["category_id"] == next(c["id"] for c in coco["categories"] if c["name"] == "anomaly")
    ]
    assert len(anomaly_boxes) >= 2
    for box in anomaly_boxes:
        x, y, w, h = box["bbox"]
        assert x >= 0 and y >= 0 and w > 0 and h > 0 and x + w <= 48 and y + h <= 40
        assert box["score"] >= 1.0  # region peak over the pixel threshold


@pytest.mark.slow
def test_anomaly_page_boxes_the_predicted_regions_of_a_flagged_part(patchcore_run, tmp_path):
    import json
    import shutil

    from streamlit.testing.v1 import AppTest

    _, run_dir = patchcore_run
    weights = tmp_path / "weights"
    shutil.copytree(run_dir, weights / "pc_all")
    info = json.loads((weights / "pc_all" / "run.json").read_text())
    info.update(threshold=-1.0, pixel_threshold=1e-6)  # every part flagged, its part boxed
    (weights / "pc_all" / "run.json").write_text(json.dumps(info))
    mp = pytest.MonkeyPatch()
    mp.setenv("DEFECTLENS_WEIGHTS", str(weights))
    mp.setenv("DEFECTLENS_DATA", str(tmp_path / "no_data"))
    try:
        app = store.repo_root() / "app" / "Home.py"
        at = AppTest.from_file(str(app), default_timeout=180).run()
        at.switch_page("views/anomaly.py").run()
        assert not at.exception, [e.value for e in at.exception]
        captions = "\n".join(str(c.value) for c in at.caption)
        assert "predicted defect region(s) boxed" in captions
        assert any("Model input" in str(m.value) for m in at.markdown)
    finally:
        mp.undo()


def test_one_shared_pass_gives_the_rows_of_separate_passes(patchcore_run):
    """PatchCore on the classifier's own layers: verdict, Grad-CAM and anomaly features come
    from one model pass, and every result field equals the three separate passes'."""
    from inspection import Inspector

    data, run_dir = patchcore_run
    (backbone,) = (run_dir.parents[1] / "cls").iterdir()  # the --backbone-run of the fixture
    shared = Inspector(store.load_run(backbone), store.load_run(run_dir))
    separate = Inspector(store.load_run(backbone), store.load_run(run_dir))
    separate.shared = None
    assert shared.shared is not None
    images = [np.asarray(Image.open(p)) for p in sorted(data.rglob("test/*/*.png"))]
    rows, expected = shared.score(images), separate.score(images)
    assert shared.timings["shared"] > 0 and "classify" not in shared.timings
    assert len(rows) == len(expected) == len(images)
    for row, want in zip(rows, expected, strict=True):
        assert row.keys() == want.keys()
        for key, value in want.items():
            if isinstance(value, float):
                assert row[key] == pytest.approx(value, abs=1e-5), key
            elif key != "boxes":
                assert row[key] == value, key
        assert len(row["boxes"]) == len(want["boxes"])
        for box, want_box in zip(row["boxes"], want["boxes"], strict=True):
            assert box["label"] == want_box["label"]
            assert abs(box["x_min"] - want_box["x_min"]) <= 1


def test_the_shared_pass_is_refused_when_the_backbone_weights_differ(patchcore_run, tmp_path):
    from inspection import Inspector

    data, run_dir = patchcore_run
    (backbone,) = (run_dir.parents[1] / "cls").iterdir()
    other = store.load_run(backbone)
    model = other.load_model()  # the backbone run with one feature layer's weights changed
    conv = model.get_layer("block2_conv")
    conv.set_weights([w + 0.01 for w in conv.get_weights()])
    inspector = Inspector(other, store.load_run(run_dir))
    assert inspector.shared is None
    images = [np.asarray(Image.open(next(data.rglob("test/*/*.png"))))]
    assert inspector.score(images)[0]["anomaly_score"] is not None
    assert inspector.timings["classify"] > 0 and "shared" not in inspector.timings
