"""Heat scales, the "no evidence" verdict and layer labels: plain numpy / strings."""

import numpy as np
import pytest

from explain import ExplainError
from explain.heatscale import calibrate_reference, evidence, scale_map
from explain.layer_labels import label_layers, layer_kind


def blob(peak: float) -> np.ndarray:
    m = np.zeros((20, 20), np.float32)
    m[5:10, 5:10] = peak
    m[6, 6] = peak * 0.5
    return m


def test_per_image_scaling_makes_weak_and_strong_maps_equally_hot_absolute_does_not():
    weak, strong = blob(0.01), blob(1.0)
    assert scale_map(weak, "image").max() == pytest.approx(1.0)
    assert scale_map(strong, "image").max() == pytest.approx(1.0)
    reference = calibrate_reference([weak, strong, blob(0.8)], quantile=1.0)
    assert reference == pytest.approx(1.0)
    assert scale_map(weak, "absolute", reference).max() == pytest.approx(0.01)
    assert scale_map(blob(3.0), "absolute", reference).max() == pytest.approx(1.0)  # clipped


def test_blank_maps_are_named_and_never_calibrate():
    blank = np.zeros((8, 8), np.float32)
    assert scale_map(blank, "image").max() == 0
    verdict = evidence(blank)
    assert verdict.blank and "no positive evidence" in verdict.message
    assert not evidence(blob(1.0)).blank
    assert evidence(blob(0.01), reference=1.0).blank  # faint against the run's reference
    with pytest.raises(ExplainError, match="cannot calibrate"):
        calibrate_reference([blank, blank])
    with pytest.raises(ExplainError, match="positive reference"):
        scale_map(blob(1.0), "absolute", None)
    with pytest.raises(ExplainError, match="scale must be"):
        scale_map(blob(1.0), "log")


def test_layers_are_labelled_by_block_and_kind_in_model_order():
    paths = ["stem_conv", "block1_bn", "block3_relu", "block2_pool", "last_conv"]
    labels = label_layers(paths, recommended="last_conv")
    assert [lab.position for lab in labels] == [1, 2, 3, 4, 5]
    assert [(lab.block, lab.kind) for lab in labels] == [
        ("stem", "conv"),
        ("block1", "batch norm"),
        ("block3", "activation"),
        ("block2", "pooling"),
        ("head", "conv"),
    ]
    assert [lab.recommended for lab in labels] == [False] * 4 + [True]
    assert labels[-1].text.endswith("recommended") and "recommended" not in labels[0].text
    nested = label_layers(["mobilenetv2/block_2_add"])[0]
    assert (nested.block, nested.kind) == ("mobilenetv2 › block_2", "skip-connection add")
    assert layer_kind("Conv_1_relu6") == "activation" and layer_kind("dense_3") == "layer"
