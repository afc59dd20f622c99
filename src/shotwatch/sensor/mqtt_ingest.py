"""Server side of the MQTT path: subscribe to every sensor's topic and run the ingest checks.

The subscription uses a persistent MQTT 5 session (clean start off, a session expiry) and
QoS 1, so the broker holds messages while the server is away; a message the broker delivers
twice is recognised by the ingest's (serial, sequence) check and counted once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from shotwatch.sensor.ingest import Ingest, Rejection, VerifiedReport

Outcome = VerifiedReport | Rejection


class MqttIngestSubscriber:
    def __init__(
        self,
        ingest: Ingest,
        host: str,
        port: int,
        *,
        client_id: str = "shotwatch-server-ingest",
        prefix: str = "shotwatch/sensors",
        on_outcome: Callable[[str, Outcome], None] | None = None,
        tls: bool = False,
        ca_file: str | None = None,
        session_expiry_s: int = 86_400,
    ) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        self.ingest = ingest
        self.prefix = prefix
        self.on_outcome = on_outcome
        self.subscribed = threading.Event()
        self._client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
        )
        if tls:
            self._client.tls_set(ca_certs=ca_file)
        self._props = Properties(PacketTypes.CONNECT)
        self._props.SessionExpiryInterval = session_expiry_s
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        self._host, self._port = host, port

    def start(self, timeout_s: float = 5.0) -> None:
        self._client.connect(
            self._host, self._port, keepalive=30, clean_start=False, properties=self._props
        )
        self._client.loop_start()
        if not self.subscribed.wait(timeout_s):
            raise TimeoutError(f"no SUBACK from {self._host}:{self._port}")

    def stop(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()

    def _on_connect(self, client: Any, _u: Any, _f: Any, reason: Any, _p: Any = None) -> None:
        if not getattr(reason, "is_failure", False):
            client.subscribe(f"{self.prefix}/+/+", qos=1)

    def _on_subscribe(self, *_args: Any) -> None:
        self.subscribed.set()

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        if str(msg.topic).endswith("/search_request"):
            return  # the server's own requests to sensors share the topic tree
        outcome = self.ingest.verify_report(bytes(msg.payload))
        if self.on_outcome is not None:
            self.on_outcome(str(msg.topic), outcome)
