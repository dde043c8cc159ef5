import json

import keras
import numpy as np
import pytest

import store
from store.runs import RunError


def _tiny_model() -> keras.Model:
    inputs = keras.Input((8, 8, 1), name="image")
    x = keras.layers.Conv2D(2, 3, padding="same", name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(2, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name="tiny")


def test_weights_dir_follows_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("DEFECTLENS_WEIGHTS", str(tmp_path / "w"))
    assert store.weights_dir() == tmp_path / "w"


def test_name_clash_gets_a_suffix_instead_of_overwriting():
    first = store.create_run_dir("demo")
    (first / "keep.txt").write_text("original")
    second = store.create_run_dir("demo")
    third = store.create_run_dir("demo")
    assert [first.name, second.name, third.name] == ["demo", "demo-2", "demo-3"]
    assert (first / "keep.txt").read_text() == "original"


@pytest.mark.parametrize("bad", ["", "../escape", "a b", "-dash-first", "x/y"])
def test_unsafe_run_names_are_refused(bad):
    with pytest.raises(RunError, match="run name"):
        store.create_run_dir(bad)


def test_run_round_trip_keeps_info_history_metrics_and_model():
    run_dir = store.create_run_dir("roundtrip")
    model = _tiny_model()
    model.save(run_dir / "model.keras")
    store.write_run_info(run_dir, {"kind": "classifier", "class_names": ["ok", "def"]})
    store.write_history(run_dir, {"loss": [0.9, 0.5], "val_loss": [1.0, 0.7]})
    store.write_metrics(run_dir, {"accuracy": np.float32(0.75), "cm": np.eye(2, dtype=int)})

    run = store.load_run("roundtrip")
    assert run.kind == "classifier"
    assert run.info["name"] == "roundtrip"
    assert run.info["class_names"] == ["ok", "def"]
    assert "keras" in run.info["versions"] and run.info["created"]
    assert run.history["epoch"].tolist() == [1, 2]
    assert run.metrics == {"accuracy": 0.75, "cm": [[1, 0], [0, 1]]}
    x = np.random.default_rng(0).random((3, 8, 8, 1), dtype=np.float32)
    np.testing.assert_allclose(run.load_model().predict(x, verbose=0), model.predict(x, verbose=0))


def test_run_info_needs_a_known_kind():
    run_dir = store.create_run_dir("nokind")
    with pytest.raises(RunError, match="kind"):
        store.write_run_info(run_dir, {"kind": "regressor"})


def test_list_runs_filters_by_kind_and_skips_broken_folders():
    for name, kind in [("a", "classifier"), ("b", "autoencoder"), ("c", "lstm")]:
        store.write_run_info(store.create_run_dir(name), {"kind": kind})
    broken = store.create_run_dir("broken")
    (broken / "run.json").write_text("{not json")
    store.create_run_dir("empty")

    assert sorted(r.name for r in store.list_runs()) == ["a", "b", "c"]
    assert [r.name for r in store.list_runs(kind="lstm")] == ["c"]


def test_loading_a_missing_run_names_the_runs_that_exist():
    store.write_run_info(store.create_run_dir("present"), {"kind": "lstm"})
    with pytest.raises(RunError, match="no run named 'absent'; runs found: present"):
        store.load_run("absent")


def test_broken_run_json_is_reported_with_its_path():
    broken = store.create_run_dir("broken")
    (broken / "run.json").write_text("{")
    with pytest.raises(RunError, match="not valid JSON"):
        store.load_run(broken)


def test_missing_model_file_is_a_clear_error():
    store.write_run_info(store.create_run_dir("nomodel"), {"kind": "classifier"})
    with pytest.raises(RunError, match="has no model.keras"):
        store.load_run("nomodel").load_model()


def test_run_json_is_plain_json_readable_without_defectlens():
    run_dir = store.create_run_dir("plain")
    store.write_run_info(run_dir, {"kind": "lstm", "scaler": {"min": np.array([0.0, 1.0])}})
    assert json.loads((run_dir / "run.json").read_text())["scaler"]["min"] == [0.0, 1.0]


def test_saved_model_drops_optimizer_state_but_predicts_the_same():
    model = _tiny_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(1).random((4, 8, 8, 1), dtype=np.float32)
    model.fit(x, np.array([0, 1, 0, 1]), epochs=1, verbose=0)
    full = store.create_run_dir("full") / "model.keras"
    model.save(full)

    path = store.save_model(store.create_run_dir("bare"), model)

    assert path.stat().st_size < full.stat().st_size
    loaded = keras.saving.load_model(path, safe_mode=True, compile=False)
    assert getattr(loaded, "optimizer", None) is None
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


# ---------------------------------------------------------------- confusion matrices


def test_confusion_record_names_labels_axes_and_positive_class():
    record = store.confusion_record(np.array([[5, 1], [2, 7]]), ("good", "defect"), "defect")
    assert record == {
        "labels": ["good", "defect"],
        "matrix": [[5, 1], [2, 7]],
        "rows": "true class",
        "columns": "predicted class",
        "positive_class": "defect",
    }
    assert all(type(v) is int for row in record["matrix"] for v in row)
    run_dir = store.create_run_dir("cm")
    store.write_run_info(run_dir, {"kind": "autoencoder"})
    store.write_metrics(run_dir, {"confusion_matrix": record})
    assert store.load_run(run_dir).metrics["confusion_matrix"] == record


def test_confusion_record_refuses_a_matrix_that_does_not_fit_its_labels():
    with pytest.raises(ValueError, match="2 x 2"):
        store.confusion_record([[1, 2, 3], [4, 5, 6]], ["ok", "defect"], "defect")


def test_read_confusion_passes_the_current_record_through():
    record = store.confusion_record([[3, 0], [1, 2]], ["NG", "OK"], "NG")
    assert store.read_confusion({"confusion_matrix": record}) == record
    assert store.read_confusion({"accuracy": 1.0}) is None


@pytest.mark.parametrize(
    ("old", "labels", "positive"),
    [
        (  # autoencoder runs: labels beside the matrix
            {"confusion_labels": ["good", "defect"], "positive_class": "defect"},
            ["good", "defect"],
            "defect",
        ),
        ({"labels": ["NG", "OK"], "positive_class": "NG"}, ["NG", "OK"], "NG"),  # LSTM runs
        ({}, ["0", "1"], None),  # nothing recorded: indices
    ],
)
def test_read_confusion_converts_older_bare_lists(old, labels, positive):
    record = store.read_confusion({"confusion_matrix": [[168, 5], [139, 89]], **old})
    assert record["matrix"] == [[168, 5], [139, 89]]
    assert (record["labels"], record["positive_class"]) == (labels, positive)
    assert (record["rows"], record["columns"]) == ("true class", "predicted class")


def test_read_confusion_falls_back_to_given_labels():
    record = store.read_confusion({"confusion_matrix": [[1, 0], [0, 1]]}, ["ok_front", "def_front"])
    assert record["labels"] == ["ok_front", "def_front"]


def test_read_confusion_numbers_the_classes_when_stored_labels_do_not_fit():
    record = store.read_confusion({"confusion_matrix": [[1, 0], [0, 1]], "labels": ["a", "b", "c"]})
    assert record["labels"] == ["0", "1"]
