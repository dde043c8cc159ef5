"""The shared sidebar: run pickers that remember the choice across pages, and a footer."""

from __future__ import annotations

import streamlit as st

import store
from ui.resources import RunRef, runs

KIND_LABELS = {"classifier": "Classifier run", "autoencoder": "Autoencoder run", "lstm": "LSTM run"}
KIND_HELP = {
    "classifier": "A trained defect classifier (weights/<run>/, kind=classifier).",
    "autoencoder": "An autoencoder trained on good parts only (kind=autoencoder).",
    "lstm": "A melting-tank LSTM (kind=lstm).",
}


def describe(ref: RunRef) -> str:
    """One line saying what a run is: model, recipe and its headline metric."""
    info = ref.info
    model = info.get("model")
    parts = [model if isinstance(model, str) else None, info.get("aug") and f"aug={info['aug']}"]
    summary = info.get("summary") or {}
    for metric in ("accuracy", "macro_f1", "image_auroc", "ng_f1", "f1", "roc_auc"):
        value = summary.get(metric)
        if isinstance(value, int | float):
            parts.append(f"{metric} {value:.3f} (its own test split)")
            break
    return " · ".join(p for p in parts if p) or ref.kind


FLAG = "⚠️"


def flagged_label(ref: RunRef) -> str:
    """A run's name as pickers show it: with a warning badge when its guard rails fired."""
    return f"{FLAG} {ref.name}" if ref.warnings else ref.name


def show_warnings(ref: RunRef, where=st.sidebar) -> None:
    """The guard-rail warnings of a flagged run, one callout (nothing for a sound run)."""
    if ref.warnings:
        where.warning(
            f"**{ref.name}** is flagged: " + "; ".join(ref.warnings),
            icon=":material/warning:",
        )


def _forget_missing(key: str, options: list[str]) -> None:
    value = st.session_state.get(key)
    if value is None:
        return
    values = value if isinstance(value, list) else [value]
    if any(v not in options for v in values):
        del st.session_state[key]


def no_runs_message(kind: str) -> None:
    st.info(
        f"No {kind} runs found in `{store.weights_dir()}`. "
        "Run `make demo` to build the demo runs, or train one "
        "(see the README), then reload this page.",
        icon=":material/info:",
    )


def _best(found: list[RunRef]) -> int:
    """Start on the run with the best headline metric, so a newcomer sees the strongest model."""
    summaries = [r.info.get("summary") or {} for r in found]
    scores = [
        next((float(s[k]) for k in ("accuracy", "image_auroc", "roc_auc") if k in s), 0.0)
        for s in summaries
    ]
    return max(range(len(found)), key=lambda i: scores[i])


def pick_run(kind: str) -> RunRef | None:
    """A sidebar selectbox of runs of one kind; the choice follows the user across pages."""
    found = runs(kind)
    if not found:
        no_runs_message(kind)
        return None
    names = [r.name for r in found]
    key = f"run_{kind}"
    _forget_missing(key, names)
    by_name = {r.name: r for r in found}
    name = st.sidebar.selectbox(
        KIND_LABELS[kind],
        names,
        index=_best(found),
        key=key,
        help=KIND_HELP[kind] + f" {FLAG} marks a run whose guard rails fired.",
        format_func=lambda n: flagged_label(by_name[n]),
        persist_state="session",
    )
    ref = found[names.index(name)]
    st.sidebar.caption(describe(ref))
    show_warnings(ref)
    return ref


def pick_runs(kind: str, *, default_all: bool = True, max_default: int = 6) -> list[RunRef]:
    """A sidebar multiselect of runs of one kind (for comparisons)."""
    found = runs(kind)
    if not found:
        no_runs_message(kind)
        return []
    names = [r.name for r in found]
    key = f"runs_{kind}"
    _forget_missing(key, names)
    by_name = {r.name: r for r in found}
    chosen = st.sidebar.multiselect(
        KIND_LABELS[kind].replace("run", "runs"),
        names,
        default=sorted(names)[:max_default] if default_all else names[:1],
        key=key,
        help=KIND_HELP[kind] + f" Pick several to compare them; {FLAG} marks a flagged run.",
        format_func=lambda n: flagged_label(by_name[n]),
        persist_state="session",
    )
    return [by_name[n] for n in chosen]
