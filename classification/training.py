"""Training a defect classifier: the config, the schedule and callbacks, and `train`, which
fits, evaluates on the test split and writes the run folder. The command line is
classification/train.py; the W&B sample table is classification.samples.
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from classification.augment import Recipe, get_recipe
from classification.batchnorm import recalibrate_batchnorm
from classification.evaluation import summary_of
from classification.guards import assess_classifier
from classification.masksup import (
    MASK_WEIGHT,
    MaskPlan,
    grid_targets,
    mask_loss,
    plan_mask_supervision,
    prepare_masks,
    rename_logs_callback,
    weighted_class_loss,
    with_mask_head,
)
from classification.metrics import classification_report, format_report
from classification.models import build_model, cam_layer_name
from classification.operating_point import (
    DEFAULT_POLICY,
    PolicyError,
    choose_threshold,
    defect_scores,
    parse_policy,
)
from classification.samples import log_samples
from classification.schedule import callbacks, learning_rate
from classification.smalldata import (
    MIN_STEPS_PER_EPOCH,
    SMALL_SET,
    EpochSelection,
    epoch_selection,
    small_set_recipe,
    steps_per_epoch,
    training_data,
)
from classification.splits import classifier_splits
from classification.transfer import init_from_run
from store import (
    create_run_dir,
    health_record,
    save_model,
    write_history,
    write_metrics,
    write_run_info,
)
from store.thresholds import threshold_record, with_threshold
from store.tracking import start_tracking

log = logging.getLogger(__name__)


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
    masks: str = "auto"
    init_from: str | None = None
    jit_compile: bool = False
    # Skips tracing the train step: slower per step, but far quicker for tiny smoke runs of the
    # large backbones (tracing MobileNetV2 costs tens of seconds on a busy CPU).
    run_eagerly: bool = False


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


def _fit_data(config: TrainConfig, train_items: Any, dataset: Any) -> tuple[Any, int, Any]:
    """(training data, steps per epoch, plain frame) for fit.

    `dataset(frame, train_split)` makes the batches. The training data repeats so an epoch has
    the recipe's steps (classification.smalldata). The plain frame is the training items in a
    fixed random order, whose unaugmented batches serve BatchNorm re-estimation and the guards:
    re-estimation reads the first batches, which must not all be of one class (class folders
    come sorted).
    """
    train_data, steps = training_data(
        lambda: dataset(train_items, True), len(train_items), config.batch_size, config.min_steps
    )
    plain_frame = train_items.sample(frac=1.0, random_state=config.seed)
    return train_data, steps, plain_frame


def _class_weights(labels: np.ndarray, num_classes: int) -> dict[int, float]:
    """Balanced weights, n / (k * count), so rare classes count as much as common ones."""
    counts = np.bincount(labels, minlength=num_classes)
    present = counts > 0
    weights = np.ones(num_classes)
    weights[present] = len(labels) / (present.sum() * counts[present])
    return {i: float(w) for i, w in enumerate(weights)}


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


@dataclass
class _Data:
    """The data set as training sees it: splits, classes, preprocessing and the recipe."""

    config: TrainConfig
    spec: Any
    class_names: list[str]
    normal: str
    train: Any
    val: Any
    test: Any
    split_notes: list[str]
    recipe: Recipe
    preprocess: Any
    mask_plan: MaskPlan | None = None

    def labels(self, frame: Any) -> np.ndarray:
        return np.array([self.class_names.index(c) for c in frame.label], dtype=np.int64)

    def dataset(self, frame: Any, train_split: bool, grid: tuple[int, int] | None = None) -> Any:
        """Batches of (image, label) for `frame`; augmented and shuffled for training.

        With a mask `grid` (mask supervision): (image, (label, mask target on the grid)), image
        and mask augmented by one draw.
        """
        from imaging import make_tf_dataset

        config = self.config
        if grid is None:
            augment = self.recipe.augmenter(config.seed)
            masks = None
        else:
            augment = self.recipe.pair_augmenter()
            masks = prepare_masks(frame, self.normal, self.preprocess)
        ds = make_tf_dataset(
            list(frame.path),
            self.labels(frame),
            self.preprocess,
            batch_size=config.batch_size,
            shuffle=train_split,
            seed=config.seed,
            augment=augment if train_split else None,
            masks=masks,
        )
        if grid is None:
            return ds
        return ds.map(lambda x, y: (x, (y[0], grid_targets(y[1], grid))))


def _load_data(config: TrainConfig) -> _Data:
    """Check the options, find the data set, split it and settle recipe and preprocessing."""
    import keras

    from imaging import Preprocess, discover

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
    mask_plan, mask_note = plan_mask_supervision(
        train_items, normal, config.masks, cam_layer_name(config.model), str(spec.root)
    )
    split_notes += [mask_note] if mask_note else []
    preprocess = Preprocess(size=config.img_size, color=config.color, **recipe.preprocess_overrides)
    return _Data(
        config,
        spec,
        class_names,
        normal,
        train_items,
        val_items,
        test_items,
        split_notes,
        recipe,
        preprocess,
        mask_plan,
    )


def train(config: TrainConfig, verbose: int | str = "auto") -> Path:
    """Train, evaluate on the test split, write the run folder; returns its path."""
    data = _load_data(config)
    model = build_model(
        config.model,
        len(data.class_names),
        data.preprocess.shape,
        weights=config.weights,
        alpha=config.alpha,
        channels=data.preprocess.channels,
    )
    transfer = init_from_run(model, config.model, config.init_from) if config.init_from else None
    run_dir = create_run_dir(config.name or f"{config.model}_{config.aug}")
    tracker = None
    try:
        tracker = start_tracking(
            config.wandb,
            name=run_dir.name,
            config={**vars(config), "run_dir": str(run_dir), "class_names": data.class_names},
            run_dir=run_dir,
            job_type="train-classifier",
        )
        fitted = _fit(model, data, run_dir, tracker, verbose)
        save_model(run_dir, model)
        results = _evaluate(model, data, fitted, tracker)
        write_history(run_dir, fitted.history.history)
        write_metrics(
            run_dir,
            {
                "split": "test",
                **results.report,
                "best_epoch": fitted.best_epoch,
                "epochs_run": len(fitted.history.epoch),
                "train_seconds": round(fitted.seconds, 1),
            },
        )
        info = _run_info(data, fitted, results, transfer, tracker)
        write_run_info(run_dir, with_threshold(info, results.threshold))
        _print_summary(run_dir, results.report, fitted.seconds, len(fitted.history.epoch), verbose)
        _print_warnings(results.health.warnings)
        if data.mask_plan is None:
            _print_small_set_hint(len(data.train), transfer, config.weights, verbose)
        return run_dir
    except BaseException:
        # A run folder without run.json is debris: remove it so the name is free again.
        if not (run_dir / "run.json").exists():
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    finally:
        if tracker is not None:
            tracker.finish()


@dataclass
class _Fitted:
    """What fitting produced besides the weights."""

    history: Any
    seconds: float
    steps: int
    selection: EpochSelection
    best_epoch: int
    class_weight: dict[int, float]
    plain_frame: Any
    plain_train: Any
    mask_supervision: dict[str, Any] | None = None


def _fit(model: Any, data: _Data, run_dir: Path, tracker: Any, verbose: int | str) -> _Fitted:
    """Compile and fit (class-weighted, early-stopped), then re-estimate BatchNorm statistics."""
    import keras

    config = data.config
    class_weight = _class_weights(data.labels(data.train), len(data.class_names))
    trained, grid = (model, None)
    if data.mask_plan is not None:
        # The classifier plus a mask head on its CAM layer; `model` shares its weights.
        trained, grid = with_mask_head(model, data.mask_plan.layer)

    def dataset(frame: Any, train_split: bool) -> Any:
        return data.dataset(frame, train_split, grid)

    train_data, steps, plain_frame = _fit_data(config, data.train, dataset)
    plain_train = data.dataset(plain_frame, False)
    selection = epoch_selection(len(data.val))
    optimizer = keras.optimizers.Adam(
        learning_rate(config.schedule, config.lr, config.epochs, steps)
    )
    compiled = {"jit_compile": config.jit_compile, "run_eagerly": config.run_eagerly}
    if grid is None:
        trained.compile(
            optimizer, "sparse_categorical_crossentropy", metrics=["accuracy"], **compiled
        )
    else:
        trained.compile(
            optimizer,
            [weighted_class_loss(class_weight), mask_loss],
            loss_weights=[1.0, MASK_WEIGHT],
            metrics=[["accuracy"], []],
            **compiled,
        )
    log.info("run %s: %s", run_dir.name, data.spec.counts())
    chosen = callbacks(run_dir, config.patience, config.schedule, tracker, plain_train, selection)
    started = time.perf_counter()
    history = trained.fit(
        train_data,
        validation_data=dataset(data.val, False),
        epochs=config.epochs,
        steps_per_epoch=steps,
        class_weight=class_weight if grid is None else None,  # else inside the loss
        callbacks=chosen if grid is None else [rename_logs_callback(), *chosen],
        verbose=verbose,
        shuffle=False,  # the tf.data pipeline shuffles, seeded
    )
    seconds = time.perf_counter() - started
    recalibrate_batchnorm(model, plain_train)
    best_epoch = selection.kept_epoch(history.history.get("val_loss", []), len(history.epoch))
    record = None if grid is None else data.mask_plan.record(grid)
    return _Fitted(
        history,
        seconds,
        steps,
        selection,
        best_epoch,
        class_weight,
        plain_frame,
        plain_train,
        record,
    )


@dataclass
class _Results:
    """The threshold chosen on validation, the test report and the guard-rail health."""

    threshold: dict[str, Any]
    report: dict[str, Any]
    summary: dict[str, Any]
    health: Any


def _evaluate(model: Any, data: _Data, fitted: _Fitted, tracker: Any) -> _Results:
    """Threshold on the validation split, report on the test split, guards, tracker logs."""
    config = data.config
    threshold = _choose_threshold(
        model.predict(data.dataset(data.val, False), verbose=0),
        data.labels(data.val),
        data.class_names,
        data.normal,
        config.threshold,
    )
    probabilities = model.predict(data.dataset(data.test, False), verbose=0)
    y_test = data.labels(data.test)
    report = classification_report(
        y_test, probabilities, data.class_names, data.normal, threshold=threshold["value"]
    )
    summary = summary_of(report)
    health = assess_classifier(
        model,
        data.dataset(data.val, False),
        data.labels(data.val),
        fitted.plain_train,
        data.labels(fitted.plain_frame),
        data.class_names,
        fitted.history.history,
        fitted.best_epoch,
        normal=data.normal,
        threshold=threshold["value"],
    )
    tracker.summary({f"test/{k}": v for k, v in summary.items() if v is not None})
    tracker.log_confusion_matrix(
        "test/confusion_matrix", y_test, probabilities.argmax(axis=1), data.class_names
    )
    if tracker.enabled and len(data.test):
        log_samples(
            tracker,
            model,
            data.test,
            probabilities,
            data.dataset,
            (data.class_names, data.normal, cam_layer_name(config.model), config.seed),
        )
    return _Results(threshold, report, summary, health)


def _run_info(
    data: _Data, fitted: _Fitted, results: _Results, transfer: Any, tracker: Any
) -> dict[str, Any]:
    """run.json (without the threshold, which `with_threshold` adds)."""
    config, spec, class_names = data.config, data.spec, data.class_names
    preprocess = data.preprocess
    info = {
        "kind": "classifier",
        "model": config.model,
        "aug": config.aug,
        "aug_description": data.recipe.description,
        "aug_effective": data.recipe.name,
        "img_size": preprocess.to_dict()["size"],
        "color": preprocess.color,
        "class_names": class_names,
        "normal_class": data.normal,
        "preprocess": preprocess.to_dict(),
        "cam_layer": cam_layer_name(config.model),
        "data": {
            "root": str(spec.root),
            "layout": spec.layout,
            "fingerprint": spec.fingerprint(),
            "pixel_stats": spec.pixel_stats(),
            "counts": spec.counts(),
            "split_notes": data.split_notes,
        },
        "seed": config.seed,
        "epochs": config.epochs,
        "epochs_run": len(fitted.history.epoch),
        "best_epoch": fitted.best_epoch,
        "epoch_selection": fitted.selection.reason,
        "steps_per_epoch": fitted.steps,
        "batch_size": config.batch_size,
        "lr": config.lr,
        "schedule": config.schedule,
        "weights": config.weights,
        "init_from": transfer,
        "mask_supervision": fitted.mask_supervision,
        "alpha": config.alpha,
        "val_split": config.val_split,
        "class_weight": {class_names[i]: w for i, w in fitted.class_weight.items()},
        "train_seconds": round(fitted.seconds, 1),
        "summary": results.summary,
        "health": health_record(results.health.warnings, results.health.checks),
        "wandb": tracker.info(),
    }
    defect_classes = [c for c in class_names if c != data.normal]
    if len(defect_classes) == 1:
        info["defect_class"] = defect_classes[0]
    else:
        info["defect_classes"] = defect_classes
    return info


def _print_summary(run_dir: Path, report: dict, seconds: float, epochs: int, verbose) -> None:
    if verbose == 0:
        return
    print(f"\nrun {run_dir.name}: {epochs} epochs in {seconds:.0f} s -> {run_dir}")
    print(format_report(report))


def _print_small_set_hint(n_train: int, transfer: Any, weights: str, verbose) -> None:
    """A small set trained from scratch on labels alone: point at the routes measured to work
    (issue #21)."""
    if verbose == 0 or transfer or weights != "none" or n_train >= SMALL_SET:
        return
    print(
        f"note: {n_train} training images from scratch, labels only; under {SMALL_SET} this "
        "recipe tends to memorise them. Defect masks (mask supervision, --masks) or "
        "--init-from RUN (a run on similar parts) are the measured fixes: docs/small-data.md"
    )


def _print_warnings(warnings: list[str]) -> None:
    """Guard-rail warnings go to stderr whatever the verbosity: the run looks trained but is not."""
    for warning in warnings:
        print(f"WARNING: {warning}", file=sys.stderr)
    if warnings:
        print(
            "WARNING: this run is flagged in run.json and in the app; see docs/small-data.md",
            file=sys.stderr,
        )
