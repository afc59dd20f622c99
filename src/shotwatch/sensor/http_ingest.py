"""The HTTPS receiving route for sensor messages, for the web server to mount.

``app.include_router(make_router(ingest))`` adds ``POST /api/v1/reports``: the body is one
signed message; the answer is the ingest outcome as JSON with the status code from
:func:`shotwatch.sensor.transport.http_status_for` (200 accepted or duplicate, 4xx refused).
The route is thin: all checks are in :class:`shotwatch.sensor.ingest.Ingest`.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from shotwatch.sensor.ingest import Ingest
from shotwatch.sensor.transport import HTTP_PATH, http_status_for


def make_router(ingest: Ingest, path: str = HTTP_PATH) -> APIRouter:
    router = APIRouter()

    @router.post(path, summary="Receive one signed sensor message (report, heartbeat...)")
    async def receive_sensor_message(request: Request) -> JSONResponse:
        limit = ingest.limits.search_message_bytes()
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return JSONResponse({"status": "rejected", "reason": "oversized"}, status_code=413)
        data = await request.body()
        outcome = ingest.verify_report(data).to_dict()
        return JSONResponse(outcome, status_code=http_status_for(outcome))

    return router
