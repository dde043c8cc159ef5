"""Operating points of classifier runs: test recall and QA rates under each threshold policy.

    python benchmarks/operating_points.py [--runs demo_flip ...] [--policies f1 recall:0.99]

For each run the validation and test splits are predicted once; each policy chooses its
threshold on validation only and is then scored on test, next to the argmax decision. Prints a
table and writes benchmarks/results/operating_points.json (with the machine load).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "operating_points.json"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", default=["demo_flip"])
    parser.add_argument("--policies", nargs="+", default=["f1", "recall:0.99", "precision:0.99"])
    parser.add_argument("--data", help="data set folder (default: the one each run recorded)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser


def measure(run_name: str, policies: list[str], data: str | None) -> list[dict]:
    import numpy as np

    import store
    from classification.evaluation import choose_on_validation, predict_split, split_report

    run = store.load_run(run_name)
    val = predict_split(run, "val", data)
    test = predict_split(run, "test", data)
    rows = []
    for policy in [*policies, "argmax"]:
        if policy == "argmax":
            threshold, chosen_on = None, None
        else:
            choice = choose_on_validation(run, policy, val=val)
            threshold, chosen_on = (
                choice.threshold,
                {"precision": choice.precision, "recall": choice.recall},
            )
        report = split_report(run, test, threshold)
        cm = np.array(report["confusion_matrix"]["matrix"])
        rows.append(
            {
                "run": run.name,
                "policy": policy,
                "threshold": threshold,
                "validation": chosen_on,
                "test_n": report["n"],
                "test_recall": report["defect_recall"],
                "test_precision": report["defect_precision"],
                "test_accuracy": report["accuracy"],
                "escape_per_1000": report["escape_per_1000"],
                "false_alarm_per_1000": report["false_alarm_per_1000"],
                "confusion_matrix": cm.tolist(),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    load_before = os.getloadavg()
    started = time.perf_counter()
    rows = [r for name in args.runs for r in measure(name, args.policies, args.data)]
    seconds = time.perf_counter() - started
    print(
        f"{'run':<12} {'policy':<15} {'threshold':>9} {'recall':>7} {'precision':>9} "
        f"{'escapes/1k':>10} {'alarms/1k':>9}"
    )
    for r in rows:
        t = "argmax" if r["threshold"] is None else f"{r['threshold']:.4f}"
        print(
            f"{r['run']:<12} {r['policy']:<15} {t:>9} {r['test_recall']:7.4f} "
            f"{r['test_precision']:9.4f} {r['escape_per_1000']:10.1f} "
            f"{r['false_alarm_per_1000']:9.1f}"
        )
    load_after = os.getloadavg()
    print(f"{seconds:.0f} s; load average before {load_before}, after {load_after}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "rows": rows,
                "seconds": round(seconds, 1),
                "load_before": load_before,
                "load_after": load_after,
                "cpu": platform.processor() or platform.machine(),
                "cpus": os.cpu_count(),
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
