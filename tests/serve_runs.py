"""Tiny untrained runs for the line-service tests, written with `store` (no training: a few
seconds), and a part image generator."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from store import create_run_dir, save_model, write_run_info

SIZE = 32


def build_tiny_runs(root: Path) -> dict[str, Path]:
    """tiny_cnn (simple_cnn, 32 px) and tiny_ae (autoencoder, 32 px) under root."""
    import keras

    from anomaly.model import build_autoencoder
    from anomaly.scoring import ScoreConfig
    from classification.models import build_model, cam_layer_name
    from imaging import Preprocess

    keras.utils.set_random_seed(0)
    preprocess = Preprocess(size=SIZE).to_dict()
    classifier = create_run_dir("tiny_cnn", root)
    save_model(classifier, build_model("simple_cnn", 2, SIZE))
    write_run_info(
        classifier,
        {
            "kind": "classifier",
            "model": "simple_cnn",
            "img_size": SIZE,
            "class_names": ["def_front", "ok_front"],
            "normal_class": "ok_front",
            "defect_class": "def_front",
            "preprocess": preprocess,
            "cam_layer": cam_layer_name("simple_cnn"),
        },
    )
    autoencoder = create_run_dir("tiny_ae", root)
    save_model(autoencoder, build_autoencoder(SIZE, latent_dim=4, filters=(8, 16)))
    write_run_info(
        autoencoder,
        {
            "kind": "autoencoder",
            "model": "autoencoder",
            "img_size": SIZE,
            "preprocess": preprocess,
            "score": ScoreConfig(normalize=False).to_dict(),
            "threshold": 0.05,
            "normal_class": "ok_front",
        },
    )
    return {"classifier": classifier, "autoencoder": autoencoder}


def part_png(seed: int, height: int = 60, width: int = 48) -> bytes:
    """A gray disk with a few dark pits at random places: a distinct image per seed."""
    rng = np.random.default_rng(seed)
    image = np.full((height, width), 30, np.uint8)
    cv2.circle(image, (width // 2, height // 2), min(height, width) // 2 - 2, 170, -1)
    for _ in range(3):
        x, y = int(rng.integers(5, width - 5)), int(rng.integers(5, height - 5))
        cv2.circle(image, (x, y), int(rng.integers(1, 4)), 20, -1)
    image = np.clip(image + rng.normal(0, 4, image.shape), 0, 255).astype(np.uint8)
    ok, buffer = cv2.imencode(".png", image)
    assert ok
    return buffer.tobytes()
