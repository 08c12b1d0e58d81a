"""Two instances of a relay or a router at once (issue 7): no double effect, and failover when one dies.

- Two ``huhang worker intake`` processes with the same settings: one holds the relay's lease (a PostgreSQL advisory
  lock) and publishes, the other stands by; nothing is published twice while both run. ``kill -9`` of the holder:
  the standby takes over within seconds and every event reaches the topic; routed, each referral is opened once.
- Two ``huhang router`` processes in one consumer group: every report is routed, every referral opened once.

Real PostgreSQL, the Tansu Kafka-protocol broker, Prefect.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import date
from pathlib import Path

import pytest
from kafka import KafkaConsumer

from contracts.commands import OpenReferral
from contracts.envelope import CloudEvent
from contracts.kafka_binding import from_record
from contracts.routing import load_rules
from huhang.bootstrap import subscription_consumers, topic_of
from huhang.kafka import KafkaSource
from huhang.lease import AdvisoryLease, lease_for
from huhang.parking import ParkedEvents
from huhang.settings import Settings
from huhang.storage import read_model_engine
from huhang.streams import NotificationLogSource, Positions, drain, rewind_source
from services.intake import main as intake_main
from services.intake.application import ChildFacts, FileReport
from services.referral import main as referral_main
from tests.conftest import RUN_PREFIX
from tests.support.auth import new_signing_key
from tests.support.processes import eventually, free_port, huhang_env, huhang_process, wait_http
from workflows.referral_gateway import LocalReferralGateway
from workflows.routing import Router, plan_referrals, route_case_events

pytestmark = [pytest.mark.integration, pytest.mark.slow]
AGENCIES = ("police", "civil_affairs", "womens_federation", "justice", "education", "township", "village")


def _settings(postgres_url: str, kafka_bootstrap: str) -> tuple[Settings, dict[str, str]]:
    prefix = f"{RUN_PREFIX}{uuid.uuid4().hex[:6]}_"
    values = {
        "storage": "postgres", "database_url": postgres_url, "schema_prefix": prefix, "transport": "kafka",
        "kafka_bootstrap_servers": kafka_bootstrap, "kafka_namespace": prefix, "kafka_max_poll_interval_ms": "60000",
        "kafka_session_timeout_ms": "5000",
    }
    return Settings(**values), huhang_env(**values)  # type: ignore[arg-type]


def _file_reports(settings: Settings, first: int, count: int) -> None:
    intake = intake_main.build(settings)
    try:
        for i in range(first, first + count):
            intake.application.file_report(FileReport(
                reporter_agency="education", reporter_role="teacher", reporter_reference=None,
                child=ChildFacts(name=f"测试{i}", sex="female", birth_date=date(2015, 3, 1 + i % 28),
                                 id_card_number=None, township="虹桥镇", village="溪西村",
                                 categories=("left_behind",)),
                concern_category="guardian_neglect", urgency="urgent", observations="（测试）",
                observed_on=date(2026, 11, 1), fingerprint=f"lease-{i}",
            ))
    finally:
        intake.application.close()


def _logged_events(settings: Settings) -> list[CloudEvent]:
    """Every integration event of intake's log (what the relay must publish)."""
    intake = intake_main.build(settings)
    try:
        return [e for n in intake.application.recorder.select_notifications(0, 10_000)
                for e in intake.to_integration_events()(intake.application.mapper.to_domain_event(n))]
    finally:
        intake.application.close()


def _published(bootstrap: str, topic: str) -> list[CloudEvent]:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=2000)
    try:
        return [from_record(record.value, record.headers) for record in consumer]
    finally:
        consumer.close()


def _holds(log: Path, lease_name: str) -> bool:
    return f"lease {lease_name} taken" in log.read_text(errors="replace")


def _referrals(referral: object, consumer: object) -> int:
    drain(consumer)  # type: ignore[arg-type]
    inbox = referral.inbox  # type: ignore[attr-defined]
    return sum(sum(inbox.counts_by_status(a).values()) for a in AGENCIES)


def test_an_advisory_lease_has_one_holder_and_passes_on_when_released(postgres_url: str) -> None:
    settings = Settings(storage="postgres", database_url=postgres_url, schema_prefix=f"{RUN_PREFIX}lease_")
    first, second = lease_for(settings, "intake.relay"), lease_for(settings, "intake.relay")
    other = lease_for(settings, "referral.relay")
    assert isinstance(first, AdvisoryLease)
    assert isinstance(second, AdvisoryLease)
    assert other is not None
    try:
        assert first.try_acquire()
        assert not second.try_acquire()
        assert other.try_acquire()  # another follower's lease is another lock
        assert first.held()
        assert not second.held()
        first.release()
        assert second.try_acquire()
        assert second.held()
        assert not first.try_acquire()
    finally:
        for lease in (first, second, other):
            lease.release()


def test_two_relays_publish_once_and_the_standby_takes_over_when_the_holder_is_killed(
    tmp_path: Path, postgres_url: str, kafka_bootstrap: str, prefect_harness: None
) -> None:
    settings, env = _settings(postgres_url, kafka_bootstrap)
    topic = topic_of(settings, "intake")
    lease_name = f"huhang-lease:{settings.schema_prefix}intake.relay"
    _file_reports(settings, 0, 4)
    logs = {name: tmp_path / f"worker-{name}.log" for name in ("a", "b")}
    with ExitStack() as stack:
        workers = {name: stack.enter_context(huhang_process(["worker", "intake"], env, log))
                   for name, log in logs.items()}
        holder = eventually(lambda: next((n for n in logs if _holds(logs[n], lease_name)), None), timeout_s=60)
        standby = "b" if holder == "a" else "a"
        threading.Thread(target=_file_reports, args=(settings, 4, 4), daemon=True).start()  # while both run
        eventually(lambda: len(_logged_events(settings)) >= 8 and {e.id for e in _published(kafka_bootstrap, topic)}
                   >= {e.id for e in _logged_events(settings)}, timeout_s=60)
        before_kill = Counter(e.id for e in _published(kafka_bootstrap, topic))
        assert max(before_kill.values()) == 1, "two relays published the same events"
        assert not _holds(logs[standby], lease_name)
        assert "standing by" in logs[standby].read_text(errors="replace")

        os.killpg(workers[holder].pid, signal.SIGKILL)
        workers[holder].wait(10)
        killed_at = time.monotonic()
        _file_reports(settings, 8, 4)
        eventually(lambda: _holds(logs[standby], lease_name), timeout_s=30, interval_s=0.1)
        assert time.monotonic() - killed_at < 15, "the standby took too long to take over"
        logged = _logged_events(settings)
        eventually(lambda: {e.id for e in _published(kafka_bootstrap, topic)} >= {e.id for e in logged},
                   timeout_s=60)
        assert workers[standby].poll() is None

    published = _published(kafka_bootstrap, topic)
    assert {e.id for e in published} == {e.id for e in logged}  # nothing lost, nothing invented
    distinct = list({e.id: e for e in published}.values())

    referral = referral_main.build(settings)
    source = KafkaSource(kafka_bootstrap, [topic], group_id=f"router-{settings.schema_prefix}",
                         max_poll_interval_ms=60000, session_timeout_ms=5000)
    router = Router(source, LocalReferralGateway(referral.application), load_rules())
    stop = threading.Event()
    flow = threading.Thread(target=route_case_events, args=(router, stop), kwargs={"poll_timeout_s": 0.5})
    flow.start()
    try:
        expected = sum(len(load_rules().route(e)) for e in distinct)
        assert expected >= 12
        inbox = subscription_consumers(settings, referral)[0]
        eventually(lambda: _referrals(referral, inbox) == expected, timeout_s=60)  # duplicates absorbed
        time.sleep(1.0)
        assert _referrals(referral, inbox) == expected
    finally:
        stop.set()
        flow.join(30)
        source.close()
        referral.application.close()


@pytest.fixture
def signing_key() -> str:
    return new_signing_key()


def test_two_routers_at_once_route_each_report_and_open_each_referral_once(
    tmp_path: Path, postgres_url: str, kafka_bootstrap: str, signing_key: str
) -> None:
    settings, env = _settings(postgres_url, kafka_bootstrap)
    port = free_port()
    env |= {"HUHANG_AUTH_SIGNING_KEY": signing_key, "HUHANG_REFERRAL_URL": f"http://127.0.0.1:{port}"}
    reports = 12
    _file_reports(settings, 0, reports)
    with ExitStack() as stack:
        api = stack.enter_context(huhang_process(["api", "referral", "--port", str(port)], env,
                                                 tmp_path / "api-referral.log"))
        stack.enter_context(huhang_process(["worker", "intake"], env, tmp_path / "worker-intake.log"))
        routers = [stack.enter_context(huhang_process(["router"], env, tmp_path / f"router-{i}.log"))
                   for i in (1, 2)]
        wait_http(f"http://127.0.0.1:{port}/healthz", timeout_s=90, process=api)
        distinct = list({e.id: e for e in _logged_events(settings)}.values())
        expected = sum(len(load_rules().route(e)) for e in distinct)
        assert expected >= reports
        referral = referral_main.build(settings)
        try:
            inbox = subscription_consumers(settings, referral)[0]
            eventually(lambda: _referrals(referral, inbox) >= expected, timeout_s=150, interval_s=1.0)
            time.sleep(3.0)  # a router that would open some twice has had time to
            assert _referrals(referral, inbox) == expected
        finally:
            referral.application.close()
        assert all(router.poll() is None for router in routers), _tail(tmp_path)


class RefusingGateway(LocalReferralGateway):
    """The real referral application, refusing (as a 422 would) the referrals of the cases named poison."""

    def __init__(self, app: object, poison: set[str]) -> None:
        super().__init__(app)  # type: ignore[arg-type]
        self.poison = poison

    def open(self, commands: Sequence[OpenReferral]) -> int:
        if any(str(c.case_id) in self.poison for c in commands):
            raise ValueError("refused")
        return super().open(commands)


def test_the_router_parks_what_it_cannot_route_routes_the_rest_and_routes_it_once_handed_back(
    prefect_harness: None
) -> None:
    settings = Settings(storage="memory")
    intake, referral = intake_main.build(settings), referral_main.build(settings)
    _file_into(intake, 0, 4)
    events = [e for n in intake.application.recorder.select_notifications(0, 1000)
              for e in intake.to_integration_events()(intake.application.mapper.to_domain_event(n))]
    rules = load_rules()
    routed = [e for e in events if rules.route(e)]
    poison_case = routed[1].subject
    expected_rest = sum(len(rules.route(e)) for e in routed if e.subject != poison_case)
    engine = read_model_engine(settings, "workflows")
    parking = ParkedEvents(engine)
    source = NotificationLogSource("router<-intake", intake.application, intake.to_integration_events(),
                                   Positions(engine))
    gateway = RefusingGateway(referral.application, {poison_case})
    router = Router(source, gateway, rules, parking=parking, max_attempts=2, retry_check_s=0.0)
    opened = 0
    for _ in range(6):  # what the flow and run_router do: a failed batch is taken again, rewound
        try:
            result = router.route_batch(0.2)
        except ValueError:
            rewind_source(source)
            continue
        if result is None:
            break
        opened += result
    assert opened == expected_rest
    parked = parking.entries()
    assert parked
    assert {row["subject"] for row in parked} == {poison_case}
    assert {row["consumer"] for row in parked} == {"router"}
    assert {row["reason"] for row in parked} == {"ValueError:invalid_event"}

    gateway.poison.clear()
    for row in parked:
        parking.request_retry(row["parked_id"])
    assert router.route_batch(0.2) is None  # nothing new: the retried events were routed at this look
    assert {row["status"] for row in parking.entries()} == {"handled"}
    again = sum(len(rules.route(e)) for e in routed if e.subject == poison_case)
    assert router.gateway.open([c for e in routed for c in plan_referrals(rules, [e])]) == 0  # all open, once
    assert again >= 1
    intake.application.close()
    referral.application.close()


def _file_into(intake: object, first: int, count: int) -> None:
    for i in range(first, first + count):
        intake.application.file_report(FileReport(  # type: ignore[attr-defined]
            reporter_agency="education", reporter_role="teacher", reporter_reference=None,
            child=ChildFacts(name=f"测试{i}", sex="female", birth_date=date(2015, 3, 1 + i % 28),
                             id_card_number=None, township="虹桥镇", village="溪西村", categories=("left_behind",)),
            concern_category="guardian_neglect", urgency="urgent", observations="（测试）",
            observed_on=date(2026, 11, 1), fingerprint=f"route-{i}",
        ))


def _tail(tmp_path: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}" for p in sorted(tmp_path.glob("*.log")))

