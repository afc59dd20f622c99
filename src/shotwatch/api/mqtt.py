"""Sensor reports over MQTT into the running server (the sensor branch's subscriber).

The subscriber verifies each message on its own network thread with the same ingest checks as
the HTTPS route; verified reports are handed to the server's event loop (the review flow lives
there), refusals go to the audit log, exactly like refused HTTPS reports.
"""

from __future__ import annotations

import asyncio
from typing import Any

from shotwatch.api.app import Server
from shotwatch.core.errors import InputError
from shotwatch.sensor.ingest import Ingest, Rejection
from shotwatch.sensor.mqtt_ingest import MqttIngestSubscriber


def mqtt_bridge(
    server: Server,
    ingest: Ingest,
    loop: asyncio.AbstractEventLoop,
    host: str,
    port: int,
    **kw: Any,
) -> MqttIngestSubscriber:
    def on_outcome(topic: str, outcome: Any) -> None:
        if isinstance(outcome, Rejection):
            if not outcome.already_accepted and server.audit is not None:
                loop.call_soon_threadsafe(
                    server.audit, "report.rejected", {**outcome.to_dict(), "topic": topic}
                )
            return

        def deliver() -> None:
            try:
                server.ingest_verified(outcome)
            except InputError as exc:
                if server.audit is not None:
                    server.audit("report.rejected", {"reason": "invalid_field", "detail": str(exc)})

        loop.call_soon_threadsafe(deliver)

    return MqttIngestSubscriber(ingest, host, port, on_outcome=on_outcome, **kw)
