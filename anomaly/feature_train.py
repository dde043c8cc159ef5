"""Fitting PatchCore and PaDiM runs (called by `anomaly/train.py --model patchcore|padim`).

No gradient training: features of the good training parts are extracted once, PatchCore keeps
a greedy coreset of them as its memory bank, PaDiM a Gaussian per patch position. Then, on
held-out good parts only: the pixel threshold (a percentile of their map values inside the
part) from the statistics half, the image threshold from the threshold half (as for the
autoencoders). The run folder: model.keras (the feature extractor, safe mode), memory_bank.npy
or padim_mean.npy + padim_inv_cov.npy, run.json, metrics.json, history.csv (one row).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import store
from anomaly.evaluation import evaluate_detector
from anomaly.feature_detector import (
    BANK,
    PADIM_INV_COV,
    PADIM_MEAN,
    FeatureDetector,
    FeatureScoreConfig,
)
from anomaly.features import FeatureError, FeatureSpec, build_extractor, extract, with_projection
from anomaly.localize import calibrate_pixel_threshold
from anomaly.memory import fit_padim, fit_patchcore
from anomaly.postprocess import f1_optimal_threshold, part_region, percentile_threshold

log = logging.getLogger(__name__)


@dataclass
class FeatureData:
    """Prepared images (N, S, S, C): training goods, the two held-out good halves, and the
    optional labelled set for `--threshold f1`."""

    train: np.ndarray
    stats: np.ndarray
    threshold: np.ndarray
    labelled: tuple[np.ndarray, np.ndarray] | None = None


def feature_spec(config: Any) -> tuple[FeatureSpec, Any, dict[str, Any]]:
    """(spec, loaded classifier model or None, provenance of the backbone) from the CLI."""
    layers = tuple(config.feature_layers or ())
    if config.backbone:
        if config.backbone_run:
            raise FeatureError("give either --backbone (ImageNet) or --backbone-run, not both")
        spec = FeatureSpec("imagenet", layers, application=config.backbone, dim=config.feature_dim)
        return spec, None, {"weights": "imagenet"}
    if not config.backbone_run:
        raise FeatureError(
            f"--model {config.model} needs a feature extractor: --backbone-run RUN (a classifier "
            "run's layers) or --backbone mobilenetv2 --weights imagenet"
        )
    run = store.load_run(config.backbone_run)
    if run.kind != "classifier":
        raise FeatureError(
            f"--backbone-run {run.name!r} is a {run.kind} run; pick a classifier run"
        )
    source = "random" if config.random_backbone else "run"
    spec = FeatureSpec(source, layers, run=run.name, dim=config.feature_dim)
    origin = {
        "weights": "random init" if source == "random" else f"classifier run {run.name}",
        "run_model": run.info.get("model"),
        "run_created": run.info.get("created"),
        "run_git_commit": run.info.get("git_commit"),
        "run_trained_on_labelled_defects": source == "run",
    }
    return spec, run.load_model(), origin


def _fit(config: Any, feats: np.ndarray) -> dict[str, np.ndarray]:
    if config.model == "patchcore":
        return {BANK: fit_patchcore(feats, config.coreset, seed=config.seed)}
    mean, inv_cov = fit_padim(feats)
    return {PADIM_MEAN: mean, PADIM_INV_COV: inv_cov}


def _calibrate(config: Any, detector: FeatureDetector, data: FeatureData) -> dict[str, Any]:
    _, stats_maps, stats_images = detector.score_arrays(data.stats)
    regions = np.stack([part_region(img) for img in stats_images])
    detector.pixel_threshold = calibrate_pixel_threshold(
        stats_maps, config.pixel_percentile, regions
    )
    good_scores, _, _ = detector.score_arrays(data.threshold)
    info: dict[str, Any] = {
        "good_scores": {
            "n": len(good_scores),
            "mean": float(np.mean(good_scores)),
            "max": float(np.max(good_scores)),
        },
        "pixel_percentile": config.pixel_percentile,
        "pixel_images": len(stats_maps),
    }
    if config.threshold == "f1":
        x_lab, y_lab = data.labelled
        scores, _, _ = detector.score_arrays(x_lab)
        detector.threshold, f1 = f1_optimal_threshold(scores, y_lab)
        info.update(f1_on_calibration=f1, n_defects=int(y_lab.sum()), n_good=int((~y_lab).sum()))
    else:
        detector.threshold = percentile_threshold(good_scores, config.percentile)
        info["percentile"] = config.percentile
    return info


def fit_feature_run(config: Any, spec, good, preprocess, data: FeatureData) -> Path:
    """Fit, calibrate, evaluate (when the data has a test split) and save; returns the run."""
    started = time.perf_counter()
    fspec, backbone, origin = feature_spec(config)
    model = build_extractor(
        fspec, config.img_size, backbone, seed=config.seed, channels=preprocess.channels
    )
    fit_started = time.perf_counter()
    feats = extract(model, data.train)
    raw_dim = int(feats.shape[-1])
    if config.feature_dim:
        model, feats = with_projection(model, feats, config.feature_dim, seed=config.seed)
    arrays = _fit(config, feats)
    fit_seconds = time.perf_counter() - fit_started
    log.info("%s fitted on %s patch features in %.1f s", config.model, feats.shape, fit_seconds)
    score_config = FeatureScoreConfig(
        sigma=config.sigma if config.sigma is not None else config.img_size / 32,
        top_k=config.top_k if config.top_k is not None else 0.1,
        part_mask=config.part_mask,
        image_score="top_k" if config.top_k is not None else "patch_max",
    )
    detector = FeatureDetector(model, config.model, preprocess, arrays, score_config)
    calibration = _calibrate(config, detector, data)

    # run.json is written last; a failure before it removes the folder (store.run_folder)
    with store.run_folder(config.name) as run_dir:
        store.save_model(run_dir, model)
        for name, array in arrays.items():
            store.save_array(run_dir, name, array)
        has_test = (spec.items["split"] == "test").any()
        score_started = time.perf_counter()
        metrics = evaluate_detector(detector, spec, "test") if has_test else {}
        eval_seconds = time.perf_counter() - score_started
        summary = {
            k: metrics.get(k) for k in ("image_auroc", "pixel_auroc", "aupro", "f1", "pixel_f1")
        }
        store.write_history(run_dir, {"train_patches": [int(np.prod(feats.shape[:3]))]})
        store.write_run_info(
            run_dir,
            {
                "kind": "autoencoder",
                "model": config.model,
                "img_size": config.img_size,
                "preprocess": preprocess.to_dict(),
                "features": {
                    **fspec.to_dict(),
                    **origin,
                    "raw_dim": raw_dim,
                    "grid": list(feats.shape[1:3]),
                },
                "memory": {k: list(v.shape) for k, v in arrays.items()},
                "coreset": config.coreset if config.model == "patchcore" else None,
                "threshold": detector.threshold,
                "threshold_method": config.threshold,
                "pixel_threshold": detector.pixel_threshold,
                "calibration": calibration,
                "score": score_config.to_dict(),
                "normal_class": spec.normal_class,
                "data": good.data_record(spec),
                "seed": config.seed,
                "fit_seconds": round(fit_seconds, 1),
                "test_scoring_seconds": round(eval_seconds, 1) if metrics else None,
                "train_seconds": round(time.perf_counter() - started - eval_seconds, 1),
                "epochs_run": 1,
                "summary": summary,
            },
        )
        if metrics:
            store.write_metrics(run_dir, metrics)
    return run_dir
