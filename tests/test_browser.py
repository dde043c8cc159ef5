"""The dashboard in a real browser: every page renders without an error box.

Starts `streamlit run app/Home.py` on a free localhost port and visits each page with Debian's
chromium through Playwright. With DEFECTLENS_SCREENSHOTS=1 the screenshots go to
docs/images/screens/<page>.png (the README shows them); otherwise to the test's tmp folder.
Uses the committed demo runs when present, else trains the tiny runs of test_app.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from store.local_server import (
    CHROMIUM,
    CHROMIUM_ARGS,
    free_port,
    stop,
    streamlit_command,
    wait_healthy,
)

REPO = Path(__file__).resolve().parents[1]
SCREENS = REPO / "docs" / "images" / "screens"
PAGE_TIMEOUT_MS = 240_000
pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.xdist_group("browser")]


def _pages() -> list:
    """The page registry of the app itself, so a new page is visited without editing this."""
    path = REPO / "app" / "ui" / "navigation.py"
    spec = importlib.util.spec_from_file_location("dashboard_navigation", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.existing_pages()


def _demo_present() -> bool:
    return any((REPO / "weights").glob("demo_*/run.json")) and (REPO / "samples").is_dir()


@pytest.fixture(scope="module")
def server_env(tmp_path_factory) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEFECTLENS_")}
    if not _demo_present():
        sys.path.insert(0, str(Path(__file__).parent))
        from test_app import build_app_fixture

        dirs = build_app_fixture(tmp_path_factory.mktemp("browser_runs"))
        env["DEFECTLENS_WEIGHTS"], env["DEFECTLENS_DATA"] = str(dirs["weights"]), str(dirs["data"])
    return env


@pytest.fixture(scope="module")
def app_url(server_env):
    port = free_port()
    server = subprocess.Popen(
        streamlit_command(port),
        cwd=REPO,
        env=server_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(f"{url}/_stcore/health", server, seconds=90)
        yield url
    finally:
        stop(server, grace_s=20)


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("chromium missing at /usr/bin/chromium; `make browser` installs it")
        pytest.skip("needs Debian's chromium at /usr/bin/chromium (`make browser` installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chrome = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chrome
        chrome.close()


def _settle(page) -> None:
    """Wait until the script run finished and the charts and images are drawn."""
    app = page.locator('[data-testid="stApp"]')
    app.wait_for(timeout=PAGE_TIMEOUT_MS)
    page.wait_for_function(
        """() => {
            const app = document.querySelector('[data-testid="stApp"]');
            return app && app.getAttribute('data-test-script-state') === 'notRunning'
                && !document.querySelector('[data-testid="stSpinner"]');
        }""",
        timeout=PAGE_TIMEOUT_MS,
    )
    page.wait_for_load_state("networkidle", timeout=PAGE_TIMEOUT_MS)
    page.wait_for_timeout(1500)


# Pages shown on a chosen demo run (selectbox label, option, text the page must then show):
# Heatmap to Boxes on the run with a box head, so the screenshot shows both box steps.
SHOW_RUN = {"heatmap-boxes": ("Classifier run", "demo_flip", "Box head boxes")}


def _choose_run(page, label: str, option: str, expect: str) -> None:
    box = page.locator('[data-testid="stSelectbox"]').filter(has_text=label).first
    box.locator("input").click()
    page.keyboard.type(option)  # filters the (virtualised) option list down to the match
    page.get_by_role("option", name=option, exact=True).first.click()
    page.get_by_text(expect).first.wait_for(timeout=PAGE_TIMEOUT_MS)
    _settle(page)


@pytest.mark.parametrize("spec", _pages(), ids=lambda s: s.url_path)
def test_page_renders_without_errors(spec, app_url, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    try:
        path = "" if spec.script == "home.py" else spec.url_path  # the default page lives at /
        page.goto(f"{app_url}/{path}", timeout=PAGE_TIMEOUT_MS)
        _settle(page)
        title = page.locator("h1").first.inner_text(timeout=PAGE_TIMEOUT_MS)
        assert ("DefectLens" if spec.script == "home.py" else spec.title) in title
        if spec.url_path in SHOW_RUN and _demo_present():
            _choose_run(page, *SHOW_RUN[spec.url_path])
        errors = page.locator('[data-testid="stException"], [data-testid="stAlertContentError"]')
        assert errors.count() == 0, errors.all_inner_texts()
        out = SCREENS if os.environ.get("DEFECTLENS_SCREENSHOTS") == "1" else tmp_path
        out.mkdir(parents=True, exist_ok=True)
        _full_height(page)
        page.screenshot(path=str(out / f"{spec.url_path}.png"), full_page=True)
    finally:
        page.close()


def _full_height(page) -> None:
    """Streamlit scrolls inside its main block: grow the viewport to the content's height."""
    height = page.evaluate(
        """() => {
            const main = document.querySelector('[data-testid="stMain"]')
                || document.querySelector('section.main');
            return main ? main.scrollHeight : document.body.scrollHeight;
        }"""
    )
    page.set_viewport_size({"width": 1440, "height": max(900, min(int(height), 4000))})
    # the resize re-lays the page out: wait until no skeleton is left and every image is drawn
    page.wait_for_function(
        """() => !document.querySelector('[data-testid="stSkeleton"]')
            && [...document.images].every(img => img.complete)""",
        timeout=PAGE_TIMEOUT_MS,
    )
    page.wait_for_timeout(800)
