"""How a classifier run steps through training: the learning-rate schedule and the Keras
callbacks (BatchNorm re-estimation, early stopping or the plateau rule, checkpoints, logging)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from classification.batchnorm import RecalibrateBatchNorm
from classification.smalldata import EpochSelection

SCHEDULES = ("cosine", "plateau")
# Cosine schedule: a linear warm-up from lr/10 over this fraction of all steps, then a cosine
# decay to zero at the last epoch. On the demo set it ends converged where a constant rate
# (even one halved on plateaus) leaves validation accuracy swinging by several points.
WARMUP_FRACTION = 0.1


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


def callbacks(
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

    chosen = [
        LogLearningRate(),
        RecalibrateBatchNorm(bn_batches),
        keras.callbacks.ModelCheckpoint(
            run_dir / "model.keras", monitor="val_loss", save_best_only=True
        ),
    ]
    if selection is None or selection.restore_best:
        chosen.insert(
            2,
            keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=patience, restore_best_weights=True, verbose=1
            ),
        )
    if schedule == "plateau":
        chosen.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor="val_loss",
                factor=0.5,
                patience=max(1, patience // 2),
                min_lr=1e-5,
                verbose=1,
            )
        )
    epoch_logger = tracker.keras_callback()
    return chosen + ([epoch_logger] if epoch_logger is not None else [])
