"""How far behind each follower, relay and consumer of a service is (issue 7): the lag, for operators.

Two kinds of streams move integration events (``huhang.streams``):

- **log followers** (the outbox relay, in-process read models, the embedded router) read a service's notification
  log from a durably tracked position (``follower_positions``). Their lag is the log's head (its highest
  notification id) minus their position: two small queries, answerable from any process on the store, so a
  service's API reports on its worker's relay without talking to it;
- **Kafka consumer groups** (a worker's read models, the router) commit offsets per partition. Their lag is each
  partition's end offset minus the group's committed offset (kafka-python's ``end_offsets`` and the group
  coordinator's committed offsets), looked up with a short time limit and cached for a moment: a broker that is
  down makes the answer say so rather than hang.

A ``BacklogWatch`` runs beside the log followers of a process (``huhang.bootstrap.Runtime``): every few seconds it
notes when each one last advanced (``stream_progress``, written only when a position moves) and logs, with names
and numbers only, when a backlog grows past a threshold and when it drains again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import BigInteger, Column, Engine, Float, MetaData, String, Table, select

from huhang.sql import create_tables, reading, upsert
from huhang.streams import Consumer, MergedSource, NotificationLogSource, Positions

logger = logging.getLogger(__name__)

BACKLOG_THRESHOLD = 100  # notifications behind the head before a follower's backlog is logged
WATCH_INTERVAL_S = 2.0
KAFKA_LOOKUP_TIMEOUT_S = 2.0  # the longest an answer waits for the broker
KAFKA_CACHE_S = 2.0  # a lookup younger than this is answered again (the endpoint stays cheap when polled)

StreamKind = Literal["relay", "follower", "router", "consumer_group"]

progress_metadata = MetaData()
progress_table = Table(
    "stream_progress",
    progress_metadata,
    Column("name", String(200), primary_key=True),
    Column("position", BigInteger, nullable=False),
    Column("progress_at", Float, nullable=False),  # epoch seconds when the position was last seen to move
)


class StreamProgress:
    """When each log follower last advanced, as its process's ``BacklogWatch`` saw it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        create_tables(progress_metadata, engine, [progress_table])

    def record(self, name: str, position: int, at: float) -> None:
        with self.engine.begin() as conn:
            upsert(conn, progress_table, {"name": name, "position": position, "progress_at": at}, keys=["name"])

    def all(self) -> dict[str, float]:
        with reading(self.engine) as conn:
            rows = conn.execute(select(progress_table.c.name, progress_table.c.progress_at)).all()
        return {str(name): float(at) for name, at in rows}


def log_head(app: Any) -> int:
    """The highest notification id of an application's log (0 when empty)."""
    return int(app.recorder.max_notification_id() or 0)


@dataclass(frozen=True)
class LogFollower:
    """A follower of one notification log: its position's name, where positions are kept, and the log."""

    name: str  # the position's name, e.g. "intake.relay<-intake"
    kind: StreamKind
    positions: Positions
    app: Any  # the followed service's WakeableApplication


@dataclass(frozen=True)
class KafkaGroup:
    name: str  # as the consumer is called in its process, e.g. "intake.subscriptions", "router"
    group_id: str
    topics: tuple[str, ...]


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    committed: int | None  # None: the group has committed nothing on it yet
    end: int
    lag: int


@dataclass(frozen=True)
class StreamStatus:
    name: str
    kind: StreamKind
    position: int | None
    head: int | None
    lag: int | None  # None when it could not be found out now (see ``error``)
    last_progress_at: datetime | None
    partitions: tuple[PartitionLag, ...] = ()
    error: str | None = None  # an exception type, never its text


def follower_status(follower: LogFollower, progress: dict[str, float]) -> StreamStatus:
    try:
        position = follower.positions.get(follower.name)
        head = log_head(follower.app)
    except Exception as exc:  # the store is unreachable: say so, do not fail the whole answer
        return StreamStatus(follower.name, follower.kind, None, None, None, None, error=type(exc).__name__)
    at = progress.get(follower.name)
    return StreamStatus(
        follower.name, follower.kind, position, head, max(0, head - position),
        datetime.fromtimestamp(at, UTC) if at is not None else None,
    )


class KafkaLag:
    """Committed offsets against end offsets for consumer groups, with a time limit and a short cache.

    One lookup runs at a time in a thread of its own; an answer that waits longer than the limit reports a timeout
    and the lookup finishes in the background for the next request. Clients are made on first use and dropped
    after an error (the next lookup connects afresh).
    """

    def __init__(
        self, bootstrap_servers: str, timeout_s: float = KAFKA_LOOKUP_TIMEOUT_S, cache_s: float = KAFKA_CACHE_S
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.timeout_s = timeout_s
        self.cache_s = cache_s
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ops-kafka-lag")
        self._lock = threading.Lock()
        self._pending: Future[dict[str, tuple[PartitionLag, ...]]] | None = None
        self._cached: tuple[float, dict[str, tuple[PartitionLag, ...]]] | None = None
        self._consumer: Any = None
        self._admin: Any = None

    def lags(self, groups: Sequence[KafkaGroup]) -> dict[str, tuple[PartitionLag, ...]] | str:
        """Per group id, its partitions' lag; or the type of the error that prevented finding out."""
        with self._lock:
            if self._cached is not None and time.monotonic() - self._cached[0] < self.cache_s:
                return self._cached[1]
            if self._pending is None or self._pending.done():
                self._pending = self._executor.submit(self._lookup, tuple(groups))
            pending = self._pending
        try:
            found = pending.result(timeout=self.timeout_s)
        except FutureTimeout:
            return "KafkaTimeoutError"
        except Exception as exc:
            return type(exc).__name__
        with self._lock:
            self._cached = (time.monotonic(), found)
        return found

    def _lookup(self, groups: tuple[KafkaGroup, ...]) -> dict[str, tuple[PartitionLag, ...]]:
        from kafka import TopicPartition

        try:
            consumer, admin = self._clients()
            found: dict[str, tuple[PartitionLag, ...]] = {}
            for group in groups:
                partitions = [
                    TopicPartition(topic, p) for topic in group.topics
                    for p in sorted(consumer.partitions_for_topic(topic) or ())
                ]
                ends = consumer.end_offsets(partitions) if partitions else {}
                fetched = admin.list_group_offsets({group.group_id: partitions}) if partitions else {}
                committed = {  # -1: nothing committed on that partition yet
                    tp: meta.offset for tp, meta in fetched.get(group.group_id, {}).items() if meta.offset >= 0
                }
                found[group.group_id] = tuple(
                    PartitionLag(tp.topic, tp.partition, committed.get(tp), int(ends[tp]),
                                 max(0, int(ends[tp]) - int(committed.get(tp) or 0)))
                    for tp in partitions if tp in ends
                )
            return found
        except Exception:
            self._drop_clients()
            raise

    def _clients(self) -> tuple[Any, Any]:
        from kafka import KafkaAdminClient, KafkaConsumer

        common: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers, "request_timeout_ms": 5000, "bootstrap_timeout_ms": 2000,
        }
        if self._consumer is None:
            # No group and no subscription: it only asks for partitions and end offsets, never joins a group.
            self._consumer = KafkaConsumer(client_id="huhang-ops", group_id=None, enable_auto_commit=False, **common)
        if self._admin is None:
            self._admin = KafkaAdminClient(client_id="huhang-ops-admin", **common)
        return self._consumer, self._admin

    def _drop_clients(self) -> None:
        consumer, admin, self._consumer, self._admin = self._consumer, self._admin, None, None
        for client in (consumer, admin):
            if client is not None:
                try:
                    client.close()
                except Exception as exc:
                    logger.debug("closing an ops Kafka client failed (%s)", type(exc).__name__)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._drop_clients()


def group_status(group: KafkaGroup, lags: dict[str, tuple[PartitionLag, ...]] | str) -> StreamStatus:
    if isinstance(lags, str):
        return StreamStatus(group.name, "consumer_group", None, None, None, None, error=lags)
    partitions = lags.get(group.group_id, ())
    committed = sum(p.committed or 0 for p in partitions)
    end = sum(p.end for p in partitions)
    return StreamStatus(group.name, "consumer_group", committed, end, sum(p.lag for p in partitions), None,
                        partitions=partitions)


@dataclass
class StreamsReport:
    """Everything one service (or the embedded app) reports at ``GET /v1/ops/streams``."""

    followers: Sequence[LogFollower]
    groups: Sequence[KafkaGroup] = ()
    kafka: KafkaLag | None = None

    def statuses(self) -> list[StreamStatus]:
        progress: dict[str, float] = {}
        for engine in {id(f.positions.engine): f.positions.engine for f in self.followers}.values():
            try:
                progress.update(StreamProgress(engine).all())
            except Exception as exc:  # the answer still says what it can
                logger.warning("stream progress not read (%s)", type(exc).__name__)
        found = [follower_status(f, progress) for f in self.followers]
        if self.groups and self.kafka is not None:
            lags = self.kafka.lags(self.groups)
            found.extend(group_status(g, lags) for g in self.groups)
        return found


def followers_of(consumers: Iterable[Consumer]) -> list[LogFollower]:
    """The log followers among a process's consumers (Kafka consumers are not watched here)."""
    found: list[LogFollower] = []
    for consumer in consumers:
        source = consumer.source
        sources = source.sources if isinstance(source, MergedSource) else [source]
        kind: StreamKind = "relay" if consumer.name.endswith(".relay") else "follower"
        found.extend(
            LogFollower(s.name, kind, s.positions, s.app) for s in sources if isinstance(s, NotificationLogSource)
        )
    return found


@dataclass
class BacklogWatch:
    """Notes the log followers' progress and logs a backlog over the threshold once, and its draining once."""

    followers: Sequence[LogFollower]
    threshold: int = BACKLOG_THRESHOLD
    interval_s: float = WATCH_INTERVAL_S
    clock: Callable[[], float] = time.time
    _seen: dict[str, int] = field(default_factory=dict)
    _behind_since: dict[str, float] = field(default_factory=dict)
    _progress: dict[int, StreamProgress] = field(default_factory=dict)

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(self.interval_s):
            self.check()

    def check(self) -> None:
        heads: dict[int, int] = {}
        for follower in self.followers:
            try:
                if id(follower.app) not in heads:
                    heads[id(follower.app)] = log_head(follower.app)
                self._check(follower, follower.positions.get(follower.name), heads[id(follower.app)])
            except Exception as exc:  # the next round tries again
                logger.warning("stream %s not checked (%s)", follower.name, type(exc).__name__)

    def _check(self, follower: LogFollower, position: int, head: int) -> None:
        now = self.clock()
        if self._seen.get(follower.name) != position:
            self._progress_of(follower.positions.engine).record(follower.name, position, now)
            self._seen[follower.name] = position
        lag = max(0, head - position)
        if follower.name not in self._behind_since and lag > self.threshold:
            self._behind_since[follower.name] = now
            logger.warning("stream %s backlog over %d: lag %d (position %d, head %d)",
                           follower.name, self.threshold, lag, position, head)
        elif follower.name in self._behind_since and lag == 0:
            since = self._behind_since.pop(follower.name)
            logger.info("stream %s backlog drained: position %d after %.1fs", follower.name, position, now - since)

    def _progress_of(self, engine: Engine) -> StreamProgress:
        found = self._progress.get(id(engine))
        if found is None:
            found = self._progress[id(engine)] = StreamProgress(engine)
        return found

    @property
    def behind(self) -> frozenset[str]:
        """The followers whose backlog is over the threshold and not drained yet."""
        return frozenset(self._behind_since)
