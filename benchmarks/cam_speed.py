"""Grad-CAM throughput in one process: tf-keras-vis per image and per batch, ours, and the floor.

The floor is one compiled forward pass of the same model on the same batch: Grad-CAM needs
that plus a backward pass through the head, so it cannot be cheaper. The "residual" rows target
a layer inside a residual block (a skip connection crosses it), where explain cannot split the
model and takes its fallback route: one pass of Model(inputs, [layer, output]) under the tape.
Numbers are images/s, medians over repeats after a warm-up; compare the ratios, these machines
are shared (the load average before and after is recorded).

    python benchmarks/cam_speed.py [--models mobilenetv2 simple_cnn] [--run RUN] [--batch 32]
        [--residual mobilenetv2 resnet50]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tf_keras_vis.gradcam import Gradcam  # noqa: E402
from tf_keras_vis.utils.model_modifiers import ReplaceToLinear  # noqa: E402
from tf_keras_vis.utils.scores import CategoricalScore  # noqa: E402

import explain  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "cam_speed.json"
log = logging.getLogger("cam_speed")


# A layer inside a residual block of each family: the block's input skips over it to the add.
RESIDUAL_LAYERS = {
    "mobilenetv2": "block_14_depthwise_relu",
    "resnet50": "conv4_block3_2_relu",
    "efficientnetb0": "block6b_activation",
}


def build_models(
    names: list[str], size: int, run: str | None, residual: list[str] | None = None
) -> list[tuple[str, object, str]]:
    """(label, model, cam layer) for each model: the classifier zoo with weights none, or a run;
    then the `residual` families at their RESIDUAL_LAYERS layer."""
    from classification.models import build_model, cam_layer_name

    models, built = [], {}
    for name in names:
        built[name] = build_model(name, num_classes=2, img_size=size, weights="none")
        models.append((f"{name} {size}px", built[name], cam_layer_name(name)))
    for name in residual or []:
        model = built.get(name) or build_model(name, num_classes=2, img_size=size, weights="none")
        layer = RESIDUAL_LAYERS[name]
        models.append((f"{name} {size}px, residual-block layer", model, layer))
    if run:
        from store import load_run

        loaded = load_run(run)
        model = loaded.load_model()
        layer = loaded.info.get("cam_layer") or explain.find_target_layer(model)
        models.append((f"run {loaded.name}", model, layer))
    return models


def images_per_second(fn: Callable[[], object], n_images: int, repeats: int, warmup: int) -> dict:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return {"images_per_s": n_images / median, "median_s": median, "times_s": times}


def bench_model(
    model, layer: str, batch: int, repeats: int, per_image_repeats: int, jit: bool = False
) -> dict:
    size = model.inputs[0].shape[1:]
    x = np.random.default_rng(0).random((batch, *size)).astype(np.float32)
    xt = tf.constant(x)
    forward = tf.function(
        lambda v: model(v, training=False),
        input_signature=[tf.TensorSpec((None, *size), tf.float32)],
    )
    predicted = np.asarray(forward(xt)).argmax(-1)
    tkv = Gradcam(model, model_modifier=ReplaceToLinear())

    def tkv_call(images, classes):
        return tkv(
            CategoricalScore(list(classes)),
            images,
            penultimate_layer=layer,
            seek_penultimate_conv_layer=False,
        )

    def tkv_per_image():
        for i in range(batch):
            tkv_call(x[i : i + 1], predicted[i : i + 1])

    rows = {
        "floor (compiled forward)": images_per_second(
            lambda: forward(xt).numpy(), batch, repeats, 2
        ),
        "ours (explain, gradcam)": images_per_second(
            lambda: explain.compute_cams(model, x, layer=layer, batch_size=batch),
            batch,
            repeats,
            2,
        ),
        "tf-keras-vis, whole batch": images_per_second(
            lambda: tkv_call(x, predicted), batch, repeats, 1
        ),
        "tf-keras-vis, per image": images_per_second(tkv_per_image, batch, per_image_repeats, 1),
    }
    if jit:
        rows["ours, jit_compile (XLA)"] = images_per_second(
            lambda: explain.compute_cams(model, x, layer=layer, batch_size=batch, jit_compile=True),
            batch,
            repeats,
            2,
        )
    ours = rows["ours (explain, gradcam)"]["images_per_s"]
    ratios = {
        "ours / floor": ours / rows["floor (compiled forward)"]["images_per_s"],
        "ours / tf-keras-vis batch": ours / rows["tf-keras-vis, whole batch"]["images_per_s"],
        "ours / tf-keras-vis per image": ours / rows["tf-keras-vis, per image"]["images_per_s"],
    }
    check = explain.compute_cams(model, x[:4], layer=layer)
    return {
        "layer": layer,
        "route": explain.get_explainer(model, "gradcam", layer).route,
        "batch": batch,
        "rows": rows,
        "ratios": ratios,
        "cam_shape": list(check.shape),
    }


def print_table(results: dict) -> None:
    for label, res in results.items():
        print(f"\n{label} (layer {res['layer']}, {res['route']} route, batch {res['batch']})")
        print(f"  {'method':<28}{'images/s':>10}{'median s':>10}")
        for name, row in res["rows"].items():
            print(f"  {name:<28}{row['images_per_s']:>10.1f}{row['median_s']:>10.3f}")
        for name, ratio in res["ratios"].items():
            print(f"  {name:<28}{ratio:>10.2f}x")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=["mobilenetv2", "simple_cnn"])
    parser.add_argument(
        "--residual",
        nargs="*",
        default=["mobilenetv2", "resnet50"],
        choices=sorted(RESIDUAL_LAYERS),
        help="also time these families at a layer inside a residual block (fallback route)",
    )
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--run", help="also benchmark this classifier run from weights/")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--per-image-repeats", type=int, default=3)
    parser.add_argument("--jit", action="store_true", help="also time ours with XLA jit_compile")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    load_before = os.getloadavg()
    print(f"load average before: {load_before}")
    results = {}
    for label, model, layer in build_models(args.models, args.size, args.run, args.residual):
        log.info("benchmarking %s ...", label)
        results[label] = bench_model(
            model, layer, args.batch, args.repeats, args.per_image_repeats, args.jit
        )
    print_table(results)
    print(f"\nload average before {load_before}, after {os.getloadavg()} ({os.cpu_count()} CPUs)")
    report = {
        "benchmark": "cam_speed",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "tensorflow": tf.__version__,
        },
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return report


if __name__ == "__main__":
    main()
