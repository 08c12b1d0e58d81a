"""Growth: how intake, routing, inbox and reconstruction costs change from 10,000 to 1,000,000 stored events.

    .venv/bin/python -m bench.growth [--max-events 1000000] [--quick] [--samples N] [--json PATH]

On PostgreSQL (postgresql://postgres@127.0.0.1:5432/test, schema prefixes of the run's own, dropped at the end),
two stacks, each intake's and referral's applications and read models as the services build them
(``services/*/main.build``):

- the reference stack, built once to 10,000 events in each store;
- the growing stack, built to 10,000, then 100,000, then 1,000,000 (capped by ``--max-events``) events in each
  store, by the applications themselves: intake's event store by ``IntakeApplication.file_report`` from 8 threads
  (synthetic reports, Faker zh_CN names by index: every report registers a child, opens a case and files the
  report, and the registry and duplicate index grow with it); referral's event store by
  ``ReferralApplication.open_referrals`` in batches of 1,000 (synthetic referrals), the inbox read model fed the
  matching ``ReferralRequested`` events through its handler; intake's case timeline fed synthetic cases of 100
  integration events each through its handler (``CaseTimeline.handle``, snapshots made as events arrive).

At each size, back to back on the grown stack and on the 10,000-event reference (in alternating order, so that a
busy moment of the shared machine falls on both), ``--samples`` times each:

- intake: one report (``file_report``, the API's command);
- routing: one batch of 50 ``ReportFiled`` events planned by the rules and opened in the referral store (the
  router's two tasks, in process; a tenth of the samples, as each batch adds ~175 referrals to both stacks);
- inbox: an agency's first page, a filtered page and the counts by status;
- reconstruction: a case as of a random moment (``CaseHistoryStore.history``).

p50/p99 of each and the ratio of the grown stack's p99 to the reference's. Also the build rate of each store and
the size of each schema on disk. ``--quick``: sizes 10,000 and 20,000, 30 samples (about 3 minutes). Prints a
table and writes ``bench/results/growth.json``.

How long the full run takes is the build: on the 2-core machine while it was busy with other work (2026-11-29),
intake grew by 270-335 events/s (reports from 8 threads), referral by 650-800/s and the timeline by 780-895/s, so
the 1,000,000 step alone takes about 50 + 21 + 19 minutes there; expect about half of that on a quiet machine.
``--max-events 100000`` stops after the 100,000 step (about 10 minutes).
"""

from __future__ import annotations

import argparse
import functools
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from bench._pg import DATABASE_URL, analyze_schemas, drop_schemas
from bench._results import write_results
from bench.intake_and_routing import SyntheticReports, command, latency_ms
from bench.routing import TOWNSHIPS, report_event
from contracts.commands import OpenReferral
from contracts.events import ReferralRequested, ReferralRequestedData
from contracts.vocabulary import Priority
from huhang.settings import Settings
from services.intake.main import IntakeService
from services.intake.main import build as build_intake
from services.referral.inbox import InboxFilter
from services.referral.main import ReferralService
from services.referral.main import build as build_referral
from tests.unit.test_case_history import synthetic_case_events
from workflows.referral_gateway import LocalReferralGateway
from workflows.routing import plan_referrals
from workflows.rules_provider import RulesProvider

RESULTS = Path(__file__).parent / "results" / "growth.json"
REFERENCE = 10_000
SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (10_000, 20_000)
AGENCIES = ("police", "civil_affairs", "education", "health", "womens_federation", "hrss", "dpf", "cac")
CASE_EVENTS = 100  # events per synthetic case in the timeline
ROUTING_BATCH = 50
_T0 = time.perf_counter()


def progress(message: str) -> None:
    print(f"[{time.perf_counter() - _T0:7.1f}s] {message}", file=sys.stderr, flush=True)


@dataclass
class Stack:
    """Intake and referral of one schema prefix, and what has been put in them."""

    name: str
    prefix: str
    intake: IntakeService
    referral: ReferralService
    reports: SyntheticReports
    rng: random.Random
    cases: list[tuple[str, datetime, datetime]] = field(default_factory=list)  # timeline cases: id, first, last
    build_s: dict[str, float] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        with self.intake.timeline.engine.connect() as conn:
            timeline = int(conn.execute(text("SELECT count(*) FROM case_timeline")).scalar_one())
        return {
            "intake_events": int(self.intake.application.recorder.max_notification_id() or 0),
            "referral_events": int(self.referral.application.recorder.max_notification_id() or 0),
            "timeline_events": timeline,
        }

    def close(self) -> None:
        self.intake.application.close()
        self.referral.application.close()


def open_stack(name: str, prefix: str, tmp: Path, seed: int) -> Stack:
    settings = Settings(storage="postgres", database_url=DATABASE_URL, schema_prefix=prefix, data_dir=tmp / name)
    return Stack(name, prefix, build_intake(settings), build_referral(settings), SyntheticReports(seed),
                 random.Random(seed))


# ------------------------------------------------------------------------------------------------------ growing


def grow(stack: Stack, target: int) -> dict[str, Any]:
    """Bring each of the three stores to ``target`` events; the time and rate of each."""
    rates: dict[str, Any] = {}
    counts = stack.counts()
    for store, fill in (("intake_events", _fill_intake), ("referral_events", _fill_referrals),
                        ("timeline_events", _fill_timeline)):
        have = counts[store]
        if have >= target:
            continue
        started = time.perf_counter()
        progress(f"{stack.name}: {store} {have:,} -> {target:,}")
        fill(stack, have, target)
        took = time.perf_counter() - started
        stack.build_s[store] = stack.build_s.get(store, 0.0) + took
        rates[store] = {"added": target - have, "seconds": round(took, 1),
                        "events_per_s": round((target - have) / took) if took else None}
    return rates


def _fill_intake(stack: Stack, have: int, target: int) -> None:
    app = stack.intake.application
    with ThreadPoolExecutor(max_workers=8) as pool:
        while have < target:
            # about six events a report (the child's, the case's, the report's): a chunk short of the target,
            # then look again, so that the store ends close to the size asked for
            chunk = max(20, min(2000, (target - have) // 8))
            bodies = [stack.reports.next_body() for _ in range(chunk)]
            list(pool.map(lambda body: patiently(lambda: app.file_report(command(body))), bodies))
            have = int(app.recorder.max_notification_id() or 0)


def patiently(call: Callable[[], Any], attempts: int = 30) -> Any:
    """``call()``, tried again while PostgreSQL has no connection slot free (the machine's server is shared by
    other work: ``too many clients``); any other error at once."""
    for attempt in range(attempts):
        try:
            return call()
        except OperationalError as exc:
            if "too many clients" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(1.0)
    return None


def _referral(rng: random.Random, at: datetime) -> tuple[OpenReferral, ReferralRequested]:
    case_id, referral_id, child_id, source = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    agency, priority, township = rng.choice(AGENCIES), rng.choice(list(Priority)), rng.choice(TOWNSHIPS)
    due = at + timedelta(days=3)
    cmd = OpenReferral(
        referral_id=referral_id, case_id=case_id, child_id=child_id, owner_agency=agency,
        requester_agency="education", referral_type="bench", priority=priority, due_at=due, plan_tasks=(4,),
        rule_ids=("bench",), rules_version="bench", source_event_id=source, correlation_id=source,
        township=township, village="溪西村", complete_by=due + timedelta(days=7),
    )
    event = ReferralRequested(
        id=uuid.uuid4(), source="/bench", subject=str(case_id), time=at, dataschema=ReferralRequested.schema_uri(),
        correlationid=source, actoragency="education",
        data=ReferralRequestedData(
            referral_id=referral_id, case_id=case_id, child_id=child_id, owner_agency=agency,
            requester_agency="education", referral_type="bench", priority=priority, due_at=due, plan_tasks=(4,),
            rule_id="bench", rules_version="bench", source_event_id=source, township=township, village="溪西村",
        ),
    )
    return cmd, event


def _fill_referrals(stack: Stack, have: int, target: int) -> None:
    app, inbox = stack.referral.application, stack.referral.inbox
    start = datetime.now(UTC) - timedelta(days=365)
    while have < target:
        n = min(1000, target - have)
        pairs = [_referral(stack.rng, start + timedelta(seconds=30 * (have + i))) for i in range(n)]
        commands, events = [cmd for cmd, _ in pairs], [event for _, event in pairs]
        patiently(functools.partial(app.open_referrals, commands))
        patiently(functools.partial(inbox.handle, events))
        have = int(app.recorder.max_notification_id() or 0)


def _fill_timeline(stack: Stack, have: int, target: int) -> None:
    timeline = stack.intake.timeline
    start = datetime(2025, 1, 6, tzinfo=UTC)
    while have < target:
        group = [synthetic_case_events(CASE_EVENTS, seed=stack.rng.randrange(1 << 30),
                                       start=start + timedelta(minutes=stack.rng.randrange(500_000)))
                 for _ in range(min(20, max(1, (target - have) // CASE_EVENTS)))]
        for case in group:
            stack.cases.append((str(case[0].subject), case[0].time, case[-1].time))
        stream = sorted((e for case in group for e in case), key=lambda e: e.time)
        for i in range(0, len(stream), 50):
            patiently(functools.partial(timeline.handle, stream[i:i + 50]))
        have += len(stream)


# ---------------------------------------------------------------------------------------------------- measuring


def operations(stack: Stack, rules: RulesProvider) -> dict[str, Callable[[], Any]]:
    app = stack.intake.application
    gateway = LocalReferralGateway(stack.referral.application)
    inbox = stack.referral.inbox
    history = stack.intake.timeline.history

    def intake() -> Any:
        return app.file_report(command(stack.reports.next_body()))

    def routing() -> Any:
        events = [report_event(stack.rng) for _ in range(ROUTING_BATCH)]
        return gateway.open(plan_referrals(rules.current(), events))

    def inbox_first_page() -> Any:
        return inbox.for_agency(stack.rng.choice(AGENCIES), limit=50)

    def inbox_filtered() -> Any:
        return inbox.for_agency(stack.rng.choice(AGENCIES), limit=50, filters=InboxFilter(
            status=("requested",), priority=("urgent", "stat"), township=stack.rng.choice(TOWNSHIPS)))

    def inbox_counts() -> Any:
        return inbox.counts_by_status(stack.rng.choice(AGENCIES))

    def reconstruction() -> Any:
        case_id, first, last = stack.rng.choice(stack.cases)
        return history.history(case_id, first + (last - first) * stack.rng.random())

    return {"intake: one report": intake, f"routing: a batch of {ROUTING_BATCH}": routing,
            "inbox: first page": inbox_first_page, "inbox: filtered": inbox_filtered,
            "inbox: counts": inbox_counts, "reconstruction: as of": reconstruction}


def measure(grown: Stack, reference: Stack, rules: RulesProvider, samples: int) -> dict[str, Any]:
    ops = {stack.name: operations(stack, rules) for stack in (grown, reference)}
    out: dict[str, Any] = {}
    for name in ops[grown.name]:
        for stack in (grown, reference):  # warm connections, caches and the rules
            for _ in range(3):
                patiently(ops[stack.name][name])
        taken: dict[str, list[float]] = {grown.name: [], reference.name: []}
        # Routing opens ~3.5 referrals per event on both stacks: fewer samples keep the reference near 10,000.
        for i in range(max(10, samples // 10) if name.startswith("routing") else samples):
            order = (grown, reference) if i % 2 else (reference, grown)
            for stack in order:
                began = time.perf_counter()
                patiently(ops[stack.name][name])
                taken[stack.name].append(time.perf_counter() - began)
        g, r = latency_ms(taken[grown.name], (50, 99)), latency_ms(taken[reference.name], (50, 99))
        out[name] = {"grown": g, "reference": r,
                     "p99_ratio": round(g["p99"] / r["p99"], 2) if g["p99"] and r["p99"] else None,
                     "p50_ratio": round(g["p50"] / r["p50"], 2) if g["p50"] and r["p50"] else None}
    return out


def schema_bytes(stack: Stack) -> dict[str, int]:
    """Tables and indexes of each schema of the stack, in bytes (on a connection the stack already holds: the
    machine's PostgreSQL is shared and its connection slots are few)."""
    with stack.intake.timeline.engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT n.nspname, sum(pg_total_relation_size(c.oid)) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE left(n.nspname, :n) = :p AND c.relkind = 'r' "
            "GROUP BY n.nspname"), {"n": len(stack.prefix), "p": stack.prefix}).all()
    return {str(name)[len(stack.prefix):]: int(size) for name, size in rows}


# -------------------------------------------------------------------------------------------------------- main


def table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'events':>10} {'operation':<26} {'p50 ms':>8} {'p99 ms':>8}   {'10k p50':>8} {'10k p99':>8} "
             f"{'p99 ratio':>9}"]
    for row in rows:
        for name, m in row["operations"].items():
            g, r = m["grown"], m["reference"]
            lines.append(f"{row['events_per_store']:>10,} {name:<26} {g['p50']:>8.1f} {g['p99']:>8.1f}   "
                         f"{r['p50']:>8.1f} {r['p99']:>8.1f} {m['p99_ratio'] or 0:>9.2f}")
        sizes = ", ".join(f"{k} {v / 1e6:,.0f} MB" for k, v in sorted(row["schema_bytes"].items()))
        lines.append(f"{'':>10} on disk: {sizes}")
        lines.append(f"{'':>10} counts: grown {row['counts']}, reference {row['reference_counts']}")
        for store, rate in row["build"].items():
            lines.append(f"{'':>10} built {store}: +{rate['added']:,} in {rate['seconds']:,}s "
                         f"({rate['events_per_s']:,}/s)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.growth", description=__doc__.split("\n")[0])
    p.add_argument("--max-events", type=int, default=SIZES[-1], help="the largest size (events in each store)")
    p.add_argument("--quick", action="store_true", help="sizes 10,000 and 20,000, 30 samples")
    p.add_argument("--samples", type=int, help="samples per operation and stack (default 200; quick 30)")
    p.add_argument("--json", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    sizes = QUICK_SIZES if args.quick else tuple(s for s in SIZES if s <= args.max_events)
    if not args.quick and args.max_events not in sizes and args.max_events > REFERENCE:
        sizes = (*sizes, args.max_events)
    samples = args.samples or (30 if args.quick else 200)
    run = uuid.uuid4().hex[:8]
    prefix = f"bench_growth_{run}_"
    rules = RulesProvider()
    rows: list[dict[str, Any]] = []
    ref_build: dict[str, Any] = {}
    failure: str | None = None
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="huhang-bench-growth-") as tmp_name:
            tmp = Path(tmp_name)
            reference = open_stack("reference", f"{prefix}r_", tmp, 1)
            grown = open_stack("grown", f"{prefix}g_", tmp, 2)
            try:
                ref_build.update(grow(reference, REFERENCE))
                for size in sizes:
                    build = grow(grown, size)
                    progress(f"measuring at {size:,} events per store ({samples} samples per operation)")
                    for stack in (grown, reference):  # the statistics autovacuum keeps (off on these machines)
                        analyze_schemas(stack.prefix)
                    rows.append({"events_per_store": size, "counts": grown.counts(),
                                 "reference_counts": reference.counts(), "build": build,
                                 "operations": measure(grown, reference, rules, samples),
                                 "schema_bytes": schema_bytes(grown)})
                    progress(f"at {size:,}: " + ", ".join(
                        f"{k} p99 x{v['p99_ratio']}" for k, v in rows[-1]["operations"].items()))
            except Exception as exc:  # what was measured before is still written
                failure = f"{type(exc).__name__}: {exc}"
                progress(f"FAILED: {failure}")
            finally:
                reference.close()
                grown.close()
    finally:
        dropped = drop_schemas(prefix)
        progress(f"dropped {len(dropped)} schema(s) {prefix}*")
    total = round(time.perf_counter() - started, 1)
    write_results(
        args.json, "growth",
        "two stacks on PostgreSQL (10,000-event reference; grown to each size), built by the applications and "
        "read-model handlers themselves; each operation measured back to back on both, alternating order",
        {"sizes": list(sizes), "samples": samples, "reference_build": ref_build, "total_seconds": total,
         "rows": rows, "failure": failure}, ("eventsourcing", "sqlalchemy", "psycopg"),
    )
    print(table(rows))
    print(f"\nwhole run {total:,.0f}s; JSON: {args.json}")
    if failure:
        print(f"FAILED: {failure}")
    return 1 if failure else 0


if __name__ == "__main__":
    sys.exit(main())
