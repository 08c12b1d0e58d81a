"""Routing and inbox benchmark (issue: referrals across departments).

    .venv/bin/python -m bench.routing [--events N] [--inbox-rows N]

1. Routing throughput through the real path — case events on a Kafka-protocol broker (Tansu, or
   ``HUHANG_TEST_KAFKA_BOOTSTRAP``), consumed by the Prefect routing flow (one long-lived flow run, a task per
   batch), referrals saved by the referral application on PostgreSQL — beside the baseline: the same events, rules
   and saves with a plain kafka-python consumer loop and no Prefect. Same run, fresh schemas for each side.
   Targets: Prefect path >= 50 % of the baseline and >= 200 events/s.
2. Inbox query latency (p50/p99) with N referrals stored (default 100,000) in PostgreSQL: an agency's first page,
   a filtered page (status + priority + township), an overdue page and a cursor page. Target: p99 < 50 ms.

Prints a table and writes ``bench/results/routing.json``. Events are synthetic (codes and random ids only).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bench._pg import DATABASE_URL, drop_schemas
from contracts.events import ReferralRequested, ReferralRequestedData, ReportFiled, ReportFiledData
from contracts.vocabulary import ConcernCategory, Priority
from huhang.kafka import KafkaPublisher, KafkaSource
from huhang.settings import Settings
from services.referral.inbox import InboxFilter
from services.referral.main import ReferralService, build
from workflows.referral_gateway import LocalReferralGateway
from workflows.routing import Router, plan_referrals, route_case_events
from workflows.rules_provider import RulesProvider

RESULTS = Path(__file__).parent / "results" / "routing.json"
TOWNSHIPS = ["虹桥镇", "柳市镇", "大荆镇", "北白象镇", "乐成街道"]
CONCERNS = [
    ConcernCategory.guardian_neglect,
    ConcernCategory.school_dropout,
    ConcernCategory.online_harm,
    ConcernCategory.psychological_crisis,
    ConcernCategory.basic_living_hardship,
]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def report_event(rnd: random.Random) -> ReportFiled:
    event_id, case_id = uuid.uuid4(), uuid.uuid4()
    return ReportFiled(
        id=event_id,
        source="/bench",
        subject=str(case_id),
        time=datetime.now(UTC),
        dataschema=ReportFiled.schema_uri(),
        correlationid=event_id,
        actoragency="education",
        data=ReportFiledData(
            report_id=uuid.uuid4(),
            case_id=case_id,
            child_id=uuid.uuid4(),
            reporter_agency="education",
            reporter_role="teacher",
            concern_category=rnd.choice(CONCERNS),
            urgency="urgent",
            child_categories=(),
            township=rnd.choice(TOWNSHIPS),
            village="溪西村",
            observed_on=date(2026, 11, 1),
        ),
    )


def settings_for(prefix: str, bootstrap: str) -> Settings:
    return Settings(
        storage="postgres",
        database_url=DATABASE_URL,
        schema_prefix=prefix,
        transport="kafka",
        kafka_bootstrap_servers=bootstrap,
        kafka_namespace=prefix,
        kafka_max_poll_interval_ms=60000,
        kafka_session_timeout_ms=5000,
    )


def count_referrals(service: ReferralService) -> int:
    return int(service.application.recorder.max_notification_id() or 0)


def run_until(expected: int, service: ReferralService, loop: Callable[[threading.Event], Any]) -> float:
    stop = threading.Event()
    started = time.perf_counter()
    thread = threading.Thread(target=loop, args=(stop,), daemon=True)
    thread.start()
    while count_referrals(service) < expected:
        time.sleep(0.02)
        if time.perf_counter() - started > 600:
            raise TimeoutError("routing did not finish in 10 minutes")
    elapsed = time.perf_counter() - started
    stop.set()
    thread.join(30)
    return elapsed


def routing_phase(bootstrap: str, events: list[ReportFiled], prefect: bool) -> dict[str, Any]:
    prefix = f"bench{uuid.uuid4().hex[:6]}_"
    settings = settings_for(prefix, bootstrap)
    topic = f"{prefix}case-events"
    rules = RulesProvider()
    expected = sum(len(rules.current().route(e)) for e in events)
    publisher = KafkaPublisher(bootstrap, topic, client_id="bench")
    for i in range(0, len(events), 500):
        publisher.handle(events[i : i + 500])
    publisher.close()
    service = build(settings)
    gateway = LocalReferralGateway(service.application)
    source = KafkaSource(
        bootstrap, [topic], group_id=f"{prefix}router", max_poll_interval_ms=60000, session_timeout_ms=5000
    )
    try:
        if prefect:
            router = Router(source, gateway, rules)
            elapsed = run_until(expected, service, lambda stop: route_case_events(router, stop))
        else:

            def plain(stop: threading.Event) -> None:
                while not stop.is_set():
                    batch = source.poll(0.5)
                    if batch is None:
                        continue
                    gateway.open(plan_referrals(rules.current(), batch.events))
                    batch.commit()

            elapsed = run_until(expected, service, plain)
    finally:
        source.close()
        service.application.close()
        drop_schemas(prefix)
    return {
        "events": len(events),
        "referrals": expected,
        "seconds": round(elapsed, 2),
        "events_per_s": round(len(events) / elapsed, 1),
        "referrals_per_s": round(expected / elapsed, 1),
    }


def inbox_phase(rows: int) -> dict[str, Any]:
    prefix = f"bench{uuid.uuid4().hex[:6]}_"
    service = build(Settings(storage="postgres", database_url=DATABASE_URL, schema_prefix=prefix))
    rnd = random.Random(7)
    agencies = ["police", "civil_affairs", "education", "health", "womens_federation", "hrss", "dpf", "cac"]
    start = datetime.now(UTC) - timedelta(days=365)
    log(f"inbox: storing {rows} referrals")
    try:
        batch: list[ReferralRequested] = []
        for i in range(rows):
            at = start + timedelta(seconds=i * 300)
            case_id = uuid.uuid4()
            batch.append(
                ReferralRequested(
                    id=uuid.uuid4(),
                    source="/bench",
                    subject=str(case_id),
                    time=at,
                    dataschema=ReferralRequested.schema_uri(),
                    correlationid=uuid.uuid4(),
                    actoragency="education",
                    data=ReferralRequestedData(
                        referral_id=uuid.uuid4(),
                        case_id=case_id,
                        child_id=uuid.uuid4(),
                        owner_agency=rnd.choice(agencies),
                        requester_agency="education",
                        referral_type="bench",
                        priority=rnd.choice(list(Priority)),
                        due_at=at + timedelta(days=3),
                        plan_tasks=(4,),
                        rule_id="bench",
                        rules_version="bench",
                        source_event_id=uuid.uuid4(),
                        township=rnd.choice(TOWNSHIPS),
                        village="溪西村",
                    ),
                )
            )
            if len(batch) == 2000:
                service.inbox.handle(batch)
                batch = []
        service.inbox.handle(batch)
        with service.inbox.engine.begin() as conn:
            conn.execute(text("ANALYZE referral_inbox"))
        now = datetime.now(UTC)
        first = service.inbox.for_agency("police", limit=50)
        queries: dict[str, Callable[[], Any]] = {
            "first page": lambda: service.inbox.for_agency("police", limit=50),
            "filtered": lambda: service.inbox.for_agency(
                "police",
                limit=50,
                filters=InboxFilter(status=("requested",), priority=("urgent", "stat"), township="虹桥镇"),
            ),
            "overdue": lambda: service.inbox.for_agency("police", limit=50, filters=InboxFilter(overdue_at=now)),
            "next page": lambda: service.inbox.for_agency(
                "police", limit=50, cursor=(first[-1]["requested_at"], first[-1]["referral_id"])
            ),
            "counts by status": lambda: service.inbox.counts_by_status("police"),
        }
        out = {}
        for name, query in queries.items():
            for _ in range(20):
                query()
            samples = []
            for _ in range(300):
                t = time.perf_counter()
                query()
                samples.append((time.perf_counter() - t) * 1000)
            samples.sort()
            out[name] = {"p50_ms": round(statistics.median(samples), 2), "p99_ms": round(samples[296], 2)}
        return {"rows": rows, "queries": out}
    finally:
        service.application.close()
        drop_schemas(prefix)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--inbox-rows", type=int, default=100_000)
    args = parser.parse_args()
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.support.broker import running_broker

    rnd = random.Random(42)
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count()}, "at": datetime.now(UTC).isoformat()}
    with running_broker() as bootstrap:
        log("warming Prefect's local server")
        route_case_events(
            Router(_Empty(), LocalReferralGateway(None), RulesProvider()),  # type: ignore[arg-type]
            threading.Event(),
            max_batches=0,
        )
        log(f"routing: baseline (plain kafka-python consumer), {args.events} events")
        results["routing_baseline"] = routing_phase(bootstrap, [report_event(rnd) for _ in range(args.events)], False)
        log(f"routing: Prefect flow, {args.events} events")
        results["routing_prefect"] = routing_phase(bootstrap, [report_event(rnd) for _ in range(args.events)], True)
    base, pf = results["routing_baseline"]["events_per_s"], results["routing_prefect"]["events_per_s"]
    results["routing_ratio"] = round(pf / base, 3)
    results["inbox"] = inbox_phase(args.inbox_rows)

    print("\nrouting (Kafka -> rules -> referrals on PostgreSQL)")
    for label, key in (("baseline, plain consumer", "routing_baseline"), ("Prefect flow + tasks", "routing_prefect")):
        r = results[key]
        print(f"  {label:25s}: {r['events_per_s']:8.1f} events/s  ({r['referrals_per_s']} referrals/s)")
    print(f"  ratio                    : {results['routing_ratio']:.2f}  (target >= 0.50, and >= 200 events/s)")
    print(f"\ninbox with {args.inbox_rows} referrals (PostgreSQL)")
    for name, q in results["inbox"]["queries"].items():
        print(f"  {name:18s} p50 {q['p50_ms']:7.2f} ms   p99 {q['p99_ms']:7.2f} ms   (target p99 < 50 ms)")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(f"\nJSON: {RESULTS}")


class _Empty:
    def poll(self, timeout_s: float) -> None:
        return None

    def close(self) -> None:
        pass


if __name__ == "__main__":
    main()
