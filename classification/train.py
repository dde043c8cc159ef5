"""Train a defect classifier on any supported data-set layout and save it as a run folder.

    python classification/train.py --data data/casting --model simple_cnn --aug basic
    python classification/train.py --data data/casting --model mobilenetv2 --aug heavy \
        --name mobilenet_heavy --wandb True
    python classification/train.py --aug list
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from classification.augment import RECIPES, describe_recipes, get_recipe
from classification.batchnorm import RecalibrateBatchNorm, recalibrate_batchnorm
from classification.evaluation import summary_of
from classification.guards import assess_classifier
from classification.inference import cam_targets
from classification.metrics import classification_report, format_report
from classification.models import MODEL_NAMES, WEIGHTS, build_model, cam_layer_name
from classification.operating_point import (
    DEFAULT_POLICY,
    PolicyError,
    choose_threshold,
    defect_scores,
    parse_policy,
)
from classification.smalldata import (
    MIN_STEPS_PER_EPOCH,
    EpochSelection,
    epoch_selection,
    small_set_recipe,
    steps_per_epoch,
    training_data,
)
from classification.splits import classifier_splits
from classification.transfer import init_from_run
from imaging.preprocess import COLORS
from store import (
    create_run_dir,
    health_record,
    save_model,
    write_history,
    write_metrics,
    write_run_info,
)
from store.cli_errors import cli_main
from store.thresholds import threshold_record, with_threshold
from store.tracking import add_wandb_argument, start_tracking

log = logging.getLogger(__name__)

SAMPLE_ROWS = 16
SCHEDULES = ("cosine", "plateau")
# Cosine schedule: a linear warm-up from lr/10 over this fraction of all steps, then a cosine
# decay to zero at the last epoch. On the demo set it ends converged where a constant rate
# (even one halved on plateaus) leaves validation accuracy swinging by several points.
WARMUP_FRACTION = 0.1


@dataclass
class TrainConfig:
    """Everything a training run is made from; argparse defaults mirror these."""

    data: str
    model: str = "simple_cnn"
    aug: str = "basic"
    epochs: int = 20
    batch_size: int = 32
    img_size: int | tuple[int, int] = 160
    color: str = "gray"
    lr: float = 1e-3
    schedule: str = "cosine"
    seed: int = 0
    name: str | None = None
    wandb: bool = False
    weights: str = "none"
    alpha: float = 1.0
    val_split: float = 0.15
    patience: int = 8
    threshold: str = DEFAULT_POLICY
    min_steps: int = MIN_STEPS_PER_EPOCH
    small_data: str = "auto"
    init_from: str | None = None
    jit_compile: bool = False
    # Skips tracing the train step: slower per step, but far quicker for tiny smoke runs of the
    # large backbones (tracing MobileNetV2 costs tens of seconds on a busy CPU).
    run_eagerly: bool = False


def build_parser() -> argparse.ArgumentParser:
    defaults = TrainConfig(data="")
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--data", help="data set folder or CSV manifest (see docs/data.md)")
    parser.add_argument("--model", default=defaults.model, choices=MODEL_NAMES)
    parser.add_argument(
        "--aug", default=defaults.aug, help=f"recipe: {', '.join(RECIPES)}, or `list`"
    )
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument(
        "--img-size",
        type=_img_size,
        default=defaults.img_size,
        help="model input: one side (160) or height x width (96x384), px",
    )
    parser.add_argument(
        "--color",
        default=defaults.color,
        choices=COLORS,
        help="gray: one channel; rgb: keep the colour of the images (three channels)",
    )
    parser.add_argument("--lr", type=float, default=defaults.lr, help="peak Adam learning rate")
    parser.add_argument(
        "--schedule",
        default=defaults.schedule,
        choices=SCHEDULES,
        help="cosine: warm up from lr/10 over the first 10%% of steps, then decay to 0 at the "
        "last epoch; plateau: constant lr, halved by ReduceLROnPlateau when val_loss stalls",
    )
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--name", help="run name under weights/ (default MODEL_AUG)")
    parser.add_argument("--weights", default=defaults.weights, choices=WEIGHTS)
    parser.add_argument(
        "--alpha",
        type=float,
        default=defaults.alpha,
        help="mobilenetv2 width multiplier (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)",
    )
    parser.add_argument(
        "--val-split",
        type=float,
        default=defaults.val_split,
        help="fraction of train held out for validation when the data has no val split",
    )
    parser.add_argument(
        "--patience", type=int, default=defaults.patience, help="early-stopping patience"
    )
    parser.add_argument(
        "--threshold",
        default=defaults.threshold,
        help="defect threshold policy, chosen on the validation split: f1 | recall:X | "
        "precision:X | fixed:X (docs/operating_points.md)",
    )
    parser.add_argument(
        "--min-steps",
        type=int,
        default=defaults.min_steps,
        help="optimizer steps per epoch at least (small data sets repeat their images; "
        "see docs/small-data.md)",
    )
    parser.add_argument(
        "--small-data",
        default=defaults.small_data,
        choices=("auto", "off"),
        help="auto: a training set under 500 images gets random flips and quarter turns "
        "added to a recipe without them; off: train the recipe as named",
    )
    parser.add_argument(
        "--init-from",
        metavar="RUN",
        help="start from the weights of an earlier classifier run of the same --model (its "
        "backbone; its head too when the classes match): transfer without ImageNet",
    )
    add_wandb_argument(parser)
    return parser


def _img_size(text: str) -> int | tuple[int, int]:
    """argparse type for --img-size: 160 or 96x384 (height x width)."""
    from imaging.preprocess import PreprocessError, parse_size

    try:
        height, width = parse_size(text)
    except PreprocessError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return height if height == width else (height, width)


def _class_setup(spec: Any) -> tuple[list[str], str]:
    class_names = [str(c) for c in spec.class_names]
    if len(class_names) < 2:
        raise ValueError(
            f"{spec.root}: expected at least 2 classes, found {class_names}; "
            "add a folder of normal (ok*/good/normal) and one of defective images"
        )
    normal = spec.normal_class
    if not normal:
        normal = class_names[0]
        log.warning(
            "no normal class (ok*/good/normal) in %s: treating %r as normal", spec.root, normal
        )
    return class_names, str(normal)


def learning_rate(schedule: str, lr: float, epochs: int, steps_per_epoch: int) -> Any:
    """The optimizer's learning rate: a float (plateau) or a warm-up + cosine schedule."""
    import keras

    if schedule not in SCHEDULES:
        raise ValueError(f"--schedule {schedule!r}: choose one of {', '.join(SCHEDULES)}")
    if lr <= 0:
        raise ValueError(f"--lr {lr}: must be positive")
    if schedule == "plateau":
        return lr
    total = max(1, epochs * steps_per_epoch)
    warmup = int(total * WARMUP_FRACTION)
    return keras.optimizers.schedules.CosineDecay(
        lr / 10, decay_steps=max(1, total - warmup), warmup_target=lr, warmup_steps=warmup
    )


def _callbacks(
    run_dir: Path,
    patience: int,
    schedule: str,
    tracker: Any,
    bn_batches: Any = (),
    selection: EpochSelection | None = None,
) -> list[Any]:
    import keras

    class LogLearningRate(keras.callbacks.Callback):
        """Records the rate the last step used, so history.csv shows the schedule."""

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            if logs is not None:
                logs["learning_rate"] = float(
                    keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)
                )

    callbacks = [
        LogLearningRate(),
        RecalibrateBatchNorm(bn_batches),
        keras.callbacks.ModelCheckpoint(
            run_dir / "model.keras", monitor="val_loss", save_best_only=True
        ),
    ]
    if selection is None or selection.restore_best:
        callbacks.insert(
            2,
            keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=patience, restore_best_weights=True, verbose=1
            ),
        )
    if schedule == "plateau":
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor="val_loss",
                factor=0.5,
                patience=max(1, patience // 2),
                min_lr=1e-5,
                verbose=1,
            )
        )
    epoch_logger = tracker.keras_callback()
    return callbacks + ([epoch_logger] if epoch_logger is not None else [])


def _fit_data(config: TrainConfig, train_items: Any, dataset: Any) -> tuple[Any, int, Any, Any]:
    """(training data, steps per epoch, plain frame, plain data) for fit.

    The training data repeats so an epoch has the recipe's steps (classification.smalldata).
    The plain data are the unaugmented training images in a fixed random order, for BatchNorm
    re-estimation and the guards: re-estimation reads the first batches, which must not all be
    of one class (class folders come sorted).
    """
    train_data, steps = training_data(
        lambda: dataset(train_items, True), len(train_items), config.batch_size, config.min_steps
    )
    plain_frame = train_items.sample(frac=1.0, random_state=config.seed)
    return train_data, steps, plain_frame, dataset(plain_frame, False)


def _class_weights(labels: np.ndarray, num_classes: int) -> dict[int, float]:
    """Balanced weights, n / (k * count), so rare classes count as much as common ones."""
    counts = np.bincount(labels, minlength=num_classes)
    present = counts > 0
    weights = np.ones(num_classes)
    weights[present] = len(labels) / (present.sum() * counts[present])
    return {i: float(w) for i, w in enumerate(weights)}


def _overlay(image: np.ndarray, cam: np.ndarray) -> np.ndarray:
    """Heatmap (JET) blended over a gray or RGB image, RGB uint8, for the W&B sample table."""
    import cv2

    heat = cv2.applyColorMap(np.uint8(np.clip(cam, 0, 1) * 255), cv2.COLORMAP_JET)
    base = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR if image.ndim == 2 else cv2.COLOR_RGB2BGR)
    return cv2.cvtColor(cv2.addWeighted(base, 0.6, heat, 0.4, 0), cv2.COLOR_BGR2RGB)


def _sample_rows(
    model: Any,
    x: np.ndarray,
    frame: Any,
    probabilities: np.ndarray,
    class_names: list[str],
    normal: str,
    cam_layer: str,
) -> tuple[list[str], list[list[Any]]]:
    """Rows of the W&B sample-prediction table: image, heatmap overlay, truth, prediction."""
    columns = ["file", "true", "predicted", "defect_probability", "image"]
    normal_index = class_names.index(normal)
    predicted = probabilities.argmax(axis=1)
    gray = [np.uint8(np.round((img[:, :, 0] if img.shape[2] == 1 else img) * 255)) for img in x]
    try:
        from explain import compute_cams
    except ImportError:
        log.warning("explain package not importable: sample table logged without heatmaps")
        cams = None
    else:
        targets = cam_targets(probabilities, class_names, normal)
        cams = compute_cams(model, x, layer=cam_layer, class_index=targets)
        columns.append("gradcam")
    rows = []
    for i, row in enumerate(frame.itertuples()):
        cells = [
            Path(row.path).name,
            row.label,
            class_names[predicted[i]],
            float(1.0 - probabilities[i, normal_index]),
            gray[i],
        ]
        if cams is not None:
            cells.append(_overlay(gray[i], cams[i]))
        rows.append(cells)
    return columns, rows


def _pick_samples(test: Any, probabilities: np.ndarray, class_names: list[str], seed: int):
    """Misclassified images first, then a spread over classes, at most SAMPLE_ROWS."""
    truth = np.array([class_names.index(c) for c in test.label])
    wrong = np.flatnonzero(probabilities.argmax(axis=1) != truth)
    right = np.random.default_rng(seed).permutation(
        np.flatnonzero(probabilities.argmax(1) == truth)
    )
    return np.concatenate([wrong, right])[:SAMPLE_ROWS]


def _choose_threshold(
    probabilities: np.ndarray, labels: np.ndarray, class_names: list[str], normal: str, policy: str
) -> dict[str, Any]:
    """The threshold record of `policy` on validation outputs (fixed:0.5, noted, if unmet)."""
    is_defect = labels != class_names.index(normal)
    score = defect_scores(probabilities, class_names, normal)
    try:
        choice = choose_threshold(is_defect, score, policy)
    except PolicyError as exc:
        log.warning("%s; deciding at 0.5 instead", exc)
        choice = choose_threshold(is_defect, score, "fixed:0.5")
        return threshold_record(
            0.5, choice.policy, "validation", choice.precision, choice.recall, note=str(exc)
        )
    return threshold_record(
        choice.threshold, choice.policy, "validation", choice.precision, choice.recall
    )


def train(config: TrainConfig, verbose: int | str = "auto") -> Path:
    """Train, evaluate on the test split, write the run folder; returns its path."""
    import keras
    import tensorflow as tf

    from imaging import Preprocess, discover, make_tf_dataset

    recipe = get_recipe(config.aug)
    learning_rate(config.schedule, config.lr, 1, 1)  # bad options fail before any work
    parse_policy(config.threshold)
    steps_per_epoch(1, 1, config.min_steps)
    keras.utils.set_random_seed(config.seed)
    spec = discover(config.data)
    class_names, normal = _class_setup(spec)
    spec, split_notes = classifier_splits(spec, val_fraction=config.val_split, seed=config.seed)
    train_items, val_items, test_items = (spec.split(s) for s in ("train", "val", "test"))
    recipe, small_note = small_set_recipe(recipe, len(train_items), config.small_data == "auto")
    split_notes += [small_note] if small_note else []
    preprocess = Preprocess(size=config.img_size, color=config.color, **recipe.preprocess_overrides)
    model = build_model(
        config.model,
        len(class_names),
        preprocess.shape,
        weights=config.weights,
        alpha=config.alpha,
        channels=preprocess.channels,
    )
    transfer = init_from_run(model, config.model, config.init_from) if config.init_from else None

    def labels_of(frame: Any) -> np.ndarray:
        return np.array([class_names.index(c) for c in frame.label], dtype=np.int64)

    def dataset(frame: Any, train_split: bool) -> tf.data.Dataset:
        return make_tf_dataset(
            list(frame.path),
            labels_of(frame),
            preprocess,
            batch_size=config.batch_size,
            shuffle=train_split,
            seed=config.seed,
            augment=recipe.augmenter(config.seed) if train_split else None,
        )

    run_dir = create_run_dir(config.name or f"{config.model}_{config.aug}")
    defect_classes = [c for c in class_names if c != normal]
    tracker = None
    try:
        tracker = start_tracking(
            config.wandb,
            name=run_dir.name,
            config={**vars(config), "run_dir": str(run_dir), "class_names": class_names},
            run_dir=run_dir,
            job_type="train-classifier",
        )
        train_data, steps, plain_frame, plain_train = _fit_data(config, train_items, dataset)
        selection = epoch_selection(len(val_items))
        model.compile(
            optimizer=keras.optimizers.Adam(
                learning_rate(config.schedule, config.lr, config.epochs, steps)
            ),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
            jit_compile=config.jit_compile,
            run_eagerly=config.run_eagerly,
        )
        class_weight = _class_weights(labels_of(train_items), len(class_names))
        log.info("run %s: %s", run_dir.name, spec.counts())
        started = time.perf_counter()
        history = model.fit(
            train_data,
            validation_data=dataset(val_items, False),
            epochs=config.epochs,
            steps_per_epoch=steps,
            class_weight=class_weight,
            callbacks=_callbacks(
                run_dir, config.patience, config.schedule, tracker, plain_train, selection
            ),
            verbose=verbose,
            shuffle=False,  # the tf.data pipeline shuffles, seeded
        )
        train_seconds = time.perf_counter() - started
        recalibrate_batchnorm(model, plain_train)
        save_model(run_dir, model)

        threshold = _choose_threshold(
            model.predict(dataset(val_items, False), verbose=0),
            labels_of(val_items),
            class_names,
            normal,
            config.threshold,
        )
        probabilities = model.predict(dataset(test_items, False), verbose=0)
        y_test = labels_of(test_items)
        report = classification_report(
            y_test, probabilities, class_names, normal, threshold=threshold["value"]
        )
        best_epoch = selection.kept_epoch(history.history.get("val_loss", []), len(history.epoch))
        summary = summary_of(report)
        health = assess_classifier(
            model,
            dataset(val_items, False),
            labels_of(val_items),
            plain_train,
            labels_of(plain_frame),
            class_names,
            history.history,
            best_epoch,
        )

        tracker.summary({f"test/{k}": v for k, v in summary.items() if v is not None})
        tracker.log_confusion_matrix(
            "test/confusion_matrix", y_test, probabilities.argmax(axis=1), class_names
        )
        if tracker.enabled and len(test_items):
            picks = _pick_samples(test_items, probabilities, class_names, config.seed)
            frame = test_items.iloc[picks]
            x = np.concatenate([b for b in dataset(frame, False).map(lambda xb, _: xb)])
            columns, rows = _sample_rows(
                model,
                x,
                frame,
                probabilities[picks],
                class_names,
                normal,
                cam_layer_name(config.model),
            )
            tracker.log_table("test/samples", columns, rows)

        write_history(run_dir, history.history)
        write_metrics(
            run_dir,
            {
                "split": "test",
                **report,
                "best_epoch": best_epoch,
                "epochs_run": len(history.epoch),
                "train_seconds": round(train_seconds, 1),
            },
        )
        info = {
            "kind": "classifier",
            "model": config.model,
            "aug": config.aug,
            "aug_description": recipe.description,
            "aug_effective": recipe.name,
            "img_size": preprocess.to_dict()["size"],
            "color": preprocess.color,
            "class_names": class_names,
            "normal_class": normal,
            "preprocess": preprocess.to_dict(),
            "cam_layer": cam_layer_name(config.model),
            "data": {
                "root": str(spec.root),
                "layout": spec.layout,
                "fingerprint": spec.fingerprint(),
                "pixel_stats": spec.pixel_stats(),
                "counts": spec.counts(),
                "split_notes": split_notes,
            },
            "seed": config.seed,
            "epochs": config.epochs,
            "epochs_run": len(history.epoch),
            "best_epoch": best_epoch,
            "epoch_selection": selection.reason,
            "steps_per_epoch": steps,
            "batch_size": config.batch_size,
            "lr": config.lr,
            "schedule": config.schedule,
            "weights": config.weights,
            "init_from": transfer,
            "alpha": config.alpha,
            "val_split": config.val_split,
            "class_weight": {class_names[i]: w for i, w in class_weight.items()},
            "train_seconds": round(train_seconds, 1),
            "summary": summary,
            "health": health_record(health.warnings, health.checks),
            "wandb": tracker.info(),
        }
        if len(defect_classes) == 1:
            info["defect_class"] = defect_classes[0]
        else:
            info["defect_classes"] = defect_classes
        write_run_info(run_dir, with_threshold(info, threshold))
        _print_summary(run_dir, report, train_seconds, len(history.epoch), verbose)
        _print_warnings(health.warnings)
        return run_dir
    except BaseException:
        # A run folder without run.json is debris: remove it so the name is free again.
        if not (run_dir / "run.json").exists():
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    finally:
        if tracker is not None:
            tracker.finish()


def _print_summary(run_dir: Path, report: dict, seconds: float, epochs: int, verbose) -> None:
    if verbose == 0:
        return
    print(f"\nrun {run_dir.name}: {epochs} epochs in {seconds:.0f} s -> {run_dir}")
    print(format_report(report))


def _print_warnings(warnings: list[str]) -> None:
    """Guard-rail warnings go to stderr whatever the verbosity: the run looks trained but is not."""
    for warning in warnings:
        print(f"WARNING: {warning}", file=sys.stderr)
    if warnings:
        print(
            "WARNING: this run is flagged in run.json and in the app; see docs/small-data.md",
            file=sys.stderr,
        )


@cli_main
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.aug == "list":
        print(describe_recipes())
        return 0
    if not args.data:
        parser.error("--data is required (a data set folder or a CSV manifest)")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config = TrainConfig(**{k: v for k, v in vars(args).items()})
    train(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
