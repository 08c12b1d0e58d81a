"""The outbox relay killed between publishing and recording its position loses nothing and, thanks to
idempotent consumers, doubles nothing: every referral exists exactly once."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from datetime import date
from pathlib import Path

import pytest
from kafka import KafkaConsumer

from contracts.envelope import CloudEvent
from contracts.events import ReportFiled
from contracts.kafka_binding import from_record
from contracts.routing import load_rules
from huhang.bootstrap import subscription_consumers, topic_of
from huhang.kafka import KafkaSource
from huhang.settings import Settings
from huhang.streams import drain
from services.intake import main as intake_main
from services.intake.application import ChildFacts, FileReport
from services.referral import main as referral_main
from tests.conftest import RUN_PREFIX
from tests.support.processes import eventually, huhang_env, huhang_process
from workflows.referral_gateway import LocalReferralGateway
from workflows.routing import Router, route_case_events

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPORTS = 5


def _file_reports(settings: Settings) -> None:
    intake = intake_main.build(settings)
    for i in range(REPORTS):
        intake.application.file_report(
            FileReport(
                reporter_agency="education",
                reporter_role="teacher",
                reporter_reference=None,
                child=ChildFacts(
                    name=f"测试{i}",
                    sex="female",
                    birth_date=date(2015, 3, i + 1),
                    id_card_number=None,
                    township="虹桥镇",
                    village="溪西村",
                    categories=("left_behind",),
                ),
                concern_category="guardian_neglect",
                urgency="urgent",
                observations="（测试）",
                observed_on=date(2026, 11, 1),
                fingerprint=f"f{i}",
            )
        )


def _records(bootstrap: str, topic: str) -> list[CloudEvent]:
    """The topic's events, read as any consumer reads them (the CloudEvents Kafka binding, binary mode)."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=3000,
    )
    try:
        return [from_record(record.value, record.headers) for record in consumer]
    finally:
        consumer.close()


def test_relay_killed_before_commit_repeats_events_but_each_referral_exists_once(
    tmp_path: Path, postgres_url: str, kafka_bootstrap: str, prefect_harness: None
) -> None:
    prefix = f"{RUN_PREFIX}{uuid.uuid4().hex[:6]}_"
    settings = Settings(
        storage="postgres",
        database_url=postgres_url,
        schema_prefix=prefix,
        transport="kafka",
        kafka_bootstrap_servers=kafka_bootstrap,
        kafka_max_poll_interval_ms=60000,
        kafka_session_timeout_ms=5000,
        kafka_namespace=prefix,
    )
    topic = topic_of(settings, "intake")
    _file_reports(settings)
    env = huhang_env(
        storage="postgres",
        database_url=postgres_url,
        schema_prefix=prefix,
        transport="kafka",
        kafka_bootstrap_servers=kafka_bootstrap,
        kafka_namespace=prefix,
    )

    with huhang_process(
        ["worker", "intake"], {**env, "HUHANG_FAILPOINT": "intake.relay:before-commit"}, tmp_path / "crashing.log"
    ) as crashing:
        assert crashing.wait(60) == -9  # SIGKILL, after publishing, before recording the position
    published_once = len(_records(kafka_bootstrap, topic))
    assert published_once >= 1

    with huhang_process(["worker", "intake"], env, tmp_path / "restarted.log"):
        eventually(lambda: len(_records(kafka_bootstrap, topic)) >= published_once + REPORTS, timeout_s=60)

    records = _records(kafka_bootstrap, topic)
    ids = Counter(str(e.id) for e in records)
    distinct = {e.id: e for e in records}.values()
    assert sum(isinstance(e, ReportFiled) for e in distinct) == REPORTS  # nothing lost
    intake = intake_main.build(settings)
    logged = [
        e for n in intake.application.recorder.select_notifications(0, 10_000)
        for e in intake.to_integration_events()(intake.application.mapper.to_domain_event(n))
    ]
    assert set(ids) == {str(e.id) for e in logged}  # every event of intake's log was published, none invented
    assert max(ids.values()) == 2  # the batch in flight at the crash was published twice

    referral = referral_main.build(settings)
    source = KafkaSource(
        kafka_bootstrap,
        [topic],
        group_id=f"router-{prefix}",
        max_poll_interval_ms=60000,
        session_timeout_ms=5000,
    )
    router = Router(source, LocalReferralGateway(referral.application), load_rules())
    stop = threading.Event()
    flow = threading.Thread(target=route_case_events, args=(router, stop), kwargs={"poll_timeout_s": 0.5})
    flow.start()
    try:
        expected = sum(len(load_rules().route(e)) for e in distinct)  # reports, and children's files if routed
        inbox_consumer = subscription_consumers(settings, referral)[0]

        def referral_count() -> int:
            drain(inbox_consumer)
            return sum(
                referral.inbox.counts_by_status(a).get("requested", 0)
                for a in ("police", "civil_affairs", "womens_federation", "justice", "education")
            )

        eventually(lambda: referral_count() == expected, timeout_s=60)
    finally:
        stop.set()
        flow.join(30)
        source.close()
    assert referral_count() == expected
    assert referral.application.recorder.max_notification_id() == expected
