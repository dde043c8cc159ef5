"""Batch review end to end: 500 part images of 300x300, files in, every model, results out.

Each file is read from disk, decoded, preprocessed for each run, classified, explained with
Grad-CAM (the defect class, fast batched path), turned into boxes in original pixels and
scored by the autoencoder; then the same batch goes into a review log (temporary SQLite, image
copies included), as the Batch Review page does it. Uses the demo runs (weights/demo_*) when
they exist, else untrained models of the same architectures (speed does not depend on the
weights; the output says which). Prints a table, writes benchmarks/results/batch_review.json.

    python benchmarks/batch_review.py [--n 500] [--size 300] [--batch-size 32] [--untrained]
                                      [--results-only]

Each stage is reported in wall seconds and in process CPU seconds (all threads): on a shared
machine the wall time includes waiting for other jobs, the CPU time does not.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

import store
from inspection import STAGES, Inspector, inspect_into_review, iter_inspect

RESULTS = Path(__file__).resolve().parent / "results" / "batch_review.json"
TARGET_SECONDS = 10.0  # issue #17: 500 parts end to end
ANOMALY_TARGET_SECONDS = 2.5  # issue #17: the anomaly stage of those 500 parts


def write_parts(folder: Path, n: int, size: int, seed: int = 0) -> list[Path]:
    """n synthetic casting images (a quarter defective) as PNG files."""
    from synthetic.casting import DEFECT_TYPES, render_part

    rng = np.random.default_rng(seed)
    paths = []
    for i in tqdm(range(n), desc="rendering parts", unit="img"):
        defect = DEFECT_TYPES[i % len(DEFECT_TYPES)] if i % 4 == 0 else None
        image, _ = render_part(rng, size=size, defect=defect)
        path = folder / f"part_{i:04d}.png"
        cv2.imwrite(str(path), image)
        paths.append(path)
    return paths


DEMO_PAIR = {"classifier": "demo_flip", "autoencoder": "demo_anomaly"}


def demo_runs() -> tuple[store.Run, store.Run] | None:
    """The demo recipe's classifier and the demo anomaly run (else the newest demo_* of each
    kind), if both exist."""
    found = {}
    for kind, preferred in DEMO_PAIR.items():
        runs = [r for r in store.list_runs(kind) if r.name.startswith("demo_")]
        named = [r for r in runs if r.name == preferred]
        if runs:
            found[kind] = (named or runs)[0]
    return (found["classifier"], found["autoencoder"]) if len(found) == 2 else None


def untrained_runs(root: Path) -> tuple[store.Run, store.Run]:
    """Runs with untrained models of the demo architectures (simple_cnn 160 px, AE 128 px)."""
    from anomaly.model import build_autoencoder
    from anomaly.scoring import STATS_FILE, ErrorStats, ScoreConfig
    from classification.models import SIMPLE_CNN_CAM_LAYER, build_model
    from imaging import Preprocess

    classifier_dir = store.create_run_dir("untrained_cnn", root=root)
    build_model("simple_cnn", 2, 160).save(classifier_dir / "model.keras")
    store.write_run_info(
        classifier_dir,
        {
            "kind": "classifier",
            "model": "simple_cnn",
            "img_size": 160,
            "class_names": ["ok_front", "def_front"],
            "normal_class": "ok_front",
            "defect_class": "def_front",
            "preprocess": Preprocess(size=160).to_dict(),
            "cam_layer": SIMPLE_CNN_CAM_LAYER,
        },
    )
    ae_dir = store.create_run_dir("untrained_ae", root=root)
    build_autoencoder(128).save(ae_dir / "model.keras")
    ones = np.ones((128, 128), np.float32)
    ErrorStats(mean=0 * ones, std=ones).save(ae_dir / STATS_FILE)
    store.write_run_info(
        ae_dir,
        {
            "kind": "autoencoder",
            "img_size": 128,
            "preprocess": Preprocess(size=128).to_dict(),
            "threshold": 1.0,
            "threshold_method": "untrained placeholder",
            "score": ScoreConfig().to_dict(),
        },
    )
    return store.load_run(classifier_dir), store.load_run(ae_dir)


def _entries(paths: list[Path]):
    for path in paths:
        yield path.name, path.read_bytes()


def _stages(inspector: Inspector, seconds: float, n: int, cpu_seconds: float) -> dict:
    stages = {s: round(inspector.timings.get(s, 0.0), 3) for s in STAGES}
    return {
        "images": n,
        "seconds": round(seconds, 3),
        "cpu_seconds": round(cpu_seconds, 3),
        "images_per_s": round(n / seconds, 1),
        "stages_s": stages,
        "stages_cpu_s": {s: round(inspector.cpu_timings.get(s, 0.0), 3) for s in STAGES},
        "other_s": round(seconds - sum(stages.values()), 3),
    }


def run_results_only(inspector: Inspector, paths: list[Path], batch_size: int) -> dict:
    """Files in, result rows out (what `python -m inspection` does)."""
    inspector.timings.clear()
    inspector.cpu_timings.clear()
    bar = tqdm(total=len(paths), desc="inspect", unit="img")
    started, cpu = time.perf_counter(), time.process_time()
    rows = [
        row
        for _, row in iter_inspect(
            _entries(paths), inspector, batch_size, lambda d, t: bar.update(d - bar.n), len(paths)
        )
    ]
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    bar.close()
    assert all(r["status"] == "ok" for r in rows), [r["error"] for r in rows if r["error"]]
    result = _stages(inspector, seconds, len(rows), cpu)
    result["flagged"] = sum(1 for r in rows if r["risk_score"] > 0.5)
    return result


def run_into_review_log(inspector: Inspector, paths: list[Path], batch_size: int) -> dict:
    """Files in, items (image copies, predictions, scores) committed to a temporary SQLite."""
    from store.review import ReviewLog

    inspector.timings.clear()
    inspector.cpu_timings.clear()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'review.db'}"
        with ReviewLog(url, Path(tmp) / "images") as review:
            batch = review.create_batch("benchmark", inspector.classifier.name)
            bar = tqdm(total=len(paths), desc="inspect + review log", unit="img")
            started, cpu = time.perf_counter(), time.process_time()
            report = inspect_into_review(
                review,
                batch,
                _entries(paths),
                inspector,
                batch_size,
                lambda d, t: bar.update(d - bar.n),
                len(paths),
            )
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
            bar.close()
    assert report.added == len(paths), report.messages[:5]
    return _stages(inspector, seconds, report.added, cpu)


def table(results: dict) -> str:
    lines = [f"{'scenario':<22}{'images':>7}{'total s':>9}{'CPU s':>8}{'img/s':>8}  per-stage s"]
    for name, r in results.items():
        stages = " ".join(f"{k}={v:.2f}" for k, v in r["stages_s"].items())
        cpu = " ".join(f"{k}={v:.2f}" for k, v in r["stages_cpu_s"].items())
        lines.append(
            f"{name:<22}{r['images']:>7}{r['seconds']:>9.2f}{r['cpu_seconds']:>8.2f}"
            f"{r['images_per_s']:>8.1f}  wall: {stages} other={r['other_s']:.2f}"
        )
        lines.append(f"{'':<54}CPU:  {cpu}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=500, help="images in the batch")
    parser.add_argument("--size", type=int, default=300, help="image side in pixels")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--untrained", action="store_true", help="skip the demo runs")
    parser.add_argument(
        "--results-only", action="store_true", help="skip the review-log scenario (half the time)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON results file")
    args = parser.parse_args(argv)

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        runs = None if args.untrained else demo_runs()
        which = "demo runs" if runs else "untrained models of the demo architectures"
        if runs is None:
            runs = untrained_runs(tmp / "weights")
        (tmp / "parts").mkdir()
        paths = write_parts(tmp / "parts", args.n, args.size)

        started = time.perf_counter()
        inspector = Inspector(*runs)
        for _ in iter_inspect(_entries(paths[: args.batch_size]), inspector, args.batch_size):
            pass  # warm-up: load models, trace the compiled CAM step
        warm_up = time.perf_counter() - started

        results = {"files -> results": run_results_only(inspector, paths, args.batch_size)}
        if not args.results_only:
            results["files -> review log"] = run_into_review_log(inspector, paths, args.batch_size)
        shared = inspector.shared is not None
        if shared:  # the same batch with three separate model passes, for the ratio
            inspector.shared = None
            results["separate passes"] = run_results_only(inspector, paths, args.batch_size)
    load_after = os.getloadavg()
    report = {
        "benchmark": "batch_review",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "models": which,
        "classifier_run": runs[0].name,
        "classifier": f"{runs[0].info.get('model')} @ {runs[0].info.get('img_size')} px",
        "autoencoder_run": runs[1].name,
        "autoencoder_input_px": runs[1].info.get("img_size"),
        "anomaly_model": runs[1].info.get("model"),
        "anomaly_features": (runs[1].info.get("features") or {}).get("weights"),
        "cam": "gradcam (explain fast path), boxes via explain.cam_to_boxes",
        "shared_pass": shared,
        "shared_pass_note": "stage 'shared' = classify + Grad-CAM + the anomaly run's patch "
        "features in one model pass (inspection.shared_pass); 'anomaly' is then the memory-bank "
        "search and the maps of flagged parts",
        "image_size": args.size,
        "batch_size": args.batch_size,
        "warm_up_s": round(warm_up, 2),
        "results": results,
        "target": f"{args.n} images in <= {TARGET_SECONDS:.0f} s on 2 cores",
        "meets_target": results["files -> results"]["seconds"] <= TARGET_SECONDS,
        "anomaly_target": f"anomaly stage of {args.n} images in <= {ANOMALY_TARGET_SECONDS} s",
        "meets_anomaly_target": results["files -> results"]["stages_s"]["anomaly"]
        <= ANOMALY_TARGET_SECONDS,
        "cpu_count": os.cpu_count(),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in load_after],
        "machine": f"{platform.machine()} {platform.system()} {platform.python_version()}",
    }
    print(
        f"\nmodels: {which} ({report['classifier']}, anomaly {runs[1].name}: "
        f"{report['anomaly_model']} @ {report['autoencoder_input_px']} px)"
    )
    print(f"warm-up (load + trace): {warm_up:.1f} s")
    print(table(results))
    if shared:
        ratio = results["separate passes"]["seconds"] / results["files -> results"]["seconds"]
        report["speedup_shared_vs_separate"] = round(ratio, 2)
        print(f"shared pass vs separate passes: {ratio:.2f}x faster (same run, same images)")
    print(
        f"targets: {report['target']}: {report['meets_target']}; "
        f"{report['anomaly_target']}: {report['meets_anomaly_target']}"
    )
    print(f"peak RSS of this process: {report['peak_rss_mb']} MB")
    print(
        f"load average before {report['loadavg_before']}, after {report['loadavg_after']} "
        f"on {report['cpu_count']} cores (shared machine: timings include others' work)"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
