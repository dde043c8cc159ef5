"""Widget values owned in one place per page, so controls always show what the chart shows.

Streamlit forgets a widget's state when a run ends before the widget is drawn (e.g. a page
that stops while waiting for an upload), and then redraws it at its default while the page
may still hold the old value elsewhere. Here each page keeps its settings in one plain
session-state dict (never garbage-collected); widgets take their value from it and write
back through `on_change`, so the control and what the page draws cannot drift apart.
"""

from __future__ import annotations

from typing import Any

import streamlit as st


def settings(page: str) -> dict[str, Any]:
    """The page's own settings dict (created empty on first use)."""
    return st.session_state.setdefault(f"_owned_{page}", {})


def value(page: str, name: str, default: Any) -> Any:
    """The owned value of `name`, `default` until the user changes it."""
    return settings(page).setdefault(name, default)


def keep(page: str, name: str, widget_key: str) -> dict[str, Any]:
    """on_change kwargs that copy a widget's new value into the page's settings."""
    return {"on_change": _copy, "args": (page, name, widget_key)}


def _copy(page: str, name: str, widget_key: str) -> None:
    settings(page)[name] = st.session_state[widget_key]
