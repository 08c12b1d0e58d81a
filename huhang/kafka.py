"""The Kafka transport: publishing contract events to topics and consuming them in consumer groups.

Messages are binary-mode CloudEvents (``contracts.kafka_binding``: the data is the JSON value, the attributes are
``ce_*`` headers; records in the older structured mode are still read), keyed by ``subject`` (the case id) so all
events of one case land on one partition and keep their order. Offsets are committed by hand, batch by batch, only
after the handler has succeeded; a failed batch is redelivered (``KafkaSource.rewind``), and handlers deduplicate on
the event id.

Nothing here connects at import time or in a constructor: clients are created on first use.
Log lines carry topics, partitions, offsets and exception types only, never a message value or an exception
text (either may hold personal data).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka import errors as kafka_errors
from kafka.structs import OffsetAndMetadata

from contracts.envelope import CloudEvent
from contracts.kafka_binding import from_record, to_binary
from huhang.streams import Batch

logger = logging.getLogger(__name__)



class PublishError(RuntimeError):
    """Some events of a batch were not acknowledged by the brokers; the batch must not be committed."""

    def __init__(self, failed: int, total: int, topic: str) -> None:
        super().__init__(f"{failed} of {total} events were not acknowledged on topic {topic}")
        self.failed = failed
        self.total = total
        self.topic = topic


class KafkaPublisher:
    """An ``EventHandler`` that publishes each event to one topic with an idempotent producer.

    ``handle`` returns only when every event is acknowledged by all in-sync replicas (``acks='all'``);
    otherwise it raises, so the caller does not commit its position and publishes the batch again.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        client_id: str,
        *,
        delivery_timeout_s: float = 120.0,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.client_id = client_id
        self.delivery_timeout_s = delivery_timeout_s
        self._producer: KafkaProducer | None = None

    def _get_producer(self) -> KafkaProducer:
        if self._producer is None:
            delivery_timeout_ms = int(self.delivery_timeout_s * 1000)
            self._producer = KafkaProducer(
                bootstrap_servers=self.bootstrap_servers,
                client_id=self.client_id,
                enable_idempotence=True,
                acks="all",
                # Every wait is bounded by the delivery timeout: an unreachable cluster fails the batch
                # (and the caller retries it) instead of blocking the consumer loop.
                delivery_timeout_ms=delivery_timeout_ms,
                request_timeout_ms=min(30_000, delivery_timeout_ms),
                max_block_ms=delivery_timeout_ms,
                bootstrap_timeout_ms=delivery_timeout_ms,
            )
        return self._producer

    def handle(self, events: Sequence[CloudEvent]) -> None:
        if not events:
            return
        producer = self._get_producer()
        futures = [
            producer.send(self.topic, value=value, key=key, headers=headers)
            for key, value, headers in map(to_binary, events)
        ]
        # Records fail on their own once the delivery timeout passes, so flush normally returns with every
        # future done; any still pending after the margin count as failed below.
        with contextlib.suppress(kafka_errors.KafkaTimeoutError):
            producer.flush(timeout=self.delivery_timeout_s + 10)
        failures: list[Exception] = []
        for future in futures:
            try:
                future.get(timeout=0)  # flush() completed them all; one still pending counts as failed
            except Exception as exc:
                failures.append(exc)
        if failures:
            first = failures[0]
            logger.warning(
                "publishing to %s failed for %d of %d events (%s)",
                self.topic,
                len(failures),
                len(futures),
                type(first).__name__,
            )
            # The producer stays: kafka-python's idempotent producer recovers its sequence by itself
            # (epoch bump), and the caller publishes the whole batch again (consumers deduplicate on id).
            raise PublishError(len(failures), len(futures), self.topic) from first

    def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is None:
            return
        try:
            producer.close(timeout=self.delivery_timeout_s)
        except kafka_errors.KafkaTimeoutError:
            # kafka-python 3 flushes in close() and raises, before stopping its network thread, when records
            # are still pending (the broker is gone). Drop them (their batch was not acknowledged, so it was
            # not committed) and stop the thread, so it does not outlive the publisher.
            logger.warning("closing the publisher for %s dropped undelivered events", self.topic)
            sender = getattr(producer, "_sender", None)
            if sender is not None:
                sender.force_close()
            producer.close(timeout=1)


class KafkaSource:
    """An ``EventSource`` over Kafka topics, consumed in a consumer group with manual commits.

    Each batch's ``commit`` commits exactly the offsets of that batch's records (one past the last record of
    each partition). Records that are not valid contract events are logged by position and skipped, but
    committed with their batch so they never block a partition.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topics: Sequence[str],
        group_id: str,
        *,
        max_poll_interval_ms: int,
        session_timeout_ms: int,
        max_records: int = 500,
        client_id: str | None = None,
        window_s: float = 0.0,
    ) -> None:
        if not topics:
            raise ValueError("KafkaSource needs at least one topic")
        self.bootstrap_servers = bootstrap_servers
        self.topics = tuple(topics)
        self.group_id = group_id
        self.max_poll_interval_ms = max_poll_interval_ms
        self.session_timeout_ms = session_timeout_ms
        self.max_records = max_records
        self.client_id = client_id or f"huhang-{group_id}"
        # As for log followers (huhang.streams): while keeping up, poll at most once per window, so that a
        # batch (and its offset commit, a round trip to the broker) covers every record that arrived meanwhile.
        self.window_s = window_s
        self._last_poll = 0.0
        self._caught_up = True
        self._consumer: KafkaConsumer | None = None

    def _get_consumer(self) -> KafkaConsumer:
        if self._consumer is None:
            consumer = KafkaConsumer(
                bootstrap_servers=self.bootstrap_servers,
                group_id=self.group_id,
                client_id=self.client_id,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                max_poll_interval_ms=self.max_poll_interval_ms,
                session_timeout_ms=self.session_timeout_ms,
                # Must stay below the session timeout; a third of it is Kafka's usual ratio.
                heartbeat_interval_ms=max(100, min(3000, self.session_timeout_ms // 3)),
                max_poll_records=self.max_records,
            )
            consumer.subscribe(topics=list(self.topics))
            self._consumer = consumer
        return self._consumer

    def poll(self, timeout_s: float) -> Batch | None:
        consumer = self._get_consumer()
        if self._caught_up and self.window_s > 0:
            pause = min(self._last_poll + self.window_s - time.monotonic(), timeout_s)
            if pause > 0:
                time.sleep(pause)
                timeout_s -= pause
        records_by_partition: dict[Any, list[Any]] = consumer.poll(
            timeout_ms=max(0, int(timeout_s * 1000)), max_records=self.max_records
        )
        self._last_poll = time.monotonic()
        self._caught_up = sum(len(r) for r in records_by_partition.values()) < self.max_records
        if not records_by_partition:
            return None
        events: list[CloudEvent] = []
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for tp, records in records_by_partition.items():
            if not records:
                continue
            for record in records:
                event = self._parse(record)
                if event is not None:
                    events.append(event)
            last = records[-1]
            leader_epoch = last.leader_epoch if last.leader_epoch is not None else -1
            offsets[TopicPartition(tp.topic, tp.partition)] = OffsetAndMetadata(last.offset + 1, "", leader_epoch)
        if not offsets:
            return None
        return Batch(events=events, commit=lambda: self._commit(offsets))

    @staticmethod
    def _parse(record: Any) -> CloudEvent | None:
        try:
            if record.value is None:
                raise ValueError("empty record value")
            return from_record(record.value, record.headers or ())
        except ValueError as exc:  # pydantic's ValidationError and decoding errors are ValueErrors
            # Position only: the value and the error text may quote personal data.
            logger.warning(
                "skipping unparseable record %s[%d]@%d (%s)",
                record.topic,
                record.partition,
                record.offset,
                type(exc).__name__,
            )
            return None

    def _commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        try:
            self._get_consumer().commit(offsets=dict(offsets))
        except kafka_errors.CommitFailedError:
            # The group rebalanced while the batch was handled (its partitions may now be another member's).
            # Nothing is lost: whoever owns them now gets the batch again, and handlers are idempotent.
            logger.warning("commit after a rebalance of %s refused; the batch will be delivered again", self.group_id)

    def rewind(self) -> None:
        """Seek every assigned partition back to its last committed offset (redeliver uncommitted batches)."""
        consumer = self._consumer
        if consumer is None:
            return
        try:
            for tp in consumer.assignment():
                committed = consumer.committed(tp)
                if committed is None:
                    consumer.seek_to_beginning(tp)
                else:
                    consumer.seek(tp, committed)
        except kafka_errors.KafkaError as exc:
            # Without the committed offsets, leave the group instead: the next poll joins afresh and the
            # group resumes from its committed offsets, which redelivers the same records.
            logger.warning("rewinding %s failed (%s); rejoining the group", self.group_id, type(exc).__name__)
            self.close()

    def close(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            consumer.close(autocommit=False)


def ensure_topics(
    bootstrap_servers: str,
    topics: Sequence[str],
    partitions: int = 3,
    *,
    replication_factor: int = -1,
) -> list[str]:
    """Create those of ``topics`` that do not exist yet; return the names created.

    ``replication_factor=-1`` takes the broker's default (Kafka 2.4 and later).
    """
    if not topics:
        return []
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="huhang-ensure-topics")
    try:
        existing = set(admin.list_topics())
        missing = [topic for topic in dict.fromkeys(topics) if topic not in existing]
        if not missing:
            return []
        response = admin.create_topics(
            {topic: {"num_partitions": partitions, "replication_factor": replication_factor} for topic in missing},
            raise_errors=False,
            wait_for_metadata=False,
        )
        created: list[str] = []
        for result in response["topics"]:
            error = kafka_errors.for_code(result["error_code"])
            if error is kafka_errors.NoError:
                created.append(result["name"])
            elif error is not kafka_errors.TopicAlreadyExistsError:
                raise error(f"creating topic {result['name']} failed")
        if created:
            admin.wait_for_topics(created)
        return created
    finally:
        admin.close()
