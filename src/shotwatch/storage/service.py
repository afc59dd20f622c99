"""Saving and loading the pipeline's objects: plain functions taking the session as a keyword.

Each function works inside the caller's transaction (it flushes, never commits), so a caller
can store a shot, its pulses and its incident as one unit of work.

Rules (ADR 0050):
- Objects round-trip exactly to the :mod:`shotwatch.core.model` dataclasses.
- Pulses are idempotent on ``pulse_id``: a pulse seen again is reported as a duplicate (or a
  conflict when its content differs) and stored once.
- Stored versions are never overwritten. Saving an identical object again is a no-op; saving a
  different object under a stored id is refused: a revision is a new object whose
  ``provenance.supersedes`` names the one it replaces.
- Every stored row carries provenance; an object without it is refused with an
  :class:`InputError` naming the object.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import numpy as np
from sqlalchemy import ColumnElement, Table, and_, delete, exists, func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased

from shotwatch.core.errors import InputError
from shotwatch.core.model import (
    Ellipse,
    EvaluationMode,
    EvaluationStatus,
    Incident,
    Movement,
    Provenance,
    Pulse,
    Sensor,
    ShotLocation,
)
from shotwatch.storage.tables import (
    IncidentRow,
    IncidentShotRow,
    PulseAudioRow,
    PulseRow,
    SensorRow,
    ShotPulseRow,
    ShotRow,
)

#: Rows per INSERT / IN (...) batch: well inside SQLite's and PostgreSQL's parameter limits.
BATCH = 500


@dataclass(slots=True)
class SaveReport:
    """What a save did: ids stored now, ids already stored identically, ids refused because a
    different object is already stored under them (never overwritten)."""

    stored: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)

    def merge(self, other: SaveReport) -> None:
        self.stored += other.stored
        self.duplicates += other.duplicates
        self.conflicts += other.conflicts


# --------------------------------------------------------------------------- value mapping


def _nan_to_none(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def _none_to_nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _json_floats(value: Any) -> Any:
    """Nested sequences of floats -> JSON lists; non-finite floats as strings (JSON has none)."""
    if isinstance(value, list | tuple):
        return [_json_floats(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # 'nan', 'inf', '-inf'
    return value


def _tuple_floats(value: Any) -> Any:
    """Inverse of :func:`_json_floats`, lists back to tuples."""
    if isinstance(value, list):
        return tuple(_tuple_floats(v) for v in value)
    if isinstance(value, str) and value in ("nan", "inf", "-inf"):
        return float(value)
    return value


def _same(a: Any, b: Any) -> bool:
    """Equality that treats NaN as equal to NaN (stored objects carry NaN for unknowns)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if hasattr(a, "__dataclass_fields__") and type(a) is type(b):
        return all(_same(getattr(a, f), getattr(b, f)) for f in a.__dataclass_fields__)
    return bool(a == b)


def _require_provenance(obj_kind: str, obj_id: str, prov: Provenance | None) -> Provenance:
    if prov is None:
        raise InputError(f"{obj_kind} {obj_id}", "provenance", "every stored object needs one")
    return prov


def _prov_columns(prov: Provenance) -> dict[str, Any]:
    return {
        "mode": prov.mode.value,
        "algorithm": prov.algorithm,
        "version": prov.version,
        "created_s": prov.created_s,
        "author": prov.author,
    }


def _provenance(row: Any, supersedes: str | None) -> Provenance:
    return Provenance(
        mode=EvaluationMode(row.mode),
        algorithm=row.algorithm,
        version=row.version,
        created_s=row.created_s,
        author=row.author,
        supersedes=supersedes,
    )


def _chunks(items: Sequence[Any], n: int = BATCH) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


# --------------------------------------------------------------------------- sensors


def _sensor_model(row: SensorRow) -> Sensor:
    return Sensor(
        serial=row.serial,
        x_m=row.x_m,
        y_m=row.y_m,
        z_m=row.z_m,
        lat_deg=row.lat_deg,
        lon_deg=row.lon_deg,
        elevation_m=row.elevation_m,
    )


def _latest_sensor_rows(session: Session, serials: Sequence[str] | None = None) -> list[SensorRow]:
    newest = (
        select(SensorRow.serial, func.max(SensorRow.version_no).label("v"))
        .group_by(SensorRow.serial)
        .subquery()
    )
    stmt = select(SensorRow).join(
        newest, and_(SensorRow.serial == newest.c.serial, SensorRow.version_no == newest.c.v)
    )
    if serials is not None:
        stmt = stmt.where(SensorRow.serial.in_(serials))
    return list(session.scalars(stmt.order_by(SensorRow.serial)))


def save_sensors(
    sensors: Iterable[Sensor], *, session: Session, provenance: Provenance
) -> SaveReport:
    """Register sensors. A serial whose position changed gets a new version (the old one
    stays); an unchanged one is reported as a duplicate."""
    report = SaveReport()
    batch: dict[str, Sensor] = {}
    for s in sensors:
        if s.serial in batch and not _same(batch[s.serial], s):
            report.conflicts.append(s.serial)
            continue
        batch[s.serial] = s
    latest = {r.serial: r for r in _latest_sensor_rows(session, list(batch))}
    for serial, sensor in batch.items():
        old = latest.get(serial)
        if old is not None and _same(_sensor_model(old), sensor):
            report.duplicates.append(serial)
            continue
        session.add(
            SensorRow(
                serial=serial,
                version_no=1 if old is None else old.version_no + 1,
                x_m=sensor.x_m,
                y_m=sensor.y_m,
                z_m=sensor.z_m,
                lat_deg=sensor.lat_deg,
                lon_deg=sensor.lon_deg,
                elevation_m=sensor.elevation_m,
                supersedes=None if old is None else old.id,
                **_prov_columns(provenance),
            )
        )
        report.stored.append(serial)
    session.flush()
    return report


def load_sensors(*, session: Session, serials: Sequence[str] | None = None) -> list[Sensor]:
    """The current version of every sensor (or of ``serials``), ordered by serial."""
    return [_sensor_model(r) for r in _latest_sensor_rows(session, serials)]


def sensor_history(serial: str, *, session: Session) -> list[tuple[Sensor, Provenance]]:
    """Every stored version of one sensor, oldest first, with who registered it."""
    rows = session.scalars(
        select(SensorRow).where(SensorRow.serial == serial).order_by(SensorRow.version_no)
    )
    return [(_sensor_model(r), _provenance(r, None)) for r in rows]


# --------------------------------------------------------------------------- pulses


def _pulse_values(p: Pulse) -> dict[str, Any]:
    prov = _require_provenance("pulse", p.pulse_id, p.provenance)
    return {
        "pulse_id": p.pulse_id,
        "sensor": p.sensor,
        "t_s": p.t_s,
        "x_m": p.x_m,
        "y_m": p.y_m,
        "z_m": p.z_m,
        "snr_db": _nan_to_none(p.snr_db),
        "level_db_spl": _nan_to_none(p.level_db_spl),
        "clock_error_s": p.clock_error_s,
        "score": _nan_to_none(p.score),
        "supersedes": prov.supersedes,
        **_prov_columns(prov),
    }


def _pulse_model(row: PulseRow) -> Pulse:
    return Pulse(
        pulse_id=row.pulse_id,
        sensor=row.sensor,
        t_s=row.t_s,
        x_m=row.x_m,
        y_m=row.y_m,
        z_m=row.z_m,
        snr_db=_none_to_nan(row.snr_db),
        level_db_spl=_none_to_nan(row.level_db_spl),
        clock_error_s=row.clock_error_s,
        score=_none_to_nan(row.score),
        provenance=_provenance(row, row.supersedes),
    )


def _insert_ignoring_duplicates(session: Session, rows: list[dict[str, Any]]) -> set[str]:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING pulse_id: the ids actually inserted.

    PostgreSQL gets one statement per batch with a column of array parameters each
    (``SELECT FROM unnest(...)``), which the driver need not parse per row; SQLite gets one
    cached statement executed for many rows (SQLAlchemy's "insertmanyvalues")."""
    dialect = session.get_bind().dialect.name
    table = cast(Table, PulseRow.__table__)
    if dialect == "postgresql":
        cols = [c for c in table.columns]
        arrays = ", ".join(
            f"CAST(:{c.name} AS {c.type.compile(dialect=session.get_bind().dialect)}[])"
            for c in cols
        )
        stmt = text(
            f"INSERT INTO pulses ({', '.join(c.name for c in cols)}) "
            f"SELECT * FROM unnest({arrays}) ON CONFLICT DO NOTHING RETURNING pulse_id"
        )
        inserted: set[str] = set()
        for chunk in _chunks(rows, 5000):
            params = {c.name: [r[c.name] for r in chunk] for c in cols}
            inserted.update(session.execute(stmt, params).scalars())
        return inserted
    if dialect != "sqlite":  # pragma: no cover - only the two supported backends reach here
        raise InputError("--db", "url", f"unsupported database dialect {dialect!r}")
    ins = sqlite.insert(table).on_conflict_do_nothing().returning(table.c.pulse_id)
    if len(rows) == 1:
        return set(session.execute(ins, rows[0]).scalars())
    return set(session.execute(ins, rows).scalars())


def save_pulses(pulses: Iterable[Pulse], *, session: Session) -> SaveReport:
    """Store pulses once each. A pulse id seen before (in this batch or stored earlier) is
    reported under ``duplicates`` when identical, ``conflicts`` when its content differs;
    neither replaces what is stored. Safe against concurrent writers (ON CONFLICT DO NOTHING).
    """
    report = SaveReport()
    batch: dict[str, Pulse] = {}
    order: list[str] = []
    for p in pulses:
        seen = batch.get(p.pulse_id)
        if seen is not None:
            (report.duplicates if _same(seen, p) else report.conflicts).append(p.pulse_id)
            continue
        batch[p.pulse_id] = p
        order.append(p.pulse_id)
    rows = [_pulse_values(batch[i]) for i in order]
    inserted = _insert_ignoring_duplicates(session, rows) if rows else set()
    already = [i for i in order if i not in inserted]
    stored_before = {p.pulse_id: p for p in load_pulses_by_id(already, session=session)}
    for i in order:
        if i in inserted:
            report.stored.append(i)
        elif _same(stored_before[i], batch[i]):
            report.duplicates.append(i)
        else:
            report.conflicts.append(i)
    return report


def load_pulses_by_id(pulse_ids: Sequence[str], *, session: Session) -> list[Pulse]:
    """The stored pulses among ``pulse_ids`` (missing ids are simply absent), in time order."""
    out: list[PulseRow] = []
    for chunk in _chunks(list(dict.fromkeys(pulse_ids))):
        out += session.scalars(select(PulseRow).where(PulseRow.pulse_id.in_(chunk)))
    out.sort(key=lambda r: (r.t_s, r.pulse_id))
    return [_pulse_model(r) for r in out]


def load_pulses(
    *,
    session: Session,
    start_s: float | None = None,
    end_s: float | None = None,
    sensor: str | None = None,
) -> list[Pulse]:
    """Pulses with ``start_s <= t_s < end_s`` (either bound optional), in arrival order."""
    stmt = select(PulseRow)
    if start_s is not None:
        stmt = stmt.where(PulseRow.t_s >= start_s)
    if end_s is not None:
        stmt = stmt.where(PulseRow.t_s < end_s)
    if sensor is not None:
        stmt = stmt.where(PulseRow.sensor == sensor)
    return [
        _pulse_model(r) for r in session.scalars(stmt.order_by(PulseRow.t_s, PulseRow.pulse_id))
    ]


@dataclass(frozen=True)
class PulseAudio:
    """A pulse's audio snippet as stored: int16 samples from ``start_s`` at ``rate_hz``."""

    pulse_id: str
    sensor: str
    start_s: float
    rate_hz: int
    samples: np.ndarray


def audio_path(pulse_id: str, start_s: float) -> str:
    """Where a snippet's file lives under the evidence directory: by UTC hour of its start
    (retention works through old hours), named by a hash of the pulse id (ids are the
    sensors' own and need not be file-name safe)."""
    hour = datetime.fromtimestamp(start_s, UTC).strftime("%Y%m%d/%H")
    return f"audio/{hour}/{hashlib.sha256(pulse_id.encode()).hexdigest()[:32]}.s16le"


def save_pulse_audio(items: Iterable[PulseAudio], *, session: Session, root: Path) -> int:
    """Store snippets once each: the samples as a file under ``root`` (written to a temporary
    name, then renamed), the index row in the database. A pulse id already stored keeps what
    it has (a retried report carries the same audio; a different one under the same id is a
    fault, not evidence). Returns how many were new."""
    batch: dict[str, PulseAudio] = {}
    for a in items:
        batch.setdefault(a.pulse_id, a)
    if not batch:
        return 0
    known: set[str] = set()
    for chunk in _chunks(list(batch)):
        known.update(
            session.scalars(select(PulseAudioRow.pulse_id).where(PulseAudioRow.pulse_id.in_(chunk)))
        )
    rows = []
    for pid, a in batch.items():
        if pid in known:
            continue
        data = np.ascontiguousarray(a.samples, dtype="<i2").tobytes()
        rel = audio_path(pid, a.start_s)
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".part")
        tmp.write_bytes(data)
        tmp.replace(path)
        rows.append(
            {
                "pulse_id": pid,
                "sensor": a.sensor,
                "start_s": float(a.start_s),
                "rate_hz": int(a.rate_hz),
                "n_samples": len(data) // 2,
                "path": rel,
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        )
    if not rows:
        return 0
    table = cast(Table, PulseAudioRow.__table__)
    dialect = session.get_bind().dialect.name
    ins = (postgresql if dialect == "postgresql" else sqlite).insert(table)
    stmt = ins.on_conflict_do_nothing().returning(table.c.pulse_id)
    return sum(len(session.execute(stmt, list(c)).all()) for c in _chunks(rows, 500))


def load_pulse_audio(
    pulse_ids: Sequence[str], *, session: Session, root: Path
) -> dict[str, PulseAudio]:
    """The stored snippets among ``pulse_ids``; one whose file is missing or no longer
    matches its SHA-256 is refused (an :class:`InputError` naming the pulse)."""
    out: dict[str, PulseAudio] = {}
    for chunk in _chunks(list(dict.fromkeys(pulse_ids))):
        for r in session.scalars(select(PulseAudioRow).where(PulseAudioRow.pulse_id.in_(chunk))):
            where = f"pulse_audio {r.pulse_id}"
            try:
                data = (root / r.path).read_bytes()
            except OSError as exc:
                raise InputError(where, "path", f"cannot read {r.path}: {exc}") from exc
            if hashlib.sha256(data).hexdigest() != r.sha256:
                raise InputError(where, "samples", f"{r.path}: SHA-256 mismatch")
            samples = np.frombuffer(data, dtype="<i2").astype(np.int16)
            out[r.pulse_id] = PulseAudio(r.pulse_id, r.sensor, r.start_s, r.rate_hz, samples)
    return out


def delete_pulse_audio(pulse_ids: Sequence[str], *, session: Session, root: Path) -> int:
    """Remove these snippets (files, then index rows); returns how many rows went."""
    n = 0
    for chunk in _chunks(list(dict.fromkeys(pulse_ids))):
        rows = list(
            session.execute(
                select(PulseAudioRow.pulse_id, PulseAudioRow.path).where(
                    PulseAudioRow.pulse_id.in_(chunk)
                )
            )
        )
        for _pid, rel in rows:
            (root / rel).unlink(missing_ok=True)
        n += int(
            session.execute(  # type: ignore[attr-defined]
                delete(PulseAudioRow).where(PulseAudioRow.pulse_id.in_([r[0] for r in rows]))
            ).rowcount
            or 0
        )
    return n


def load_shots_by_id(shot_ids: Sequence[str], *, session: Session) -> list[ShotLocation]:
    """The stored shot versions among ``shot_ids`` (missing ids are absent), in time order."""
    out: list[ShotRow] = []
    for chunk in _chunks(list(dict.fromkeys(shot_ids))):
        out += session.scalars(select(ShotRow).where(ShotRow.shot_id.in_(chunk)))
    out.sort(key=lambda r: (r.t0_s, r.shot_id))
    return [_shot_model(r) for r in out]


def count_pulses(*, session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(PulseRow)) or 0)


# --------------------------------------------------------------------------- shots


def _shot_row(s: ShotLocation) -> ShotRow:
    prov = _require_provenance("shot", s.shot_id, s.provenance)
    roles: dict[str, dict[str, Any]] = {}

    def role(pid: str) -> dict[str, Any]:
        return roles.setdefault(
            pid, {"used_ord": None, "has_residual": False, "residual_s": None, "outlier_ord": None}
        )

    for i, pid in enumerate(s.pulse_ids):
        role(pid)["used_ord"] = i
    for pid, res in s.residuals_s.items():
        r = role(pid)
        r["has_residual"] = True
        r["residual_s"] = _nan_to_none(res)
    for i, pid in enumerate(s.outliers):
        role(pid)["outlier_ord"] = i
    e = s.ellipse
    alt = s.alternative_xy_m
    row = ShotRow(
        shot_id=s.shot_id,
        t0_s=s.t0_s,
        x_m=s.x_m,
        y_m=s.y_m,
        z_m=s.z_m,
        sensors=list(s.sensors),
        residual_rms_s=_nan_to_none(s.residual_rms_s),
        uncertainty_m=_nan_to_none(s.uncertainty_m),
        ellipse_semi_major_m=None if e is None else e.semi_major_m,
        ellipse_semi_minor_m=None if e is None else e.semi_minor_m,
        ellipse_azimuth_deg=None if e is None else e.azimuth_deg,
        ellipse_confidence=None if e is None else e.confidence,
        covariance=None if s.covariance is None else _json_floats(s.covariance),
        dims=s.dims,
        quality=_nan_to_none(s.quality),
        ambiguous=s.ambiguous,
        alt_x_m=None if alt is None else alt[0],
        alt_y_m=None if alt is None else alt[1],
        speed_of_sound_mps=s.speed_of_sound_mps,
        lat_deg=s.lat_deg,
        lon_deg=s.lon_deg,
        status=s.status.value,
        supersedes=prov.supersedes,
        **_prov_columns(prov),
    )
    row.links = [ShotPulseRow(pulse_id=pid, **r) for pid, r in roles.items()]
    return row


def _shot_model(row: ShotRow) -> ShotLocation:
    used = sorted(
        (lk for lk in row.links if lk.used_ord is not None), key=lambda lk: lk.used_ord or 0
    )
    outl = sorted(
        (lk for lk in row.links if lk.outlier_ord is not None), key=lambda lk: lk.outlier_ord or 0
    )
    ellipse = None
    if row.ellipse_semi_major_m is not None:
        ellipse = Ellipse(
            semi_major_m=row.ellipse_semi_major_m,
            semi_minor_m=_none_to_nan(row.ellipse_semi_minor_m),
            azimuth_deg=_none_to_nan(row.ellipse_azimuth_deg),
            confidence=_none_to_nan(row.ellipse_confidence),
        )
    alt = None
    if row.alt_x_m is not None and row.alt_y_m is not None:
        alt = (row.alt_x_m, row.alt_y_m)
    # residuals in the order the pulses were used, then any residual-only pulses by id
    with_res = sorted(
        (lk for lk in row.links if lk.has_residual),
        key=lambda lk: (lk.used_ord is None, lk.used_ord or 0, lk.pulse_id),
    )
    return ShotLocation(
        shot_id=row.shot_id,
        t0_s=row.t0_s,
        x_m=row.x_m,
        y_m=row.y_m,
        z_m=row.z_m,
        pulse_ids=tuple(lk.pulse_id for lk in used),
        sensors=tuple(row.sensors),
        residuals_s={lk.pulse_id: _none_to_nan(lk.residual_s) for lk in with_res},
        residual_rms_s=_none_to_nan(row.residual_rms_s),
        uncertainty_m=_none_to_nan(row.uncertainty_m),
        ellipse=ellipse,
        covariance=None if row.covariance is None else _tuple_floats(row.covariance),
        dims=row.dims,
        quality=_none_to_nan(row.quality),
        outliers=tuple(lk.pulse_id for lk in outl),
        ambiguous=row.ambiguous,
        alternative_xy_m=alt,
        speed_of_sound_mps=row.speed_of_sound_mps,
        lat_deg=row.lat_deg,
        lon_deg=row.lon_deg,
        status=EvaluationStatus(row.status),
        provenance=_provenance(row, row.supersedes),
    )


def save_shots(shots: Iterable[ShotLocation], *, session: Session) -> SaveReport:
    """Store shot locations (their pulses must be stored first). An identical shot already
    stored is a duplicate; a different shot under a stored id is refused (``conflicts``).
    The batch is checked and written with a handful of queries, not a few per shot."""
    return _save_versions(
        list(shots),
        session=session,
        kind="shot",
        model=ShotRow,
        id_of=lambda s: s.shot_id,
        to_row=_shot_row,
        to_model=_shot_model,
        refs=lambda s: set(s.pulse_ids) | set(s.residuals_s) | set(s.outliers),
        ref_col=PulseRow.pulse_id,
        ref_field="pulse_ids",
        ref_kind="pulses",
    )


def _present(session: Session, col: Any, ids: Iterable[str]) -> set[str]:
    found: set[str] = set()
    for chunk in _chunks(sorted(set(ids))):
        found.update(session.scalars(select(col).where(col.in_(chunk))))
    return found


def _save_versions(
    items: list[Any],
    *,
    session: Session,
    kind: str,
    model: Any,
    id_of: Callable[[Any], str],
    to_row: Callable[[Any], Any],
    to_model: Callable[[Any], Any],
    refs: Callable[[Any], set[str]],
    ref_col: Any,
    ref_field: str,
    ref_kind: str,
) -> SaveReport:
    report = SaveReport()
    pk = model.__mapper__.primary_key[0]
    existing: dict[str, Any] = {}
    ids = [id_of(o) for o in items]
    for chunk in _chunks(sorted(set(ids))):
        existing.update(
            (id_of_row, row)
            for row in session.scalars(select(model).where(pk.in_(chunk)))
            for id_of_row in [getattr(row, pk.key)]
        )
    batch: dict[str, Any] = {}
    for obj in items:
        oid = id_of(obj)
        _require_provenance(kind, oid, obj.provenance)
        if oid in batch:
            (report.duplicates if _same(batch[oid], obj) else report.conflicts).append(oid)
        elif oid in existing:
            old = to_model(existing[oid])
            (report.duplicates if _same(old, obj) else report.conflicts).append(oid)
        else:
            batch[oid] = obj
    if not batch:
        return report
    have = _present(session, ref_col, set().union(*(refs(o) for o in batch.values())))
    superseded = {
        o.provenance.supersedes for o in batch.values() if o.provenance.supersedes is not None
    }
    known = _present(session, pk, superseded) | set(batch)
    for oid, obj in batch.items():
        missing = refs(obj) - have
        if missing:
            raise InputError(
                f"{kind} {oid}", ref_field, f"{ref_kind} not stored: {sorted(missing)}"
            )
        sup = obj.provenance.supersedes
        if sup == oid:
            raise InputError(f"{kind} {oid}", "provenance.supersedes", "cannot supersede itself")
        if sup is not None and sup not in known:
            raise InputError(
                f"{kind} {oid}",
                "provenance.supersedes",
                f"supersedes {sup!r}, which is not stored",
            )
    session.add_all(to_row(o) for o in batch.values())
    session.flush()
    report.stored += list(batch)
    return report


def load_shot(shot_id: str, *, session: Session) -> ShotLocation | None:
    row = session.get(ShotRow, shot_id)
    return None if row is None else _shot_model(row)


def _not_superseded(model: Any, key: Any) -> ColumnElement[bool]:
    newer = aliased(model)
    return ~exists().where(newer.supersedes == key)


def load_shots(
    *,
    session: Session,
    start_s: float | None = None,
    end_s: float | None = None,
    latest_only: bool = True,
) -> list[ShotLocation]:
    """Shots with origin time in ``[start_s, end_s)``, in time order; by default only the
    current version of each (rows no other row supersedes)."""
    stmt = select(ShotRow)
    if start_s is not None:
        stmt = stmt.where(ShotRow.t0_s >= start_s)
    if end_s is not None:
        stmt = stmt.where(ShotRow.t0_s < end_s)
    if latest_only:
        stmt = stmt.where(_not_superseded(ShotRow, ShotRow.shot_id))
    return [_shot_model(r) for r in session.scalars(stmt.order_by(ShotRow.t0_s, ShotRow.shot_id))]


# --------------------------------------------------------------------------- incidents


def _incident_row(inc: Incident) -> IncidentRow:
    prov = _require_provenance("incident", inc.incident_id, inc.provenance)
    mv = inc.movement
    row = IncidentRow(
        incident_id=inc.incident_id,
        start_s=inc.start_s,
        end_s=inc.end_s,
        x_m=inc.x_m,
        y_m=inc.y_m,
        rounds=inc.rounds,
        shooters=inc.shooters,
        shooter_positions=_json_floats(inc.shooter_positions),
        automatic=inc.automatic,
        cadence_rps=inc.cadence_rps,
        movement_speed_mps=None if mv is None else mv.speed_mps,
        movement_heading_deg=None if mv is None else mv.heading_deg,
        movement_distance_m=None if mv is None else mv.distance_m,
        lat_deg=inc.lat_deg,
        lon_deg=inc.lon_deg,
        gunfire_probability=inc.gunfire_probability,
        label=inc.label,
        status=inc.status.value,
        extra=dict(inc.extra),
        supersedes=prov.supersedes,
        **_prov_columns(prov),
    )
    row.links = [IncidentShotRow(shot_id=sid, ord=i) for i, sid in enumerate(inc.shot_ids)]
    return row


def _incident_model(row: IncidentRow) -> Incident:
    movement = None
    if row.movement_speed_mps is not None:
        movement = Movement(
            speed_mps=row.movement_speed_mps,
            heading_deg=_none_to_nan(row.movement_heading_deg),
            distance_m=_none_to_nan(row.movement_distance_m),
        )
    return Incident(
        incident_id=row.incident_id,
        shot_ids=tuple(lk.shot_id for lk in sorted(row.links, key=lambda lk: lk.ord)),
        start_s=row.start_s,
        end_s=row.end_s,
        x_m=row.x_m,
        y_m=row.y_m,
        rounds=row.rounds,
        shooters=row.shooters,
        shooter_positions=_tuple_floats(row.shooter_positions),
        automatic=row.automatic,
        cadence_rps=row.cadence_rps,
        movement=movement,
        lat_deg=row.lat_deg,
        lon_deg=row.lon_deg,
        gunfire_probability=row.gunfire_probability,
        label=row.label,
        status=EvaluationStatus(row.status),
        provenance=_provenance(row, row.supersedes),
        extra=dict(row.extra or {}),
    )


def save_incidents(incidents: Iterable[Incident], *, session: Session) -> SaveReport:
    """Store incidents (their shots must be stored first); same version rules as shots."""
    return _save_versions(
        list(incidents),
        session=session,
        kind="incident",
        model=IncidentRow,
        id_of=lambda i: i.incident_id,
        to_row=_incident_row,
        to_model=_incident_model,
        refs=lambda i: set(i.shot_ids),
        ref_col=ShotRow.shot_id,
        ref_field="shot_ids",
        ref_kind="shots",
    )


def load_incident(incident_id: str, *, session: Session) -> Incident | None:
    row = session.get(IncidentRow, incident_id)
    return None if row is None else _incident_model(row)


def query_incidents(
    *,
    session: Session,
    start_s: float | None = None,
    end_s: float | None = None,
    latest_only: bool = True,
    limit: int | None = None,
) -> list[Incident]:
    """Incidents overlapping ``[start_s, end_s)`` (an incident from ``start`` to ``end`` is
    included when ``start < end_s`` and ``end >= start_s``), ordered by start time. By
    default only current versions (rows no other row supersedes)."""
    stmt = select(IncidentRow)
    if end_s is not None:
        stmt = stmt.where(IncidentRow.start_s < end_s)
    if start_s is not None:
        stmt = stmt.where(IncidentRow.end_s >= start_s)
    if latest_only:
        stmt = stmt.where(_not_superseded(IncidentRow, IncidentRow.incident_id))
    stmt = stmt.order_by(IncidentRow.start_s, IncidentRow.incident_id)
    if limit is not None:
        stmt = stmt.limit(limit)
    return [_incident_model(r) for r in session.scalars(stmt)]


def incident_history(incident_id: str, *, session: Session) -> list[Incident]:
    """Every version in ``incident_id``'s chain, oldest first (follows ``supersedes`` back to
    the machine's original and forward to the newest review)."""
    row = session.get(IncidentRow, incident_id)
    if row is None:
        return []
    while row.supersedes is not None:  # back to the original
        parent = session.get(IncidentRow, row.supersedes)
        if parent is None:  # pragma: no cover - the foreign key prevents this
            break
        row = parent
    chain = [row]
    frontier = [row.incident_id]
    while frontier:  # forward through every later version (reviews may branch)
        children = list(
            session.scalars(
                select(IncidentRow)
                .where(IncidentRow.supersedes.in_(frontier))
                .order_by(IncidentRow.created_s, IncidentRow.incident_id)
            )
        )
        chain += children
        frontier = [c.incident_id for c in children]
    return [_incident_model(r) for r in chain]
