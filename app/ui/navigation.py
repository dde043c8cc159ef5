"""The page registry: one list, so Home's links and the sidebar never drift apart."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import streamlit as st

APP_DIR = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class PageSpec:
    """One dashboard page: its script under app/views/, title, icon, and a one-line pitch."""

    script: str
    title: str
    icon: str
    section: str
    pitch: str
    url_path: str

    @property
    def path(self) -> Path:
        return APP_DIR / "views" / self.script


PAGES: tuple[PageSpec, ...] = (
    PageSpec(
        "home.py",
        "Home",
        ":material/home:",
        "Overview",
        "What DefectLens does, the runs and data sets it found.",
        "home",
    ),
    PageSpec(
        "experiments.py",
        "Experiments",
        ":material/monitoring:",
        "Overview",
        "Compare runs: metrics, training curves, confusion matrices, W&B links.",
        "experiments",
    ),
    PageSpec(
        "error_analysis.py",
        "Error Analysis",
        ":material/rule:",
        "Overview",
        "A run's misses and false alarms as images with heatmaps; recall per defect type.",
        "error-analysis",
    ),
    PageSpec(
        "cam_inspector.py",
        "CAM Inspector",
        ":material/center_focus_strong:",
        "Explain",
        "Where does the classifier look? Grad-CAM family on one image.",
        "cam-inspector",
    ),
    PageSpec(
        "augmentation.py",
        "Augmentation Comparison",
        ":material/compare:",
        "Explain",
        "The same images under several augmentation recipes: heatmap noise and localization.",
        "augmentation",
    ),
    PageSpec(
        "heatmap_boxes.py",
        "Heatmap to Boxes",
        ":material/crop_free:",
        "Explain",
        "Turn heatmaps into defect boxes, check them against ground truth, export pseudo-labels.",
        "heatmap-boxes",
    ),
    PageSpec(
        "anomaly.py",
        "Anomaly",
        ":material/blur_on:",
        "Detect",
        "Autoencoder trained on good parts only: reconstruction error and a threshold.",
        "anomaly",
    ),
    PageSpec(
        "batch_review.py",
        "Batch Review",
        ":material/fact_check:",
        "Detect",
        "Upload a shift's images, triage by risk, record every decision.",
        "batch-review",
    ),
    PageSpec(
        "line_monitor.py",
        "Line Monitor",
        ":material/conveyor_belt:",
        "Detect",
        "Live line traffic from the inspection service: latest parts, alerts, defect rate.",
        "line-monitor",
    ),
    PageSpec(
        "melting_tank.py",
        "Melting Tank",
        ":material/thermostat:",
        "Process",
        "Sensor series with NG periods and the LSTM's NG probability.",
        "melting-tank",
    ),
)


def existing_pages() -> list[PageSpec]:
    """Pages whose script exists (a page under construction simply does not appear yet)."""
    return [p for p in PAGES if p.path.is_file()]


def build_navigation() -> dict[str, list[st.Page]]:
    """st.navigation input grouped by section, Home first and default."""
    sections: dict[str, list[st.Page]] = {}
    for spec in existing_pages():
        page = st.Page(
            spec.path,
            title=spec.title,
            icon=spec.icon,
            url_path=spec.url_path,
            default=spec.script == "home.py",
        )
        sections.setdefault(spec.section, []).append(page)
    return sections
