"""Live event fan-out for consoles and the dispatch board (server-sent events feed on it).

A small in-process hub: each subscriber gets its own bounded queue; a subscriber that falls
behind loses its oldest events and is told so (``{"type": "lagged"}``) rather than slowing
everyone else down. Events carry a monotonically increasing ``seq`` so a reconnecting client
can tell what it missed (``Last-Event-ID``) and fetch the current state instead.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any


class EventHub:
    def __init__(self, maxsize: int = 1000, keep: int = 500) -> None:
        self._subs: set[asyncio.Queue[dict[str, Any]]] = set()
        self._maxsize = maxsize
        self._seq = 0
        self.recent: deque[dict[str, Any]] = deque(maxlen=keep)

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        q: asyncio.Queue[dict[str, Any]] = asyncio.Queue(self._maxsize)
        self._subs.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[dict[str, Any]]) -> None:
        self._subs.discard(q)

    def publish(self, topic: str, data: dict[str, Any]) -> dict[str, Any]:
        self._seq += 1
        event = {"seq": self._seq, "topic": topic, "data": data}
        self.recent.append(event)
        for q in list(self._subs):
            if q.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    q.get_nowait()
                with contextlib.suppress(asyncio.QueueFull):
                    q.put_nowait({"seq": self._seq, "topic": "lagged", "data": {}})
            with contextlib.suppress(asyncio.QueueFull):
                q.put_nowait(event)
        return event
