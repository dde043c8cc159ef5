"""Start a classifier from the backbone of an earlier run (`train.py --init-from RUN`).

ImageNet weights are not always reachable, and a few hundred images of a new part learn faster
from features that already know castings. Every layer of the new model whose name and weight
shapes match the earlier run's is copied, BatchNorm statistics included; the classification
head (`predictions`) is only copied when the class count matches too, so the earlier run may
have had other classes. The input size may differ: convolution weights do not depend on it.
"""

from __future__ import annotations

import logging
from typing import Any

from store import Run, RunError, load_run

log = logging.getLogger(__name__)

HEAD = "predictions"


class TransferError(ValueError):
    """An --init-from run that cannot seed this model (other family, kind, or nothing fits)."""


def _layers_with_weights(model: Any) -> dict[str, Any]:
    return {layer.name: layer for layer in model.layers if layer.get_weights()}


def transfer_weights(target: Any, source: Any, source_name: str = "source") -> list[str]:
    """Copy matching layers from `source` into `target`; returns the names of copied layers."""
    donors = _layers_with_weights(source)
    copied, mismatched = [], []
    for name, layer in _layers_with_weights(target).items():
        donor = donors.get(name)
        if donor is None:
            continue
        weights = donor.get_weights()
        if [w.shape for w in weights] != [w.shape for w in layer.get_weights()]:
            mismatched.append(name)
            continue
        layer.set_weights(weights)
        copied.append(name)
    backbone = [n for n in copied if n != HEAD]
    if not backbone:
        raise TransferError(
            f"--init-from {source_name}: no layer of it fits this model "
            f"({len(mismatched)} with other shapes); train with the same --model"
        )
    if mismatched and mismatched != [HEAD]:
        log.warning(
            "--init-from %s: layers with other shapes left as built: %s",
            source_name,
            ", ".join(mismatched),
        )
    return copied


def init_from_run(model: Any, model_name: str, run_name: str) -> dict[str, Any]:
    """Seed `model` (zoo family `model_name`) from classifier run `run_name`.

    Returns what run.json records: the run, how many layers were copied, whether the head was.
    """
    try:
        run: Run = load_run(run_name)
    except RunError as exc:
        raise TransferError(f"--init-from {run_name}: {exc}") from exc
    if run.kind != "classifier" or run.info.get("model") != model_name:
        raise TransferError(
            f"--init-from {run_name}: it is a {run.info.get('model') or run.kind} "
            f"{run.kind} run; pick a classifier run of --model {model_name}"
        )
    copied = transfer_weights(model, run.load_model(), run_name)
    log.info(
        "--init-from %s: copied %d layers (head: %s)",
        run_name,
        len(copied),
        "copied" if HEAD in copied else "new",
    )
    return {"run": run.name, "layers_copied": len(copied), "head_copied": HEAD in copied}
