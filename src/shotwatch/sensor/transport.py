"""Transports from sensor to server behind one port: HTTPS POST (httpx) or MQTT 5 (paho).

A transport sends one signed message and says what became of it:

* ``DELIVERED``: the receiver has it (server accepted it; broker acknowledged QoS 1);
* ``DUPLICATE``: the server had already accepted it (a retry after a lost answer);
* ``REJECTED``: the receiver refused it for good (the reason is kept in the spool's dead table);
* ``UNAVAILABLE``: nobody answered, or the answer was lost: try again later.

The server side dedupes by (serial, sequence) (:mod:`shotwatch.sensor.ingest`), so resending
after ``UNAVAILABLE`` can never count a message twice.
"""

from __future__ import annotations

import enum
import queue
import ssl
import threading
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from shotwatch.core.errors import InputError

HTTP_PATH = "/api/v1/reports"  # the route the web server mounts (shotwatch.api)


class DeliveryStatus(enum.StrEnum):
    DELIVERED = "delivered"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True, slots=True)
class Delivery:
    status: DeliveryStatus
    detail: str = ""


class Transport(Protocol):
    def send(self, kind: str, seq: int, payload: bytes) -> Delivery: ...

    def close(self) -> None: ...


def http_status_for(outcome: dict[str, Any]) -> int:
    """The HTTP status the server answers for an ingest outcome (``to_dict()`` of it)."""
    status = outcome.get("status")
    if status in ("accepted", "duplicate"):
        return 200
    reason = outcome.get("reason")
    return {
        "oversized": 413,
        "unknown_sensor": 403,
        "bad_signature": 403,
        "replayed": 409,
    }.get(str(reason), 422)


class HttpTransport:
    """POST each message to ``base_url + path`` over HTTPS (TLS verified by default)."""

    def __init__(
        self,
        base_url: str,
        *,
        path: str = HTTP_PATH,
        timeout_s: float = 10.0,
        ca_file: str | None = None,
        client: httpx.Client | None = None,
    ) -> None:
        if client is None:
            if not base_url.startswith("https://") and not base_url.startswith("http://127."):
                raise InputError("transport", "url", f"{base_url!r}: only https:// (or loopback)")
            verify: ssl.SSLContext | bool = (
                ssl.create_default_context(cafile=ca_file) if ca_file else True
            )
            client = httpx.Client(base_url=base_url, timeout=timeout_s, verify=verify)
        self.client = client
        self.path = path

    def send(self, kind: str, seq: int, payload: bytes) -> Delivery:
        try:
            resp = self.client.post(
                self.path, content=payload, headers={"content-type": "application/json"}
            )
        except httpx.HTTPError as exc:
            return Delivery(DeliveryStatus.UNAVAILABLE, f"{type(exc).__name__}: {exc}")
        if resp.status_code >= 500 or resp.status_code in (408, 425, 429):
            return Delivery(DeliveryStatus.UNAVAILABLE, f"HTTP {resp.status_code}")
        try:
            outcome = resp.json()
        except ValueError:
            outcome = {}
        if resp.status_code == 200 and outcome.get("status") == "duplicate":
            return Delivery(DeliveryStatus.DUPLICATE, "already accepted")
        if 200 <= resp.status_code < 300:
            return Delivery(DeliveryStatus.DELIVERED)
        return Delivery(
            DeliveryStatus.REJECTED,
            f"HTTP {resp.status_code}: {outcome.get('reason', '')} {outcome.get('detail', '')}",
        )

    def close(self) -> None:
        self.client.close()


def mqtt_topic(prefix: str, serial: str, kind: str) -> str:
    return f"{prefix}/{serial}/{kind}"


class MqttTransport:
    """Publish each message with QoS 1 to an MQTT 5 broker (TLS when ``tls`` is set).

    Topic: ``<prefix>/<serial>/<type>``; the sensor subscribes only to
    ``<prefix>/<serial>/search_request`` (signed missed-shot search requests, ADR 0063).
    ``DELIVERED`` means the broker acknowledged the message (PUBACK); the server subscribes
    with a persistent session (clean start off, QoS 1), so the broker keeps messages while the
    server is away.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        serial: str,
        prefix: str = "shotwatch/sensors",
        tls: bool = False,
        ca_file: str | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = 5.0,
    ) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self._mqtt = mqtt
        self.host, self.port, self.serial, self.prefix = host, port, serial, prefix
        self.timeout_s = timeout_s
        self._connected = threading.Event()
        self._client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"shotwatch-sensor-{serial}",
            protocol=mqtt.MQTTv5,
        )
        if tls:
            self._client.tls_set(ca_certs=ca_file, certfile=cert_file, keyfile=key_file)
        if username:
            self._client.username_pw_set(username, password)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._requests: queue.Queue[bytes] = queue.Queue()
        self._started = False

    def _on_connect(self, client: Any, _u: Any, _f: Any, reason: Any, _p: Any = None) -> None:
        if not getattr(reason, "is_failure", False):
            # The one thing a sensor listens for: signed missed-shot search requests.
            client.subscribe(mqtt_topic(self.prefix, self.serial, "search_request"), qos=1)
            self._connected.set()

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        self._requests.put(bytes(msg.payload))

    def connect(self) -> bool:
        """Connect now (requests can only arrive while connected); False when unreachable."""
        return self._ensure_connected() is None

    def incoming_requests(self) -> list[bytes]:
        """Search requests received since the last call (checked by the search handler)."""
        out: list[bytes] = []
        while True:
            try:
                out.append(self._requests.get_nowait())
            except queue.Empty:
                return out

    def _on_disconnect(self, *_args: Any) -> None:
        self._connected.clear()

    def _ensure_connected(self) -> str | None:
        if self._connected.is_set():
            return None
        if not self._started:
            try:
                self._client.connect(self.host, self.port, keepalive=30)
            except OSError as exc:
                return f"cannot connect to {self.host}:{self.port}: {exc}"
            self._client.loop_start()  # the network thread also reconnects after a drop
            self._started = True
        if not self._connected.wait(self.timeout_s):
            return f"no CONNACK from {self.host}:{self.port}"
        return None

    def send(self, kind: str, seq: int, payload: bytes) -> Delivery:
        problem = self._ensure_connected()
        if problem:
            return Delivery(DeliveryStatus.UNAVAILABLE, problem)
        info = self._client.publish(
            mqtt_topic(self.prefix, self.serial, kind), payload=payload, qos=1
        )
        if info.rc != self._mqtt.MQTT_ERR_SUCCESS:
            return Delivery(DeliveryStatus.UNAVAILABLE, f"publish rc={info.rc}")
        try:
            info.wait_for_publish(self.timeout_s)
        except (RuntimeError, ValueError) as exc:
            return Delivery(DeliveryStatus.UNAVAILABLE, f"publish failed: {exc}")
        if not info.is_published():
            return Delivery(DeliveryStatus.UNAVAILABLE, "no PUBACK in time")
        return Delivery(DeliveryStatus.DELIVERED)

    def close(self) -> None:
        if self._started:
            self._client.loop_stop()
            self._client.disconnect()
            self._started = False
        self._connected.clear()


def publish_search_request(
    host: str,
    port: int,
    *,
    serial: str,
    request: bytes,
    prefix: str = "shotwatch/sensors",
    timeout_s: float = 5.0,
) -> bool:
    """Server side: publish one signed search request to a sensor's topic (QoS 1, retained
    off). True when the broker acknowledged it."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect(host, port, keepalive=30)
    client.loop_start()
    try:
        info = client.publish(mqtt_topic(prefix, serial, "search_request"), request, qos=1)
        info.wait_for_publish(timeout_s)
        return bool(info.is_published())
    finally:
        client.loop_stop()
        client.disconnect()
