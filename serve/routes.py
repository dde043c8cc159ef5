"""HTTP and WebSocket endpoints of the line service (OpenAPI docs at /docs).

Every endpoint but /v1/health and the docs needs `Authorization: Bearer <token>` (the
WebSocket also takes `?token=`, since browsers cannot set its headers). Images are decoded only
by `imaging.read_image`, so bad input gets the same message as everywhere else, as a 422.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import (
    APIRouter,
    Depends,
    File,
    Header,
    HTTPException,
    Query,
    Request,
    UploadFile,
    WebSocket,
    WebSocketDisconnect,
)
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse

from imaging import ImageError, read_image
from imaging.archive import iter_upload_files
from serve.alerts import OVERFLOW
from serve.service import LineService, Part
from serve.settings import Settings
from store import list_runs
from store.line import check_station
from store.review import ReviewError

API = "/v1"


def authorized(settings: Settings, authorization: str | None) -> bool:
    if not settings.auth:
        return True
    scheme, _, token = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and secrets.compare_digest(
        token.strip().encode(), settings.token.encode()
    )


def service_of(request: Request) -> LineService:
    return request.app.state.service


# The dependencies are `async def` on purpose: FastAPI runs a plain `def` dependency on its
# thread pool, three thread hops per request for three dictionary lookups (measured: the
# event loop's share of the GIL under 8 clients went mostly to scheduling those hops).


async def require_token(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> None:
    if not authorized(service_of(request).settings, authorization):
        raise HTTPException(
            401,
            "missing or wrong bearer token: send 'Authorization: Bearer <token>' "
            "with the service's DEFECTLENS_API_TOKEN",
            headers={"WWW-Authenticate": "Bearer"},
        )


async def ready_service(request: Request) -> LineService:
    service = service_of(request)
    if not service.ready:
        detail = service.error or "models are still loading; retry when /v1/health is ready"
        raise HTTPException(503, detail)
    return service


async def station(
    request: Request,
    x_station: Annotated[
        str | None, Header(description="station or line id; the service's --station if absent")
    ] = None,
) -> str:
    try:
        return check_station(x_station or service_of(request).settings.station)
    except ReviewError as exc:
        raise HTTPException(422, f"X-Station header: {exc}") from None


async def decode(name: str, data: bytes) -> Any:
    try:
        return await run_in_threadpool(read_image, data, name)
    except ImageError as exc:
        raise HTTPException(422, str(exc)) from None


router = APIRouter(prefix=API)
Live = Annotated[LineService, Depends(ready_service)]
Station = Annotated[str, Depends(station)]
auth = [Depends(require_token)]


@router.get("/health")
def health(request: Request) -> JSONResponse:
    """200 once the models are loaded and warmed, 503 before (or if loading failed)."""
    service = service_of(request)
    if service.ready:
        return JSONResponse({"status": "ready", "runs": service.runs()})
    status = "failed" if service.error else "loading"
    return JSONResponse({"status": status, "error": service.error}, status_code=503)


@router.get("/runs", dependencies=auth)
def runs(request: Request) -> dict[str, Any]:
    """The runs this service scores with, and every run it could be started with."""
    available = [
        {"name": r.name, "kind": r.kind, "created": r.info.get("created")} for r in list_runs()
    ]
    return {"serving": service_of(request).runs(), "available": available}


@router.get("/stats", dependencies=auth)
def stats(request: Request) -> dict[str, Any]:
    """Model calls by batch size (micro-batching at work), alert subscribers, settings."""
    service = service_of(request)
    return {
        "batch_sizes": {str(k): v for k, v in sorted(service.batcher.batch_sizes.items())},
        "subscribers": service.hub.subscribers,
        "max_batch": service.settings.max_batch,
        "max_wait_ms": service.settings.max_wait_ms,
    }


@router.post("/inspect", dependencies=auth)
async def inspect(
    service: Live,
    station: Station,
    file: Annotated[UploadFile, File(description="one image of a part")],
    heatmap: Annotated[
        Literal["png"] | None, Query(description="'png' adds the Grad-CAM overlay")
    ] = None,
) -> dict[str, Any]:
    """One part: verdict, defect probability, anomaly score, risk, boxes, alert."""
    start = time.perf_counter()
    name = file.filename or "upload"
    with service.batcher.arriving():  # a batch being gathered waits for this part
        data = await file.read()
        image = await decode(name, data)
        scored = service.batcher.enqueue(Part(name, data, image, station))
    result = await scored
    if heatmap == "png":
        result["heatmap_png"] = await service.batcher.run_alone(
            service.overlay_png, image, result["boxes"]
        )
    result["latency_ms"] = round((time.perf_counter() - start) * 1000, 2)
    return result


@router.post("/inspect/batch", dependencies=auth)
async def inspect_batch(
    service: Live,
    station: Station,
    files: Annotated[list[UploadFile], File(description="images and/or .zip archives")],
) -> StreamingResponse:
    """Many parts; one JSON line per image as it is scored (problems as error lines)."""
    uploads = [(f.filename or "upload", await f.read()) for f in files]
    entries = list(iter_upload_files(uploads))
    window = 2 * service.settings.max_batch

    async def one(entry: Any) -> dict[str, Any]:
        if not entry.ok:
            return {"file_name": entry.name, "status": "error", "error": entry.problem}
        with service.batcher.arriving():
            try:
                image = await decode(entry.name, entry.data)
            except HTTPException as exc:
                return {"file_name": entry.name, "status": "error", "error": exc.detail}
            scored = service.batcher.enqueue(Part(entry.name, entry.data, image, station))
        return {"status": "ok", **await scored}

    async def lines() -> AsyncIterator[str]:
        for first in range(0, len(entries), window):
            chunk = entries[first : first + window]
            for result in await asyncio.gather(*(one(e) for e in chunk)):
                yield json.dumps(result) + "\n"

    return StreamingResponse(lines(), media_type="application/x-ndjson")


@router.websocket("/alerts")
async def alerts(
    websocket: WebSocket,
    since: Annotated[int | None, Query(ge=0)] = None,
    token: str | None = None,
) -> None:
    """Every alert from now on; with ?since=N first the alerts after N from the review log."""
    service: LineService = websocket.app.state.service
    header = websocket.headers.get("authorization") or (token and f"Bearer {token}")
    if not authorized(service.settings, header):
        await websocket.close(code=1008, reason="missing or wrong bearer token")
        return
    await websocket.accept()
    queue = service.hub.subscribe()
    # Clients only listen; reading their side is how a disconnect (or a server shutting down)
    # ends this handler instead of leaving it waiting for the next alert.
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
        while (alert := await _next_alert(queue, closed)) is not None:
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
