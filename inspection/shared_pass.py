"""One model pass for the verdict, the heatmap and the anomaly features of a chunk of parts.

The inspection pipeline needs three things of every part: the classifier's probabilities, a
Grad-CAM of its most probable defect class, and, when the anomaly run is PatchCore or PaDiM
built on the classifier's own layers (`anomaly/train.py --backbone-run`), the patch features
of two of those layers. Run separately that is three forward passes through the same network.
`SharedPass` runs it once: the feature part up to the CAM layer (reading the anomaly layers on
the way), then the head under a tape for the probabilities and the Grad-CAM gradients, then the
anomaly extractor's own head (aggregation, projection) on the layers it read.

It is used only when the result is the same as the separate calls: the anomaly extractor's
backbone layers carry exactly the classifier's weights, both runs prepare images identically,
the CAM method is a gradient method on the fast route (no skip connection across the CAM
layer), and every layer involved is a top-level layer of the classifier. Otherwise `build`
returns None with the reason, and the pipeline makes the separate calls.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


@dataclass
class SharedPass:
    """Compiled: prepared images -> (probabilities, CAMs, CAM classes, anomaly features)."""

    step: Any

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        import tensorflow as tf

        probs, cams, targets, feats = self.step(tf.constant(np.asarray(x, np.float32)))
        return (
            np.asarray(probs, np.float64),
            np.asarray(cams, np.float32),
            np.asarray(targets),
            np.asarray(feats, np.float32),
        )

    @classmethod
    def build(
        cls,
        model: Any,
        cam_method: str,
        cam_layer: str | None,
        detector: Any,
        preprocess: Any,
        defect_classes: np.ndarray,
    ) -> tuple[SharedPass | None, str]:
        """(the shared pass, "") or (None, why the separate calls are needed)."""
        import keras
        import tensorflow as tf

        from explain import CAM, ExplainError, get_explainer

        if not hasattr(detector, "head_model"):
            return None, "the anomaly run is not a patch-feature run"
        if detector.preprocess.to_dict() != preprocess.to_dict():
            return None, "the two runs prepare images differently"
        try:
            cam = get_explainer(model, cam_method, cam_layer)
        except ExplainError as exc:
            return None, str(exc)
        if cam.route != "fast" or type(cam).raw_maps is not CAM.raw_maps or "/" in cam.layer:
            return None, f"{cam_method} at {cam.layer!r} has no head-only gradient"
        names = detector.backbone_layers()
        reason = _same_backbone(model, detector.model, names)
        if reason:
            return None, reason
        try:
            front = keras.Model(
                model.inputs,
                [model.get_layer(cam.layer).output, *(model.get_layer(n).output for n in names)],
            )
            head = detector.head_model()
        except (ValueError, KeyError) as exc:
            return None, f"the layers cannot be read in one pass ({exc})"
        mask = tf.constant(np.asarray(defect_classes, bool))
        size = tuple(int(d) for d in model.inputs[0].shape[1:3])

        def choose(probs):  # the most probable defect class (classification.cam_targets)
            masked = tf.where(mask[None, :], probs, tf.fill(tf.shape(probs), -np.inf))
            return tf.argmax(masked, axis=-1, output_type=tf.int32)

        # One trace for every batch size (a fresh Ray actor or service otherwise traces twice:
        # the first batch's size, then a relaxed one at the first batch of another size).
        spec = tf.TensorSpec([None, *(int(d) for d in model.inputs[0].shape[1:])], tf.float32)

        @tf.function(input_signature=[spec])
        def step(x):
            acts, *layers = front(x, training=False)
            grads, targets, probs = cam.head_gradients(acts, choose)
            feats = head(layers if len(layers) > 1 else layers[0], training=False)
            return probs, cam.maps_from(acts, grads, size), targets, feats

        return cls(step), ""


def _same_backbone(classifier: Any, extractor: Any, names: tuple[str, ...]) -> str:
    """ "" when every weighted layer of the extractor's backbone is the classifier's layer of
    the same name with equal weights and the inputs agree; else the difference."""
    if not names:
        return "the anomaly extractor reads no backbone layers"
    if tuple(extractor.inputs[0].shape[1:]) != tuple(classifier.inputs[0].shape[1:]):
        return "the anomaly run's input size differs from the classifier's"
    own = {layer.name: layer for layer in classifier.layers}
    head = {"pca_projection", "patch_features"}
    for layer in extractor.layers:
        if layer.name.startswith(("agg_", "pool_")) or layer.name in head:
            continue
        theirs = own.get(layer.name)
        if theirs is None or type(theirs) is not type(layer):
            return f"the anomaly backbone's layer {layer.name!r} is not the classifier's"
        mine, other = layer.get_weights(), theirs.get_weights()
        if len(mine) != len(other) or not all(
            a.shape == b.shape and np.array_equal(a, b) for a, b in zip(mine, other, strict=True)
        ):
            return f"the anomaly backbone's layer {layer.name!r} has other weights"
    missing = [n for n in names if n not in own]
    return f"the classifier has no layer {missing[0]!r}" if missing else ""
