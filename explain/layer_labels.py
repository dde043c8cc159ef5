"""Human labels for candidate CAM layers: "block3 · activation (ReLU)", recommended one marked.

Works on the list of layer paths `explain.candidate_layers(model)` returns (model order,
input to output, "outer/inner" for nested models), so it does not depend on how that list is
built. The block is the path's parent plus the name's first part (`block3_relu` -> block3,
`mobilenetv2/block_1_expand` -> mobilenetv2 › block_1); the kind comes from the name's last
part. Pure string work: no Keras needed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

KINDS = (
    (("depthwise",), "depthwise conv"),
    (("project",), "projection conv"),
    (("expand",), "expansion conv"),
    (("conv", "convolution"), "conv"),
    (("bn", "batchnorm", "batch_normalization", "norm"), "batch norm"),
    (("relu", "relu6", "activation", "act", "swish", "gelu"), "activation"),
    (("pool", "maxpool", "avgpool", "pooling"), "pooling"),
    (("add", "sum"), "skip-connection add"),
    (("concat", "concatenate"), "concatenation"),
    (("pad", "padding"), "padding"),
)
RECOMMENDED = "recommended"


@dataclass(frozen=True)
class LayerLabel:
    path: str
    position: int  # 1 = closest to the input
    block: str
    kind: str
    recommended: bool

    @property
    def text(self) -> str:
        mark = f" · {RECOMMENDED}" if self.recommended else ""
        return f"{self.position:>2}. {self.block} · {self.kind} ({self.path}){mark}"


def layer_kind(name: str) -> str:
    """What a layer does, from its name's parts (`block2_bn` -> batch norm)."""
    parts = [p for p in re.split(r"[_\-/.]", name.lower()) if p]
    for part in reversed(parts):  # the last recognised part wins: block_1_expand_relu -> act
        stem = re.sub(r"\d+d?$", "", part)  # conv2d -> conv, relu6 -> relu
        for names, kind in KINDS:
            if stem in names:
                return kind
    return "layer"


def layer_block(path: str) -> str:
    """The block a layer belongs to: parent model(s) plus the name's first part(s)."""
    *parents, name = path.split("/")
    parts = [p for p in name.split("_") if p]
    block = parts[0] if parts else name
    if len(parts) > 2 and parts[1].isdigit():  # block_1_expand -> block_1
        block = f"{parts[0]}_{parts[1]}"
    if parts and parts[0].lower() in ("last", "top", "final", "head"):
        block = "head"
    elif len(parts) == 1 or layer_kind(block) != "layer":  # "conv2d_3", "Conv_1": no block name
        block = "model"
    return " › ".join([*parents, block])


def label_layers(paths: Sequence[str], recommended: str | None = None) -> list[LayerLabel]:
    """Labels in the given (model) order; `recommended` (e.g. the run's cam_layer, or the
    automatic target layer) is marked when it is among the paths."""
    return [
        LayerLabel(
            path=p,
            position=i,
            block=layer_block(p),
            kind=layer_kind(p.split("/")[-1]),
            recommended=p == recommended,
        )
        for i, p in enumerate(paths, start=1)
    ]
