"""The Grad-CAM family on one base class (pytorch-grad-cam's shape, TensorFlow inside).

`CAM` owns the machinery: splitting the model at the target layer, one compiled function per
(model, layer, method) that runs the feature part once in inference mode and the backward pass
only through the head, choosing the target class, upsampling and normalising. A method overrides
`cam_weights` (gradient methods) or `raw_maps` (Score-CAM, saliency).

Scores are logits when the output layer is a Dense/Activation with softmax or sigmoid (its
pre-activation is computed directly, so confident predictions do not saturate the gradient);
otherwise the output probability. With a sigmoid head, class 1 is the unit and class 0 its
negation (score -logit, or 1 - p).

Normalisation: every map is scaled per image to [0, 1] by min-max after the ReLU, so 1 marks
the most relevant pixel of that image (no absolute scale across images); a constant map, e.g.
no positive evidence anywhere, becomes all zeros.
"""

from __future__ import annotations

import logging
import numbers
import weakref
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from explain.layers import ExplainError, Split, describe_head, resolve_layer, split_model

log = logging.getLogger(__name__)
_REL_EPS = 1e-5


def normalize_maps(maps: tf.Tensor) -> tf.Tensor:
    """Min-max per image to [0, 1]; a constant map (up to float rounding) becomes zeros.

    "Constant" is relative to the map's magnitude: untrained backbones give maps around 1e-11
    that still carry a clear pattern.
    """
    maps = tf.convert_to_tensor(maps, tf.float32)
    low = tf.reduce_min(maps, axis=(1, 2), keepdims=True)
    high = tf.reduce_max(maps, axis=(1, 2), keepdims=True)
    span = high - low
    scale = tf.maximum(tf.abs(high), tf.abs(low))
    flat = span <= _REL_EPS * scale
    return tf.where(flat, tf.zeros_like(maps), (maps - low) / tf.where(flat, 1.0, span))


def upsample(maps: tf.Tensor, size: tuple[int, int]) -> tf.Tensor:
    """Bilinear (half-pixel centres) resize of (N, h, w) maps to (N, H, W)."""
    if tuple(maps.shape[1:3]) == tuple(size):
        return maps
    return tf.image.resize(maps[..., None], size, method="bilinear")[..., 0]


class CAM:
    """Base class: subclasses set `name` and override `cam_weights` or `raw_maps`."""

    name = "cam"
    needs_layer = True
    #: keyword options the method accepts (anything else is refused)
    OPTIONS: tuple[str, ...] = ("jit_compile",)

    def __init__(
        self, model: keras.Model, layer: str | None = None, score: str = "auto", **options
    ):
        self._model_ref = weakref.ref(model)
        self.head_info = describe_head(model)
        if score == "auto":
            score = "logit" if self.head_info.to_logits is not None else "probability"
        if score not in ("logit", "probability"):
            raise ExplainError(f"score must be 'auto', 'logit' or 'probability', got {score!r}")
        if score == "logit" and self.head_info.to_logits is None:
            raise ExplainError(
                f"model {model.name!r} has no softmax/sigmoid output layer to take logits from; "
                "use score='probability'"
            )
        self.score = score
        self.options = _check_options(self, options)
        self.layer = "/".join(resolve_layer(model, layer)) if self.needs_layer else None
        end = self.head_info.end if score == "logit" else model.outputs[0]
        if self.needs_layer:
            self.split = _split_of(model, self.layer, end)
        else:
            whole = keras.Model(model.inputs[0], end)
            self.split = Split("fast", lambda x, training=False: x, whole, head=whole)
        self.features, self.head = self.split.features, self.split.head
        self._steps: dict[bool, object] = {}
        self._signature = [
            tf.TensorSpec((None, *model.inputs[0].shape[1:]), tf.float32),
            tf.TensorSpec((None,), tf.int32),
        ]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(layer={self.layer!r}, score={self.score!r}, "
            f"route={self.route!r})"
        )

    @property
    def route(self) -> str:
        """ "fast" (split at the layer) or "fallback" (one pass under the tape: a skip
        connection crosses the layer)."""
        return self.split.route

    # --- scores -----------------------------------------------------------------------------
    def _logits_and_probs(self, end: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        if self.score == "logit":
            logits = self.head_info.to_logits(end)
            act = tf.sigmoid if self.head_info.kind == "sigmoid" else tf.nn.softmax
            return logits, act(logits)
        return end, end

    def _targets(self, probs: tf.Tensor, wanted: tf.Tensor) -> tf.Tensor:
        if self.head_info.kind == "sigmoid":
            predicted = tf.cast(probs[:, 0] > 0.5, tf.int32)
        else:
            predicted = tf.argmax(probs, axis=-1, output_type=tf.int32)
        return tf.where(wanted < 0, predicted, wanted)

    def _class_scores(self, values: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
        """Score of each image's target class from logits or probabilities."""
        if self.head_info.kind == "sigmoid":
            unit = values[:, 0]
            if self.score == "logit":
                return tf.where(targets == 1, unit, -unit)
            return tf.where(targets == 1, unit, 1.0 - unit)
        return tf.gather(values, targets, axis=1, batch_dims=1)

    def _probabilities(self, x: tf.Tensor) -> tf.Tensor:
        return self._logits_and_probs(self.split.forward(x, training=False))[1]

    def activations_and_gradients(self, x: tf.Tensor, wanted: tf.Tensor):
        """(activations, d score / d activations, target classes) by the split's route."""
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            if self.split.route == "fast":
                acts = self.features(x, training=False)
                tape.watch(acts)
                end = self.head(acts, training=False)
            else:
                tape.watch(x)
                acts, end = self.split.joint(x, training=False)
            values, probs = self._logits_and_probs(end)
            targets = self._targets(probs, wanted)
            scores = self._class_scores(values, targets)
        return acts, tape.gradient(scores, acts), targets

    def head_gradients(self, acts: tf.Tensor, choose) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """(d score / d acts, target classes, probabilities) for activations `acts` already
        computed at the target layer (the fast route only), the targets being
        `choose(probabilities)`: lets a caller that runs the feature part itself, e.g. to read
        other layers in the same pass, still get this method's maps (`maps_from`)."""
        if self.split.route != "fast":
            raise ExplainError(f"{self.layer!r}: head gradients need the fast route")
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(acts)
            values, probs = self._logits_and_probs(self.head(acts, training=False))
            targets = choose(probs)
            scores = self._class_scores(values, targets)
        return tape.gradient(scores, acts), targets, probs

    def maps_from(
        self, acts: tf.Tensor, grads: tf.Tensor, size: tuple[int, int], normalize: bool = True
    ) -> tf.Tensor:
        """(N, H, W) maps from activations and their gradients, as `__call__` makes them."""
        maps = tf.nn.relu(tf.reduce_sum(self.cam_weights(acts, grads) * acts, axis=-1))
        maps = upsample(maps, size)
        return normalize_maps(maps) if normalize else maps

    # --- the pipeline -----------------------------------------------------------------------
    def cam_weights(self, acts: tf.Tensor, grads: tf.Tensor) -> tf.Tensor:
        """Per-channel (N, 1, 1, C) or per-position (N, h, w, C) weights of the activations."""
        raise NotImplementedError

    def raw_maps(self, x: tf.Tensor, wanted: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """(N, h, w) maps before upsampling and normalisation, and the target classes."""
        acts, grads, targets = self.activations_and_gradients(x, wanted)
        maps = tf.reduce_sum(self.cam_weights(acts, grads) * acts, axis=-1)
        return tf.nn.relu(maps), targets

    def _batch(self, x: tf.Tensor, wanted: tf.Tensor, normalize: bool = True):
        maps, targets = self.raw_maps(x, wanted)
        maps = upsample(maps, (x.shape[1], x.shape[2]))
        return (normalize_maps(maps) if normalize else maps), targets

    def _step(self, normalize: bool):
        """One compiled function per normalisation flag, fixed signature: no retracing."""
        if normalize not in self._steps:
            fixed = all(d is not None for d in self._signature[0].shape[1:])
            self._steps[normalize] = tf.function(
                lambda x, wanted: self._batch(x, wanted, normalize),
                input_signature=self._signature if fixed else None,
                reduce_retracing=not fixed,
                jit_compile=bool(self.options.get("jit_compile", False)),
            )
        return self._steps[normalize]

    def __call__(
        self,
        images: np.ndarray,
        class_index: int | Sequence[int] | None = None,
        batch_size: int = 32,
        normalize: bool = True,
        return_targets: bool = False,
    ):
        """CAMs (N, H, W) float32 for images (N, H, W, C) or (N, H, W) or one (H, W[, C])."""
        x = _as_batch(images, self._model_ref())
        wanted = _wanted_classes(class_index, len(x), self.head_info.num_classes)
        cams, targets = [], []
        for start in range(0, len(x), batch_size):
            xb = tf.constant(x[start : start + batch_size])
            wb = tf.constant(wanted[start : start + batch_size])
            maps, t = self._step(normalize)(xb, wb)
            cams.append(maps.numpy())
            targets.append(t.numpy())
        cams = np.concatenate(cams).astype(np.float32, copy=False)
        return (cams, np.concatenate(targets)) if return_targets else cams


class GradCAM(CAM):
    """Grad-CAM: channel weights are the spatial mean of the gradients (Selvaraju et al.)."""

    name = "gradcam"

    def cam_weights(self, acts, grads):
        return tf.reduce_mean(grads, axis=(1, 2), keepdims=True)


class GradCAMPlusPlus(CAM):
    """Grad-CAM++ (Chattopadhyay et al.), in the exp(score)-free closed form.

    tf-keras-vis multiplies every derivative by exp(score); that factor cancels in alpha and
    only scales the weights, so dropping it changes nothing after normalisation and cannot
    overflow for large logits.
    """

    name = "gradcam++"

    def cam_weights(self, acts, grads):
        g2, g3 = grads**2, grads**3
        total = tf.reduce_sum(acts, axis=(1, 2), keepdims=True)
        denom = 2.0 * g2 + total * g3
        alphas = g2 / tf.where(g2 != 0.0, denom, tf.ones_like(denom))
        norm = tf.reduce_sum(alphas, axis=(1, 2), keepdims=True)
        alphas = alphas / tf.where(norm != 0.0, norm, tf.ones_like(norm))
        return tf.reduce_sum(alphas * tf.nn.relu(grads), axis=(1, 2), keepdims=True)


class LayerCAM(CAM):
    """LayerCAM (Jiang et al.): each position weighted by its own positive gradient."""

    name = "layercam"

    def cam_weights(self, acts, grads):
        return tf.nn.relu(grads)


class HiResCAM(CAM):
    """HiResCAM (Draelos & Carin, 2020): gradients times activations position by position.

    Unlike Grad-CAM it does not average the gradients first, so for a CNN whose head is global
    average pooling plus a dense layer the map sums exactly to the class score (faithful).
    """

    name = "hirescam"

    def cam_weights(self, acts, grads):
        return grads


class XGradCAM(CAM):
    """XGradCAM (Fu et al., 2020): channel weights sum(grads * acts) / sum(acts) over space."""

    name = "xgradcam"

    def cam_weights(self, acts, grads):
        total = tf.reduce_sum(acts, axis=(1, 2), keepdims=True)
        weighted = tf.reduce_sum(grads * acts, axis=(1, 2), keepdims=True)
        return weighted / (total + 1e-7)


class EigenCAM(CAM):
    """EigenCAM (Muhammad & Yeasin, 2020): the activations' first principal component.

    Gradient-free and class-agnostic. Positions are centred per channel before the SVD (as
    pytorch-grad-cam does); the sign of a principal component is arbitrary, so it is chosen to
    correlate positively with the channel-summed activations (strongly activated regions hot).
    """

    name = "eigencam"

    def raw_maps(self, x, wanted):
        acts = self.features(x, training=False)
        targets = self._targets(self._probabilities(x), wanted)
        shape = tf.shape(acts)
        flat = tf.reshape(acts, (shape[0], shape[1] * shape[2], shape[3]))
        centred = flat - tf.reduce_mean(flat, axis=1, keepdims=True)
        _, _, v = tf.linalg.svd(centred)
        projection = tf.linalg.matvec(centred, v[:, :, 0])
        energy = tf.reduce_sum(flat, axis=-1)
        energy = energy - tf.reduce_mean(energy, axis=1, keepdims=True)
        sign = tf.where(tf.reduce_sum(projection * energy, axis=1, keepdims=True) < 0, -1.0, 1.0)
        maps = tf.reshape(projection * sign, (shape[0], shape[1], shape[2]))
        return tf.nn.relu(maps), targets


class ScoreCAM(CAM):
    """Score-CAM (Wang et al.): each channel, upsampled and min-max scaled, masks the input;
    the target-class probability of the masked image is that channel's weight (as tf-keras-vis).

    Options: `max_N` keeps only the max_N channels with the largest spatial standard deviation
    (Faster Score-CAM, as tf-keras-vis); `masks_per_pass` (64) masked images per forward pass.
    Without max_N it costs one forward pass per image and channel.
    """

    name = "scorecam"
    OPTIONS = ("max_N", "masks_per_pass")

    def _step(self, normalize: bool):
        if not self._steps:
            self._steps["forward"] = tf.function(self._probabilities, reduce_retracing=True)
            self._steps["features"] = tf.function(
                lambda x: self.features(x, training=False), reduce_retracing=True
            )
        return lambda x, wanted: self._batch(x, wanted, normalize)

    def raw_maps(self, x, wanted):
        forward, features = self._steps["forward"], self._steps["features"]
        acts = features(x)
        targets = self._targets(forward(x), wanted)
        max_n = self.options.get("max_N")
        if max_n is not None and not 0 < max_n <= acts.shape[-1]:
            raise ExplainError(f"max_N must be between 1 and {acts.shape[-1]}, got {max_n}")
        if max_n and max_n < acts.shape[-1]:
            top = tf.math.top_k(tf.math.reduce_std(acts, axis=(1, 2)), k=int(max_n)).indices
            acts = tf.gather(acts, top, axis=-1, batch_dims=1)
        chunk = int(self.options.get("masks_per_pass", 64))
        weights = []
        for i in range(x.shape[0]):
            channels = tf.transpose(acts[i], (2, 0, 1))
            masks = normalize_maps(upsample(channels, (x.shape[1], x.shape[2])))
            scores = []
            for start in range(0, masks.shape[0], chunk):
                masked = x[i : i + 1] * masks[start : start + chunk, :, :, None]
                probs = forward(masked)
                scores.append(_probability_of(self.head_info.kind, probs, targets[i]))
            weights.append(tf.concat(scores, axis=0))
        weights = tf.stack(weights)[:, None, None, :]
        return tf.nn.relu(tf.reduce_sum(weights * acts, axis=-1)), targets


def _probability_of(kind: str, probs: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    if kind == "sigmoid":
        return tf.where(target == 1, probs[:, 0], 1.0 - probs[:, 0])
    return probs[:, target]


class Saliency(CAM):
    """Vanilla saliency (Simonyan et al.): |d score / d input|, max over colour channels."""

    name = "saliency"
    needs_layer = False

    def input_gradients(self, x, wanted):
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(x)
            values, probs = self._logits_and_probs(self.head(x, training=False))
            targets = self._targets(probs, wanted)
            scores = self._class_scores(values, targets)
        return tape.gradient(scores, x), targets

    def raw_maps(self, x, wanted):
        grads, targets = self.input_gradients(x, wanted)
        return tf.reduce_max(tf.abs(grads), axis=-1), targets


class SmoothGrad(Saliency):
    """SmoothGrad (Smilkov et al.): saliency averaged over noisy copies of the image.

    Options (tf-keras-vis defaults): `smooth_samples` (20) copies, `smooth_noise` (0.2) noise
    standard deviation as a fraction of each image's value range, `seed` (0). The target class
    is fixed on the clean image first, so every copy explains the same class.
    """

    name = "smoothgrad"
    OPTIONS = ("jit_compile", "smooth_samples", "smooth_noise", "seed")

    def raw_maps(self, x, wanted):
        targets = self._targets(self._logits_and_probs(self.head(x, training=False))[1], wanted)
        samples = int(self.options.get("smooth_samples", 20))
        noise = float(self.options.get("smooth_noise", 0.2))
        spread = tf.reduce_max(x, axis=(1, 2, 3), keepdims=True) - tf.reduce_min(
            x, axis=(1, 2, 3), keepdims=True
        )
        seed = tf.constant([int(self.options.get("seed", 0)), 0])
        total = tf.zeros_like(x)
        for k in tf.range(samples):  # a graph loop: one traced gradient, not `samples` copies
            eps = tf.random.stateless_normal(tf.shape(x), seed + tf.stack([0, k])) * noise * spread
            grads, _ = self.input_gradients(x + eps, targets)
            total += grads
        return tf.reduce_max(tf.abs(total / samples), axis=-1), targets


METHODS: dict[str, type[CAM]] = {
    cls.name: cls
    for cls in (
        GradCAM,
        GradCAMPlusPlus,
        HiResCAM,
        XGradCAM,
        EigenCAM,
        ScoreCAM,
        LayerCAM,
        SmoothGrad,
        Saliency,
    )
}
_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def get_explainer(
    model: keras.Model, method: str = "gradcam", layer: str | None = None, **options
) -> CAM:
    """The explainer for (model, method, layer, options), built once and cached per model."""
    if method not in METHODS:
        raise ExplainError(f"unknown CAM method {method!r}; choose one of {sorted(METHODS)}")
    key = (method, layer, tuple(sorted((k, repr(v)) for k, v in options.items())))
    per_model = _CACHE.setdefault(model, {})
    if key not in per_model:
        per_model[key] = METHODS[method](model, layer, **options)
        log.debug("built %r for model %s", per_model[key], model.name)
    return per_model[key]


_SPLITS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _split_of(model: keras.Model, layer: str, end) -> Split:
    """One split per (model, layer, score tensor), shared by every method explaining there."""
    per_model = _SPLITS.setdefault(model, {})
    key = (layer, id(end))
    if key not in per_model:
        per_model[key] = split_model(model, layer.split("/"), end)
    return per_model[key]


def _check_options(method: CAM, options: dict) -> dict:
    unknown = sorted(set(options) - set(method.OPTIONS))
    if unknown:
        raise ExplainError(
            f"{method.name} has no option {', '.join(map(repr, unknown))}; "
            f"its options: {', '.join(method.OPTIONS) or 'none'} (and score, batch_size, "
            "normalize, return_targets for every method)"
        )
    for key in ("max_N", "masks_per_pass", "smooth_samples"):
        value = options.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1
        ):
            raise ExplainError(f"{key} must be a positive integer, got {value!r}")
    noise = options.get("smooth_noise")
    if noise is not None and not (isinstance(noise, numbers.Real) and noise >= 0):
        raise ExplainError(f"smooth_noise must be a number >= 0, got {noise!r}")
    return dict(options)


def _as_batch(images, model: keras.Model | None) -> np.ndarray:
    x = np.asarray(images, dtype=np.float32)
    want = model.inputs[0].shape if model is not None else None
    if want is not None:
        if x.ndim == len(want) - 2:  # one grayscale image without channel axis
            x = x[None, ..., None] if want[-1] == 1 else x[None]
        elif x.ndim == len(want) - 1:
            x = x[..., None] if x.shape[-1] != want[-1] and want[-1] == 1 else x[None]
    if x.ndim != 4 or (
        want is not None
        and any(w is not None and w != d for w, d in zip(want[1:], x.shape[1:], strict=True))
    ):
        raise ExplainError(
            f"images have shape {np.shape(images)}; the model expects batches shaped "
            f"{tuple(want) if want is not None else '(N, H, W, C)'}: preprocess them with "
            "the run's imaging.Preprocess"
        )
    return x


def _wanted_classes(class_index, n: int, num_classes: int) -> np.ndarray:
    """Per-image class to explain, -1 meaning the predicted class."""
    if class_index is None:
        return np.full(n, -1, dtype=np.int32)
    wanted = np.broadcast_to(np.asarray(class_index, dtype=np.int32), (n,)).copy()
    if np.any((wanted < -1) | (wanted >= num_classes)):
        raise ExplainError(
            f"class_index {class_index!r} out of range for a model with {num_classes} classes"
        )
    return wanted
