"""The same methods through tf-keras-vis 0.8.7: the reference our fast path is checked against.

Works under Keras 3 / TF 2.21 for flat models. Known limits, checked here rather than failing
deep inside tf-keras-vis:
- a layer inside a nested backbone (or the backbone itself) cannot be reached: tf-keras-vis
  builds `Model(model.inputs, layer.output)` and a nested model's `.output` belongs to its own
  graph ("Output ... is not connected to inputs");
- Scorecam applies a softmax to the model output, so it needs logits (ReplaceToLinear) and is
  meaningless for a one-unit sigmoid head (the softmax of one logit is always 1).
Upsampling is scipy's zoom (corner-aligned), so maps differ from ours at the pixel level;
normalisation is ours (min-max per image, constant -> zeros) for both.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from tf_keras_vis.gradcam import Gradcam
from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
from tf_keras_vis.layercam import Layercam
from tf_keras_vis.saliency import Saliency
from tf_keras_vis.scorecam import Scorecam
from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
from tf_keras_vis.utils.scores import BinaryScore, CategoricalScore

from explain.cams import _as_batch, _wanted_classes, normalize_maps
from explain.layers import ExplainError, describe_head, resolve_layer

_CAM_CLASSES = {
    "gradcam": Gradcam,
    "gradcam++": GradcamPlusPlus,
    "layercam": Layercam,
    "scorecam": Scorecam,
}
METHODS = (*_CAM_CLASSES, "saliency", "smoothgrad")


def _score(kind: str, targets: np.ndarray):
    if kind == "sigmoid":
        return BinaryScore([bool(t) for t in targets])
    return CategoricalScore([int(t) for t in targets])


def _predicted(model: keras.Model, x: np.ndarray, kind: str) -> np.ndarray:
    probs = np.asarray(model(x, training=False))
    return (probs[:, 0] > 0.5).astype(np.int32) if kind == "sigmoid" else probs.argmax(-1)


def tf_keras_vis_cams(
    model: keras.Model,
    images: np.ndarray,
    method: str = "gradcam",
    layer: str | None = None,
    class_index: int | Sequence[int] | None = None,
    score: str = "auto",
    **options,
) -> np.ndarray:
    """CAMs (N, H, W) float32 in [0, 1] computed by tf-keras-vis' own classes."""
    if method not in METHODS:
        raise ExplainError(f"tf-keras-vis backend has no method {method!r}; use one of {METHODS}")
    allowed = {"scorecam": ("max_N",), "smoothgrad": ("smooth_samples", "smooth_noise")}
    unknown = sorted(set(options) - set(allowed.get(method, ())))
    if unknown:
        raise ExplainError(
            f"tf-keras-vis {method} has no option {', '.join(map(repr, unknown))}; its "
            f"options: {', '.join(allowed.get(method, ())) or 'none'}"
        )
    head = describe_head(model)
    if score == "auto":
        score = "logit" if head.to_logits is not None else "probability"
    x = _as_batch(images, model)
    wanted = _wanted_classes(class_index, len(x), head.num_classes)
    targets = np.where(wanted < 0, _predicted(model, x, head.kind), wanted)
    modifier = ReplaceToLinear() if score == "logit" else None
    if method == "scorecam" and (head.kind == "sigmoid" or score != "logit"):
        raise ExplainError(
            "tf-keras-vis Scorecam applies a softmax to the output: it needs a softmax head "
            "with logits; use the default backend for this model"
        )
    if method in ("saliency", "smoothgrad"):
        samples = int(options.get("smooth_samples", 20)) if method == "smoothgrad" else 0
        maps = Saliency(model, model_modifier=modifier)(
            _score(head.kind, targets),
            x,
            smooth_samples=samples,
            smooth_noise=float(options.get("smooth_noise", 0.2)),
            normalize_map=False,
        )
        return normalize_maps(np.asarray(maps, np.float32)).numpy()
    path = resolve_layer(model, layer)
    if len(path) > 1 or isinstance(model.get_layer(path[0]), keras.Model):
        raise ExplainError(
            f"tf-keras-vis cannot reach layer {'/'.join(path)!r} of a nested backbone under "
            "Keras 3; use the default backend"
        )
    extra = {"max_N": options["max_N"]} if method == "scorecam" and "max_N" in options else {}
    maps = _CAM_CLASSES[method](model, model_modifier=modifier)(
        _score(head.kind, targets),
        x,
        penultimate_layer=path[0],
        seek_penultimate_conv_layer=False,
        normalize_cam=False,
        **extra,
    )
    return normalize_maps(np.asarray(maps, np.float32).reshape(len(x), *x.shape[1:3])).numpy()
