"""The Kafka transport against a real Kafka-protocol broker (Tansu, or ``HUHANG_TEST_KAFKA_BOOTSTRAP``).

Every test uses its own topic and consumer groups, so tests do not see each other's records.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from contracts.agencies import Agency
from contracts.envelope import CloudEvent
from contracts.events import ReportFiled, ReportFiledData
from contracts.vocabulary import ChildCategory, ConcernCategory, ReporterRole, Urgency
from huhang.kafka import KafkaPublisher, KafkaSource, PublishError, ensure_topics
from huhang.streams import Batch
from tests.support.broker import running_broker, tansu_broker

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

# Tansu holds a group join for a while (about half the session timeout here); keep both short so joins are fast.
MAX_POLL_INTERVAL_MS = 3000
SESSION_TIMEOUT_MS = 3000
WAIT_S = 20.0

SourceFactory = Callable[..., KafkaSource]


@pytest.fixture(scope="module")
def kafka_bootstrap() -> Iterator[str]:
    with running_broker() as bootstrap:
        yield bootstrap


@pytest.fixture
def topic(kafka_bootstrap: str) -> str:
    name = f"huhang.test.{uuid.uuid4().hex[:12]}.v1"
    assert ensure_topics(kafka_bootstrap, [name], partitions=3) == [name]
    return name


@pytest.fixture
def publisher(kafka_bootstrap: str, topic: str) -> Iterator[KafkaPublisher]:
    publisher = KafkaPublisher(kafka_bootstrap, topic, client_id="test-publisher")
    yield publisher
    publisher.close()


@pytest.fixture
def make_source(kafka_bootstrap: str, topic: str) -> Iterator[SourceFactory]:
    sources: list[KafkaSource] = []

    def make(group_id: str, max_records: int = 500) -> KafkaSource:
        source = KafkaSource(
            kafka_bootstrap,
            [topic],
            group_id,
            max_poll_interval_ms=MAX_POLL_INTERVAL_MS,
            session_timeout_ms=SESSION_TIMEOUT_MS,
            max_records=max_records,
        )
        sources.append(source)
        return source

    yield make
    for source in sources:
        source.close()


def report_filed(case_id: uuid.UUID, correlation_id: uuid.UUID | None = None) -> ReportFiled:
    """A contract event with synthetic ids and codes only."""
    event_id = uuid.uuid4()
    return ReportFiled(
        id=event_id,
        source="/huhang/intake",
        subject=str(case_id),
        time=datetime.now(UTC),
        dataschema=ReportFiled.schema_uri(),
        correlationid=correlation_id or event_id,
        actoragency=Agency.education,
        data=ReportFiledData(
            report_id=uuid.uuid4(),
            case_id=case_id,
            child_id=uuid.uuid4(),
            reporter_agency=Agency.education,
            reporter_role=ReporterRole.teacher,
            concern_category=ConcernCategory.school_dropout,
            urgency=Urgency.routine,
            child_categories=(ChildCategory.left_behind,),
            township="T001",
            village="V001",
            observed_on=date(2025, 3, 1),
        ),
    )


def poll_until(source: KafkaSource, count: int, timeout_s: float = WAIT_S) -> list[Batch]:
    """Poll batches (without committing) until they hold ``count`` events."""
    batches: list[Batch] = []
    deadline = time.monotonic() + timeout_s
    while sum(len(b.events) for b in batches) < count:
        assert time.monotonic() < deadline, f"got {sum(len(b.events) for b in batches)} of {count} events"
        batch = source.poll(0.5)
        if batch is not None:
            batches.append(batch)
    return batches


def events_of(batches: Sequence[Batch]) -> list[CloudEvent]:
    return [event for batch in batches for event in batch.events]


def commit_all(batches: Sequence[Batch]) -> None:
    for batch in batches:
        batch.commit()


def raw_records(bootstrap: str, topic: str, count: int) -> list[Any]:
    """Read a topic's records with a plain consumer (no group), from the beginning of every partition."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        records: list[Any] = []
        deadline = time.monotonic() + WAIT_S
        while len(records) < count and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


def test_published_events_arrive_in_a_group_as_the_same_contract_objects_keyed_by_case(
    kafka_bootstrap: str, topic: str, publisher: KafkaPublisher, make_source: SourceFactory
) -> None:
    sent = [report_filed(uuid.uuid4()) for _ in range(5)]
    publisher.handle(sent)

    source = make_source("group-roundtrip")
    batches = poll_until(source, len(sent))
    commit_all(batches)

    received = events_of(batches)
    assert all(type(event) is ReportFiled for event in received)
    assert sorted(received, key=lambda e: str(e.id)) == sorted(sent, key=lambda e: str(e.id))

    by_id = {str(event.id): event for event in sent}
    records = raw_records(kafka_bootstrap, topic, len(sent))
    assert len(records) == len(sent)
    for record in records:
        headers = dict(record.headers)  # binary mode: the attributes are ce_ headers, the data is the value
        event = by_id[headers["ce_id"].decode()]
        assert headers["ce_specversion"] == b"1.0"
        assert headers["ce_type"] == ReportFiled.event_type.encode()
        assert headers["content-type"] == b"application/json"
        assert json.loads(record.value) == json.loads(event.data.model_dump_json())
        assert record.key == event.subject.encode()


def test_events_of_one_case_keep_their_order_across_partitions(
    kafka_bootstrap: str, topic: str, publisher: KafkaPublisher, make_source: SourceFactory
) -> None:
    # Fixed case ids, so the spread over partitions is the same on every run.
    cases = [uuid.uuid5(uuid.NAMESPACE_URL, f"urn:huhang:test-case:{i}") for i in range(6)]
    sent: list[ReportFiled] = []
    for _round in range(5):  # several handle() calls, each interleaving all cases
        events = [report_filed(case) for case in cases]
        publisher.handle(events)
        sent.extend(events)

    source = make_source("group-ordering")
    batches = poll_until(source, len(sent))
    commit_all(batches)
    received = events_of(batches)

    for case in cases:
        expected = [e.id for e in sent if e.subject == str(case)]
        assert [e.id for e in received if e.subject == str(case)] == expected

    records = raw_records(kafka_bootstrap, topic, len(sent))
    partitions_by_case: dict[bytes, set[int]] = {}
    for record in records:
        partitions_by_case.setdefault(record.key, set()).add(record.partition)
    assert all(len(partitions) == 1 for partitions in partitions_by_case.values())
    assert len(set().union(*partitions_by_case.values())) > 1  # the cases really spread over partitions


def test_an_uncommitted_batch_is_delivered_again_to_the_group(
    publisher: KafkaPublisher, make_source: SourceFactory
) -> None:
    case = uuid.uuid4()
    sent = [report_filed(case) for _ in range(4)]
    publisher.handle(sent)

    first = make_source("group-redelivery")
    assert [e.id for e in events_of(poll_until(first, len(sent)))] == [e.id for e in sent]
    first.close()  # handled but never committed, as after a crash

    second = make_source("group-redelivery")
    assert [e.id for e in events_of(poll_until(second, len(sent)))] == [e.id for e in sent]


def test_a_committed_batch_is_not_delivered_again_but_a_later_uncommitted_one_is(
    publisher: KafkaPublisher, make_source: SourceFactory
) -> None:
    case = uuid.uuid4()  # one case: one partition, so batches follow the publishing order
    sent = [report_filed(case) for _ in range(4)]
    publisher.handle(sent)

    first = make_source("group-commit", max_records=2)
    committed = poll_until(first, 2)
    commit_all(committed)
    uncommitted = poll_until(first, 2)
    assert [e.id for e in events_of(committed + uncommitted)] == [e.id for e in sent]
    first.close()

    second = make_source("group-commit")
    batches = poll_until(second, 2)
    commit_all(batches)
    assert [e.id for e in events_of(batches)] == [e.id for e in sent[2:]]

    sentinel = report_filed(case)
    publisher.handle([sentinel])
    assert [e.id for e in events_of(poll_until(second, 1))] == [sentinel.id]


def test_rewind_redelivers_the_uncommitted_batch(publisher: KafkaPublisher, make_source: SourceFactory) -> None:
    case = uuid.uuid4()
    done = [report_filed(case) for _ in range(2)]
    publisher.handle(done)
    source = make_source("group-rewind")
    commit_all(poll_until(source, len(done)))

    failed = [report_filed(case) for _ in range(3)]
    publisher.handle(failed)
    assert [e.id for e in events_of(poll_until(source, len(failed)))] == [e.id for e in failed]

    source.rewind()  # what the Consumer does after its handler failed

    batches = poll_until(source, len(failed))
    assert [e.id for e in events_of(batches)] == [e.id for e in failed]
    commit_all(batches)
    source.rewind()
    assert source.poll(1.0) is None


def test_an_unparseable_record_is_skipped_and_does_not_block_the_next_valid_one(
    kafka_bootstrap: str,
    topic: str,
    publisher: KafkaPublisher,
    make_source: SourceFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    case = uuid.uuid4()
    marker = "NOT-A-CONTRACT-" + uuid.uuid4().hex
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    try:
        key = str(case).encode()  # same key as the valid event: the bad records come first in its partition
        producer.send(topic, key=key, value=marker.encode())
        producer.send(topic, key=key, value=json.dumps({"type": "cn.huhang.unknown.v1", "x": marker}).encode())
        producer.flush()
    finally:
        producer.close()
    valid = report_filed(case)
    publisher.handle([valid])

    source = make_source("group-poison")
    with caplog.at_level(logging.WARNING, logger="huhang.kafka"):
        batches = poll_until(source, 1)
    commit_all(batches)
    assert events_of(batches) == [valid]

    skipped = [r for r in caplog.records if r.name == "huhang.kafka" and "unparseable" in r.getMessage()]
    assert len(skipped) == 2
    assert all(marker not in r.getMessage() for r in caplog.records)  # positions only, never the value
    source.close()

    # The skipped records were committed with their batch: the group does not see them again.
    sentinel = report_filed(case)
    publisher.handle([sentinel])
    again = make_source("group-poison")
    assert events_of(poll_until(again, 1)) == [sentinel]


def test_publishing_raises_when_the_broker_does_not_acknowledge() -> None:
    # A broker of its own (even when the others run against HUHANG_TEST_KAFKA_BOOTSTRAP): it is killed here.
    with tansu_broker() as broker:
        topic = "huhang.test.lost-broker.v1"
        ensure_topics(broker.bootstrap, [topic], partitions=3)
        publisher = KafkaPublisher(broker.bootstrap, topic, client_id="test-publisher", delivery_timeout_s=2.0)
        try:
            publisher.handle([report_filed(uuid.uuid4())])
            broker.kill()

            started = time.monotonic()
            with pytest.raises(PublishError) as failure:
                publisher.handle([report_filed(uuid.uuid4()), report_filed(uuid.uuid4())])
            assert failure.value.failed == 2
            assert time.monotonic() - started < 15  # the delivery timeout, plus kafka-python's margin at worst
        finally:
            publisher.close()
