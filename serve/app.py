"""The line service's FastAPI app: models load after start-up, routes in serve/routes.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from inspection import Inspector
from serve.limits import BodyLimit
from serve.routes import API, router
from serve.service import LineService
from serve.settings import Settings


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
    app.include_router(router)
    return app
