"""Experiment tracking with Weights & Biases: offline unless an API key is set, never blocking.

Every training CLI takes `--wandb` (bare, or `--wandb True/False`) and hands the result to
`start_tracking`; with tracking off the returned tracker does nothing, so callers never branch.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
PROJECT = os.environ.get("WANDB_PROJECT", "defectlens")
_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f"}


def parse_bool(text: str) -> bool:
    """argparse type for flags that also accept True/False, as the original CLI did."""
    value = str(text).strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, got {text!r}")


def add_wandb_argument(parser: argparse.ArgumentParser) -> None:
    """`--wandb` alone turns tracking on; `--wandb True|False` is accepted too."""
    parser.add_argument(
        "--wandb",
        nargs="?",
        const=True,
        default=False,
        type=parse_bool,
        metavar="True|False",
        help="log to Weights & Biases (offline unless WANDB_API_KEY is set; `wandb sync` later)",
    )


class Tracker:
    """A thin handle on one W&B run; every method is a no-op when tracking is off."""

    def __init__(self, run: Any | None = None) -> None:
        self._run = run

    @property
    def enabled(self) -> bool:
        return self._run is not None

    def info(self) -> dict[str, Any]:
        """What run.json records about the W&B run (mode, id, url, local folder)."""
        if self._run is None:
            return {"enabled": False}
        return {
            "enabled": True,
            "mode": os.environ.get("WANDB_MODE", "online"),
            "project": self._run.project,
            "id": self._run.id,
            "url": getattr(self._run, "url", None),
            "dir": str(Path(self._run.dir).parent),
        }

    def log(self, metrics: dict[str, Any], step: int | None = None) -> None:
        if self._run is not None:
            self._run.log(metrics, step=step)

    def summary(self, metrics: dict[str, Any]) -> None:
        if self._run is not None:
            self._run.summary.update(metrics)

    def log_table(self, key: str, columns: list[str], rows: list[list[Any]]) -> None:
        """Rows may contain numpy images (HxW or HxWx3 uint8): they become wandb.Image cells."""
        if self._run is None:
            return
        import numpy as np
        import wandb

        cells = [[wandb.Image(v) if isinstance(v, np.ndarray) else v for v in row] for row in rows]
        self._run.log({key: wandb.Table(columns=columns, data=cells)})

    def log_confusion_matrix(
        self, key: str, y_true: list[int], y_pred: list[int], class_names: list[str]
    ) -> None:
        if self._run is None:
            return
        import wandb

        self._run.log(
            {
                key: wandb.plot.confusion_matrix(
                    y_true=list(map(int, y_true)),
                    preds=list(map(int, y_pred)),
                    class_names=class_names,
                )
            }
        )

    def keras_callback(self) -> Any:
        """A Keras callback logging every epoch's logs; None when tracking is off."""
        if self._run is None:
            return None
        import keras

        tracker = self

        class _EpochLogger(keras.callbacks.Callback):
            def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
                values = {k: float(v) for k, v in (logs or {}).items()}
                tracker.log({"epoch": epoch + 1, **values}, step=epoch + 1)

        return _EpochLogger()

    def finish(self) -> None:
        if self._run is not None:
            self._run.finish()
            self._run = None


def start_tracking(
    enabled: bool, name: str, config: dict[str, Any], run_dir: Path, job_type: str
) -> Tracker:
    """Start a W&B run (files in <repo>/wandb/ by default) or return a no-op tracker."""
    if not enabled:
        return Tracker(None)
    if not os.environ.get("WANDB_API_KEY") and os.environ.get("WANDB_MODE") != "disabled":
        os.environ["WANDB_MODE"] = "offline"
    os.environ.setdefault("WANDB_SILENT", "true")
    import wandb

    wandb_dir = Path(os.environ.get("WANDB_DIR", Path(run_dir).parent.parent / "wandb"))
    wandb_dir.mkdir(parents=True, exist_ok=True)
    run = wandb.init(
        project=PROJECT,
        name=name,
        job_type=job_type,
        config=config,
        dir=str(wandb_dir),
        settings=wandb.Settings(init_timeout=30, console="off"),
        reinit="create_new",
    )
    log.info("W&B run %s (%s)", run.id, os.environ.get("WANDB_MODE", "online"))
    return Tracker(run)
