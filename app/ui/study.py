"""The heatmap study on the Augmentation Comparison page: recipes over several seeds."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from explain.study import METRICS
from ui import figures


def show_study(report: dict[str, Any] | None) -> None:
    """Each metric per recipe as mean and 95 % interval over seeds and images, the paired tests
    in words, and box hit@0.3 per defect type; how to make the report when there is none."""
    st.subheader("Recipes across training seeds", anchor=False)
    if report is None:
        st.caption(
            "No heatmap study in the weights folder yet. `make study` trains every demo recipe "
            "with two more seeds and writes `heatmap_study.json` here: means with 95 % "
            "intervals over seeds and images, and which recipe differences are significant."
        )
        return
    intervals = report["intervals"]
    seeds = sorted({len(s) for s in report["seeds"].values()})
    st.caption(
        f"{report['method']} heatmaps of {sum(len(r) for r in report['runs'].values())} runs "
        f"({', '.join(map(str, seeds))} seeds per recipe) on "
        f"{report['defective_test_images']} defective test images; faithfulness on a fixed "
        f"sample of {report['faithfulness_images']}. Bars: mean over seeds and images with its "
        "95 % bootstrap interval (seeds and images resampled). Measured "
        f"{report['created'][:10]}."
    )
    shown = [m for m in METRICS if m.column in intervals]
    choice = st.segmented_control(
        "Metric",
        [m.label for m in shown],
        default=shown[0].label,
        key="study_metric",
        help="Deletion AUC: lower is better; every other metric: higher is better.",
    )
    metric = next((m for m in shown if m.label == choice), shown[0])
    st.plotly_chart(
        figures.interval_bars(intervals[metric.column], metric.label), key="study_chart"
    )
    table = pd.DataFrame(
        {
            m.label: {
                recipe: f"{v['mean']:.3f} [{v['low']:.3f}, {v['high']:.3f}]"
                for recipe, v in intervals[m.column].items()
            }
            for m in shown
        }
    )
    st.dataframe(table, key="study_table")
    st.markdown(
        "**Significant differences** (paired Wilcoxon test on the same images, Holm-corrected "
        "over recipe pairs, α = 0.05):\n" + "\n".join(f"- {s}" for s in report["sentences"])
    )
    per_type = report.get("box_hit@0.3_per_type")
    if per_type:
        st.caption("Box hit@0.3 per defect type (mean over seeds):")
        st.dataframe(pd.DataFrame(per_type).T.style.format(precision=3), key="study_types")
