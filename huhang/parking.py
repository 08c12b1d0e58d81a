"""Poison messages: events a consumer cannot handle are parked, with their reason, so they never block the rest.

A consumer (``huhang.streams.Consumer``, the router in ``workflows/routing.py``) that fails a batch takes it again
with backoff. A fault of the infrastructure (the database or the broker unreachable, a peer's 5xx) is retried for
ever and parks nothing: that is not the event's fault, and parking would lose the order of a whole partition. Any
other fault, ``max_attempts`` times in a row (``HUHANG_POISON_MAX_ATTEMPTS``), makes the consumer split the batch
(``handle_or_park``: bisect) until it finds the events that fail alone; those are parked in ``parked_events``
beside the consumer's positions, and the rest of the batch is handled and committed.

An operator lists parked events (``GET /v1/parked-events``, ``huhang parked list``) and hands one back
(``POST /v1/parked-events/{id}/retry``, ``huhang parked retry``): it is marked ``retrying``, and its consumer
handles it alone at its next look (at most once a second), then marks it ``handled``, or parks it again with the
new reason. Integration events carry ids and codes only, so the stored event holds no personal data; reasons are
an exception type and a short code, never an exception's text.
"""

from __future__ import annotations

import logging
import threading
import uuid
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from eventsourcing import persistence as es_persistence
from kafka import errors as kafka_errors
from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    select,
    update,
)
from sqlalchemy import exc as sa_exc

from contracts.envelope import CloudEvent
from contracts.events import parse_event
from huhang.sql import create_tables, dialect_insert, reading

logger = logging.getLogger(__name__)

PARKED_NAMESPACE = uuid.UUID("0b6f1d4e-8a7c-4f52-9d3e-5a1c7e9b2f40")
PARKED, RETRYING, HANDLED = "parked", "retrying", "handled"
STATUSES = (PARKED, RETRYING, HANDLED)

metadata = MetaData()
parked_table = Table(
    "parked_events",
    metadata,
    Column("parked_id", String(36), primary_key=True),  # uuid5 of (consumer, event id): parking twice is one row
    Column("consumer", String(200), nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("event_type", String(200), nullable=False),
    Column("source", String(200), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("event", Text, nullable=False),  # the CloudEvent as JSON (ids and codes only)
    Column("reason", String(200), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("first_failed_at", DateTime(timezone=True), nullable=False),
    Column("last_failed_at", DateTime(timezone=True), nullable=False),
    Column("retry_requested_at", DateTime(timezone=True), nullable=True),
    Column("handled_at", DateTime(timezone=True), nullable=True),
    Index("ix_parked_events_consumer_status", "consumer", "status"),
)


def parked_id(consumer: str, event_id: str) -> uuid.UUID:
    return uuid.uuid5(PARKED_NAMESPACE, f"{consumer}/{event_id}")


def unavailable(exc: BaseException) -> bool:
    """A fault of the infrastructure, not of the event: retried for ever, never parked.

    The database unreachable or locked, the broker unreachable, a peer service down or overloaded (5xx, 429), or
    refusing the platform's own credentials (401, 403: a configuration fault that every event would meet)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _unavailable_one(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def _unavailable_one(exc: BaseException) -> bool:
    from huhang.kafka import PublishError  # huhang.kafka imports huhang.streams, which imports this module

    if isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError,
                        sa_exc.TimeoutError, es_persistence.OperationalError, es_persistence.InterfaceError,
                        kafka_errors.KafkaError, PublishError, httpx.TransportError, ConnectionError, TimeoutError)):
        return True
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code not in (400, 409, 422)
    return False


def reason_of(exc: BaseException) -> str:
    """The exception's type and a short code; never its text (it may quote personal data)."""
    if isinstance(exc, httpx.HTTPStatusError):
        code = f"http_{exc.response.status_code}"
    elif isinstance(exc, (ValueError, LookupError)):
        code = "invalid_event"
    elif isinstance(exc, (TypeError, AttributeError)):
        code = "handler_bug"
    elif isinstance(exc, sa_exc.IntegrityError):
        code = "integrity"
    else:
        code = "handler_failed"
    return f"{type(exc).__name__}:{code}"[:200]


@dataclass(frozen=True)
class RetryItem:
    parked_id: str
    event: CloudEvent
    attempts: int


class ParkedEvents:
    """The ``parked_events`` table of one store (beside its consumers' positions)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        create_tables(metadata, engine, [parked_table])

    def park(self, consumer: str, event: CloudEvent, reason: str, attempts: int) -> str:
        now = datetime.now(UTC)
        key = str(parked_id(consumer, str(event.id)))
        row = {
            "parked_id": key, "consumer": consumer, "event_id": str(event.id),
            "event_type": str(getattr(event, "type", type(event).__name__)), "source": event.source,
            "subject": event.subject, "event": event.model_dump_json(), "reason": reason, "status": PARKED,
            "attempts": attempts, "first_failed_at": now, "last_failed_at": now,
        }
        with self.engine.begin() as conn:
            stmt = dialect_insert(conn, parked_table).values(row)
            conn.execute(stmt.on_conflict_do_update(
                index_elements=["parked_id"],
                set_={"reason": reason, "status": PARKED, "last_failed_at": now, "handled_at": None,
                      "attempts": parked_table.c.attempts + attempts},
            ))
        return key

    def entries(
        self, *, consumer: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        query = select(parked_table).order_by(parked_table.c.first_failed_at, parked_table.c.parked_id).limit(limit)
        if consumer is not None:
            query = query.where(parked_table.c.consumer == consumer)
        if status is not None:
            query = query.where(parked_table.c.status == status)
        with reading(self.engine) as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def get(self, key: str) -> dict[str, Any] | None:
        with reading(self.engine) as conn:
            row = conn.execute(select(parked_table).where(parked_table.c.parked_id == key)).first()
        return None if row is None else dict(row._mapping)

    def request_retry(self, key: str) -> dict[str, Any] | None:
        """Hand a parked event back to its consumer; None when unknown here. Already handled: unchanged."""
        with self.engine.begin() as conn:
            conn.execute(update(parked_table).where(
                parked_table.c.parked_id == key, parked_table.c.status == PARKED,
            ).values(status=RETRYING, retry_requested_at=datetime.now(UTC)))
        return self.get(key)

    def retries(self, consumer: str, limit: int = 100) -> list[RetryItem]:
        """The events an operator handed back to this consumer, oldest first."""
        rows = self.entries(consumer=consumer, status=RETRYING, limit=limit)
        return [RetryItem(r["parked_id"], parse_event(r["event"]), int(r["attempts"])) for r in rows]

    def handled(self, key: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(parked_table).where(parked_table.c.parked_id == key)
                         .values(status=HANDLED, handled_at=datetime.now(UTC)))

    def failed_again(self, key: str, reason: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(parked_table).where(parked_table.c.parked_id == key).values(
                status=PARKED, reason=reason, last_failed_at=datetime.now(UTC),
                attempts=parked_table.c.attempts + 1,
            ))


_stores: weakref.WeakKeyDictionary[Engine, ParkedEvents] = weakref.WeakKeyDictionary()
_stores_lock = threading.Lock()


def parked_events(engine: Engine) -> ParkedEvents:
    """The parked events of the store behind ``engine``, one object per engine (its table made once)."""
    with _stores_lock:
        store = _stores.get(engine)
        if store is None:
            store = _stores[engine] = ParkedEvents(engine)
        return store


class Systematic(RuntimeError):
    """Every event of a batch fails alone: a fault of the consumer, not of its events. Nothing is parked."""


def handle_or_park(
    handle: Callable[[Sequence[CloudEvent]], None], events: Sequence[CloudEvent], *, parking: ParkedEvents,
    consumer: str, attempts: int,
) -> int:
    """Handle what can be handled of a batch that keeps failing, parking the events that fail alone (bisection).

    Returns how many were parked. An infrastructure fault met on the way is raised (the batch comes again; nothing
    is parked for it). When every event of a batch of several fails alone, it raises ``Systematic`` instead of
    parking the whole batch: a broken consumer, not a batch of poison."""
    poison = list(_isolate(handle, list(events)))
    if len(poison) == len(events) > 1:
        raise Systematic(f"all {len(events)} events of the batch fail alone") from poison[0][1]
    for event, exc in poison:
        reason = reason_of(exc)
        key = parking.park(consumer, event, reason, attempts + 1)
        # Ids and codes only.
        logger.warning("consumer %s parked event %s (%s, case %s) as %s: %s", consumer, event.id,
                       getattr(event, "type", "?"), event.subject, key, reason)
    return len(poison)


def _isolate(
    handle: Callable[[Sequence[CloudEvent]], None], events: list[CloudEvent]
) -> Iterator[tuple[CloudEvent, Exception]]:
    try:
        handle(events)
        return
    except Exception as exc:
        if unavailable(exc):
            raise
        if len(events) == 1:
            yield events[0], exc
            return
    middle = len(events) // 2
    yield from _isolate(handle, events[:middle])
    yield from _isolate(handle, events[middle:])


def retry_parked(handle: Callable[[Sequence[CloudEvent]], None], parking: ParkedEvents, consumer: str) -> int:
    """Handle, one by one, the parked events an operator handed back to this consumer; returns how many were
    handled. An infrastructure fault leaves them for the next look; any other parks them again."""
    handled = 0
    for item in parking.retries(consumer):
        try:
            handle([item.event])
        except Exception as exc:
            if unavailable(exc):
                logger.warning("consumer %s: retry of parked %s deferred (%s)", consumer, item.parked_id,
                               type(exc).__name__)
                return handled
            parking.failed_again(item.parked_id, reason_of(exc))
            logger.warning("consumer %s: parked %s failed again (%s)", consumer, item.parked_id, reason_of(exc))
            continue
        parking.handled(item.parked_id)
        handled += 1
        logger.info("consumer %s handled parked %s on retry", consumer, item.parked_id)
    return handled
