"""``shotwatch demo``: replay simulated city scenarios and the real live-fire data through the
live pipeline into the database, then report the incidents found.

Three separate steps:
1. *plan*: load the inputs (simulated scenarios; the Pittsburgh test folders when present);
2. *replay*: every input's pulses go through :class:`shotwatch.pipeline.Pipeline` with a
   replay clock into the database, exactly as live data would;
3. *report*: read the incidents back from the database and print them; only here, and only
   through :mod:`shotwatch.evaluation`, is ground truth (survey files, simulator truth) read,
   to show how far the located shots are from it.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from shotwatch.cli.common import add_config_option, add_db_option
from shotwatch.core.acoustics import speed_of_sound_mps
from shotwatch.core.clock import ReplayClock
from shotwatch.core.errors import InputError
from shotwatch.core.geo import LocalFrame
from shotwatch.core.model import Incident, Provenance, Pulse, Sensor, ShotLocation, iso_utc
from shotwatch.core.settings import Settings, load_settings
from shotwatch.evaluation.scoring import Score
from shotwatch.pipeline import ListSink, Pipeline, StoreSink, TeeSink
from shotwatch.storage import service as svc
from shotwatch.storage.db import make_engine, migrate, resolve_url, session_factory

DEFAULT_SCENARIOS = ("city_single_shooter", "automatic_fire", "two_shooters_50m", "moving_shooter")
DEMO_VERSION = "1"
#: How long the live part runs when nobody is at a terminal to press Ctrl-C.
NON_INTERACTIVE_LIVE_S = 160.0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo",
        help="replay simulated scenarios and the real live-fire data into the database",
        description="Replay simulated city scenarios (and ../shared/data/pittsburgh-2018 when "
        "present) through the live pipeline, store everything, and report the incidents.",
    )
    add_db_option(p)
    p.add_argument(
        "--data",
        metavar="DIR",
        default=None,
        help="real data folder (default: $SHOTWATCH_DATA or ../shared/data)",
    )
    p.add_argument("--no-real", action="store_true", help="skip the real live-fire data")
    p.add_argument(
        "--scenario",
        action="append",
        metavar="NAME|FILE",
        help="simulated scenario (a shipped name or a TOML file); repeatable "
        f"(default: {', '.join(DEFAULT_SCENARIOS)})",
    )
    p.add_argument("--seed", type=int, default=1, help="simulator seed (default 1)")
    p.add_argument(
        "--real-tests",
        type=int,
        default=None,
        metavar="N",
        help="replay only the first N live-fire tests (default: all)",
    )
    p.add_argument(
        "--summary-json", metavar="FILE", default=None, help="also write the summary as JSON"
    )
    p.add_argument(
        "--no-live",
        action="store_true",
        help="stop after the replay report instead of starting the live system",
    )
    p.add_argument(
        "--live-for",
        type=float,
        default=None,
        metavar="SECONDS",
        help="run the live system this long (default: until Ctrl-C from a terminal, "
        f"{NON_INTERACTIVE_LIVE_S:.0f} s otherwise)",
    )
    p.add_argument("--host", default=None, help="live system's listen address")
    p.add_argument("--port", type=int, default=None, help="live system's listen port")
    add_config_option(p)
    p.set_defaults(func=run)


# --------------------------------------------------------------------------- step 1: plan


@dataclass
class Replay:
    """One input to replay: a simulated scenario or one live-fire test."""

    group: str  # "simulated" or "pittsburgh-2018"
    label: str
    pulses: list[Pulse]
    sensors: list[Sensor]
    c_mps: float
    frame: LocalFrame | None
    # evaluation handle, used by the report step only (never given to the pipeline)
    truth: Callable[[list[ShotLocation]], Score] | None = None
    input_errors: list[InputError] = field(default_factory=list)
    # filled by the replay step
    incidents: list[Incident] = field(default_factory=list)
    shots: list[ShotLocation] = field(default_factory=list)
    duplicates: int = 0


def _namespaced(net: str, pulses: list[Pulse], sensors: list[Sensor]) -> tuple[list, list]:
    """Prefix pulse ids and serials with the network name: simulated networks reuse serials
    and ids from run to run, and one database holds several networks."""
    ps = [replace(p, pulse_id=f"{net}:{p.pulse_id}", sensor=f"{net}:{p.sensor}") for p in pulses]
    ss = [replace(s, serial=f"{net}:{s.serial}") for s in sensors]
    return ps, ss


def plan_simulated(names: list[str], seed: int) -> list[Replay]:
    from shotwatch.evaluation.scoring import TruthEvent, score_against_events
    from shotwatch.sim import example_scenarios, load_scenario, simulate_pulses

    shipped = example_scenarios()
    out: list[Replay] = []
    for name in names:
        path = Path(name)
        if not path.suffix:
            if name not in shipped:
                raise InputError(
                    "--scenario", "name", f"unknown scenario {name!r}; shipped: {sorted(shipped)}"
                )
            path = shipped[name]
        scenario = load_scenario(path)
        result = simulate_pulses(scenario, seed)
        pulses, sensors = _namespaced(f"sim-{scenario.name}", result.pulses, result.sensors)
        events = [TruthEvent(e.t_s, e.x_m, e.y_m) for e in result.truth.events if e.is_gunshot]

        def truth(shots: list[ShotLocation], events: list[TruthEvent] = events) -> Score:
            return score_against_events(shots, events)

        out.append(
            Replay(
                group="simulated",
                label=scenario.name,
                pulses=pulses,
                sensors=sensors,
                # the weather report the network would have (not the simulator's truth)
                c_mps=speed_of_sound_mps(scenario.environment.temperature_c),
                frame=result.scene.frame,
                truth=truth,
            )
        )
    return out


def plan_pittsburgh(root: Path, settings: Settings, limit: int | None) -> list[Replay]:
    from shotwatch.evaluation.scoring import read_survey, score_against_point
    from shotwatch.io.pittsburgh import read_tree

    out: list[Replay] = []
    for test in read_tree(root):
        if limit is not None and len(out) >= limit:
            break
        temp_c = (
            test.weather.temperature_c
            if test.weather is not None
            else settings.location.default_temperature_c
        )

        def truth(
            shots: list[ShotLocation], test_dir: Path = test.path, name: str = test.name
        ) -> Score:
            s = read_survey(test_dir, name=name)
            return score_against_point(shots, s.x_m, s.y_m, s.rounds)

        out.append(
            Replay(
                group="pittsburgh-2018",
                label=test.name,
                pulses=list(test.pulses),
                sensors=list(test.sensors.values()),
                c_mps=speed_of_sound_mps(temp_c),
                frame=None,  # the published coordinates are anonymised: no lat/lon
                truth=truth,
                input_errors=list(test.errors),
            )
        )
    return out


# --------------------------------------------------------------------------- step 2: replay


def replay_one(
    job: Replay, settings: Settings, store: StoreSink, advance: Callable[[int], None]
) -> None:
    """The live path with a clock that follows the recording."""
    clock = ReplayClock(job.pulses[0].t_s if job.pulses else 0.0)
    mem = ListSink()
    pipe = Pipeline(
        settings,
        clock,
        TeeSink(store, mem),
        c_mps=job.c_mps,
        frame=job.frame,
        sensors=job.sensors,
    )
    for i, p in enumerate(job.pulses):
        clock.advance_to(p.t_s)
        pipe.feed(p)
        if i % 50 == 49:
            advance(50)
    pipe.finish()
    advance(len(job.pulses) % 50)
    job.shots = mem.shot_list
    job.incidents = mem.incident_list
    job.duplicates = len(pipe.stats.duplicates) + len(pipe.stats.conflicts)
    job.input_errors += pipe.errors


# --------------------------------------------------------------------------- step 3: report


def _fmt_movement(inc: Incident) -> str:
    if inc.movement is None:
        return "-"
    return f"{inc.movement.speed_mps:.1f} m/s @ {inc.movement.heading_deg:.0f}°"


def _fmt_where(inc: Incident) -> str:
    if inc.lat_deg is not None and inc.lon_deg is not None:
        return f"{inc.lat_deg:.5f}, {inc.lon_deg:.5f}"
    return f"local x {inc.x_m:.0f}, y {inc.y_m:.0f} m"


def _fmt_m(v: float | int | None) -> str:
    return "-" if v is None else f"{v:.1f} m"


def _fmt_share(v: float | int | None) -> str:
    return "-" if v is None else f"{100 * v:.1f} %"


def evaluate(jobs: list[Replay]) -> dict[int, Score]:
    """EVALUATION: compare each input's located shots with its ground truth. The only place
    the demo reads truth (survey files, simulator events), after every replay has finished."""
    return {id(j): j.truth(j.shots) for j in jobs if j.truth is not None}


def _incident_table(title: str, jobs: list[Replay], scores: dict[int, Score]) -> Table:
    """One row per incident (simulated scenarios: few inputs, each incident matters)."""
    table = Table(title=title, title_justify="left")
    for col in ("input", "start (UTC)", "rounds", "shooters", "auto", "movement", "location"):
        table.add_column(col, no_wrap=True)
    table.add_column("vs truth: median error", justify="right")
    for j in jobs:
        score = scores.get(id(j))
        err = _fmt_m(score.summary()["median_m"]) if score else "-"
        if not j.incidents:
            table.add_row(j.label, "-", "0", "-", "-", "-", "no incident", err)
        for k, inc in enumerate(j.incidents):
            table.add_row(
                j.label if k == 0 else "",
                _fmt_time(inc.start_s),
                str(inc.rounds),
                str(inc.shooters),
                "yes" if inc.automatic else "no",
                _fmt_movement(inc),
                _fmt_where(inc),
                err if k == 0 else "",
            )
    return table


def _input_table(title: str, jobs: list[Replay], scores: dict[int, Score]) -> Table:
    """One row per input (the live-fire tests: a hundred of them), its main incident first."""
    table = Table(title=title, title_justify="left")
    for col in ("test", "start (UTC)", "incidents", "rounds", "main incident", "location"):
        table.add_column(col, no_wrap=True)
    table.add_column("fired (survey)", justify="right", no_wrap=True)
    table.add_column("median error", justify="right", no_wrap=True)
    for j in jobs:
        score = scores.get(id(j))
        fired = str(score.rounds_fired) if score else "-"
        err = _fmt_m(score.summary()["median_m"]) if score else "-"
        if not j.incidents:
            table.add_row(j.label, "-", "0", "0", "-", "no incident", fired, err)
            continue
        main = max(j.incidents, key=lambda i: (i.rounds, -i.start_s))
        desc = f"{_n(main.rounds, 'round')}, {_n(main.shooters, 'shooter')}"
        if main.automatic:
            desc += ", automatic"
        if main.movement is not None:
            desc += f", moving {_fmt_movement(main)}"
        table.add_row(
            j.label,
            _fmt_time(min(i.start_s for i in j.incidents)),
            str(len(j.incidents)),
            str(sum(i.rounds for i in j.incidents)),
            desc,
            _fmt_where(main),
            fired,
            err,
        )
    return table


def _n(k: int, word: str) -> str:
    return f"{k} {word}{'' if k == 1 else 's'}"


def _fmt_time(t_s: float) -> str:
    return iso_utc(t_s)[:-8] + "Z"


def report(console: Console, jobs: list[Replay], stored: list[Incident]) -> dict[str, object]:
    """Print the incidents as read back from the database, then the evaluation."""
    by_id = {i.incident_id: i for i in stored}
    for j in jobs:
        j.incidents = [by_id.get(i.incident_id, i) for i in j.incidents]
    scores = evaluate(jobs)
    summary: dict[str, object] = {}
    for group in dict.fromkeys(j.group for j in jobs):
        gjobs = [j for j in jobs if j.group == group]
        title = f"Incidents: {group}"
        per_incident = group == "simulated"
        table = (_incident_table if per_incident else _input_table)(title, gjobs, scores)
        console.print(table)
        incs = [i for j in gjobs for i in j.incidents]
        counts = {
            "inputs": len(gjobs),
            "pulses": sum(len(j.pulses) for j in gjobs),
            "shots": sum(len(j.shots) for j in gjobs),
            "incidents": len(incs),
            "rounds": sum(i.rounds for i in incs),
            "shooters": sum(i.shooters for i in incs),
            "automatic": sum(int(i.automatic) for i in incs),
            "moving": sum(int(i.movement is not None) for i in incs),
        }
        console.print(
            f"[bold]{group}[/]: {counts['inputs']} inputs, {counts['pulses']} pulses"
            f" -> {counts['shots']} shots, {counts['incidents']} incidents:"
            f" {counts['rounds']} rounds, {counts['shooters']} shooters,"
            f" {counts['automatic']} automatic, {counts['moving']} moving"
        )
        total = Score()
        for j in gjobs:
            if id(j) in scores:
                total.add(scores[id(j)])
        s = total.summary()
        if s["rounds_fired"]:
            console.print(
                f"  vs truth (evaluation): {s['rounds_located']}/{s['rounds_fired']} rounds"
                f" located, median {_fmt_m(s['median_m'])}, 90th pct {_fmt_m(s['p90_m'])},"
                f" within 15 m {_fmt_share(s['within_15m_share'])}, spurious {s['spurious']}"
            )
        errors = [e for j in gjobs for e in j.input_errors]
        if errors:
            console.print(f"  [yellow]{len(errors)} input problems reported[/], e.g. {errors[0]}")
        summary[group] = {**counts, "evaluation": s, "input_errors": len(errors)}
    return summary


# --------------------------------------------------------------------------- command


def _data_dir(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    env = os.environ.get("SHOTWATCH_DATA")
    return Path(env) if env else Path("..") / "shared" / "data"


def run(args: argparse.Namespace) -> int:
    t_start = time.perf_counter()
    console = Console(width=None if os.isatty(1) else 140)
    settings = load_settings(args.config)
    url = resolve_url(args.db)

    # step 1: plan
    jobs = plan_simulated(list(args.scenario or DEFAULT_SCENARIOS), args.seed)
    if not args.no_real:
        root = _data_dir(args.data) / "pittsburgh-2018"
        if root.is_dir():
            jobs += plan_pittsburgh(root, settings, args.real_tests)
        else:
            console.print(
                f"[dim]real live-fire data not found at {root}; skipping it (--data DIR)[/]"
            )

    # step 2: replay into the database
    migrate(url)
    engine = make_engine(url)
    factory = session_factory(engine)
    store = StoreSink(factory)
    with factory.begin() as session:
        for j in jobs:
            if j.group == "simulated":  # real serials recur across anonymised frames
                svc.save_sensors(
                    j.sensors,
                    session=session,
                    provenance=Provenance.automatic(
                        "demo-registry", DEMO_VERSION, j.pulses[0].t_s if j.pulses else 0.0
                    ),
                )
    total = sum(len(j.pulses) for j in jobs)
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("pulses"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("replaying", total=total)
        for j in jobs:
            progress.update(task, description=f"{j.group}: {j.label}")
            replay_one(j, settings, store, lambda n: progress.advance(task, n))
        progress.update(task, description="replayed")

    # step 3: report from what the database holds
    with factory() as session:
        t_lo = min((p.t_s for j in jobs for p in j.pulses), default=0.0) - 3600.0
        t_hi = max((p.t_s for j in jobs for p in j.pulses), default=0.0) + 3600.0
        stored = svc.query_incidents(session=session, start_s=t_lo, end_s=t_hi)
        n_pulses = svc.count_pulses(session=session)
    engine.dispose()
    summary = report(console, jobs, stored)
    pr = store.pulse_report
    console.print(
        f"database {_redacted(url)}: {len(pr.stored)} new pulses stored, {len(pr.duplicates)}"
        f" already there; {len(store.shot_report.stored)} new shots,"
        f" {len(store.incident_report.stored)} new incidents; {n_pulses} pulses in total"
    )
    if store.shot_report.conflicts or store.incident_report.conflicts:
        console.print(
            "[yellow]kept stored versions for ids that now differ (never overwritten):[/] "
            f"{len(store.shot_report.conflicts)} shots,"
            f" {len(store.incident_report.conflicts)} incidents"
        )
    elapsed_s = time.perf_counter() - t_start
    console.print(f"done in {elapsed_s:.1f} s")
    if args.summary_json:
        summary["elapsed_s"] = round(elapsed_s, 2)
        Path(args.summary_json).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    if args.no_live:
        return 0
    return _live(args, settings, console)


def _live(args: argparse.Namespace, settings: Settings, console: Console) -> int:
    """Step 4: the whole system live (``shotwatch serve --demo``): a simulated network over a
    real district sends signed reports to the server; the review queue and dispatch board
    fill in the browser."""
    import sys

    from shotwatch.cli.serve import run_demo_server

    live_for = args.live_for
    if live_for is None and not sys.stdin.isatty():
        live_for = NON_INTERACTIVE_LIVE_S
    console.print(
        "\n[bold]Now the whole system, live[/]: signed sensor reports -> pipeline -> review "
        "queue -> dispatch board. "
        + ("Ctrl-C stops it." if live_for is None else f"It runs {live_for:.0f} s.")
    )
    data = _data_dir(args.data)
    live_args = argparse.Namespace(
        boundaries=str(data / "boundaries" / "chicago-police-districts.geojson"),
        db=None,  # the live system keeps its own throw-away database
        mode=None,
        host=args.host,
        port=args.port,
        open=True,
        live_for=live_for,
    )
    if not Path(live_args.boundaries).exists():
        live_args.boundaries = None
    return run_demo_server(live_args, settings)


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
