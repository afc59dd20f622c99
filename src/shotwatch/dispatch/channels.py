"""Alert channels behind one port: signed webhook, CAP 1.2 XML, NENA EIDO JSON (and a fake).

Every channel implements :class:`Channel` (``async deliver(call) -> Delivery``). The HTTP
channels share :class:`HttpSender`: each POST carries

* ``Idempotency-Key``: the call version's key, the same on every retry, so a receiver drops
  duplicates;
* ``ShotWatch-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>``, so a
  receiver authenticates the sender and rejects replays outside its tolerance window
  (:func:`verify_signature`);

and is retried on connection errors, 5xx and 429 with capped exponential backoff (the sleep
and the clock are injected, so tests run instantly). 4xx other than 408/429 is final.
"""

from __future__ import annotations

import abc
import asyncio
import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx

from shotwatch.core.clock import Clock
from shotwatch.core.errors import InputError
from shotwatch.dispatch.formats import to_cap_xml, to_eido
from shotwatch.dispatch.models import CallForService

SIGNATURE_HEADER = "ShotWatch-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"


def sign(secret: bytes, timestamp_s: int, body: bytes) -> str:
    """The signature header value for ``body`` sent at ``timestamp_s``."""
    mac = hmac.new(secret, f"{timestamp_s}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp_s},v1={mac}"


def verify_signature(
    secret: bytes, header: str | None, body: bytes, *, now_s: float, tolerance_s: float = 300.0
) -> int:
    """Check a signature header; return its timestamp or raise :class:`InputError`.

    Rejects: no header, malformed header, a timestamp further than ``tolerance_s`` from
    ``now_s`` (replay), and a MAC that does not match (constant-time comparison).
    """
    where = "webhook"
    if not header:
        raise InputError(where, SIGNATURE_HEADER, "missing")
    parts: dict[str, str] = {}
    for item in header.split(","):
        k, sep, v = item.strip().partition("=")
        if not sep:
            raise InputError(where, SIGNATURE_HEADER, f"malformed element {item!r}")
        parts[k] = v
    if "t" not in parts or "v1" not in parts:
        raise InputError(where, SIGNATURE_HEADER, "needs t= and v1=")
    try:
        ts = int(parts["t"])
    except ValueError as exc:
        raise InputError(where, SIGNATURE_HEADER, f"t is not an integer: {parts['t']!r}") from exc
    if abs(now_s - ts) > tolerance_s:
        raise InputError(
            where, SIGNATURE_HEADER, f"timestamp {ts} is outside the {tolerance_s:.0f} s window"
        )
    expected = sign(secret, ts, body).split("v1=", 1)[1]
    if not hmac.compare_digest(expected, parts["v1"]):
        raise InputError(where, SIGNATURE_HEADER, "signature does not match")
    return ts


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 5
    base_delay_s: float = 0.2
    max_delay_s: float = 10.0

    def delay_s(self, attempt: int) -> float:
        """Delay before attempt ``attempt + 1`` (attempt counts from 1)."""
        return float(min(self.max_delay_s, self.base_delay_s * (2 ** (attempt - 1))))


@dataclass(frozen=True, slots=True)
class Attempt:
    number: int
    at_s: float
    status_code: int | None
    error: str | None


@dataclass(frozen=True, slots=True)
class Delivery:
    """The outcome of sending one call version through one channel."""

    channel: str
    call_id: str
    idempotency_key: str
    ok: bool
    attempts: tuple[Attempt, ...]
    reason: str = ""
    content_type: str = ""
    body: bytes = b""

    def to_dict(self) -> dict[str, object]:
        return {
            "channel": self.channel,
            "call_id": self.call_id,
            "idempotency_key": self.idempotency_key,
            "ok": self.ok,
            "reason": self.reason,
            "attempts": [
                {"number": a.number, "at_s": a.at_s, "status": a.status_code, "error": a.error}
                for a in self.attempts
            ],
        }


class Channel(abc.ABC):
    """One way of telling dispatch about a call."""

    name: str

    @abc.abstractmethod
    async def deliver(self, call: CallForService) -> Delivery: ...


Sleep = Callable[[float], Awaitable[None]]


@dataclass
class HttpSender:
    """Signed, idempotent POST with retries (shared by the HTTP channels)."""

    url: str
    secret: bytes
    clock: Clock
    client: httpx.AsyncClient
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Sleep = asyncio.sleep
    timeout_s: float = 5.0

    async def post(
        self, channel: str, call: CallForService, body: bytes, content_type: str
    ) -> Delivery:
        attempts: list[Attempt] = []
        reason = ""
        for n in range(1, self.retry.max_attempts + 1):
            now = self.clock.now()
            headers = {
                "Content-Type": content_type,
                IDEMPOTENCY_HEADER: call.idempotency_key,
                SIGNATURE_HEADER: sign(self.secret, int(now), body),
                "User-Agent": "shotwatch-dispatch",
            }
            try:
                resp = await self.client.post(
                    self.url, content=body, headers=headers, timeout=self.timeout_s
                )
            except httpx.HTTPError as exc:
                attempts.append(Attempt(n, now, None, f"{type(exc).__name__}: {exc}"))
                reason = f"transport error: {exc}"
            else:
                attempts.append(Attempt(n, now, resp.status_code, None))
                if resp.status_code < 300:
                    return Delivery(
                        channel, call.call_id, call.idempotency_key, True, tuple(attempts),
                        "", content_type, body,
                    )  # fmt: skip
                reason = f"HTTP {resp.status_code}"
                if resp.status_code < 500 and resp.status_code not in (408, 429):
                    break  # the receiver refused this message: retrying cannot help
            if n < self.retry.max_attempts:
                await self.sleep(self.retry.delay_s(n))
        return Delivery(
            channel, call.call_id, call.idempotency_key, False, tuple(attempts),
            f"gave up after {len(attempts)} attempt(s): {reason}", content_type, body,
        )  # fmt: skip


class WebhookChannel(Channel):
    """The call as JSON (:meth:`CallForService.to_dict`), signed."""

    name = "webhook"

    def __init__(self, sender: HttpSender) -> None:
        self.sender = sender

    async def deliver(self, call: CallForService) -> Delivery:
        body = json.dumps(call.to_dict(), sort_keys=True).encode()
        return await self.sender.post(self.name, call, body, "application/json")


class CapChannel(Channel):
    """The call as an OASIS CAP 1.2 alert."""

    name = "cap"

    def __init__(self, sender: HttpSender, *, cap_sender: str, status: str = "Actual") -> None:
        self.sender = sender
        self.cap_sender = cap_sender
        self.status = status

    async def deliver(self, call: CallForService) -> Delivery:
        body = to_cap_xml(
            call, sender=self.cap_sender, sent_s=self.sender.clock.now(), status=self.status
        )
        return await self.sender.post(self.name, call, body, "application/cap+xml")


class EidoChannel(Channel):
    """The call as a NENA EIDO JSON object."""

    name = "eido"

    def __init__(self, sender: HttpSender, *, agency_id: str, issuing_element: str) -> None:
        self.sender = sender
        self.agency_id = agency_id
        self.issuing_element = issuing_element

    async def deliver(self, call: CallForService) -> Delivery:
        eido = to_eido(
            call,
            agency_id=self.agency_id,
            issuing_element=self.issuing_element,
            updated_s=self.sender.clock.now(),
        )
        body = json.dumps(eido, sort_keys=True).encode()
        return await self.sender.post(self.name, call, body, "application/emergency+json")


class FakeChannel(Channel):
    """Records every call it is given; can be told to fail (for tests and the demo)."""

    def __init__(self, name: str = "fake", *, fail_with: str | None = None) -> None:
        self.name = name
        self.fail_with = fail_with
        self.sent: list[CallForService] = []

    async def deliver(self, call: CallForService) -> Delivery:
        self.sent.append(call)
        ok = self.fail_with is None
        return Delivery(
            self.name, call.call_id, call.idempotency_key, ok,
            (Attempt(1, call.created_s, 200 if ok else 503, self.fail_with),),
            self.fail_with or "",
        )  # fmt: skip
