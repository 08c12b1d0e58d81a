"""The streams' lag (huhang/ops.py): a log follower's position against its log's head, when it last advanced, and
the backlog logged once over the threshold and once drained. A real eventsourcing application in memory and real
positions on SQLite; the endpoint itself on the embedded app."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from eventsourcing.domain import Aggregate, event

from huhang.ops import BacklogWatch, LogFollower, StreamProgress, StreamsReport, followers_of
from huhang.storage import temporary_engine
from huhang.streams import Consumer, NotificationLogSource, Positions, WakeableApplication


class Tick(Aggregate):
    @event("Ticked")
    def __init__(self) -> None:
        pass


class Log(WakeableApplication):
    def tick(self, n: int) -> None:
        self.save(*[Tick() for _ in range(n)])


@pytest.fixture
def log() -> Iterator[Log]:
    app = Log(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    yield app
    app.close()


@pytest.fixture
def positions() -> Positions:
    return Positions(temporary_engine("ops-test"))


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_the_lag_is_the_head_minus_the_position_and_progress_is_noted_when_the_position_moves(log, positions):
    follower = LogFollower("x.relay<-x", "relay", positions, log)
    clock = Clock()
    watch = BacklogWatch([follower], threshold=5, clock=clock)
    log.tick(3)
    watch.check()
    (status,) = StreamsReport([follower]).statuses()
    assert (status.position, status.head, status.lag) == (0, 3, 3)
    first_seen = status.last_progress_at
    assert first_seen is not None
    assert first_seen.timestamp() == 1_000.0

    clock.now = 1_010.0
    watch.check()  # not moved: the progress time stays
    assert StreamProgress(positions.engine).all() == {"x.relay<-x": 1_000.0}

    positions.save("x.relay<-x", 3)
    clock.now = 1_020.0
    watch.check()
    (status,) = StreamsReport([follower]).statuses()
    assert (status.position, status.head, status.lag) == (3, 3, 0)
    assert status.last_progress_at is not None
    assert status.last_progress_at.timestamp() == 1_020.0


def test_a_backlog_is_logged_once_over_the_threshold_and_once_drained(log, positions, caplog):
    follower = LogFollower("x.relay<-x", "relay", positions, log)
    watch = BacklogWatch([follower], threshold=5)
    caplog.set_level(logging.INFO, logger="huhang.ops")
    log.tick(5)
    watch.check()
    assert watch.behind == frozenset()
    assert not caplog.records
    log.tick(2)
    watch.check()
    watch.check()
    assert watch.behind == {"x.relay<-x"}
    over = [r.getMessage() for r in caplog.records]
    assert over == ["stream x.relay<-x backlog over 5: lag 7 (position 0, head 7)"]

    positions.save("x.relay<-x", 6)
    watch.check()  # lower, not drained
    assert watch.behind == {"x.relay<-x"}
    positions.save("x.relay<-x", 7)
    watch.check()
    watch.check()
    assert watch.behind == frozenset()
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert messages[1].startswith("stream x.relay<-x backlog drained: position 7 after ")


def test_a_store_that_fails_is_reported_by_error_type_not_raised(log):
    (status,) = StreamsReport([LogFollower("x<-x", "follower", _Failing(), log)]).statuses()
    assert (status.position, status.lag, status.error) == (None, None, "OperationalError")


class _Failing(Positions):
    """Positions on a database that cannot be opened (a path inside a missing folder)."""

    def __init__(self) -> None:
        from sqlalchemy import create_engine

        self.engine = create_engine("sqlite:////nonexistent-folder/for/ops/test.sqlite")


def test_the_log_followers_of_a_process_are_found_among_its_consumers(log, positions):
    class Nothing:
        def handle(self, events: Any) -> None:
            pass

    relay = Consumer("x.relay", NotificationLogSource("x.relay<-x", log, lambda _: [], positions), Nothing())
    reader = Consumer("x.timeline", NotificationLogSource("timeline<-x", log, lambda _: [], positions), Nothing())
    found = followers_of([relay, reader])
    assert [(f.name, f.kind) for f in found] == [("x.relay<-x", "relay"), ("timeline<-x", "follower")]


def test_the_watch_runs_until_stopped(log, positions):
    watch = BacklogWatch([LogFollower("x<-x", "follower", positions, log)], interval_s=0.01)
    stop = threading.Event()
    thread = threading.Thread(target=watch.run, args=(stop,))
    thread.start()
    log.tick(1)
    stop.set()
    thread.join(5)
    assert not thread.is_alive()


@pytest.mark.integration
def test_a_consumer_groups_lag_is_its_end_offsets_minus_its_committed_offsets(kafka_bootstrap):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    from huhang.kafka import ensure_topics
    from huhang.ops import KafkaGroup, KafkaLag

    topic, group = f"ops-{uuid.uuid4().hex[:8]}", f"ops-group-{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka_bootstrap, [topic], partitions=1)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    for n in range(5):
        producer.send(topic, f"{n}".encode(), partition=0).get(10)
    producer.close()
    committer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False)
    committer.commit({TopicPartition(topic, 0): OffsetAndMetadata(2, "", -1)})
    committer.close()

    lag = KafkaLag(kafka_bootstrap, timeout_s=20, cache_s=0)
    try:
        found = lag.lags([KafkaGroup("g", group, (topic,))])
        assert not isinstance(found, str), found
        (partition,) = found[group]
        assert (partition.committed, partition.end, partition.lag) == (2, 5, 3)
    finally:
        lag.close()


def test_a_broker_that_does_not_answer_is_reported_not_waited_for():
    from huhang.ops import KafkaGroup, KafkaLag, group_status

    lag = KafkaLag(f"127.0.0.1:{_closed_port()}", timeout_s=0.5, cache_s=0)
    try:
        status = group_status(KafkaGroup("g", "group", ("t",)), lag.lags([KafkaGroup("g", "group", ("t",))]))
    finally:
        lag.close()
    assert status.lag is None
    assert status.error in {"KafkaTimeoutError", "NoBrokersAvailable"}


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
