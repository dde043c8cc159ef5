"""App-wide CSS for what Streamlit's defaults get wrong on this dashboard.

Multiselect chips: Streamlit caps the selected-values box at about five rows and scrolls it, so
with five or more runs picked in the narrow sidebar the last chips are cut off (and a long run
name is cut with an ellipsis). Here the box grows with its chips and a chip wraps its name.
"""

from __future__ import annotations

import streamlit as st

CSS = """
<style>
[data-testid="stMultiSelect"] div[role="group"],
[data-testid="stMultiSelectTagsContainer"] {
    max-height: none !important;
    overflow: visible !important;
}
[data-testid="stMultiSelectTagsContainer"] [data-tag] {
    max-width: 100% !important;
    height: auto !important;
}
[data-testid="stMultiSelectTagsContainer"] [data-tag] > span[title] {
    white-space: normal !important;
    overflow-wrap: anywhere;
    text-overflow: clip !important;
}
</style>
"""


def apply() -> None:
    """Inject the CSS (a style-only st.html takes no space on the page)."""
    st.html(CSS)
