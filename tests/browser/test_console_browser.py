"""The review and dispatch flows in real headless Chromium (Debian's, driven by Playwright).

The app runs under uvicorn on a free local port; incidents arrive as signed sensor reports over
HTTP while the pages are open, so the queue and the board must update live over SSE.
Screenshots go to artifacts/screenshots/. Skipped, with the reason, when chromium or the
playwright package is absent (CI installs: apt-get install -y chromium; pip install playwright).
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tests.serverkit import PASSWORD, EveryThirdPulse, report, set_passwords, users

from shotwatch.api.app import Server, create_app
from shotwatch.api.build import build_server
from shotwatch.core.clock import SystemClock
from shotwatch.core.geo import LocalFrame
from shotwatch.core.settings import DispatchSettings
from shotwatch.dispatch.boundaries import load_boundaries
from shotwatch.dispatch.channels import FakeChannel
from shotwatch.incidents.review import ConfirmGunfire
from shotwatch.sensor.ingest import Ingest, IngestLimits, MemoryIngestStore
from shotwatch.sensor.signer import SensorSigner

CHROMIUM = os.environ.get("SHOTWATCH_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"

pw_api = pytest.importorskip(
    "playwright.sync_api",
    reason="python package 'playwright' not installed (pip install playwright)",
)
if not Path(CHROMIUM).exists():
    pytest.skip(
        f"chromium not found at {CHROMIUM} (CI: apt-get install -y chromium)",
        allow_module_level=True,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """uvicorn in a thread with its own event loop."""

    def __init__(self, server: Server) -> None:
        import uvicorn

        self.server = server
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cfg = uvicorn.Config(create_app(server), host="127.0.0.1", port=self.port,
                             log_level="warning", lifespan="off",
                             timeout_graceful_shutdown=1)  # fmt: skip
        self.uv = uvicorn.Server(cfg)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.uv.serve())

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.uv.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.uv.should_exit = True
        self.thread.join(timeout=15)
        if not self.thread.is_alive():
            self.loop.close()

    def run(self, coro: Any) -> Any:
        """Run a coroutine on the server's loop (the flow lives there)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with pw_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


def _login(page: Any, base: str, username: str, purpose: str, workstation: str = "") -> None:
    page.goto(f"{base}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.select_option("select[name=purpose]", purpose)
    if workstation:
        page.fill("input[name=workstation]", workstation)
    page.click("button[type=submit]")


def _shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_review_and_dispatch_flow_nypd(browser: Any, boundaries_dir: Path, tmp_path: Path) -> None:
    nypd = load_boundaries(boundaries_dir / "nypd-precincts.geojson")
    p = nypd.boundary("75").geometry.representative_point()
    frame = LocalFrame(p.y, p.x)
    keys = {s: Ed25519PrivateKey.generate() for s in ("SN-A", "SN-B", "SN-C")}
    clock = SystemClock()
    webhook = FakeChannel("webhook")
    srv = build_server(
        DispatchSettings(), clock=clock, boundaries=nypd, users=users(), channels=[webhook],
        verifier=Ingest(MemoryIngestStore({s: k.public_key() for s, k in keys.items()}),
                        IngestLimits(), clock),
        consumer=EveryThirdPulse(frame), frame=frame,
    )  # fmt: skip
    set_passwords(srv)
    signers = {s: SensorSigner(s, k, tmp_path / s) for s, k in keys.items()}
    with LiveServer(srv) as live:
        ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
        console = ctx.new_page()
        _login(console, live.url, "det.ana", "emergency_response")
        console.wait_for_url("**/console")
        console.wait_for_selector("#live-state.on")
        assert "No incidents waiting" in console.inner_text("#queue")
        board = ctx.new_page()
        board.goto(f"{live.url}/board")
        board.wait_for_selector("#live-state.on")
        phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
        officer = phone.new_page()
        _login(officer, live.url, "po.cy", "emergency_response")
        officer.goto(f"{live.url}/officer")
        officer.wait_for_selector("#live-state.on")

        # three sensors report: the incident appears in the open console without a reload
        now = time.time()
        pos = {"SN-A": (0.0, 150.0), "SN-B": (130.0, -80.0), "SN-C": (-130.0, -80.0)}
        with httpx.Client(base_url=live.url) as client:
            for i, (s, (x, y)) in enumerate(pos.items()):
                r = client.post("/api/v1/reports", content=report(signers[s], x, y, now + 0.1 * i))
                assert r.status_code == 200, r.text
        console.wait_for_selector("tr[data-incident=inc-1]", timeout=5000)
        _shot(console, "01-queue-live")

        console.click("a[href='/console/incidents/inc-1']")
        console.wait_for_selector("#map[data-loaded='5']", timeout=5000)
        assert console.locator("img.spec").count() == 3
        assert console.locator("audio").count() == 3
        assert console.locator(".timeline .round").count() == 1
        natural = console.evaluate(
            "Array.from(document.querySelectorAll('img.spec')).map(i => i.naturalWidth)"
        )
        assert natural == [600, 600, 600]  # the spectrogram images really loaded
        assert console.locator(".shot-marker").count() == 1
        assert console.locator(".sensor-marker").count() == 3
        _shot(console, "02-incident")

        # a command without a reason is refused by the form; a too-short one by the server
        console.select_option("#command", "set_rounds")
        console.fill("input[name=rounds]", "4")
        console.fill("#reason", "no")
        console.click("#submit-command")
        console.wait_for_selector("#outcome [data-outcome=Failed]")
        console.fill("#reason", "counted four impulses on SN-B")
        console.click("#submit-command")
        console.wait_for_selector("#outcome [data-outcome=OK]")
        console.wait_for_selector("#history li:nth-child(2)")
        assert console.inner_text("#rounds") == "4"
        console.select_option("#command", "confirm")
        console.fill("#reason", "clear muzzle blasts on three sensors")
        console.click("#submit-command")
        console.wait_for_selector("#outcome [data-outcome=OK]:has-text('confirm')")
        console.wait_for_selector("#call")
        hist = console.inner_text("#history")
        assert "v1" in hist and "v3" in hist and "machine" in hist and "inc-1@v2" in hist
        _shot(console, "03-confirmed")

        # the board and the officer's phone get the call live, routed to the precinct
        board.wait_for_selector("tr.call.in_cad .unit:has-text('Precinct 75')", timeout=5000)
        board.wait_for_selector("tr.call .delivery [data-channel=webhook].ok", timeout=5000)
        assert "4 rounds" in board.inner_text("tr.call .summary")
        _shot(board, "04-board")
        officer.wait_for_selector(".callcard .unit:has-text('Precinct 75')", timeout=5000)
        width = officer.evaluate("document.documentElement.scrollWidth")
        assert width <= 390  # no horizontal scrolling on a phone
        _shot(officer, "05-officer-mobile")
        assert [c.rounds for c in webhook.sent] == [4]
        ctx.close()
        phone.close()


def test_sf_dem_supervisor_enters_into_cad(browser: Any, boundaries_dir: Path) -> None:
    sfb = load_boundaries(boundaries_dir / "sfpd-districts.geojson")
    p = sfb.boundary("MISSION").geometry.representative_point()
    clock = SystemClock()
    srv = build_server(
        DispatchSettings(mode="sfdem", supervisor_workstations=["DEM-SUP-WS-1"]),
        clock=clock, boundaries=sfb, users=users(), channels=[],
    )  # fmt: skip
    set_passwords(srv)
    from shotwatch.core.model import Incident, Provenance

    with LiveServer(srv) as live:
        sup_ctx = browser.new_context(viewport={"width": 1300, "height": 800})
        sup = sup_ctx.new_page()
        _login(sup, live.url, "sup.di", "dispatch", "DEM-SUP-WS-1")
        sup.goto(f"{live.url}/board")
        sup.wait_for_selector("#live-state.on")
        disp_ctx = browser.new_context(viewport={"width": 1300, "height": 800})
        disp = disp_ctx.new_page()
        _login(disp, live.url, "disp.ed", "dispatch", "DEM-DISP-7")
        disp.goto(f"{live.url}/board")
        disp.wait_for_selector("#live-state.on")
        inc = Incident("sf-1", (), clock.now(), clock.now() + 1, 0, 0, 3, 2, ((0, 0),), False,
                       None, None, p.y, p.x, 0.9,
                       provenance=Provenance.automatic("b", "1", clock.now()))  # fmt: skip

        async def arrive_and_confirm() -> None:
            srv.flow.ingest(inc)
            await srv.flow.review("sf-1", ConfirmGunfire("irc.analyst", "gunfire confirmed"))

        live.run(arrive_and_confirm())
        sup.wait_for_selector("tr.call.pending_cad .unit:has-text('MISSION')", timeout=5000)
        time.sleep(0.5)
        assert disp.locator("tr.call").count() == 0  # dispatchers see it only once in CAD
        _shot(sup, "06-sfdem-supervisor-pending")
        sup.click("tr.call button:has-text('Enter into CAD')")
        sup.wait_for_selector("#outcome [data-outcome=OK]")
        disp.wait_for_selector("tr.call.in_cad .unit:has-text('MISSION')", timeout=5000)
        _shot(disp, "07-sfdem-dispatcher-in-cad")
        sup_ctx.close()
        disp_ctx.close()


def test_sign_in_refusal_and_transfer_end_the_console_session(
    browser: Any, boundaries_dir: Path
) -> None:
    nypd = load_boundaries(boundaries_dir / "nypd-precincts.geojson")
    srv = build_server(DispatchSettings(), clock=SystemClock(), boundaries=nypd, users=users(),
                       channels=[])  # fmt: skip
    set_passwords(srv)
    with LiveServer(srv) as live:
        ctx = browser.new_context(viewport={"width": 1200, "height": 800})
        page = ctx.new_page()
        page.goto(f"{live.url}/login")
        page.fill("input[name=username]", "det.ana")
        page.fill("input[name=password]", "not-the-password")
        page.click("button[type=submit]")
        page.wait_for_selector("#login-error")
        assert "Sign-in refused" in page.inner_text("#login-error")
        _shot(page, "08-sign-in-refused")
        _login(page, live.url, "det.ana", "criminal_investigation")
        page.wait_for_url("**/console")
        page.wait_for_selector("#live-state.on")
        assert "criminal investigation" in page.inner_text("header .who")
        # transferred while the console is open: the live stream ends and cannot reconnect
        srv.identity.transfer("det.ana", command="40", by="itb.admin")
        page.wait_for_selector("#live-state.ended", timeout=8000)
        _shot(page, "09-transferred-stream-ended")
        page.reload()
        page.wait_for_url("**/login?next=/console")
        ctx.close()
    entries = [srv.gate.audit.entry(r.seq) for r in srv.gate.audit.rows()]
    assert any(e["action"] == "auth.login" and not e["allowed"] for e in entries)
    assert any(e["actor"] == "unauthenticated" and "transferred" in e["reason"] for e in entries)
    assert srv.gate.audit.verify().ok
