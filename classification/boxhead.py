"""Train a classifier run's box head on defect masks (issue #16; explain.boxhead applies it).

    python -m classification.boxhead --run demo_flip --data data/casting [--epochs 15]

The head learns, from the run's frozen features, which pixels are defect, against the masks of
the data set (the synthetic generator's masks/, MVTec's ground_truth/, a manifest's mask_path
column; docs/data.md). It trains on the classifier's own training split (classification.splits
with the run's seed) and is checked on its validation images, which neither model has seen:
box hit@0.3 of the heatmap's boxes and of the head's, recorded in run.json as
`box_head.held_out`. Writes box_head.keras into the run folder; model.keras is not touched.
Heatmap to Boxes, `python -m explain.evaluate --boxes head` and `classification/predict.py
--boxes` use the head.
"""

from __future__ import annotations

import argparse
import logging
import time
from typing import Any

import numpy as np

from classification.masksup import has_mask, mask_coverage
from explain.boxhead import (
    HEAD_FILE,
    INFO_KEY,
    THRESHOLD,
    BoxHead,
    build_head,
    feature_extractor,
    head_boxes,
    level_scales,
    pyramid_layers,
)
from explain.layers import ExplainError
from store.cli_errors import check_writable_dir, cli_main, positive_int

log = logging.getLogger(__name__)

EPOCHS = 15  # 6 gave box hit@0.3 0.735 on demo_flip's 136 held-out images, 15 gave 0.765
BATCH_SIZE = 32
POSITIVE_WEIGHT = 5.0  # a defect pixel weighs 5 background pixels (defects cover ~1 % of a part)
MIN_MASKED = 8


def coverage(mask_path: str | None, preprocess: Any, shape: tuple[int, int]) -> np.ndarray:
    """Share of defect pixels per head cell (float32 (h, w)); zeros for a good part."""
    if not mask_path:
        return np.zeros(shape, np.float32)
    return mask_coverage(mask_path, preprocess, shape, "fix or remove it")


def _masked(items: Any) -> Any:
    return items["is_defect"] & items["mask_path"].map(has_mask)


def split_items(spec: Any, run: Any, data: str) -> tuple[Any, Any]:
    """(training items, held-out items): the classifier's own train / val split of `data`
    (classification.splits with the run's seed), so the head never sees the images it is
    checked on. Training: masked defective and good images (a defective image without a mask
    would teach "no defect here"); held out: masked defective images."""
    from classification.splits import classifier_splits

    items = classifier_splits(spec, seed=int(run.info.get("seed", 0)))[0].items
    train = items[items["split"] == "train"]
    masked = _masked(train)
    if int(masked.sum()) < MIN_MASKED:
        raise ExplainError(
            f"data {data}: {int(masked.sum())} defective training images have a defect mask; "
            f"the box head needs at least {MIN_MASKED} (docs/data.md: masks/, MVTec "
            "ground_truth/ or a mask_path column)"
        )
    val = items[items["split"] == "val"]
    return (
        train[masked | ~train["is_defect"]].reset_index(drop=True),
        val[_masked(val)].reset_index(drop=True),
    )


def held_out_box_hits(
    run: Any, head: BoxHead, items: Any, preprocess: Any, min_area: int = 16, batch: int = 16
) -> dict[str, Any]:
    """Box hit@0.3 of the heatmap's Otsu boxes and of the head's boxes (Grad-CAM at the run's
    CAM layer) on masked defective images: how much the head helps on this data."""
    from explain import cam_to_boxes, compute_cams
    from explain.metrics import best_box_iou, component_boxes
    from explain.targets import defect_class_index
    from imaging import read_image, to_gray

    model = run.load_model()
    hits: dict[str, list[bool]] = {"heatmap": [], "head": []}
    for start in range(0, len(items), batch):
        chunk = items.iloc[start : start + batch]
        originals = [read_image(p) for p in chunk["path"]]
        x = preprocess.apply_batch(originals)
        targets = [defect_class_index(run.info, t) for t in chunk["defect_type"]]
        cams = compute_cams(model, x, layer=run.info.get("cam_layer"), class_index=targets)
        for original, mask_path, cam, head_map in zip(
            originals, chunk["mask_path"], cams, head.maps(x), strict=True
        ):
            shape = original.shape[:2]
            truth = component_boxes(to_gray(read_image(mask_path)) > 127)
            full = preprocess.cam_to_original(cam, shape)
            found = {
                "heatmap": cam_to_boxes(full, min_area=min_area),
                "head": head_boxes(
                    preprocess.cam_to_original(head_map, shape), full, head.threshold, min_area
                ),
            }
            for name, boxes in found.items():
                hits[name].append(best_box_iou([b.as_tuple() for b in boxes], truth) >= 0.3)
    return {
        "images": len(items),
        "min_area": min_area,
        **{
            f"{name}_box_hit@0.3": round(float(np.mean(v)), 4) if v else None
            for name, v in hits.items()
        },
    }


def _fit(
    head: Any,
    extract: Any,
    prepared: np.ndarray,
    targets: np.ndarray,
    preprocess: Any,
    epochs: int,
    seed: int,
    desc: str,
    progress: bool,
) -> list[float]:
    """Train `head` on the frozen features of the prepared uint8 images against the coverage
    targets, flips drawn per batch (the mask moves with the image); mean loss per epoch."""
    import keras
    import tensorflow as tf
    from tqdm import tqdm

    optimizer = keras.optimizers.Adam(1e-3)
    rng = np.random.default_rng(seed)

    @tf.function(reduce_retracing=True)
    def step(features, target):
        with tf.GradientTape() as tape:
            prob = head(features, training=True)
            bce = keras.losses.binary_crossentropy(target, prob)
            loss = tf.reduce_mean(bce * (1.0 + (POSITIVE_WEIGHT - 1.0) * target[..., 0]))
        grads = tape.gradient(loss, head.trainable_variables)
        optimizer.apply_gradients(zip(grads, head.trainable_variables, strict=True))
        return loss

    steps = max(1, len(prepared) // BATCH_SIZE)
    bar = tqdm(total=epochs * steps, desc=desc, disable=not progress)
    losses = []
    for _ in range(epochs):
        order = rng.permutation(len(prepared))
        epoch_loss = []
        for s in range(steps):
            idx = order[s * BATCH_SIZE : (s + 1) * BATCH_SIZE]
            u8, target = prepared[idx], targets[idx]
            if rng.random() < 0.5:  # flips move the mask with the image
                u8, target = u8[:, :, ::-1], target[:, :, ::-1]
            if rng.random() < 0.5:
                u8, target = u8[:, ::-1], target[:, ::-1]
            x = np.stack([preprocess.normalize(np.ascontiguousarray(i)) for i in u8])
            features = [tf.constant(a) for a in extract(x)]
            epoch_loss.append(float(step(features, tf.constant(np.ascontiguousarray(target)))))
            bar.update(1)
        losses.append(round(float(np.mean(epoch_loss)), 5))
        bar.set_postfix(loss=losses[-1])
    bar.close()
    return losses


def train_box_head(
    run: Any,
    data: str,
    epochs: int = EPOCHS,
    seed: int = 0,
    progress: bool = True,
    layers: list[str] | None = None,
) -> dict[str, Any]:
    """Train the run's box head on the masks of `data`'s training split; save it with the run.

    Returns the run.json record, with box hit@0.3 of both box steps on the held-out split.
    The classifier's weights are frozen and left unchanged. layers: the feature levels
    (default: `pyramid_layers`).
    """
    from imaging import Preprocess, discover, read_image
    from store import load_run
    from store.runs import INFO_FILE, _write_json

    run = load_run(run) if isinstance(run, str) else run
    if run.kind != "classifier":
        raise ExplainError(f"run {run.name!r} is a {run.kind} run; a box head needs a classifier")
    if epochs < 1:
        raise ExplainError(f"epochs {epochs}: give at least 1")
    check_writable_dir(run.path, f"run folder of {run.name!r}")  # before minutes of training
    started = time.perf_counter()
    model = run.load_model()
    preprocess = Preprocess.from_dict(run.info.get("preprocess"))
    paths = layers or pyramid_layers(model, run.info.get("cam_layer"))
    extract = feature_extractor(model, paths)
    items, held_out = split_items(discover(data), run, data)
    probe_paths = items["path"].sample(min(len(items), BATCH_SIZE), random_state=seed)
    probe = extract(preprocess.apply_batch([read_image(p) for p in probe_paths]))
    shapes = [tuple(int(d) for d in a.shape[1:]) for a in probe]
    grid = (max(s[0] for s in shapes), max(s[1] for s in shapes))
    prepared = np.stack([preprocess.prepare(read_image(p)) for p in items["path"]])
    targets = np.stack(
        [
            coverage(m if d else None, preprocess, grid)
            for m, d in zip(items["mask_path"], items["is_defect"], strict=True)
        ]
    )[..., None]
    head = build_head(shapes, level_scales(probe), seed)
    desc = f"box head for {run.name}"
    losses = _fit(head, extract, prepared, targets, preprocess, epochs, seed, desc, progress)
    trained = BoxHead(head, extract, THRESHOLD, paths)
    check = held_out_box_hits(run, trained, held_out, preprocess) if len(held_out) else None
    partial = run.path / f"partial_{HEAD_FILE}"  # renamed into place once complete
    head.save(partial)
    partial.replace(run.path / HEAD_FILE)
    record = {
        "file": HEAD_FILE,
        "layers": paths,
        "grid": list(grid),
        "threshold": THRESHOLD,
        "gate": "otsu",
        "epochs": epochs,
        "seed": seed,
        "data": str(data),
        "masked": int(items["is_defect"].sum()),
        "good": int((~items["is_defect"]).sum()),
        "loss": losses,
        "held_out": check,
        "seconds": round(time.perf_counter() - started, 1),
    }
    info = {**run.info, INFO_KEY: record}
    _write_json(run.path / INFO_FILE, info)
    run.info.clear()
    run.info.update(info)
    return record


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m classification.boxhead", description=__doc__)
    parser.add_argument("--run", required=True, help="classifier run name or folder")
    parser.add_argument(
        "--data", required=True, help="data with defect masks (synthetic set, MVTec tree, manifest)"
    )
    parser.add_argument("--epochs", type=positive_int, default=EPOCHS)
    parser.add_argument("--seed", type=int, default=0)
    return parser


@cli_main
def main(argv: list[str] | None = None) -> int:
    """0 after training and saving the head; 2 after printing the error for bad input."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    record = train_box_head(args.run, args.data, epochs=args.epochs, seed=args.seed)
    print(
        f"box head for {args.run}: {record['masked']} masked defective and {record['good']} "
        f"good training images, levels {', '.join(record['layers'])}, grid "
        f"{record['grid'][0]} x {record['grid'][1]}, loss {record['loss'][0]} -> "
        f"{record['loss'][-1]}, {record['seconds']:.0f} s; saved {HEAD_FILE} in the run folder"
    )
    check = record["held_out"]
    if check:
        print(
            f"box hit@0.3 on {check['images']} held-out defective images: heatmap boxes "
            f"{check['heatmap_box_hit@0.3']:.3f}, box head {check['head_box_hit@0.3']:.3f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
