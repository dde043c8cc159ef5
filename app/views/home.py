"""Home: what DefectLens does, which runs and data sets it found, where to go next."""

import pandas as pd
import streamlit as st
from ui.dataset_resources import datasets
from ui.navigation import existing_pages
from ui.resources import runs
from ui.sidebar import describe

import store


def run_input(info: dict) -> str:
    """What a run reads: an image size, or a sensor window (the LSTM has no image size)."""
    if info.get("img_size"):
        return f"{info['img_size']} px images"
    if info.get("window"):
        return f"{info['window']}-step sensor window"
    return "n/a"


st.title("DefectLens")
st.markdown(
    "An explainable visual-inspection workbench for casting QA. Defect classifiers show "
    "**where** they look (Grad-CAM family), heatmaps become defect boxes, an autoencoder "
    "trained on good parts flags what nobody labelled, and an LSTM watches the melting tank."
)

all_runs = runs()
found_sets, problems = datasets()

counts = {kind: sum(r.kind == kind for r in all_runs) for kind in store.runs.KINDS}
cols = st.columns(4)
cols[0].metric("Classifier runs", counts["classifier"], border=True)
cols[1].metric("Autoencoder runs", counts["autoencoder"], border=True)
cols[2].metric("LSTM runs", counts["lstm"], border=True)
cols[3].metric("Data sets", len(found_sets), border=True)

st.subheader("Runs", anchor=False)
if not all_runs:
    st.info(
        f"No runs yet in `{store.weights_dir()}`. Build the demo runs with `make demo` "
        "(synthetic data, one classifier per augmentation recipe, an autoencoder and an "
        "LSTM), or train your own: `python classification/train.py --data DIR --model "
        "simple_cnn --aug basic`. Then reload this page.",
        icon=":material/info:",
    )
else:
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "run": ref.name,
                    "kind": ref.kind,
                    "what": describe(ref),
                    "input": run_input(ref.info),
                    "created": (ref.info.get("created") or "")[:16].replace("T", " "),
                }
                for ref in all_runs
            ]
        ),
        hide_index=True,
        key="home_runs",
    )
    st.caption("Compare them on **Experiments**; every metric is in each run's run.json.")

st.subheader("Data sets", anchor=False)
if found_sets:
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "data set": ds.name,
                    "layout": ds.layout,
                    "images": len(ds.items),
                    "defective": int(ds.items["is_defect"].sum()),
                    "with masks": int(ds.items["mask_path"].notna().sum()),
                    "classes": ", ".join(ds.class_names),
                    "folder": ds.root,
                }
                for ds in found_sets
            ]
        ),
        hide_index=True,
        key="home_datasets",
    )
else:
    st.info(
        "No image data sets found in `samples/` or the data folder "
        f"(`{store.data_dir()}`). `make demo` generates one; any class-folder, MVTec or "
        "CSV-manifest folder placed there is picked up.",
        icon=":material/info:",
    )
for root, reason in problems.items():
    st.warning(f"Skipped `{root}`: {reason}", icon=":material/warning:")

st.subheader("Where next", anchor=False)
targets = [p for p in existing_pages() if p.script != "home.py"]
grid = st.columns(3)
for i, spec in enumerate(targets):
    with grid[i % 3].container(border=True, height="stretch"):
        st.page_link(str(spec.path), label=spec.title, icon=spec.icon)
        st.caption(spec.pitch)

st.caption(f"Runs are read from `{store.weights_dir()}` and data from `{store.data_dir()}`.")
