"""Where a CAM looks: finding the target layer and splitting a model around it.

Layers inside a nested backbone (a Keras model used as one layer of our classifier) are named
by their path, "backbone/inner_layer". Every tensor is looked up in the graph of the model being
explained (a layer shared with another model, or a `Sequential` rebuilt by `.add()`, has one
graph node per call; node 0 may belong to someone else).

Two ways to get activations and the gradient of a score with respect to them (`Split`):
- fast: when every path from the input to the output runs through the target layer, the model
  is cut there into `features(images) -> activations` and `head(activations) -> scores`; the
  features run once outside the tape and the backward pass only runs through the head;
- fallback: when a skip connection crosses the cut (inside residual blocks), no such head
  exists; one compiled `keras.Model(inputs, [target, end])` runs under the tape and the
  gradient is taken with respect to its intermediate output (tf-keras-vis' approach).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import keras

_CONV_TYPES = (
    keras.layers.Conv2D,
    keras.layers.DepthwiseConv2D,
    keras.layers.SeparableConv2D,
    keras.layers.Conv2DTranspose,
)
_PROBABILITY_ACTIVATIONS = ("softmax", "sigmoid")
_LISTED = 12  # valid layer names quoted in an error message


class ExplainError(ValueError):
    """A model, layer, method or input cannot be explained as asked."""


def _graph(model: keras.Model) -> keras.Model:
    """The functional graph of `model` (a `Sequential` keeps one, rebuilt on every `.add()`)."""
    if isinstance(model, keras.Sequential):
        graph = getattr(model, "_functional", None)
        if graph is None:
            raise ExplainError(
                f"Sequential model {model.name!r} has no graph yet: start it with "
                "keras.Input(shape) or call it on a batch before explaining it"
            )
        return graph
    if not hasattr(model, "_nodes"):
        raise ExplainError(
            f"model {model.name!r} ({type(model).__name__}) is subclassed: explain needs a "
            "functional or Sequential Keras model"
        )
    return model


def _nodes_in(graph: keras.Model, layer: keras.Layer) -> list:
    """The layer's call nodes that belong to `graph` (one per call inside that model)."""
    return [
        node for i, node in enumerate(layer._inbound_nodes) if f"{id(layer)}_ib-{i}" in graph._nodes
    ]


def _node(graph: keras.Model, layer: keras.Layer, path: str):
    nodes = _nodes_in(graph, layer)
    if len(nodes) != 1:
        raise ExplainError(
            f"layer {path!r} is called {len(nodes)} times in model {graph.name!r}: a CAM needs "
            "a layer with one output; pick one of explain.candidate_layers(model)"
        )
    return nodes[0]


def _output(graph: keras.Model, layer: keras.Layer, path: str = ""):
    """The layer's output tensor in `graph` (not in another model that shares the layer)."""
    return _node(graph, layer, path or layer.name).output_tensors[0]


def _is_spatial(graph: keras.Model, layer: keras.Layer) -> bool:
    nodes = _nodes_in(graph, layer)
    if len(nodes) != 1 or len(nodes[0].output_tensors) != 1:
        return False
    if isinstance(layer, keras.Model) and (len(layer.inputs) != 1 or len(layer.outputs) != 1):
        return False
    shape = nodes[0].output_tensors[0].shape
    return len(shape) == 4 and (shape[1] is None or shape[1] > 1 or shape[2] > 1)


def _walk(model: keras.Model, prefix: str = "") -> Iterator[tuple[str, keras.Layer, keras.Model]]:
    """(path, layer, graph the layer is called in), topologically; a nested model's layers
    come right before the nested model itself."""
    graph = _graph(model)
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        path = prefix + layer.name
        if isinstance(layer, keras.Model) and len(_nodes_in(graph, layer)) == 1:
            yield from _walk(layer, path + "/")
        yield path, layer, graph


def _check_single_io(model: keras.Model) -> None:
    if not isinstance(model, keras.Model) or len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ExplainError(
            "explain needs a functional Keras model with one image input and one output; "
            f"got {type(model).__name__}"
        )
    _graph(model)


def candidate_layers(model: keras.Model) -> list[str]:
    """Layers with a spatial (N, h, w, c) output from the first convolution on, input to output.

    Every name works with every CAM method (by the fast split or the fallback)."""
    _check_single_io(model)
    names, seen_conv = [], False
    for path, layer, graph in _walk(model):
        seen_conv = seen_conv or isinstance(layer, (*_CONV_TYPES, keras.Model))
        if seen_conv and _is_spatial(graph, layer):
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
    walked = [(p, lyr, g) for p, lyr, g in _walk(model) if _is_spatial(g, lyr)]
    conv_at = [i for i, (_, layer, _) in enumerate(walked) if isinstance(layer, _CONV_TYPES)]
    if not conv_at:
        candidate_layers(model)  # raises the explanatory error
    i = conv_at[-1]

    def shape(j: int) -> tuple:
        return tuple(_output(walked[j][2], walked[j][1]).shape)

    while i + 1 < len(walked) and shape(i + 1) == shape(i):
        i += 1
    return walked[i][0]


def _listing(names: list[str]) -> str:
    if len(names) <= _LISTED:
        return ", ".join(names)
    half = _LISTED // 2
    return (
        f"{', '.join(names[:half])}, ..., {', '.join(names[-half:])} "
        f"({len(names)} in all: explain.candidate_layers(model))"
    )


def resolve_layer(model: keras.Model, layer: str | None) -> list[str]:
    """Path of a candidate layer given as "outer/inner", an outer name, or a unique inner name."""
    if layer is None:
        layer = find_target_layer(model)
    if not isinstance(layer, str):
        raise ExplainError(f"layer must be a layer name (str), got {type(layer).__name__}")
    candidates = candidate_layers(model)
    if layer in candidates:
        return layer.split("/")
    paths = [p for p, _, _ in _walk(model)]
    matches = [p for p in paths if p == layer or p.rsplit("/", 1)[-1] == layer]
    if len(matches) == 1 and matches[0] in candidates:
        return matches[0].split("/")
    if len(matches) > 1:
        hint = "ambiguous: " + ", ".join(matches)
    elif matches:
        hint = "not a layer a CAM can use (no spatial (N, h, w, c) output after a convolution)"
    else:
        hint = "no such layer"
    raise ExplainError(
        f"layer {layer!r} in model {model.name!r}: {hint}; valid layers: {_listing(candidates)}"
    )


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
    final, node_index, _ = output._keras_history
    activation = getattr(getattr(final, "activation", None), "__name__", None)
    if isinstance(final, keras.layers.Softmax):
        activation = "softmax"
    num_classes = 2 if units == 1 else units
    if activation in _PROBABILITY_ACTIVATIONS:
        end = final._inbound_nodes[node_index].input_tensors[0]
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


@dataclass(frozen=True)
class Split:
    """How to reach the target activations and the score tensor `end`.

    route: "fast" (`head` maps activations to `end`) or "fallback" (`joint` maps images to
    (activations, end) in one pass; take the gradient under one tape).
    features: images -> activations; forward: images -> end (both always available).
    """

    route: str
    features: Callable
    forward: Callable
    head: Callable | None = None
    joint: Callable | None = None


def _model_between(inputs, outputs) -> Callable:
    if inputs is outputs:
        return lambda x, training=False: x
    return keras.Model(inputs, outputs)


def _chain(first: Callable, second: Callable) -> Callable:
    return lambda x, training=False: second(first(x, training=training), training=training)


def separates(target, end, source) -> bool:
    """Whether every path from `source` to `end` in the graph runs through `target`."""
    stack, seen = [end], set()
    while stack:
        tensor = stack.pop()
        if tensor is target or id(tensor) in seen:
            continue
        if tensor is source:
            return False
        seen.add(id(tensor))
        operation, node_index, _ = tensor._keras_history
        stack.extend(operation._inbound_nodes[node_index].input_tensors)
    return True


def split_model(model: keras.Model, path: list[str], end=None) -> Split:
    """Cut `model` at the layer `path` (from `resolve_layer`) for a CAM up to the tensor `end`."""
    graph = _graph(model)
    end = graph.outputs[0] if end is None else end
    source = graph.inputs[0]
    name = "/".join(path)
    layer = graph.get_layer(path[0])
    node = _node(graph, layer, name)
    target = node.output_tensors[0]
    if len(path) == 1:
        features = _model_between(source, target)
        if separates(target, end, source):
            head = _model_between(target, end)
            return Split("fast", features, _chain(features, head), head=head)
        joint = keras.Model(source, [target, end])
        return Split("fallback", features, _model_between(source, end), joint=joint)
    if not isinstance(layer, keras.Model):
        raise ExplainError(f"{path[0]!r} is not a nested model, so {name!r} is invalid")
    inner_source = node.input_tensors[0]
    if not separates(target, end, source):
        raise ExplainError(
            f"a skip connection bypasses the nested model {path[0]!r}: explain its own output "
            f"({path[0]!r}) or a layer outside it"
        )
    before = _model_between(source, inner_source)
    after = _model_between(target, end)
    inner = split_model(layer, path[1:])
    features = _chain(before, inner.features)
    forward = _model_between(source, end)
    if inner.route == "fast":
        return Split("fast", features, forward, head=_chain(inner.head, after))

    def joint(x, training=False):
        acts, inner_end = inner.joint(before(x, training=training), training=training)
        return acts, after(inner_end, training=training)

    return Split("fallback", features, forward, joint=joint)
