"""DefectLens dashboard entry point: `streamlit run app/Home.py` (or `make run`)."""

import streamlit as st
from ui.navigation import build_navigation

st.set_page_config(
    page_title="DefectLens",
    page_icon=":material/center_focus_strong:",
    layout="wide",
    initial_sidebar_state="expanded",
)

page = st.navigation(build_navigation())
page.run()
