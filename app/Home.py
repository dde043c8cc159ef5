"""DefectLens dashboard entry point: `streamlit run app/Home.py` (or `make run`)."""

import streamlit as st
from ui import style
from ui.navigation import build_navigation

st.set_page_config(
    page_title="DefectLens",
    page_icon=":material/center_focus_strong:",
    layout="wide",
    initial_sidebar_state="expanded",
)

style.apply()
page = st.navigation(build_navigation())
page.run()
