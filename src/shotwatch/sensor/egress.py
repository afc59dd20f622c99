"""No live listening: what may carry audio out of a sensor or the server (ADR 0062).

The policies say live streaming of sensor audio is not possible and that stored audio leaves
a sensor only as a snippet (1 s before to 1 s after an impulse) or through an authorized,
recorded missed-shot search. This module states that as checks a test can run against every
interface: the sensor's message types (:data:`shotwatch.sensor.messages.MESSAGE_TYPES`), the
``shotwatch`` command tree and any FastAPI application's routes.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import Any

#: Words in a route path or name that suggest continuous audio; such a route must be one of
#: the allowed kinds below or the check fails.
STREAM_WORDS = ("listen", "live", "stream", "ws", "websocket", "monitor", "rtsp", "icecast")

#: Allowed audio egress kinds and what each may return at most.
ALLOWED_EGRESS = {
    "none": "no audio",
    "reports": "signed snippets of snippet_pre_s + snippet_post_s around one impulse",
    "snippet": "one stored report snippet (at most snippet_pre_s + snippet_post_s)",
    "search_window": "one authorized, recorded missed-shot window (max_search_window_s)",
}


def walk_commands(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every (sub)command path of an argparse tree, leaves and inner nodes."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                path = (*prefix, name)
                yield path, sub
                yield from walk_commands(sub, path)


def iter_routes(app: Any) -> Iterator[Any]:
    """Every leaf route of an app, descending into included routers and mounts."""
    for route in getattr(app, "routes", []):
        inner = getattr(route, "original_router", None)  # FastAPI's included router
        if inner is not None:
            yield from iter_routes(inner)
        elif getattr(route, "routes", None) and not hasattr(route, "endpoint"):
            yield from iter_routes(route)  # Mount / Router
        else:
            yield route


def route_problems(app: Any, declared: dict[str, str] | None = None) -> list[str]:
    """Reasons why routes of a FastAPI/Starlette ``app`` could stream audio (empty: none).

    * no WebSocket route may exist (a socket is how continuous audio would be pushed);
    * a route that mentions audio or any stream word must be declared in ``declared``
      (path -> egress kind from :data:`ALLOWED_EGRESS`), and ``text/event-stream`` routes
      must not mention audio.
    """
    from starlette.routing import WebSocketRoute

    declared = declared or {}
    problems: list[str] = []
    for route in iter_routes(app):
        path = str(getattr(route, "path", ""))
        name = str(getattr(route, "name", ""))
        if isinstance(route, WebSocketRoute) or type(route).__name__ == "APIWebSocketRoute":
            problems.append(f"websocket route {path}: continuous push is not allowed")
            continue
        text = f"{path} {name}".lower()
        words = [w for w in STREAM_WORDS if w in text.replace("/", " ").split() or f"/{w}" in text]
        mentions_audio = any(w in text for w in ("audio", "wav", "flac", "pcm", "sound"))
        if (mentions_audio or words) and path not in declared:
            problems.append(
                f"route {path} ({name}) mentions {words or 'audio'} but is not declared"
            )
        kind = declared.get(path)
        if kind is not None and kind not in ALLOWED_EGRESS:
            problems.append(f"route {path}: unknown egress kind {kind!r}")
    return problems
