# ruff: noqa: F811  (pytest fixtures imported from test_browser are redefined as arguments)
"""Issue 20 in a real browser: what a QA engineer sees on the demo runs means what it says.

One visit per page, several checks per visit (a visit costs tens of seconds here):
1. Heatmap to Boxes export: no box on a part the classifier calls good; probability and heat
   are separate columns.  6. Instance verdicts: one box around cast_def_0_4's pinholes finds
   6 of 7 instances instead of a "miss at 0.5".
2. Melting Tank: after a Demo -> Upload -> Demo round trip the Window buttons and the NG
   threshold slider equal what the chart draws (its time span and its dashed line).
3. Anomaly: the metrics name their split; a defect below the threshold is a "missed defect";
   a threshold the user set is kept when the split changes.
4./5. CAM Inspector: a colour bar, labelled layers with the recommended one marked, and a
   "no evidence" message at block3_relu.
7./8. Batch Review: "+ New batch" (no missing glyph), live counts after a decision without a
   reload, the reviewer's name survives a reload, the CSV export has human labels, relative
   paths and times in the browser's zone.  8. Home: the LSTM's input is a sensor window, no
   "None" in the run table.
4./8. Augmentation Comparison: a colour bar per run; with 5 runs picked every sidebar chip
   shows its whole run name (none cut off or scrolled out of the box).
Needs the committed demo runs and samples (skipped otherwise) and Debian's chromium.
"""

from __future__ import annotations

import contextlib
import csv
import os
import re
import subprocess
import sys
import time
from datetime import datetime

import pytest
from test_browser import (  # noqa: F401  (fixtures)
    PAGE_TIMEOUT_MS,
    REPO,
    _demo_present,
    _settle,
    app_url,
    browser,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.xdist_group("browser")]
SAMPLES = REPO / "samples" / "casting"


@pytest.fixture(scope="module")
def server_env(tmp_path_factory) -> dict[str, str]:
    """The demo runs, and a fresh data folder whose review log holds one scored batch."""
    if not _demo_present() or not (REPO / "weights" / "demo_anomaly").is_dir():
        pytest.skip("needs the committed demo runs (weights/demo_*) and samples/")
    data = tmp_path_factory.mktemp("trust_data")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEFECTLENS_")}
    env["DEFECTLENS_DATA"] = str(data)
    images = sorted((SAMPLES / "test").rglob("*.png"))[:6]
    subprocess.run(
        [sys.executable, "-m", "inspection", "--classifier", "demo_flip",
         "--autoencoder", "demo_anomaly", "--images", *map(str, images),
         "--out", str(data / "batch.csv"), "--db-batch", "shift A"],
        cwd=REPO, env=env, check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    return env


def _open(browser, url: str, **context):
    page = browser.new_page(viewport={"width": 1440, "height": 1000}, **context)
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    page.goto(url, timeout=PAGE_TIMEOUT_MS)
    _rerun_settled(page)  # the first run may start after the page reports it is not running
    return page


def _choose(page, label: str, text: str) -> None:
    """Pick the option containing `text` in the selectbox labelled `label`."""
    box = page.locator('[data-testid="stSelectbox"]').filter(has_text=label).first
    box.locator("input").click()
    page.keyboard.type(text)  # filters the (virtualised) option list down to the match
    page.get_by_role("option", name=re.compile(re.escape(text))).first.click()
    _rerun_settled(page)


def _rerun_settled(page) -> None:
    """Wait for the rerun a widget change starts, then for the page to settle. On a busy
    machine the rerun can start after a plain settle has already returned (stale text)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    with contextlib.suppress(PlaywrightTimeout):  # the rerun was over before it could be seen
        page.wait_for_function(
            """() => document.querySelector('[data-testid="stApp"]')
                ?.getAttribute('data-test-script-state') === 'running'""",
            timeout=3000,
            polling="raf",
        )
    _settle(page)


def _selected(page, label: str) -> str:
    """What the selectbox labelled `label` shows (its value may live in an input)."""
    box = page.locator('[data-testid="stSelectbox"]').filter(has_text=label).first
    return box.text_content() + box.locator("input").input_value()


def _segment(page, label: str, text: str) -> None:
    """Click the option `text` of the segmented control labelled `label`."""
    page.get_by_role("radiogroup", name=label).get_by_role("radio", name=text).click()
    _rerun_settled(page)


def _segment_value(page, label: str) -> str:
    group = page.get_by_role("radiogroup", name=label)
    return group.get_by_role("radio", checked=True).inner_text()


def _set_slider(page, label: str, target: float, step: float) -> float:
    """Move the slider labelled `label` to `target` with the keyboard, checking after each rerun.

    Mouse drags land wherever the layout happens to put the track; arrow keys move exactly one
    step. The page reruns on every change, so the keys go in batches and the value is read back
    (and the focus restored) after the rerun settles, until it sits on the target.
    """
    thumb = page.get_by_role("slider", name=label)
    for _ in range(8):
        now = float(thumb.input_value())
        steps = round((target - now) / step)
        if abs(target - now) < step / 2:
            return now
        thumb.focus()
        for _ in range(abs(steps)):
            page.keyboard.press("ArrowRight" if steps > 0 else "ArrowLeft")
        _rerun_settled(page)
    raise AssertionError(f"{label} stayed at {thumb.input_value()}, wanted {target}")


MELT_CHART = """(rows) => {
    const caption = [...document.querySelectorAll('[data-testid="stCaptionContainer"]')]
        .map(c => c.innerText).find(t => t.startsWith('Showing '));
    const plot = document.querySelector('[data-testid="stPlotlyChart"] .js-plotly-plot');
    if (!caption || !caption.includes(` of ${rows} rows`) || !plot || !plot.data) return null;
    const line = plot.data.find(t => t.name === 'NG probability');
    if (!line) return null;
    return {first: line.x[0], last: line.x[line.x.length - 1], caption,
            dashed: (plot.layout.shapes || []).filter(s => s.line && s.line.dash === 'dash')
                .map(s => s.y0)};
}"""


def _melt_chart(page, rows: str, dashed: float | None = None) -> dict:
    """What the Melting Tank chart draws once it shows the series of `rows` rows.

    With `dashed`, wait (up to the page timeout) for the threshold line to reach that value:
    on a busy machine the rerun a slider starts can still be drawing the old line when the
    slider already shows the new value. The caller asserts on what comes back either way.
    """
    deadline = time.monotonic() + PAGE_TIMEOUT_MS / 1000
    while True:
        handle = page.wait_for_function(MELT_CHART, arg=rows, timeout=PAGE_TIMEOUT_MS)
        chart = handle.json_value()
        line = chart["dashed"]
        if dashed is None or time.monotonic() > deadline:
            break
        if len(line) == 1 and abs(line[0] - dashed) < 1e-6:
            break
        page.wait_for_timeout(250)
    start, stop = (datetime.fromisoformat(chart[k]) for k in ("first", "last"))
    chart["hours"] = (stop - start).total_seconds() / 3600
    return chart


def _main_text(page) -> str:
    return page.locator('[data-testid="stMain"]').inner_text()


def _main_text_with(page, needle: str) -> str:
    """The main text once it contains `needle`: a rerun on a busy machine can start after the
    settle that followed the widget change, so the text is waited for, not read once."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    with contextlib.suppress(PlaywrightTimeout):  # the caller's assertion shows what came
        page.wait_for_function(
            """needle => document.querySelector('[data-testid="stMain"]')
                ?.innerText.includes(needle)""",
            arg=needle,
            timeout=PAGE_TIMEOUT_MS,
        )
    _settle(page)
    return _main_text(page)


def _no_errors(page) -> None:
    errors = page.locator('[data-testid="stException"], [data-testid="stAlertContentError"]')
    assert errors.count() == 0, errors.all_inner_texts()


def test_heatmap_boxes_exports_only_predicted_defects_and_counts_instances(
    app_url, browser, tmp_path
):
    page = _open(browser, f"{app_url}/heatmap-boxes")
    try:
        _choose(page, "Image", "cast_def_0_4.png")
        text = _main_text(page)
        # 7 pinholes are 7 instances; one box around several of them finds them (demo_flip
        # 6 of 7, demo_noise 5 of 7) where best-box IoU called it a "miss at 0.5"
        found = re.search(r"Instances found\s+(\d) of 7", text)
        assert found and int(found.group(1)) >= 1, text[-1500:]
        assert "miss at 0.5" not in text
        assert "Colour scale: 0 (left) to 1 (right)" in text
        page.get_by_role("button", name="Compute boxes").click()
        _settle(page)
        # on a busy machine the heatmaps of the whole gallery outlast the settle heuristic
        page.get_by_text(re.compile(r"\d+ images read:")).first.wait_for(timeout=PAGE_TIMEOUT_MS)
        text = _main_text(page)
        found = re.search(
            r"(\d+) images read: (\d+) predicted defective .*?(\d+) predicted good", text
        )
        assert found, text[-1500:]
        with page.expect_download() as download:
            page.get_by_role("button", name="Download CSV").click()
        path = tmp_path / "boxes.csv"
        download.value.save_as(path)
        rows = list(csv.DictReader(path.open()))
        assert rows and {"defect_probability", "box_peak_heat"} <= set(rows[0])
        # every box sits on a part predicted defective at the run's threshold (a good part the
        # classifier wrongly flags may carry one: it is predicted defective)
        assert all(r["predicted_class"] != "ok_front" for r in rows)
        assert len({r["file"] for r in rows}) <= int(found.group(2))
        _no_errors(page)
    finally:
        page.close()


def test_melting_tank_controls_equal_the_chart_after_an_upload(app_url, browser, tmp_path):
    from synthetic.melting import generate_series, write_csv

    upload = write_csv(generate_series(50_000, seed=3), tmp_path / "kamp.csv")
    page = _open(browser, f"{app_url}/melting-tank")
    try:
        _melt_chart(page, "835,200")  # the full demo series, the LSTM's probability drawn
        _segment(page, "Window", "6 hours")
        assert _set_slider(page, "NG threshold", 0.85, 0.01) == pytest.approx(0.85)
        demo = _melt_chart(page, "835,200", dashed=0.85)
        assert 5.9 <= demo["hours"] <= 6.0 and demo["dashed"] == [pytest.approx(0.85)], demo
        _segment(page, "Series", "Upload")
        page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(upload))
        # the finding: here the buttons said "1 day" and the slider 0.95 while the chart drew
        # 6 hours and a dashed line at 0.85; back on Demo everything was silently reset
        for source, rows in (("Upload", "50,000"), ("Demo", "835,200")):
            if source == "Demo":
                _segment(page, "Series", "Demo")
            chart = _melt_chart(page, rows, dashed=0.85)
            _settle(page)
            assert _segment_value(page, "Series") == source
            assert _segment_value(page, "Window") == "6 hours", source
            assert 5.9 <= chart["hours"] <= 6.0, (source, chart)
            shown = float(page.get_by_role("slider", name="NG threshold").input_value())
            assert shown == pytest.approx(0.85), source
            assert chart["dashed"] == [pytest.approx(shown)], (source, chart)
            assert "reset" not in _main_text(page), source  # nothing reset, so nothing to say
        _no_errors(page)
    finally:
        page.close()


CHIPS = """(box) => [...box.querySelectorAll('[data-tag]')].map(tag => {
    const name = tag.querySelector('span[title]');
    const r = name.getBoundingClientRect();
    let clipped = name.scrollWidth > name.clientWidth || name.scrollHeight > name.clientHeight;
    for (let n = name.parentElement; n && n !== box.parentElement; n = n.parentElement) {
        const style = getComputedStyle(n);
        if (style.overflowX === 'visible' && style.overflowY === 'visible') continue;
        const c = n.getBoundingClientRect();
        clipped ||= r.left < c.left - 1 || r.right > c.right + 1
            || r.top < c.top - 1 || r.bottom > c.bottom + 1;
    }
    return {run: name.title, text: name.innerText, clipped};
})"""


def test_augmentation_has_colour_bars_and_every_run_chip_is_readable(app_url, browser):
    page = _open(browser, f"{app_url}/augmentation")
    try:
        picker = page.locator('[data-testid="stSidebar"] [data-testid="stMultiSelect"]')
        picker = picker.filter(has_text="Classifier runs").first
        chips = picker.evaluate(CHIPS)
        if len(chips) > 5:  # the finding was seen with 5 runs picked
            for chip in chips[5:]:
                picker.get_by_role("button", name=f"Remove {chip['run']}").click()
                _settle(page)
        page.get_by_text("Side by side").first.wait_for(timeout=PAGE_TIMEOUT_MS)
        _settle(page)
        chips = picker.evaluate(CHIPS)
        assert len(chips) == 5, chips
        for chip in chips:
            assert chip["text"].replace("\n", "") == chip["run"] and not chip["clipped"], chip
        text = _main_text(page)
        assert text.count("Colour scale: 0 (left) to 1 (right)") == 5, text[-1500:]
        _no_errors(page)
    finally:
        page.close()


def test_home_run_table_has_no_none(app_url, browser):
    page = _open(browser, f"{app_url}/")
    try:
        table = page.locator('[data-testid="stDataFrame"]').first.locator("table").first
        table.wait_for(state="attached")  # the grid's accessible copy of its cells
        rows = table.evaluate(
            "t => [...t.querySelectorAll('tr')].map(r => [...r.querySelectorAll('th, td')]"
            ".map(c => c.textContent))"
        )
        header, body = rows[0], {r[0]: dict(zip(rows[0], r, strict=True)) for r in rows[1:]}
        assert "input" in header and "demo_lstm" in body, rows
        # the finding: the LSTM's "image size" read None; it reads a sensor window
        assert body["demo_lstm"]["input"].endswith("sensor window"), body["demo_lstm"]
        assert not [r for r in rows if "None" in r], rows
        _no_errors(page)
    finally:
        page.close()


def test_anomaly_names_its_split_and_calls_a_miss_a_miss(app_url, browser):
    page = _open(browser, f"{app_url}/anomaly")
    try:
        text = _main_text_with(page, "Image AUROC (test)")
        assert "Image AUROC (test)" in text and "Measured on" in text, text[:3000]
        _choose(page, "Image", "cast_def_0_23.png")
        text = _main_text(page)
        below = re.search(r"below threshold", text)
        if below:  # the finding: a visible scratch under the threshold must not look fine
            assert "missed defect" in text
        else:
            assert "defect caught" in text
        # a threshold the user set survives a change of split (it was silently reset)
        thumb = page.get_by_role("slider", name="Threshold")
        default = float(thumb.input_value())
        thumb.focus()
        for _ in range(5):
            page.keyboard.press("ArrowRight")
        _rerun_settled(page)  # the slider's rerun starts after a debounce: let it end first
        chosen = float(thumb.input_value())
        assert chosen > default, (default, chosen)
        _choose(page, "Split", "all")
        text = _main_text_with(page, "all split")
        assert "all split" in text, text[:3000]
        step = float(thumb.get_attribute("step"))
        assert float(thumb.input_value()) == pytest.approx(chosen, abs=step), (chosen, step)
        _no_errors(page)
    finally:
        page.close()


def test_cam_inspector_has_a_scale_labelled_layers_and_says_when_a_map_is_empty(app_url, browser):
    page = _open(browser, f"{app_url}/cam-inspector")
    try:
        text = _main_text(page)
        assert "Colour scale: 0 (left) to 1 (right). Run-wide scale" in text
        assert "head · conv (last_conv) · recommended" in _selected(page, "Layer")
        _choose(page, "Layer", "block3_relu")
        # the rerun may not have started when _choose settles on a busy machine: wait for it
        page.get_by_text("No evidence to show", exact=False).first.wait_for(timeout=PAGE_TIMEOUT_MS)
        assert "No evidence to show" in _main_text(page)
        _no_errors(page)
    finally:
        page.close()


def test_batch_review_counts_update_at_once_and_the_reviewer_is_remembered(
    app_url, browser, tmp_path
):
    page = _open(browser, f"{app_url}/batch-review", timezone_id="Asia/Seoul")
    try:
        shown = _selected(page, "Batch")
        assert "shift A" in shown and "reviewed" not in shown, shown
        selector = page.locator('[data-testid="stSelectbox"]').filter(has_text="Batch").first
        selector.locator("input").click()
        assert page.get_by_role("option", name="+ New batch (upload images)").count() == 1
        page.keyboard.press("Escape")
        reviewer = page.locator('[data-testid="stSidebar"] input[aria-label="Reviewer"]')
        reviewer.fill("Kim")
        reviewer.press("Enter")
        _settle(page)
        page.get_by_text("Confirm defect", exact=True).first.click()
        _settle(page)
        page.get_by_role("button", name="Record decision").click()
        _settle(page)
        page.get_by_text("Recorded", exact=False).first.wait_for(timeout=PAGE_TIMEOUT_MS)
        reviewed = page.locator('[data-testid="stMetric"]').filter(has_text="Reviewed")
        assert reviewed.inner_text().split("\n")[-1].startswith("1 /"), reviewed.inner_text()
        assert "1 decision)" in _main_text(page)
        assert "reviewer=Kim" in page.url
        with page.expect_download() as download:
            page.get_by_role("button", name="CSV (one row per image)").click()
        path = tmp_path / "review.csv"
        download.value.save_as(path)
        rows = list(csv.DictReader(path.open()))
        decided = [r for r in rows if r["verdict"]]
        # human labels, the browser's zone, relative paths, empty cells: not raw codes, UTC,
        # server-side absolute paths or "None"
        assert [r["verdict"] for r in decided] == ["Confirm defect"], decided
        assert decided[0]["decided_at"].endswith(" Asia/Seoul"), decided
        cells = [v for r in rows for v in r.values()]
        assert not [v for v in cells if v.startswith("/") or v in ("None", "confirmed_defect")]
        page.reload()
        _settle(page)
        # the reloaded page fills the reviewer from the URL in its first run; on a busy
        # machine that run can finish after the settle, so wait for the value (or time out)
        from playwright.sync_api import expect

        expect(
            page.locator('[data-testid="stSidebar"] input[aria-label="Reviewer"]')
        ).to_have_value("Kim", timeout=PAGE_TIMEOUT_MS)
        _no_errors(page)
    finally:
        page.close()
