"""No personal data on the Kafka topics: a child's name, identity-card number and the report's free text never
travel; intake's relay publishes ids and codes only (contracts/), read here byte by byte from the real broker."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from faker import Faker
from kafka import KafkaConsumer

from huhang.bootstrap import relay, topic_of
from huhang.kafka import ensure_topics
from huhang.settings import Settings
from services.intake.main import IntakeService
from services.intake.main import build as build_intake
from tests.support.broker import running_broker
from tests.unit.test_personal_data import OBSERVED, a_report

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


@pytest.fixture(scope="module")
def kafka_bootstrap() -> Iterator[str]:
    with running_broker() as bootstrap:
        yield bootstrap


@pytest.fixture
def intake(kafka_bootstrap: str, tmp_path: Path) -> Iterator[IntakeService]:
    settings = Settings(
        storage="sqlite", data_dir=tmp_path / "data", transport="kafka", kafka_bootstrap_servers=kafka_bootstrap,
        kafka_namespace=f"t{uuid.uuid4().hex[:8]}.",
    )
    ensure_topics(kafka_bootstrap, [topic_of(settings, "intake")], partitions=1)
    built = build_intake(settings)
    yield built
    built.application.close()
    built.positions.engine.dispose()


def published(bootstrap: str, topic: str, at_least: int) -> list[bytes]:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=5000, group_id=None)
    try:
        # Key, value and headers (binary-mode CloudEvents carry their attributes as ce_ headers).
        records = [
            b"\x00".join([r.key or b"", r.value or b"", *(value or b"" for _, value in r.headers or ())])
            for r in consumer
        ]
    finally:
        consumer.close()
    assert len(records) >= at_least
    return records


def test_the_topic_holds_no_name_id_number_or_note(intake: IntakeService, kafka_bootstrap: str) -> None:
    fake = Faker("zh_CN")
    name, id_card = fake.name(), fake.ssn()
    filed = intake.application.file_report(a_report(fake, name, id_card))
    intake.application.erase_child(
        intake.application.file_report(a_report(fake, fake.name(), None)).child_id,
        reason="retention_expired", by="civil_affairs",
    )
    carrier = relay(intake.settings, intake)
    while carrier.run_once():
        pass
    records = published(kafka_bootstrap, topic_of(intake.settings, "intake"), at_least=3)
    blob = b"\x01".join(records)
    assert str(filed.case_id).encode() in blob  # the report did travel, by id
    assert b"cn.huhang.child.data-erased.v1" in blob  # and so did the erasure
    for needle in (name, id_card, OBSERVED[:12]):
        assert needle.encode() not in blob
        assert needle.encode("unicode_escape") not in blob  # nor as JSON's \\u escapes
