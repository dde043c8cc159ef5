"""HTTP and WebSocket endpoints of the line service (FastAPI; OpenAPI docs at /docs).

Every endpoint but /v1/health and the docs needs `Authorization: Bearer <token>` (the
WebSocket also takes `?token=`, since browsers cannot set its headers). Images are decoded only
by `imaging.read_image`, so bad input gets the same message as everywhere else, as a 422.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from fastapi import (
    Depends,
    FastAPI,
    File,
    Header,
    HTTPException,
    Query,
    UploadFile,
    WebSocket,
    WebSocketDisconnect,
)
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse

from imaging import ImageError, read_image
from imaging.archive import iter_upload_files
from inspection import Inspector
from serve.alerts import OVERFLOW
from serve.limits import BodyLimit
from serve.service import LineService, Part
from serve.settings import Settings
from store import list_runs
from store.line import check_station
from store.review import ReviewError

log = logging.getLogger(__name__)

API = "/v1"
StationHeader = Annotated[
    str | None, Header(description="station or line id; the service's --station when absent")
]


def create_app(settings: Settings, inspector: Inspector | None = None) -> FastAPI:
    """The service app; models load in the background after start-up (see /v1/health)."""
    service = LineService(settings, inspector)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.batcher.start()
        loading = asyncio.create_task(service.batcher.run_alone(service.load))
        try:
            yield
        finally:
            await loading
            await service.batcher.stop()
            service.close()

    app = FastAPI(
        title="DefectLens line service",
        version="1",
        summary="Verdict, Grad-CAM boxes, anomaly score and risk per part; live defect alerts.",
        lifespan=lifespan,
    )
    app.state.service = service
    app.add_middleware(
        BodyLimit,
        limits={
            f"{API}/inspect": settings.max_image_bytes,
            f"{API}/inspect/batch": settings.max_upload_bytes,
        },
    )
    _routes(app, service)
    return app


def _authorized(settings: Settings, authorization: str | None) -> bool:
    if not settings.auth:
        return True
    scheme, _, token = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and secrets.compare_digest(
        token.strip().encode(), settings.token.encode()
    )


def _routes(app: FastAPI, service: LineService) -> None:
    settings = service.settings

    def require_token(authorization: Annotated[str | None, Header()] = None) -> None:
        if not _authorized(settings, authorization):
            raise HTTPException(
                401,
                "missing or wrong bearer token: send 'Authorization: Bearer <token>' "
                "with the service's DEFECTLENS_API_TOKEN",
                headers={"WWW-Authenticate": "Bearer"},
            )

    def ready() -> LineService:
        if not service.ready:
            detail = service.error or "models are still loading; retry when /v1/health is ready"
            raise HTTPException(503, detail)
        return service

    def station_of(header: str | None) -> str:
        try:
            return check_station(header or settings.station)
        except ReviewError as exc:
            raise HTTPException(422, f"X-Station header: {exc}") from None

    async def decode(name: str, data: bytes) -> Any:
        try:
            return await run_in_threadpool(read_image, data, name)
        except ImageError as exc:
            raise HTTPException(422, str(exc)) from None

    auth = [Depends(require_token)]

    @app.get(f"{API}/health")
    def health() -> JSONResponse:
        """200 once the models are loaded and warmed, 503 before (or if loading failed)."""
        if service.ready:
            return JSONResponse({"status": "ready", "runs": service.runs()})
        status = "failed" if service.error else "loading"
        return JSONResponse({"status": status, "error": service.error}, status_code=503)

    @app.get(f"{API}/runs", dependencies=auth)
    def runs() -> dict[str, Any]:
        """The runs this service scores with, and every run it could be started with."""
        available = [
            {"name": r.name, "kind": r.kind, "created": r.info.get("created")} for r in list_runs()
        ]
        return {"serving": service.runs(), "available": available}

    @app.get(f"{API}/stats", dependencies=auth)
    def stats() -> dict[str, Any]:
        """Model calls by batch size (micro-batching at work), subscribers, stage timings."""
        return {
            "batch_sizes": {str(k): v for k, v in sorted(service.batcher.batch_sizes.items())},
            "subscribers": service.hub.subscribers,
            "max_batch": settings.max_batch,
            "max_wait_ms": settings.max_wait_ms,
        }

    @app.post(f"{API}/inspect", dependencies=auth)
    async def inspect(
        file: Annotated[UploadFile, File(description="one image of a part")],
        heatmap: Annotated[
            Literal["png"] | None, Query(description="'png' adds the Grad-CAM overlay")
        ] = None,
        x_station: StationHeader = None,
    ) -> dict[str, Any]:
        """One part: verdict, defect probability, anomaly score, risk, boxes, alert."""
        start = time.perf_counter()
        live = ready()
        station = station_of(x_station)
        name = file.filename or "upload"
        data = await file.read()
        image = await decode(name, data)
        result = await live.batcher.submit(Part(name, data, image, station))
        if heatmap == "png":
            result["heatmap_png"] = await live.batcher.run_alone(
                live.overlay_png, image, result["boxes"]
            )
        result["latency_ms"] = round((time.perf_counter() - start) * 1000, 2)
        return result

    @app.post(f"{API}/inspect/batch", dependencies=auth)
    async def inspect_batch(
        files: Annotated[list[UploadFile], File(description="images and/or .zip archives")],
        x_station: StationHeader = None,
    ) -> StreamingResponse:
        """Many parts; one JSON line per image as it is scored (problems as error lines)."""
        live = ready()
        station = station_of(x_station)
        uploads = [(f.filename or "upload", await f.read()) for f in files]
        entries = list(iter_upload_files(uploads))
        window = 2 * settings.max_batch

        async def one(entry: Any) -> dict[str, Any]:
            if not entry.ok:
                return {"file_name": entry.name, "status": "error", "error": entry.problem}
            try:
                image = await decode(entry.name, entry.data)
            except HTTPException as exc:
                return {"file_name": entry.name, "status": "error", "error": exc.detail}
            part = Part(entry.name, entry.data, image, station)
            return {"status": "ok", **await live.batcher.submit(part)}

        async def lines() -> AsyncIterator[str]:
            for first in range(0, len(entries), window):
                chunk = entries[first : first + window]
                for result in await asyncio.gather(*(one(e) for e in chunk)):
                    yield json.dumps(result) + "\n"

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    @app.websocket(f"{API}/alerts")
    async def alerts(
        websocket: WebSocket,
        since: Annotated[int | None, Query(ge=0)] = None,
        token: str | None = None,
    ) -> None:
        """Every alert from now on; with ?since=N first the alerts after N from the review log."""
        header = websocket.headers.get("authorization") or (token and f"Bearer {token}")
        if not _authorized(settings, header):
            await websocket.close(code=1008, reason="missing or wrong bearer token")
            return
        await websocket.accept()
        queue = service.hub.subscribe()
        # Clients only listen; reading their side is how a disconnect (or a server shutting
        # down) ends this handler instead of leaving it waiting for the next alert.
        closed = asyncio.create_task(_until_disconnect(websocket))
        try:
            last = -1
            if since is not None:
                if not service.ready:
                    await websocket.close(code=1013, reason="models still loading; retry")
                    return
                for alert in await run_in_threadpool(service.review.alerts_since, since):
                    await websocket.send_json(alert)
                    last = alert["seq"]
            while True:
                alert = await _next_alert(queue, closed)
                if alert is None:
                    return
                if alert is OVERFLOW:
                    await websocket.close(code=1013, reason="too far behind; resume with since")
                    return
                if alert["seq"] > last:
                    await websocket.send_json(alert)
                    last = alert["seq"]
        except WebSocketDisconnect:
            pass
        finally:
            closed.cancel()
            service.hub.unsubscribe(queue)


async def _until_disconnect(websocket: WebSocket) -> None:
    while (await websocket.receive())["type"] != "websocket.disconnect":
        pass


async def _next_alert(queue: asyncio.Queue, closed: asyncio.Task) -> dict[str, Any] | None:
    """The next alert, or None once the client has gone."""
    getter = asyncio.create_task(queue.get())
    done, _ = await asyncio.wait({getter, closed}, return_when=asyncio.FIRST_COMPLETED)
    if getter in done:
        return getter.result()
    getter.cancel()
    return None
