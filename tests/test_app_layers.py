"""The explanation pages on a real backbone: the Layer selector walks through MobileNetV2's
layers (inside residual blocks too) with a heatmap each time, and a model explain refuses is
reported in the page, never as a traceback."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import store

APP = Path(__file__).resolve().parents[1] / "app" / "Home.py"
DEMO = store.repo_root() / "weights" / "demo_mobilenetv2"
TIMEOUT = 300
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("app_layers")]


def no_conv_run(weights: Path) -> None:
    """A classifier run whose model has no convolution: nothing for a CAM to look at."""
    import keras

    run = weights / "no_conv"
    run.mkdir(parents=True)
    info = json.loads((store.repo_root() / "weights" / "demo_flip" / "run.json").read_text())
    info.update(name="no_conv", model="dense")
    info.pop("cam_layer")
    (run / "run.json").write_text(json.dumps(info))
    inp = keras.Input((160, 160, 1), name="image")
    x = keras.layers.Flatten()(keras.layers.AveragePooling2D(8)(inp))
    keras.Model(inp, keras.layers.Dense(2, activation="softmax")(x)).save(run / "model.keras")


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("app_layers") / "weights"
    root.mkdir()
    if DEMO.exists():
        os.symlink(DEMO, root / DEMO.name)
    no_conv_run(root)
    shutil.copytree(store.repo_root() / "weights" / "demo_flip", root / "demo_flip")
    return root


@pytest.fixture
def app(weights, monkeypatch):
    monkeypatch.setenv("DEFECTLENS_WEIGHTS", str(weights))
    return AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()


def open_page(at: AppTest, script: str, run: str, key: str = "run_classifier") -> AppTest:
    at.switch_page(f"views/{script}").run()
    widget = at.selectbox(key=key) if key == "run_classifier" else at.multiselect(key=key)
    widget.set_value(run if key == "run_classifier" else [run]).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def overlay_url(at: AppTest) -> str:
    return [url for img in at.image for url in img.value][1]


@pytest.mark.skipif(not DEMO.exists(), reason="demo_mobilenetv2 not trained (make demo)")
def test_layer_selector_walks_through_mobilenetv2_with_a_heatmap_each_time(app):
    at = open_page(app, "cam_inspector.py", "demo_mobilenetv2")
    select = at.selectbox(key="cam_layer_demo_mobilenetv2")
    from explain import candidate_layers

    # the selector shows labels ("12. block_2 · expand (block_2_expand_relu)"); its values are
    # the layer paths explain lists
    paths = candidate_layers(store.load_run(DEMO).load_model())
    assert select.value == "out_relu" and len(select.options) == len(paths) > 100
    # first layer, inside residual blocks (a skip connection crosses them), middle, last
    wanted = [paths[0], "block_2_expand_relu", "block_5_depthwise", paths[len(paths) // 2]]
    seen = {overlay_url(at)}
    for layer in wanted:
        at.selectbox(key="cam_layer_demo_mobilenetv2").set_value(layer).run()
        assert not at.exception, (layer, [e.value for e in at.exception])
        assert not at.error, (layer, [e.value for e in at.error])
        assert at.selectbox(key="cam_layer_demo_mobilenetv2").value == layer
        seen.add(overlay_url(at))
    assert len(seen) == len(wanted) + 1  # a new heatmap for every layer


@pytest.mark.parametrize(
    ("script", "key"),
    [
        ("cam_inspector.py", "run_classifier"),
        ("heatmap_boxes.py", "run_classifier"),
        ("augmentation.py", "runs_classifier"),
    ],
)
def test_a_model_explain_refuses_is_reported_in_the_page(app, script, key):
    at = open_page(app, script, "no_conv", key)
    errors = " ".join(str(e.value) for e in at.error)
    assert "Cannot explain run **no_conv**" in errors
    assert "no convolutional layer" in errors
