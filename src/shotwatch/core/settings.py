"""One settings schema: every setting has a name, a default, a unit (in its name) and help.

Settings come from (highest first) explicit arguments, environment variables
``SHOTWATCH_<SECTION>__<NAME>``, a TOML file given with ``--config``, then the defaults here.
The reference page docs/reference/settings.md is generated from this schema
(``shotwatch settings docs``) and a test fails when the two drift apart.

Each domain owns one section class below; add fields only with ``Field(description=...)`` and
a unit suffix (``_s``, ``_m``, ``_hz``, ``_db``, ``_mps``, ``_c``...) where the value has a unit.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shotwatch.core.errors import InputError


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PickerSettings(Section):
    """Impulse picking on each sensor's audio."""

    min_snr_db: float = Field(
        6.0, description="Smallest signal-to-noise ratio reported as a pulse."
    )
    dead_time_s: float = Field(
        0.05, ge=0.0, le=2.0, description="Minimum spacing between two pulses on one sensor."
    )
    highpass_hz: float = Field(
        250.0,
        gt=0.0,
        le=5000.0,
        description="Corner of the causal Butterworth high-pass applied before detection.",
    )
    sta_s: float = Field(
        0.001, gt=0.0, le=0.1, description="Short-term average time constant of the detector."
    )
    lta_s: float = Field(
        0.5, gt=0.0, le=60.0, description="Long-term (noise) average time constant."
    )
    trigger_on_db: float = Field(
        10.0, ge=0.0, le=60.0, description="STA/LTA energy ratio that opens a trigger."
    )
    trigger_off_db: float = Field(
        5.0, ge=0.0, le=60.0, description="STA/LTA ratio below which the detector re-arms."
    )
    upsample: int = Field(
        8, ge=1, le=64, description="Onset refinement resolution: 1/upsample of a sample."
    )


class AssociationSettings(Section):
    """Grouping pulses from many sensors into shots (ADR 0015)."""

    min_sensors: int = Field(3, ge=3, le=64, description="Sensors needed to form a shot.")
    max_station_distance_m: float = Field(
        2500.0, gt=0, description="Largest sensor-to-source distance considered."
    )
    pick_tolerance_s: float = Field(
        0.008,
        gt=0,
        description="Origin-time agreement that counts a sensor as supporting a new shot "
        "(pick error plus what the propagation model leaves out between near sensors).",
    )
    propagation_error: float = Field(
        0.0,
        ge=0,
        le=0.05,
        description="How far the straight-ray, still-air model may be off between two "
        "sensors, as a share of the sound's travel time between them (wind, temperature "
        "and terrain the model leaves out): a pulse agrees with a new shot within "
        "pick_tolerance_s plus this share of its sensor's travel time from the latest "
        "arrival's. A deployment's own located shots measure it "
        "(shotwatch.association.calibration); 0.005 is 1.7 m/s of wind or 3 degC.",
    )
    early_tolerance_s: float = Field(
        0.015,
        ge=0,
        description="How much earlier than a shot's predicted arrival a member pulse may be.",
    )
    late_tolerance_s: float = Field(
        0.03,
        ge=0,
        description="How much later than a shot's predicted arrival a member pulse may be "
        "(non-line-of-sight paths only ever arrive late).",
    )
    nucleation_neighbours: int = Field(
        24,
        ge=2,
        le=256,
        description="Nearest sensors whose free pulses a new pulse is paired with to start a "
        "shot. The first K sensors to hear a shot lie within twice the K-th one's distance of "
        "it, where about 4K sensors are, whatever the network's density: 24 serves K <= 6.",
    )
    nucleation_support: int = Field(
        4,
        ge=3,
        le=64,
        description="Fewest agreeing sensors a new shot needs to start, where at least that "
        "many lie near it (fewer in a sparse network: all that could check it); more when "
        "the neighbours' pulse rates make chance agreement likely (nucleation_false_alarm).",
    )
    nucleation_false_alarm: float = Field(
        0.3,
        gt=0,
        le=1,
        description="Chance, per new pulse, that the best source its search tries reaches "
        "the required agreeing sensors by chance at the neighbours' pulse rates.",
    )
    onset_gap_s: float = Field(
        0.25,
        ge=0,
        description="A pulse this long after its sensor's previous one starts a burst; burst "
        "starts are first paired with other sensors' burst starts (rapid fire).",
    )
    repeat_tolerance_s: float = Field(
        0.004,
        gt=0,
        description="Another round from the same place arrives at every sensor with the same "
        "lag behind the first (the paths are the same): the lag may scatter this much.",
    )
    repeat_support: int = Field(
        4,
        ge=3,
        le=64,
        description="Sensors whose arrivals must share one lag behind a shot's to start a "
        "repeat of it (another round from the same place).",
    )
    window_s: float = Field(
        12.0, gt=0, description="Longest a pulse waits in the buffer for partners."
    )
    min_heard_fraction: float = Field(
        0.6,
        ge=0,
        le=1,
        description="Share of in-service sensors closer than the median reporting sensor that "
        "must have heard a shot (3/4 of it within the farthest; more for 3-4 sensor sets).",
    )
    silence_window_s: float = Field(
        0.1,
        gt=0,
        description="A sensor with any pulse this long after its predicted arrival was not "
        "silent (non-line-of-sight paths arrive late).",
    )
    masking_s: float = Field(
        1.0,
        ge=0,
        description="A sensor that reported a pulse this long before a shot's predicted "
        "arrival may have been deaf to it (reverberation, dead time): its silence is not "
        "held against the shot.",
    )
    significance_z: float = Field(
        4.0,
        ge=0,
        description="Standard deviations by which a shot's agreeing sensors must exceed the "
        "count expected by chance from each sensor's local pulse rate.",
    )
    same_emission_s: float = Field(
        0.015,
        ge=0,
        description="Two shots whose origin times differ by less than this are one emission "
        "heard twice (a reflection or a split set): the better-supported one is kept.",
    )
    echo_tail_s: float = Field(
        2.0,
        ge=0,
        description="After a shot, pulses this long after its arrival at a sensor may be echoes.",
    )
    echo_support_ratio: float = Field(
        0.6,
        ge=0,
        le=1,
        description="A set heard mostly in the echo tail of a shot elsewhere at the same "
        "sensors, with fewer than this share of that shot's sensors, is taken for its echoes.",
    )
    batch_s: float = Field(
        0.0,
        ge=0,
        description="feed() handles pulses once the oldest waiting one is this many stream "
        "seconds old (0: each pulse at once, the lowest latency).",
    )


class LocationSettings(Section):
    """TDOA multilateration."""

    dims: int = Field(2, ge=2, le=3, description="Solve for x, y (2) or x, y, z (3).")
    default_temperature_c: float = Field(
        15.0, ge=-60, le=60, description="Air temperature used when no weather is known."
    )
    pick_sigma_s: float = Field(
        0.0015, gt=0, description="One-sigma arrival-time error assumed for uncertainty."
    )
    model_sigma_s: float = Field(
        0.0,
        ge=0,
        description="Prior one-sigma arrival-time error of the propagation model (paths "
        "around buildings, source height, wind), pooled with the fit's own residuals for the "
        "reported uncertainty: a fit with no spare sensor gets this; 0 (default) uses the fit "
        "alone. Real urban data calls for ~0.006 (ADR 0014); off until the consumers that "
        "use 3 x uncertainty as a same-place radius are re-tuned.",
    )
    late_scale_s: float = Field(
        0.01,
        gt=0,
        description="Scale of the Cauchy down-weighting of late (non-line-of-sight) arrivals.",
    )
    early_scale_s: float = Field(
        0.03,
        gt=0,
        description="Scale of the (gentler) down-weighting of early arrivals.",
    )
    hearing_range_m: float = Field(
        1000.0,
        gt=0,
        description="Distance at which a sensor hears a typical gunshot half the time: of two "
        "solutions of a three-sensor set, one far beyond the reporting sensors is less likely.",
    )
    height_min_evidence: float = Field(
        3.84,
        ge=0,
        description="With dims=3, the drop of the weighted squared residuals, in units of the "
        "fit's error variance, that solving the source height must bring to be kept over the "
        "fixed-height solve (3.84: chi-square, 1 degree of freedom, 95 %); 0 always keeps it.",
    )
    height_min_sensors: int = Field(
        5,
        ge=4,
        description="With dims=3, sensors needed to also solve the source height; smaller "
        "sets are solved for x, y with the height at the sensors' median.",
    )


class IncidentSettings(Section):
    """Grouping shots into incidents."""

    max_gap_s: float = Field(
        30.0, gt=0, description="Shots further apart in time start a new incident."
    )
    max_distance_m: float = Field(
        250.0, gt=0, description="Shots further apart in space start a new incident."
    )
    shooter_separation_m: float = Field(
        25.0, gt=0, description="Shot clusters further apart than this are separate shooters."
    )
    automatic_min_rounds: int = Field(
        4, ge=2, description="Rounds needed before cadence can flag automatic fire."
    )
    automatic_min_rate_rps: float = Field(
        8.0, gt=0, description="Sustained cadence (rounds per second) that counts as automatic."
    )
    duplicate_window_s: float = Field(
        0.03,
        ge=0,
        description="Shots closer in origin time than this (and close in space) are one round.",
    )
    duplicate_distance_m: float = Field(
        10.0,
        ge=0,
        description="Floor of the distance within which near-simultaneous shots "
        "are one round (grows with the locations' uncertainty).",
    )
    movement_min_sigma: float = Field(
        3.0,
        gt=0,
        description="A shooter is reported moving only when the fitted speed exceeds this many "
        "standard errors.",
    )
    movement_min_distance_m: float = Field(
        5.0, ge=0, description="Smallest fitted displacement reported as movement."
    )
    reliable_max_rms_s: float = Field(
        0.004,
        gt=0,
        description="Shots whose arrival-time residual RMS exceeds this count as rounds but "
        "neither start a shooter nor move one (their position is doubtful).",
    )
    reliable_rms_ratio: float = Field(
        1.5,
        ge=1.0,
        description="A shot is also doubtful when its residual RMS exceeds this many times the "
        "incident's best (the propagation error all its rounds share), whichever is larger.",
    )


class ClassificationSettings(Section):
    """Gunfire classification of pulses and incidents."""

    trigger_db: float = Field(
        8.0,
        ge=3.0,
        le=30.0,
        description="Energy rise (2-ms frame over the previous 0.5 s) at which a file's "
        "impulse is classified.",
    )
    incident_prior_log_odds: float = Field(
        0.0,
        ge=-10.0,
        le=10.0,
        description="Deployment base rate of gunfire among impulsive incidents, as log-odds "
        "(0 = even odds, the pulse model's calibration).",
    )
    incident_threshold: float = Field(
        0.5, gt=0.0, lt=1.0, description="Fused probability at which an incident is gunfire."
    )


class StorageSettings(Section):
    """Where records are kept."""

    url: str = Field(
        "sqlite:///shotwatch.db",
        description="SQLAlchemy database URL (SQLite file by default; postgresql+psycopg://...).",
    )
    evidence_dir: str = Field(
        "shotwatch-evidence",
        description="Directory of the server's evidence files (sensor audio snippets, indexed "
        "in the database; each checked against its SHA-256 when read). Shared by every server "
        "of a deployment.",
    )


# Policy maxima (NYPD ShotSpotter Impact and Use Policy, 2021; SF DEM 19B policy): sensors
# keep at most 30 hours of audio, first in first out, and send only 1 s before to 1 s after an
# impulse. A setting can be lowered below these, never raised above them.
POLICY_MAX_RETENTION_H = 30.0
POLICY_SNIPPET_PRE_S = 1.0
POLICY_SNIPPET_POST_S = 1.0


class SensorSettings(Section):
    """The sensor agent: audio buffer, reports, missed-shot search and health (issue 4)."""

    retention_h: float = Field(
        POLICY_MAX_RETENTION_H,
        gt=0,
        le=POLICY_MAX_RETENTION_H,
        description="Hours of audio kept in the on-sensor buffer (policy maximum 30).",
    )
    segment_s: float = Field(
        60.0, ge=0.05, le=600.0, description="Length of one encrypted buffer segment file."
    )
    snippet_pre_s: float = Field(
        POLICY_SNIPPET_PRE_S,
        ge=0.0,
        le=POLICY_SNIPPET_PRE_S,
        description="Audio sent before an impulse (policy maximum 1 s).",
    )
    snippet_post_s: float = Field(
        POLICY_SNIPPET_POST_S,
        ge=0.0,
        le=POLICY_SNIPPET_POST_S,
        description="Audio sent after an impulse (policy maximum 1 s).",
    )
    max_search_window_s: float = Field(
        300.0,
        gt=0,
        le=3600.0,
        description="Longest audio window one authorized missed-shot search may return.",
    )
    search_request_ttl_s: float = Field(
        900.0, gt=0, description="A signed search request older than this is refused."
    )
    max_message_bytes: int = Field(
        393_216, ge=4096, description="Largest signed report or heartbeat the server accepts."
    )
    heartbeat_interval_s: float = Field(
        60.0, gt=0, description="Seconds between two heartbeats of a sensor."
    )
    offline_after_s: float = Field(
        300.0, gt=0, description="A sensor silent for this long is raised as offline."
    )
    max_clock_error_s: float = Field(
        0.005, gt=0, description="Clock-error bound above which a sensor is degraded."
    )
    noise_jump_db: float = Field(
        12.0, gt=0, description="Noise-floor rise over the sensor's baseline that is degraded."
    )
    max_clipped_fraction: float = Field(
        0.001, ge=0, le=1, description="Fraction of clipped samples that makes a sensor degraded."
    )
    moved_threshold_m: float = Field(
        10.0, gt=0, description="Position change that raises a sensor-moved alert."
    )
    retry_initial_s: float = Field(
        1.0, gt=0, description="First retry delay of the report spool (doubles each failure)."
    )
    retry_max_s: float = Field(60.0, gt=0, description="Longest retry delay of the report spool.")
    full_scale_db_spl: float = Field(
        120.0,
        ge=60.0,
        le=200.0,
        description="Sound level (dB SPL) of digital full scale for sensors whose reports do "
        "not state their own calibration: a report's level_dbfs plus this is the pulse's level, "
        "which association compares across sensors.",
    )


class DispatchSettings(Section):
    """Review console, dispatch and the web server (issue 5)."""

    mode: str = Field(
        "nypd",
        description="Deployment flow: 'nypd' (confirmed -> CAD job) or 'sfdem' "
        "(supervisors enter activations into CAD; 7-day visibility).",
    )
    policy_id: str = Field(
        "", description="Policy file governing access (default: the mode's policy)."
    )
    boundaries_file: str = Field(
        "", description="Police boundary GeoJSON used to route calls (required to serve)."
    )
    max_snap_m: float = Field(
        250.0, ge=0, description="Points outside every boundary route to the nearest within this."
    )
    supervisor_workstations: list[str] = Field(
        default_factory=list, description="SF DEM: workstations where supervisors may see data."
    )
    users_file: str = Field("", description="TOML file of users ([[user]] tables, hashed tokens).")
    webhook_url: str = Field("", description="Signed JSON webhook for calls (empty: off).")
    cap_url: str = Field("", description="Endpoint receiving CAP 1.2 XML alerts (empty: off).")
    eido_url: str = Field("", description="Endpoint receiving NENA EIDO JSON (empty: off).")
    secret_env: str = Field(
        "SHOTWATCH_DISPATCH_SECRET", description="Environment variable holding the HMAC secret."
    )
    agency_id: str = Field("shotwatch.local", description="Agency id used in CAP and EIDO.")
    max_attempts: int = Field(5, ge=1, le=20, description="Delivery attempts per channel.")
    retry_base_s: float = Field(0.2, gt=0, description="First retry delay (doubles each time).")
    max_report_bytes: int = Field(
        393_216, gt=0, description="Largest sensor report accepted over HTTPS."
    )
    origin_lat_deg: float | None = Field(
        None, ge=-90, le=90, description="Latitude of the deployment's local frame origin."
    )
    origin_lon_deg: float | None = Field(
        None, ge=-180, le=180, description="Longitude of the deployment's local frame origin."
    )
    host: str = Field("127.0.0.1", description="Address `shotwatch serve` listens on.")
    port: int = Field(8080, ge=1, le=65535, description="Port `shotwatch serve` listens on.")


class PolicySettings(Section):
    """Identity, authentication, authorization and the audit log (policy, audit, records)."""

    policy_dir: str = Field(
        "", description="Folder of policy files (*.toml); empty: the packaged policies."
    )
    internal_networks: list[str] = Field(
        default_factory=lambda: ["127.0.0.0/8", "10.0.0.0/8", "::1/128"],
        description="Network ranges that count as on-site; any other address is remote and "
        "needs a TOTP second factor.",
    )
    session_expiry_s: float = Field(
        8 * 3600.0, gt=0, description="A session ends this long after sign-in."
    )
    session_idle_s: float = Field(
        900.0, gt=0, description="A session ends after this long without a request."
    )
    lockout_failures: int = Field(
        5, ge=1, description="Failed sign-ins in a row that lock an account."
    )
    lockout_s: float = Field(900.0, gt=0, description="How long a locked account stays locked.")
    audit_checkpoint_every: int = Field(
        1000, ge=1, description="Sign a checkpoint of the audit log every this many entries."
    )
    audit_signing_key: str = Field(
        "audit-signing.key",
        description="Ed25519 private key (PEM) that signs audit checkpoints and certificates.",
    )
    ldap_url: str = Field(
        "", description="Directory (LDAP / Active Directory) URL; empty: local accounts only."
    )
    ldap_user_dn_template: str = Field(
        "uid={username},ou=people,dc=example,dc=org",
        description="Distinguished name a user binds as; {username} is replaced.",
    )
    ldap_timeout_s: float = Field(5.0, gt=0, description="Directory connect/receive timeout.")


class Settings(BaseSettings):
    """All of ShotWatch's settings."""

    model_config = SettingsConfigDict(
        env_prefix="SHOTWATCH_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    picker: PickerSettings = Field(default_factory=PickerSettings)
    association: AssociationSettings = Field(default_factory=AssociationSettings)
    location: LocationSettings = Field(default_factory=LocationSettings)
    incidents: IncidentSettings = Field(default_factory=IncidentSettings)
    classification: ClassificationSettings = Field(default_factory=ClassificationSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    sensor: SensorSettings = Field(default_factory=SensorSettings)
    dispatch: DispatchSettings = Field(default_factory=DispatchSettings)
    policy: PolicySettings = Field(default_factory=PolicySettings)


def load_settings(path: str | Path | None = None, **overrides: Any) -> Settings:
    """Settings from an optional TOML file, the environment and keyword overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise InputError(str(p), "config", "file not found") from exc
        except tomllib.TOMLDecodeError as exc:
            raise InputError(str(p), "config", f"not valid TOML: {exc}") from exc
    data.update(overrides)
    try:
        return Settings(**data)
    except Exception as exc:  # pydantic.ValidationError names every bad field
        raise InputError(str(path or "settings"), "settings", str(exc)) from exc


def settings_reference_markdown() -> str:
    """The settings reference page, generated from the schema."""
    lines = [
        "# Settings reference",
        "",
        "Generated by `shotwatch settings docs` from `shotwatch.core.settings`; do not edit.",
        "Environment variables: `SHOTWATCH_<SECTION>__<NAME>` (upper case).",
        "",
    ]
    for section_name, section_field in Settings.model_fields.items():
        cls = section_field.default_factory() if section_field.default_factory else None  # type: ignore[call-arg]
        if cls is None:
            continue
        model = type(cls)
        lines += [f"## `{section_name}`", "", (model.__doc__ or "").strip(), ""]
        lines += ["| name | default | help |", "|---|---|---|"]
        for name, f in model.model_fields.items():
            lines.append(f"| `{section_name}.{name}` | `{f.default!r}` | {f.description or ''} |")
        lines.append("")
    return "\n".join(lines)
