"""Where a CAM looks: finding the target layer and splitting a model around it.

Layers inside a nested backbone (a keras.applications model used as one layer of our
classifier) are named by their path, "backbone/inner_layer". Splitting gives two callables,
`features(images) -> activations` and `head(activations) -> scores`, so the backward pass of a
CAM only runs through the layers above the target.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras

_CONV_TYPES = (
    keras.layers.Conv2D,
    keras.layers.DepthwiseConv2D,
    keras.layers.SeparableConv2D,
    keras.layers.Conv2DTranspose,
)
_PROBABILITY_ACTIVATIONS = ("softmax", "sigmoid")


class ExplainError(ValueError):
    """A model, layer, method or input cannot be explained as asked."""


def _output_in_parent(layer: keras.Layer):
    """The layer's output tensor in the graph of the model that calls it (not its own graph)."""
    return layer._inbound_nodes[0].output_tensors[0]


def _input_in_parent(layer: keras.Layer):
    return layer._inbound_nodes[0].input_tensors[0]


def _is_spatial(layer: keras.Layer) -> bool:
    shape = _output_in_parent(layer).shape
    return len(shape) == 4 and (shape[1] is None or shape[1] > 1 or shape[2] > 1)


def _walk(model: keras.Model, prefix: str = ""):
    """(path, layer) in topological order; a nested model's layers come right before it."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        path = prefix + layer.name
        if isinstance(layer, keras.Model):
            yield from _walk(layer, path + "/")
        yield path, layer


def _check_single_io(model: keras.Model) -> None:
    if not isinstance(model, keras.Model) or len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ExplainError(
            "explain needs a functional Keras model with one image input and one output; "
            f"got {type(model).__name__}"
        )


def candidate_layers(model: keras.Model) -> list[str]:
    """Layers with a spatial (N, h, w, c) output from the first convolution on, input to output."""
    _check_single_io(model)
    names, seen_conv = [], False
    for path, layer in _walk(model):
        seen_conv = seen_conv or isinstance(layer, (*_CONV_TYPES, keras.Model))
        if seen_conv and _is_spatial(layer):
            names.append(path)
    if not names:
        raise ExplainError(
            f"model {model.name!r} has no convolutional layer with a spatial output: "
            "CAM methods need one (saliency and smoothgrad do not)"
        )
    return names


def find_target_layer(model: keras.Model) -> str:
    """The last convolution, moved forward over the BN/activation layers that keep its shape.

    For a nested backbone this ends on the backbone itself (its output is the activated last
    convolution), which keeps the split at the outer level.
    """
    _check_single_io(model)
    walked = [(p, layer) for p, layer in _walk(model) if _is_spatial(layer)]
    conv_at = [i for i, (_, layer) in enumerate(walked) if isinstance(layer, _CONV_TYPES)]
    if not conv_at:
        candidate_layers(model)  # raises the explanatory error
    i = conv_at[-1]
    shape = tuple(_output_in_parent(walked[i][1]).shape)
    while i + 1 < len(walked) and tuple(_output_in_parent(walked[i + 1][1]).shape) == shape:
        i += 1
    return walked[i][0]


def resolve_layer(model: keras.Model, layer: str | None) -> list[str]:
    """Path of a layer given as "outer/inner", an outer name, or a unique inner name."""
    if layer is None:
        layer = find_target_layer(model)
    paths = {p: lyr for p, lyr in _walk(model)}
    if layer in paths:
        found = layer
    else:
        matches = [p for p in paths if p.rsplit("/", 1)[-1] == layer]
        if len(matches) != 1:
            hint = "ambiguous: " + ", ".join(matches) if matches else "no such layer"
            raise ExplainError(
                f"layer {layer!r} in model {model.name!r}: {hint}; "
                f"pick one of explain.candidate_layers(model), e.g. {candidate_layers(model)[-1]!r}"
            )
        found = matches[0]
    if not _is_spatial(paths[found]):
        raise ExplainError(
            f"layer {found!r} has output shape {tuple(_output_in_parent(paths[found]).shape)}; "
            "a CAM needs a 4-D (N, h, w, c) output: pick one of explain.candidate_layers(model)"
        )
    return found.split("/")


@dataclass(frozen=True)
class Head:
    """What the model's output means and how to reach its logits.

    kind: "softmax" (one unit per class) or "sigmoid" (one unit: class 1, its negation class 0).
    end: the tensor the split head computes (the final layer's input when logits are reachable).
    to_logits: maps `end` to logits, or None when only probabilities are available.
    """

    kind: str
    num_classes: int
    end: object
    to_logits: Callable | None


def describe_head(model: keras.Model) -> Head:
    """Find the output activation so scores can use logits (no saturation) when possible."""
    _check_single_io(model)
    output = model.outputs[0]
    if len(output.shape) != 2:
        raise ExplainError(f"model output shape {tuple(output.shape)} is not (N, classes)")
    units = int(output.shape[-1])
    kind = "sigmoid" if units == 1 else "softmax"
    final = output._keras_history.operation
    activation = getattr(getattr(final, "activation", None), "__name__", None)
    if isinstance(final, keras.layers.Softmax):
        activation = "softmax"
    num_classes = 2 if units == 1 else units
    if activation in _PROBABILITY_ACTIVATIONS:
        end = _input_in_parent(final)
        if isinstance(final, keras.layers.Dense):
            dense = final

            def to_logits(z):
                logits = keras.ops.matmul(z, dense.kernel)
                return logits + dense.bias if dense.bias is not None else logits

        else:

            def to_logits(z):
                return z

        return Head(kind, num_classes, end, to_logits)
    return Head(kind, num_classes, output, None)


def _model_between(inputs, outputs) -> Callable:
    if inputs is outputs:
        return lambda x, training=False: x
    return keras.Model(inputs, outputs)


def _chain(first: Callable, second: Callable) -> Callable:
    return lambda x, training=False: second(first(x, training=training), training=training)


def split_model(model: keras.Model, path: list[str], end=None) -> tuple[Callable, Callable]:
    """(features, head): input -> target activations, target activations -> `end` tensor."""
    end = model.outputs[0] if end is None else end
    layer = model.get_layer(path[0])
    target = _output_in_parent(layer)
    if len(path) == 1:
        return _model_between(model.inputs[0], target), _model_between(target, end)
    if not isinstance(layer, keras.Model):
        raise ExplainError(f"{path[0]!r} is not a nested model, so {'/'.join(path)!r} is invalid")
    before = _model_between(model.inputs[0], _input_in_parent(layer))
    after = _model_between(target, end)
    inner_features, inner_head = split_model(layer, path[1:])
    return _chain(before, inner_features), _chain(inner_head, after)
