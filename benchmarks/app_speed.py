"""Dashboard speed in a real browser, on the committed demo runs (weights/demo_*, samples/casting).

Starts `streamlit run app/Home.py` on a free localhost port, drives Debian's chromium through
Playwright and measures, with time.perf_counter:

1. cold start: from launching streamlit to the Home page rendered (h1 shown, script run
   finished, no running indicator, images loaded);
2. CAM Inspector: first render, then the warm re-render after "next image" (one warm-up, then
   --repeats timed steps: median and max, target < 1 s);
3. Melting Tank on the full 835,200-row demo series: first render (series generation and the
   LSTM over the whole series), then warm re-renders after moving the NG threshold slider and
   after changing the window;
4. peak RSS (VmHWM) of the streamlit server, children included, after visiting every page.

A step is "done" when a script run was seen to start after the action and the app is back to
`data-test-script-state="notRunning"` with no spinner, no running indicator and every image
loaded (plus, for the CAM Inspector, the caption naming the new image). Timings include the
browser drawing; the machine is shared, so the JSON records the load average before and after.

    python benchmarks/app_speed.py [--repeats 5] [--timeout 300] [--out FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from store import local_server
from store.local_server import CHROMIUM, CHROMIUM_ARGS, streamlit_command

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "app_speed.json"
FULL_ROWS = 835_200

# True once the page is drawn: run finished, nothing spinning, every image decoded.
SETTLED_JS = """() => {
    const app = document.querySelector('[data-testid="stApp"]');
    if (!app || app.getAttribute('data-test-script-state') !== 'notRunning') return false;
    if (document.querySelector('[data-testid="stSpinner"]')) return false;
    return Array.from(document.images).every((img) => img.complete);
}"""

# Streamlit fades its "Running..." indicator out over 200 ms after the run has ended.
INDICATOR_GONE_JS = """() => !document.querySelector('[data-testid="stStatusWidget"]')"""

# Watches the script state so that a run which starts and ends between two polls is not missed.
ARM_JS = """() => {
    window.__appSpeedRan = false;
    const app = document.querySelector('[data-testid="stApp"]');
    if (window.__appSpeedObserver) window.__appSpeedObserver.disconnect();
    window.__appSpeedObserver = new MutationObserver(() => {
        if (app.getAttribute('data-test-script-state') === 'running') window.__appSpeedRan = true;
    });
    window.__appSpeedObserver.observe(app, {attributes: true,
                                           attributeFilter: ['data-test-script-state']});
}"""

RERAN_JS = f"() => window.__appSpeedRan === true && ({SETTLED_JS})()"

CAM_CAPTION_JS = """() => {
    const found = Array.from(document.querySelectorAll('[data-testid="stCaptionContainer"]'))
        .map((e) => e.innerText).find((t) => t.includes('· truth:'));
    return found || null;
}"""


class BenchmarkError(RuntimeError):
    """The app or the browser did not get where the benchmark needed it."""


# ------------------------------------------------------------------ server and browser


def start_server(port: int, log_path: Path) -> subprocess.Popen:
    """`streamlit run app/Home.py` headless on 127.0.0.1:port, output to log_path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEFECTLENS_")}
    log = log_path.open("wb")
    return subprocess.Popen(
        streamlit_command(port), cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
    )


def wait_healthy(url: str, server: subprocess.Popen, log_path: Path, seconds: float) -> None:
    try:
        local_server.wait_healthy(f"{url}/_stcore/health", server, seconds, poll_s=0.05)
    except local_server.ServerNotHealthy as exc:
        raise BenchmarkError(f"streamlit: {exc}:\n{tail(log_path)}") from None


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def require_chromium() -> None:
    if not CHROMIUM.exists():
        raise SystemExit(
            f"no chromium at {CHROMIUM}: install Debian's chromium: apt-get install chromium"
        )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        raise SystemExit(
            f"the playwright package is missing ({exc}): pip install playwright"
        ) from exc


def require_demo() -> list[str]:
    runs = sorted(p.parent.name for p in (REPO / "weights").glob("demo_*/run.json"))
    if not runs or not (REPO / "samples" / "casting").is_dir():
        raise SystemExit("no demo runs in weights/demo_* or no samples/casting: run `make demo`")
    return runs


def page_paths() -> list[tuple[str, str]]:
    """(url path, title) of every dashboard page, from the app's own registry."""
    path = REPO / "app" / "ui" / "navigation.py"
    spec = importlib.util.spec_from_file_location("app_speed_navigation", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return [("" if s.script == "home.py" else s.url_path, s.title) for s in module.existing_pages()]


# ------------------------------------------------------------------ page helpers


def wait_settled(page, timeout_ms: float, indicator: bool = True) -> None:
    page.locator('[data-testid="stApp"]').wait_for(timeout=timeout_ms)
    page.wait_for_function(SETTLED_JS, timeout=timeout_ms, polling=25)
    if indicator:
        page.wait_for_function(INDICATOR_GONE_JS, timeout=timeout_ms, polling=25)


def check_no_error(page, where: str) -> None:
    errors = page.locator('[data-testid="stException"], [data-testid="stAlertContentError"]')
    if errors.count():
        raise BenchmarkError(f"{where} shows an error: {errors.all_inner_texts()[:2]}")


def timed_visit(page, url: str, timeout_ms: float) -> float:
    """Seconds from page.goto to the page settled."""
    start = time.perf_counter()
    page.goto(url, timeout=timeout_ms)
    wait_settled(page, timeout_ms)
    return time.perf_counter() - start


def timed_rerun(
    page, action, timeout_ms: float, extra_js: str | None = None
) -> tuple[float, float]:
    """Seconds from `action()` to the rerun it causes having finished and drawn, and to the
    running indicator having faded out too."""
    page.evaluate(ARM_JS)
    condition = RERAN_JS if extra_js is None else f"() => ({RERAN_JS})() && ({extra_js})()"
    start = time.perf_counter()
    action()
    page.wait_for_function(condition, timeout=timeout_ms, polling=10)
    done = time.perf_counter() - start
    page.wait_for_function(INDICATOR_GONE_JS, timeout=timeout_ms, polling=10)
    return done, time.perf_counter() - start


def summary(values: list[float]) -> dict:
    return {
        "median_s": round(statistics.median(values), 3),
        "max_s": round(max(values), 3),
        "min_s": round(min(values), 3),
        "all_s": [round(v, 3) for v in values],
    }


# ------------------------------------------------------------------ measurements


def measure_cold_start(browser, timeout_s: float, log_path: Path):
    """Launch streamlit and open Home; returns (server, url, page, result dict)."""
    port = local_server.free_port()
    url = f"http://127.0.0.1:{port}"
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    start = time.perf_counter()
    server = start_server(port, log_path)
    try:
        wait_healthy(url, server, log_path, timeout_s)
        healthy = time.perf_counter() - start
        page.goto(url, timeout=timeout_s * 1000)
        page.locator("h1", has_text="DefectLens").first.wait_for(timeout=timeout_s * 1000)
        wait_settled(page, timeout_s * 1000)
        total = time.perf_counter() - start
    except BaseException:
        local_server.stop(server)
        raise
    check_no_error(page, "Home")
    return (
        server,
        url,
        page,
        {"server_healthy_s": round(healthy, 3), "first_page_s": round(total, 3)},
    )


def measure_cam(page, url: str, repeats: int, timeout_ms: float) -> dict:
    first = timed_visit(page, f"{url}/cam-inspector", timeout_ms)
    check_no_error(page, "CAM Inspector")
    run = page.locator(".st-key-run_classifier input").first.input_value()
    next_button = page.locator(".st-key-gallery_next button:visible").first
    times, faded, names = [], [], []
    for step in range(repeats + 1):
        before = page.evaluate(CAM_CAPTION_JS)
        if before is None:
            raise BenchmarkError("CAM Inspector shows no image caption (no gallery image?)")
        changed = (
            f"() => {{ const t = ({CAM_CAPTION_JS})(); return t && t !== {json.dumps(before)}; }}"
        )
        done, gone = timed_rerun(page, next_button.click, timeout_ms, changed)
        check_no_error(page, "CAM Inspector")
        if step:  # the first step is the warm-up
            times.append(done)
            faded.append(gone)
            names.append(page.evaluate(CAM_CAPTION_JS).split(" · ")[0])
    return {
        "run": run.strip(),
        "first_render_s": round(first, 3),
        "next_image": summary(times),
        "next_image_indicator_gone": summary(faded),
        "images": names,
        "target_s": 1.0,
    }


def shown_rows(page) -> str:
    return page.get_by_text("Showing ", exact=False).first.inner_text()


def measure_melting(page, url: str, repeats: int, timeout_ms: float) -> dict:
    first = timed_visit(page, f"{url}/melting-tank", timeout_ms)
    check_no_error(page, "Melting Tank")
    caption = shown_rows(page)
    if f"of {FULL_ROWS:,} rows" not in caption:  # not the full series: push Rows to the end
        thumb = page.locator('.st-key-melt_rows input[type="range"]')
        first += timed_rerun(page, lambda: thumb.press("End"), timeout_ms)[1]
        caption = shown_rows(page)
        if f"of {FULL_ROWS:,} rows" not in caption:
            raise BenchmarkError(f"could not select the full series: {caption!r}")
    threshold = page.locator('[class*="st-key-melt_threshold_"] input[type="range"]').first
    times, faded = [], []
    for step in range(repeats + 1):
        key = "ArrowRight" if step % 2 == 0 else "ArrowLeft"
        done, gone = timed_rerun(page, lambda k=key: threshold.press(k), timeout_ms)
        check_no_error(page, "Melting Tank")
        if step:
            times.append(done)
            faded.append(gone)
    windows = {}
    for name in ("1 week", "All", "6 hours", "1 day"):
        button = page.locator(".st-key-melt_span button", has_text=name).first
        windows[name] = round(timed_rerun(page, button.click, timeout_ms)[0], 3)
        check_no_error(page, "Melting Tank")
    return {
        "rows": FULL_ROWS,
        "caption": caption,
        "first_render_s": round(first, 3),
        "threshold_step": summary(times),
        "threshold_step_indicator_gone": summary(faded),
        "window_change_s": windows,
    }


def measure_all_pages(page, url: str, timeout_ms: float) -> dict:
    visits = {}
    for path, title in page_paths():
        seconds = timed_visit(page, f"{url}/{path}", timeout_ms)
        check_no_error(page, title)
        visits[title] = round(seconds, 3)
    return visits


def process_tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            with contextlib.suppress(OSError):
                todo += [int(c) for c in (task / "children").read_text().split()]
    return pids


def memory_mb(pid: int) -> dict:
    """VmHWM (peak RSS) and VmRSS of the server and its children, MB (1e6 bytes)."""
    peak = rss = 0
    pids = process_tree(pid)
    for p in pids:
        try:
            fields = dict(
                line.split(":", 1) for line in Path(f"/proc/{p}/status").read_text().splitlines()
            )
        except OSError:
            continue
        peak += int(fields["VmHWM"].split()[0]) * 1024
        rss += int(fields["VmRSS"].split()[0]) * 1024
    return {
        "peak_rss_mb": round(peak / 1e6, 1),
        "rss_now_mb": round(rss / 1e6, 1),
        "pids": len(pids),
    }


# ------------------------------------------------------------------ report


def machine_info(browser_version: str) -> dict:
    import streamlit

    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "memory_gb": round(mem_kb / 1e6, 1),
        "python": platform.python_version(),
        "streamlit": streamlit.__version__,
        "chromium": browser_version,
        "git_commit": commit,
    }


def print_table(report: dict) -> None:
    cam, melt = report["cam_inspector"], report["melting_tank"]
    rows = [
        ("cold start -> Home rendered", f"{report['cold_start']['first_page_s']:.2f} s"),
        ("  (server healthy)", f"{report['cold_start']['server_healthy_s']:.2f} s"),
        ("CAM Inspector first render", f"{cam['first_render_s']:.2f} s"),
        (
            f"CAM next image (n={len(cam['next_image']['all_s'])}) median / max",
            f"{cam['next_image']['median_s']:.2f} / {cam['next_image']['max_s']:.2f} s",
        ),
        (f"Melting Tank {melt['rows']:,} rows first render", f"{melt['first_render_s']:.2f} s"),
        (
            f"Melting threshold step (n={len(melt['threshold_step']['all_s'])}) median / max",
            f"{melt['threshold_step']['median_s']:.2f} / {melt['threshold_step']['max_s']:.2f} s",
        ),
        *(
            (f"Melting window -> {name}", f"{seconds:.2f} s")
            for name, seconds in melt["window_change_s"].items()
        ),
        ("server peak RSS (VmHWM), all pages", f"{report['memory']['peak_rss_mb']:.0f} MB"),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value:>14}")
    print(
        f"load average before {report['loadavg_before']}, after {report['loadavg_after']} "
        f"on {report['machine']['cpu_count']} cores (shared machine: timings include others' work)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed reruns after one warm-up")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per step at most")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON report path")
    args = parser.parse_args(argv)

    require_chromium()
    demo_runs = require_demo()
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    timeout_ms = args.timeout * 1000
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="app_speed_") as tmp, sync_playwright() as pw:
        log_path = Path(tmp) / "streamlit.log"
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        server = None
        try:
            server, url, page, cold = measure_cold_start(browser, args.timeout, log_path)
            cam = measure_cam(page, url, args.repeats, timeout_ms)
            melting = measure_melting(page, url, args.repeats, timeout_ms)
            visits = measure_all_pages(page, url, timeout_ms)
            memory = memory_mb(server.pid)
        except (PlaywrightError, BenchmarkError) as exc:
            print(
                f"app_speed failed: {exc}\n--- streamlit log ---\n{tail(log_path)}", file=sys.stderr
            )
            return 1
        finally:
            if server is not None:
                local_server.stop(server)
            version = browser.version
            browser.close()
    load_after = os.getloadavg()

    report = {
        "demo_runs": demo_runs,
        "cold_start": cold,
        "cam_inspector": cam,
        "melting_tank": melting,
        "page_visits_s": visits,
        "memory": memory,
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in load_after],
        "machine": machine_info(version),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    print_table(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
