"""Do augmentation recipes really give better heatmaps? Several seeds per recipe, intervals,
paired tests (issue #16).

    python -m explain.study --data data/casting --runs weights/demo_* weights/study/*
        [--method gradcam] [--faithfulness 30] [--cache DIR] [--out weights/heatmap_study.json]

Runs are grouped by the recipe they were trained with (run.json `aug`) and their `seed`; each is
measured by explain.evaluation on the test split (localization on every defective image,
faithfulness on the same fixed sample of defective images). Every metric becomes, per recipe, a
(seeds x images) table: its mean with a 95 % bootstrap interval over seeds and images, and, for
every pair of recipes, a paired test on the same images (Holm-corrected over the pairs). The
report says in words which differences are significant: the test rejects and the 95 % interval
of the mean difference excludes zero. `make study` trains the seeds and runs
this; the Augmentation Comparison page shows the saved report.
"""

from __future__ import annotations

import argparse
import json
import logging
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from explain.cams import METHODS
from explain.layers import ExplainError
from explain.uncertainty import bootstrap_interval, compare_recipes
from store.cli_errors import atomic_output, check_output_file, cli_main, non_negative_int

log = logging.getLogger(__name__)
STUDY_FILE = "heatmap_study.json"


@dataclass(frozen=True)
class Metric:
    column: str
    label: str
    higher_is_better: bool = True


METRICS = (
    Metric("pointing_hit", "pointing"),
    Metric("energy_inside", "energy inside"),
    Metric("box_hit@0.3", "box hit@0.3"),
    Metric("deletion_auc", "deletion AUC", higher_is_better=False),
    Metric("insertion_auc", "insertion AUC"),
    Metric("road", "ROAD"),
)


def group_runs(runs: list[Any]) -> dict[str, list[Any]]:
    """Classifier runs by recipe (`aug`), each recipe's runs sorted by seed; one run per seed."""
    groups: dict[str, dict[int, Any]] = {}
    for run in runs:
        if run.kind != "classifier":
            raise ExplainError(
                f"run {run.name!r} is a {run.kind} run; the study needs classifier runs "
                "(trained with classification/train.py)"
            )
        recipe, seed = run.info.get("aug"), run.info.get("seed")
        if recipe is None or seed is None:
            raise ExplainError(
                f"run {run.name!r} records no aug or seed in run.json; pass runs trained with "
                "classification/train.py --aug RECIPE --seed N"
            )
        seen = groups.setdefault(str(recipe), {})
        if int(seed) in seen:
            raise ExplainError(
                f"runs {seen[int(seed)].name!r} and {run.name!r} are both recipe {recipe!r} "
                f"seed {seed}: pass one run per recipe and seed"
            )
        seen[int(seed)] = run
    if len(groups) < 2:
        raise ExplainError(
            f"the study compares recipes: got runs of {len(groups)} recipe(s); pass runs of at "
            "least two recipes (e.g. weights/demo_basic weights/demo_flip)"
        )
    return {recipe: [by_seed[s] for s in sorted(by_seed)] for recipe, by_seed in groups.items()}


def measure(
    runs: list[Any],
    data: str | Path,
    method: str,
    faithfulness: int,
    cache: Path | None = None,
) -> pd.DataFrame:
    """Per-image metrics of every run on the test split's defective images (long format).

    With `cache`, each run's table is kept there as CSV (named by run, its creation time, the
    method and the sample size) and read back instead of measured again.
    """
    from explain.evaluation import evaluate

    frames = []
    for run in runs:
        stamp = str(run.info.get("created", "")).replace(":", "")
        saved = cache / f"{run.name}_{stamp}_{method}_{faithfulness}.csv" if cache else None
        if saved is not None and saved.is_file():
            frames.append(pd.read_csv(saved))
            continue
        report = evaluate(run, data, method=method, split="test", faithfulness=faithfulness)
        frame = pd.DataFrame(report["images"])
        frame = frame[frame["is_defect"]]
        frame = frame.assign(recipe=run.info["aug"], seed=int(run.info["seed"]))
        if saved is not None:
            saved.parent.mkdir(parents=True, exist_ok=True)
            frame.to_csv(saved, index=False)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def tables(frame: pd.DataFrame, column: str) -> dict[str, np.ndarray]:
    """Recipe -> (seeds, images) table of one metric, images aligned by path across recipes."""
    paths = sorted(frame["path"].unique())
    out = {}
    for recipe, group in frame.groupby("recipe"):
        if column not in group:
            continue
        wide = group.pivot(index="seed", columns="path", values=column).reindex(columns=paths)
        out[str(recipe)] = wide.to_numpy(dtype=np.float64)
    return out


def summarize(frame: pd.DataFrame, n_boot: int = 2000) -> dict[str, Any]:
    """Intervals per recipe and metric, paired differences, and the sentences that say them."""
    intervals: dict[str, dict[str, Any]] = {}
    differences: dict[str, list[dict[str, Any]]] = {}
    for metric in METRICS:
        by_recipe = {r: t for r, t in tables(frame, metric.column).items() if np.isfinite(t).any()}
        if len(by_recipe) < 2:
            continue
        intervals[metric.column] = {}
        for recipe, table in by_recipe.items():
            interval = bootstrap_interval(table, n_boot=n_boot)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a seed without values
                run_means = np.nanmean(table, axis=1)
            intervals[metric.column][recipe] = {
                "mean": interval.mean,
                "low": interval.low,
                "high": interval.high,
                "run_means": [float(v) for v in run_means],
                "seeds": int(table.shape[0]),
                "images": int(np.isfinite(table).any(axis=0).sum()),
            }
        runs = intervals[metric.column]
        differences[metric.column] = [
            {
                "a": d.a,
                "b": d.b,
                "mean": d.interval.mean,
                "low": d.interval.low,
                "high": d.interval.high,
                "p_holm": d.p_value,
                "images": d.n_images,
                "test_rejects": bool(d.significant),
                # Called significant only when the interval agrees on the direction too: a
                # Wilcoxon test can reject on the median of many tiny shifts while the mean
                # difference is indistinguishable from zero.
                "significant": bool(d.significant) and (d.interval.low > 0 or d.interval.high < 0),
                "run_ranges_overlap": _overlap(runs[d.a]["run_means"], runs[d.b]["run_means"]),
            }
            for d in compare_recipes(by_recipe, n_boot=n_boot)
        ]
    return {
        "intervals": intervals,
        "differences": differences,
        "sentences": sentences(differences),
    }


def _overlap(a: list[float], b: list[float]) -> bool:
    """Whether the ranges of two recipes' per-seed means overlap (NaN seeds ignored)."""
    a_, b_ = [v for v in a if np.isfinite(v)], [v for v in b if np.isfinite(v)]
    if not a_ or not b_:
        return True
    return min(a_) <= max(b_) and min(b_) <= max(a_)


def sentences(differences: dict[str, list[dict[str, Any]]]) -> list[str]:
    """One sentence per metric: the significant differences, better recipe first."""
    out = []
    for metric in METRICS:
        pairs = differences.get(metric.column)
        if pairs is None:
            continue
        found = []
        for d in pairs:
            if not d["significant"]:
                continue
            a_better = (d["mean"] > 0) == metric.higher_is_better
            better, worse = (d["a"], d["b"]) if a_better else (d["b"], d["a"])
            seeds = "overlap" if d["run_ranges_overlap"] else "do not overlap"
            found.append(
                f"{better} better than {worse} ({d['a']} - {d['b']} = {d['mean']:+.3f} "
                f"[{d['low']:+.3f}, {d['high']:+.3f}], Holm p = {d['p_holm']:.2g}; the two "
                f"recipes' per-seed means {seeds})"
            )
        if found:
            out.append(f"{metric.label}: " + "; ".join(found) + ".")
        else:
            out.append(f"{metric.label}: no difference between recipes is significant.")
    return out


def per_type(frame: pd.DataFrame, column: str = "box_hit@0.3") -> dict[str, dict[str, float]]:
    """Recipe -> defect type -> mean of `column` over seeds and images."""
    means = frame.groupby(["recipe", "defect_type"])[column].mean()
    return {
        str(recipe): {str(t): float(v) for t, v in group.droplevel(0).items()}
        for recipe, group in means.groupby(level=0)
    }


def format_table(report: dict[str, Any]) -> str:
    """Markdown: one row per recipe, each metric as mean [95 % interval]."""
    intervals = report["intervals"]
    shown = [m for m in METRICS if m.column in intervals]
    recipes = sorted({r for by_recipe in intervals.values() for r in by_recipe})
    head = "| recipe | seeds | " + " | ".join(m.label for m in shown) + " |"
    lines = [head, "|" + "---|" * (len(shown) + 2)]
    for recipe in recipes:
        cells, seeds = [], 0
        for m in shown:
            v = intervals[m.column].get(recipe)
            seeds = max(seeds, v["seeds"] if v else 0)
            cells.append(f"{v['mean']:.3f} [{v['low']:.3f}, {v['high']:.3f}]" if v else "-")
        lines.append(f"| {recipe} | {seeds} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_study(
    runs: list[Any],
    data: str | Path,
    method: str = "gradcam",
    faithfulness: int = 30,
    cache: Path | None = None,
) -> dict[str, Any]:
    """Measure every run, then the intervals, tests and sentences: the saved report."""
    groups = group_runs(runs)
    every = [r for rs in groups.values() for r in rs]
    frame = measure(every, data, method, faithfulness, cache)
    report = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "data": str(data),
        "method": method,
        "faithfulness_images": faithfulness,
        "runs": {recipe: [r.name for r in rs] for recipe, rs in groups.items()},
        "seeds": {recipe: [int(r.info["seed"]) for r in rs] for recipe, rs in groups.items()},
        "defective_test_images": int(frame["path"].nunique()),
        **summarize(frame),
        "box_hit@0.3_per_type": per_type(frame),
    }
    return report


def load_study(root: str | Path) -> dict[str, Any] | None:
    """The saved report in a weights folder, or None when there is none."""
    path = Path(root) / STUDY_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m explain.study", description=__doc__)
    parser.add_argument("--data", required=True, help="data set with masks (the runs' test split)")
    parser.add_argument("--runs", nargs="+", required=True, help="classifier run folders or names")
    parser.add_argument("--method", default="gradcam", choices=sorted(METHODS))
    parser.add_argument(
        "--faithfulness",
        type=non_negative_int,
        default=30,
        metavar="N",
        help="defective images (a fixed random sample) that also get deletion/insertion AUC and "
        "ROAD, per run; about 2 s an image",
    )
    parser.add_argument("--out", type=Path, help="write the report as JSON")
    parser.add_argument(
        "--cache",
        type=Path,
        help="folder keeping each run's per-image metrics, so a rerun measures only new runs",
    )
    return parser


@cli_main
def main(argv: list[str] | None = None) -> int:
    """0 after printing the table (and writing --out), 2 after printing the error."""
    from store import load_run

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.out:
        check_output_file(args.out)
    runs = [load_run(r) for r in args.runs]
    report = run_study(runs, args.data, args.method, args.faithfulness, args.cache)
    print(format_table(report))
    print("\n".join(report["sentences"]))
    if args.out:
        with atomic_output(args.out) as tmp:
            tmp.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
