"""The sensor agent: configuration file, wiring and the run loop (the I/O shell).

The configuration is one TOML file: an ``[agent]`` table for this sensor (identity, files,
source, transport) and, optionally, the usual settings sections (``[sensor]`` for retention,
snippet and search limits, ``[picker]``...), validated by :mod:`shotwatch.core.settings`, so
retention can never be set above the policy maximum::

    [agent]
    serial = "SN-0001"
    data_dir = "/var/lib/shotwatch-sensor"        # buffer/, spool.sqlite, sequence, searches.jsonl
    signing_key_file = "/etc/shotwatch/sensor.key"  # Ed25519, created on first run
    kek_file = "/run/shotwatch/buffer.kek"          # never inside data_dir/buffer
    server_public_key = "base64 of the server's Ed25519 key (signs search requests)"
    position = { lat_deg = 40.7, lon_deg = -73.9, elevation_m = 12.0 }

    [agent.source]
    kind = "file"            # file | live | sim
    path = "recordings/"
    speed = "fast"           # fast | realtime

    [agent.transport]
    kind = "https"           # https | mqtt | none
    url = "https://shotwatch.example.org"

    [sensor]
    retention_h = 30
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shotwatch.core.clock import Clock, ReplayClock, SystemClock
from shotwatch.core.errors import InputError
from shotwatch.core.settings import Settings
from shotwatch.sensor.buffer import AudioBuffer
from shotwatch.sensor.keys import load_or_create_kek, load_or_create_signing_key, parse_public_key
from shotwatch.sensor.messages import MessageType
from shotwatch.sensor.pipeline import SensorPipeline
from shotwatch.sensor.score import SCORERS
from shotwatch.sensor.search import MissedShotSearch, SearchLog
from shotwatch.sensor.signer import SensorSigner
from shotwatch.sensor.sources import AudioSource, FileSource, LiveSource, SimSource
from shotwatch.sensor.spool import Backoff, PumpResult, Spool, SpoolSender
from shotwatch.sensor.transport import HttpTransport, MqttTransport, Transport
from shotwatch.signal.picker import PickerConfig


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceConfig(_Model):
    kind: Literal["file", "live", "sim"] = "file"
    path: str | None = Field(None, description="file or folder (file), scenario (sim)")
    speed: Literal["fast", "realtime"] = "fast"
    block_s: float = Field(0.1, gt=0, le=5)
    device: str | int | None = None
    sample_rate_hz: int = Field(12000, ge=4000, le=384000)
    clock_error_s: float = Field(0.001, ge=0, lt=1)
    seed: int = 0
    max_s: float | None = Field(None, gt=0)


class TransportConfig(_Model):
    kind: Literal["https", "mqtt", "none"] = "none"
    url: str | None = None
    ca_file: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    tls: bool = False
    cert_file: str | None = None
    key_file: str | None = None
    topic_prefix: str = "shotwatch/sensors"


class AgentConfig(_Model):
    serial: str | None = Field(None, min_length=1, max_length=64)
    data_dir: str
    signing_key_file: str
    kek_file: str | None = None
    server_public_key: str | None = None
    position: dict[str, float] = Field(default_factory=dict)
    full_scale_db_spl: float | None = Field(
        None, ge=60.0, le=200.0, description="the microphone's dB SPL at digital full scale"
    )
    score: Literal["classifier", "impulsiveness"] = "classifier"
    policy_file: str | None = Field(
        None, description="the deployment's policy TOML; its sensor_audio retention caps ours"
    )
    source: SourceConfig = Field(default_factory=SourceConfig)
    transport: TransportConfig = Field(default_factory=TransportConfig)


def load_agent_config(path: str | Path) -> tuple[AgentConfig, Settings]:
    p = Path(path)
    try:
        data: dict[str, Any] = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError(str(p), "config", "file not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise InputError(str(p), "config", f"not valid TOML: {exc}") from exc
    agent_data = data.pop("agent", None)
    if not isinstance(agent_data, dict):
        raise InputError(str(p), "agent", "missing [agent] table")
    base = p.parent
    for key in ("data_dir", "signing_key_file", "kek_file", "policy_file"):
        if isinstance(agent_data.get(key), str):
            agent_data[key] = str((base / agent_data[key]).resolve())
    src = agent_data.get("source")
    if (
        isinstance(src, dict)
        and src.get("kind", "file") == "file"
        and isinstance(src.get("path"), str)
    ):
        src["path"] = str((base / src["path"]).resolve())
    try:
        agent = AgentConfig(**agent_data)
    except ValidationError as exc:
        raise InputError(str(p), "agent", str(exc)) from exc
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise InputError(str(p), "settings", str(exc)) from exc
    if agent.policy_file:
        cap = policy_sensor_audio_retention(agent.policy_file)
        if cap is not None and settings.sensor.retention_h * 3600.0 > cap[1] + 1e-9:
            raise InputError(
                str(p),
                "sensor.retention_h",
                f"{settings.sensor.retention_h:g} h is above the {cap[1] / 3600.0:g} h that "
                f"policy rule {cap[0]} allows for sensor audio",
            )
    return agent, settings


def policy_sensor_audio_retention(path: str | Path) -> tuple[str, float] | None:
    """(rule id, seconds) of the shortest ``[[retention]]`` rule for ``sensor_audio`` in a
    policy file (the policy branch's format), or None when the policy sets none."""
    p = Path(path)
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError(str(p), "policy_file", "file not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise InputError(str(p), "policy_file", f"not valid TOML: {exc}") from exc
    rules = [
        (str(r.get("id", "?")), float(r["period_s"]))
        for r in doc.get("retention", [])
        if isinstance(r, dict) and r.get("record_class") == "sensor_audio" and "period_s" in r
    ]
    return min(rules, key=lambda r: r[1]) if rules else None


def picker_config_factory(settings: Settings) -> Callable[[int], PickerConfig]:
    """The picker configuration for a stream's rate, from the ``[picker]`` settings."""

    def make(sample_rate_hz: int) -> PickerConfig:
        return PickerConfig.from_settings(settings.picker, float(sample_rate_hz))

    return make


@dataclass
class RunSummary:
    serial: str
    blocks: int
    audio_s: float
    picks: int
    reports: int
    heartbeats: int
    delivered: int
    duplicates: int
    rejected: int
    pending: int
    buffer_span_s: float
    buffer_disk_bytes: int
    source_errors: list[str]


class SensorAgent:
    """Everything one sensor runs, built from its configuration."""

    def __init__(
        self,
        agent: AgentConfig,
        settings: Settings,
        *,
        clock: Clock | None = None,
        transport: Transport | None = None,
        on_error: Any = None,
    ) -> None:
        self.config = agent
        self.settings = settings
        s = settings.sensor
        self.data_dir = Path(agent.data_dir)
        self.source = self._make_source(on_error)
        serial = agent.serial or getattr(self.source, "serial", None)
        if serial is None and isinstance(self.source, FileSource):
            serial = self.source.recordings[0].serial
        if not serial:
            raise InputError("agent", "serial", "not configured and not found in the source")
        self.serial: str = serial
        key = load_or_create_signing_key(agent.signing_key_file)
        self.signer = SensorSigner(self.serial, key, self.data_dir / "sequence")
        kek = load_or_create_kek(agent.kek_file, buffer_dir=self.data_dir / "buffer")
        self.sample_rate_hz = int(getattr(self.source, "sample_rate_hz", 12000))
        live = agent.source.kind == "live"
        self.clock: Clock = clock or (SystemClock() if live else ReplayClock())
        self.buffer = AudioBuffer.open(
            self.data_dir / "buffer",
            kek,
            sample_rate_hz=self.sample_rate_hz,
            retention_s=s.retention_h * 3600.0,
            segment_s=s.segment_s,
        )
        self.search_log = SearchLog(self.data_dir / "searches.jsonl")
        self.spool = Spool(self.data_dir / "spool.sqlite")
        self.transport = transport or self._make_transport()
        self.sender = (
            SpoolSender(
                self.spool,
                self.transport,
                self.clock,
                backoff=Backoff(initial_s=s.retry_initial_s, max_s=s.retry_max_s),
            )
            if self.transport is not None
            else None
        )
        self.pipeline = SensorPipeline(
            signer=self.signer,
            emit=self._emit,
            buffer=self.buffer,
            picker_config=picker_config_factory(settings),
            position=dict(agent.position),
            snippet_pre_s=s.snippet_pre_s,
            snippet_post_s=s.snippet_post_s,
            heartbeat_interval_s=s.heartbeat_interval_s,
            search_log_head=lambda: self.search_log.head,
            scorer=SCORERS[agent.score],
            full_scale_db_spl=agent.full_scale_db_spl,
        )
        self.search = (
            MissedShotSearch(
                buffer=self.buffer,
                log=self.search_log,
                signer=self.signer,
                server_key=parse_public_key(agent.server_public_key, where="agent"),
                clock=self.clock,
                max_window_s=s.max_search_window_s,
                request_ttl_s=s.search_request_ttl_s,
            )
            if agent.server_public_key
            else None
        )
        self._totals = [0, 0, 0]
        self._next_pump_s = 0.0
        self._closed = False

    def _make_source(self, on_error: Any) -> AudioSource:
        src = self.config.source
        if src.kind == "file":
            if not src.path:
                raise InputError("agent.source", "path", "required for a file source")
            return FileSource(
                src.path,
                serial=self.config.serial,
                block_s=src.block_s,
                realtime=src.speed == "realtime",
                default_clock_error_s=src.clock_error_s,
                on_error=on_error,
            )
        if src.kind == "sim":
            if not src.path:
                raise InputError("agent.source", "path", "a scenario file or example name")
            return SimSource(
                src.path, serial=self.config.serial, seed=src.seed, block_s=src.block_s
            )
        return LiveSource(
            SystemClock(),
            sample_rate_hz=src.sample_rate_hz,
            device=src.device,
            block_s=src.block_s,
            clock_error_s=src.clock_error_s,
            position=dict(self.config.position),
            max_s=src.max_s,
        )

    def _make_transport(self) -> Transport | None:
        t = self.config.transport
        if t.kind == "none":
            return None
        if t.kind == "https":
            if not t.url:
                raise InputError("agent.transport", "url", "required for https")
            return HttpTransport(t.url, ca_file=t.ca_file)
        return MqttTransport(
            t.host,
            t.port,
            serial=self.serial,
            prefix=t.topic_prefix,
            tls=t.tls,
            ca_file=t.ca_file,
            cert_file=t.cert_file,
            key_file=t.key_file,
        )

    def _emit(self, seq: int, kind: str, data: bytes) -> None:
        self.spool.put(seq, kind, data, self.clock.now())
        self._next_pump_s = 0.0

    def answer_search_requests(self) -> int:
        """Answer the signed search requests the transport has received; answers are spooled."""
        fetch = getattr(self.transport, "incoming_requests", None)
        if fetch is None:
            return 0
        answered = 0
        for request in fetch():
            if self.search is None:
                continue  # no server key configured: nothing can be authorized
            answer = self.search.handle(request)
            kind = MessageType.SEARCH_RESULT if answer.granted else MessageType.SEARCH_REFUSAL
            self._emit(answer.seq, str(kind), answer.message)
            answered += 1
        return answered

    def pump(self) -> PumpResult | None:
        if self.sender is None:
            return None
        result = self.sender.pump()
        self._totals[0] += result.delivered
        self._totals[1] += result.duplicates
        self._totals[2] += result.rejected
        self._next_pump_s = result.next_try_s or 0.0
        return result

    def run(self) -> RunSummary:
        """Process the whole source (forever for a live one), then close everything."""
        replay = self.clock if isinstance(self.clock, ReplayClock) else None
        try:
            for block in self.source.blocks():
                if replay is not None:
                    replay.advance_to(block.end_s)
                self.pipeline.process(block)
                if self.answer_search_requests():
                    self._next_pump_s = 0.0
                if self.sender is not None and self.clock.now() >= self._next_pump_s:
                    self.pump()
            self.pipeline.close(self.clock.now())
            if self.sender is not None:
                self.pump()
            pending = len(self.spool)
        finally:
            self.close()
        st = self.pipeline.stats
        return RunSummary(
            serial=self.serial,
            blocks=st.blocks,
            audio_s=st.samples / max(self.sample_rate_hz, 1),
            picks=st.picks,
            reports=st.reports,
            heartbeats=st.heartbeats,
            delivered=self._totals[0],
            duplicates=self._totals[1],
            rejected=self._totals[2],
            pending=pending,
            buffer_span_s=self.buffer.span_s,
            buffer_disk_bytes=self.buffer.disk_bytes,
            source_errors=[str(e) for e in getattr(self.source, "errors", [])],
        )

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.buffer.close()
        self.spool.close()
        if self.transport is not None:
            self.transport.close()
