"""Moving integration events between services: sources, handlers, positions and the consumer loop.

A *source* yields batches of contract events and a way to commit having handled them:
- ``NotificationLogSource`` follows one service's eventsourcing notification log from a durably tracked
  position, mapping each domain event to its integration event (the in-process transport, and the outbox
  relay's input);
- ``huhang.kafka.KafkaSource`` consumes Kafka topics in a consumer group.
A *handler* does something with a batch (publish to Kafka, route, project). Handlers are idempotent on the
event id: after a crash between handling and committing, the batch comes again and changes nothing twice.
"""

from __future__ import annotations

import bisect
import logging
import os
import signal
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from eventsourcing.application import Application
from sqlalchemy import BigInteger, Column, Connection, Engine, MetaData, String, Table, select

from contracts.envelope import CloudEvent
from huhang.lease import Lease, run_leased
from huhang.parking import ParkedEvents, handle_or_park, retry_parked, unavailable
from huhang.personal import PersonalDataErased
from huhang.sql import create_tables, dialect_insert, reading, upsert

logger = logging.getLogger(__name__)

DomainToContract = Callable[[Any], Sequence[CloudEvent]]


@dataclass(frozen=True)
class Batch:
    events: Sequence[CloudEvent]
    commit: Callable[[], None]


class EventSource(Protocol):
    def poll(self, timeout_s: float) -> Batch | None: ...

    def close(self) -> None: ...


class EventHandler(Protocol):
    def handle(self, events: Sequence[CloudEvent]) -> None: ...


class BySource:
    """Several read models fed by one consumer: each handler gets the events of the services it subscribed to
    (by the CloudEvents ``source``, ``/huhang/<service>``). A failure redelivers the batch to all of them: every
    handler is idempotent on the event id."""

    def __init__(self, routes: Sequence[tuple[EventHandler, Sequence[str]]]) -> None:
        self.routes = [(handler, frozenset(sources)) for handler, sources in routes]

    def handle(self, events: Sequence[CloudEvent]) -> None:
        for handler, sources in self.routes:
            wanted = [e for e in events if e.source.rsplit("/", 1)[-1] in sources]
            if wanted:
                handler.handle(wanted)


class WakeableApplication(Application[Any]):
    """An eventsourcing Application that wakes in-process followers as soon as it saves."""

    def __init__(self, env: Any = None) -> None:
        super().__init__(env)
        self._saved = threading.Condition()
        self._decoded = DecodedNotifications()
        self._tail = LogTail()

    def save(self, *objs: Any, **kwargs: Any) -> Any:
        recordings = super().save(*objs, **kwargs)
        with self._saved:
            self._saved.notify_all()
        return recordings

    def wait_for_save(self, timeout_s: float) -> None:
        with self._saved:
            self._saved.wait(timeout_s)

    def select_notifications(self, after: int, limit: int) -> Sequence[Any]:
        """Notifications after a position, for in-process followers: those at the head share one read."""
        return self._tail.select(after, limit, self.recorder.select_notifications)

    def preload_keys(self, notifications: Sequence[Any]) -> None:
        """Read, in one query, the keys of the children these stored events are sealed for (a mapper that seals)."""
        preload = getattr(self.mapper, "preload", None)
        if preload is not None:
            preload(notifications)

    def integration_events(self, notification: Any, to_contract: DomainToContract) -> Sequence[CloudEvent]:
        """The contract events of one notification, decoded and mapped once for all in-process followers
        (``to_contract`` is the service's one mapping: the cache is keyed by notification id alone)."""
        return self._decoded.get(notification, lambda n: self._to_contract(n, to_contract))

    def _to_contract(self, notification: Any, to_contract: DomainToContract) -> Sequence[CloudEvent]:
        try:
            return to_contract(self.mapper.to_domain_event(notification))
        except PersonalDataErased:
            # Erased before it was carried on (a relay far behind): its contract events hold no personal data, but
            # they can no longer be made. Said by id; the erasure itself is carried on.
            logger.warning("notification %s is about an erased child: not carried on", notification.id)
            return []


class LogTail:
    """The most recently read stretch of a notification log, so that followers at its head share one read.

    The stretch holds every notification with an id in ``(low, high]`` (notification ids become visible in
    order: SQLite has one writer, and eventsourcing's PostgreSQL recorder locks the table to number them).
    A follower whose position is inside the stretch is answered from it; any other read goes to the store
    and extends or replaces the stretch. Notifications never change once written.
    """

    def __init__(self, capacity: int = 2048) -> None:
        self.capacity = capacity
        self._lock = threading.Lock()
        self._low = -1
        self._items: list[Any] = []  # ascending ids, all of (low, high]

    def select(self, after: int, limit: int, read: Callable[..., Sequence[Any]]) -> Sequence[Any]:
        with self._lock:
            if self._items and self._low <= after < self._items[-1].id:
                start = bisect.bisect_right(self._items, after, key=lambda n: n.id)
                return self._items[start:start + limit]
        found = read(start=after, limit=limit, inclusive_of_start=False)
        if found:
            with self._lock:
                self._keep(after, found)
        return found

    def _keep(self, after: int, found: Sequence[Any]) -> None:
        if self._items and self._low <= after <= self._items[-1].id:
            high = self._items[-1].id
            self._items.extend(n for n in found if n.id > high)
        else:
            self._low, self._items = after, list(found)
        if len(self._items) > self.capacity:
            drop = len(self._items) - self.capacity
            self._low = self._items[drop - 1].id
            del self._items[:drop]


class DecodedNotifications:
    """A small cache of recently mapped notifications, shared by the followers of one log.

    Every in-process follower (the router, the read models) reads the same new notifications within moments of
    each other; mapping each once instead of once per follower is most of their work. Contract events are frozen,
    so sharing them is safe. Old entries are dropped first; a miss simply maps again.
    """

    def __init__(self, capacity: int = 4096) -> None:
        self.capacity = capacity
        self._lock = threading.Lock()
        self._entries: OrderedDict[int, Sequence[CloudEvent]] = OrderedDict()

    def get(self, notification: Any, decode: Callable[[Any], Sequence[CloudEvent]]) -> Sequence[CloudEvent]:
        with self._lock:
            found = self._entries.get(notification.id)
        if found is not None:
            return found
        events = tuple(decode(notification))
        with self._lock:
            self._entries[notification.id] = events
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
        return events


metadata = MetaData()
positions_table = Table(
    "follower_positions",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("position", BigInteger, nullable=False),
)


class Positions:
    """Durable positions of log followers (the relay's, the in-process consumers')."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        create_tables(metadata, engine, [positions_table])

    def get(self, name: str) -> int:
        with reading(self.engine) as conn:
            value = conn.execute(
                select(positions_table.c.position).where(positions_table.c.name == name)
            ).scalar_one_or_none()
        return int(value or 0)

    def save(self, name: str, position: int) -> None:
        with self.engine.begin() as conn:
            upsert(conn, positions_table, {"name": name, "position": position}, keys=["name"])

    @staticmethod
    def read_in(conn: Connection, name: str) -> int:
        """A position read inside the caller's transaction (a read model kept in step with its position)."""
        value = conn.execute(
            select(positions_table.c.position).where(positions_table.c.name == name)
        ).scalar_one_or_none()
        return int(value or 0)

    @staticmethod
    def advance_in(conn: Connection, name: str, position: int) -> None:
        """Move a position forward inside the caller's transaction; never back (a slower process loses)."""
        stmt = dialect_insert(conn, positions_table).values(name=name, position=position)
        conn.execute(stmt.on_conflict_do_update(
            index_elements=["name"], set_={"position": stmt.excluded.position},
            where=positions_table.c.position < stmt.excluded.position,
        ))


class NotificationLogSource:
    """Follows one application's notification log (its outbox) from a tracked position."""

    def __init__(
        self,
        name: str,
        app: WakeableApplication,
        to_contract: DomainToContract,
        positions: Positions,
        batch_size: int = 500,
        interval_s: float = 0.05,
        window_s: float = 0.0,
    ) -> None:
        self.name = name
        self.interval_s = interval_s
        self.window_s = window_s
        self._last_select = 0.0
        self._caught_up = True
        self.app = app
        self.to_contract = to_contract
        self.positions = positions
        self.batch_size = batch_size
        self._position: int | None = None

    def poll(self, timeout_s: float) -> Batch | None:
        if self._position is None:
            self._position = self.positions.get(self.name)
        deadline = time.monotonic() + timeout_s
        self._pace(deadline)
        notifications = self._select()
        while not notifications:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            # Woken at once by a save in this process; another process's saves are seen at the next look.
            self.app.wait_for_save(min(self.interval_s, remaining))
            self._pace(deadline)
            notifications = self._select()
        events: list[CloudEvent] = []
        self.app.preload_keys(notifications)
        for notification in notifications:
            events.extend(self.app.integration_events(notification, self.to_contract))
        last = notifications[-1].id
        return Batch(events=events, commit=lambda: self._commit(last))

    def _pace(self, deadline: float) -> None:
        """While keeping up, look at the log at most once per window: the events saved meanwhile come as one
        batch (one read, one handler transaction, one position write) instead of one batch per save. Under
        load this is what keeps the followers' work per event small; idle, it adds at most a window of delay."""
        if self._caught_up and self.window_s > 0:
            wait = min(self._last_select + self.window_s, deadline) - time.monotonic()
            if wait > 0:
                time.sleep(wait)

    def _select(self) -> Sequence[Any]:
        self._last_select = time.monotonic()
        notifications = self.app.select_notifications(self._position or 0, self.batch_size)
        self._caught_up = len(notifications) < self.batch_size
        return notifications

    def _commit(self, position: int) -> None:
        self.positions.save(self.name, position)
        self._position = position

    def rewind(self) -> None:
        """Forget the uncommitted batch: the next poll starts again from the committed position."""
        self._position = None

    def close(self) -> None:
        pass


class MergedSource:
    """Several sources read in turn as one (an in-process consumer of several services' logs)."""

    def __init__(self, sources: Sequence[EventSource]) -> None:
        self.sources = list(sources)
        self._next = 0

    def poll(self, timeout_s: float) -> Batch | None:
        slice_s = timeout_s / max(1, len(self.sources))
        for _ in range(len(self.sources)):
            source = self.sources[self._next]
            self._next = (self._next + 1) % len(self.sources)
            batch = source.poll(slice_s)
            if batch is not None:
                return batch
        return None

    def rewind(self) -> None:
        for source in self.sources:
            rewind_source(source)

    def close(self) -> None:
        for source in self.sources:
            source.close()


def rewind_source(source: EventSource) -> None:
    rewind = getattr(source, "rewind", None)
    if callable(rewind):
        rewind()


class Consumer:
    """Runs a handler over a source: poll, handle, commit; on failure, back off and take the batch again.

    With ``parking`` (``huhang.parking``), a batch failing ``max_attempts`` times in a row for a reason other than
    the infrastructure is split until the events that fail alone are found; those are parked and the rest handled
    and committed, so one poison event never blocks the log or partition behind it. Parked events an operator hands
    back are handled at the next look. With a ``lease`` (``huhang.lease``), ``run`` follows only while holding it.
    """

    def __init__(
        self, name: str, source: EventSource, handler: EventHandler, poll_timeout_s: float = 0.5,
        *, kill_before_commit: bool = False, parking: ParkedEvents | None = None, max_attempts: int = 5,
        lease: Lease | None = None, retry_check_s: float = 1.0,
    ) -> None:
        self.name = name
        self.source = source
        self.handler = handler
        self.poll_timeout_s = poll_timeout_s
        # Fault injection for crash tests (HUHANG_FAILPOINT=<consumer name>:before-commit): the process dies
        # with SIGKILL after handling a batch and before recording that it did.
        self.kill_before_commit = kill_before_commit
        self.parking = parking
        self.max_attempts = max_attempts
        self.lease = lease
        self.retry_check_s = retry_check_s
        self._failures = 0  # of the batch in hand, in a row, not counting infrastructure faults
        self._next_retry_check = 0.0

    def run_once(self) -> int | None:
        """Handle one batch; the number of events handled, or None when the source had nothing."""
        self._retry_parked()
        batch = self.source.poll(self.poll_timeout_s)
        if batch is None:
            return None
        if batch.events:
            self._handle(batch.events)
            if self.kill_before_commit:
                os.kill(os.getpid(), signal.SIGKILL)
        batch.commit()
        return len(batch.events)

    def _handle(self, events: Sequence[CloudEvent]) -> None:
        try:
            self.handler.handle(events)
        except Exception as exc:
            if self.parking is None or unavailable(exc):
                raise
            self._failures += 1
            if self._failures < self.max_attempts:
                raise
            handle_or_park(self.handler.handle, events, parking=self.parking, consumer=self.name,
                           attempts=self._failures)
        self._failures = 0

    def _retry_parked(self) -> None:
        if self.parking is None or time.monotonic() < self._next_retry_check:
            return
        self._next_retry_check = time.monotonic() + self.retry_check_s
        retry_parked(self.handler.handle, self.parking, self.name)

    def run(self, stop: threading.Event) -> None:
        if self.lease is None:
            self._run(stop)
        else:
            run_leased(self.lease, self._run, stop)
        self.source.close()

    def _run(self, stop: threading.Event) -> None:
        rewind_source(self.source)  # a standby taking over starts from the position its predecessor recorded
        backoff = 0.1
        while not stop.is_set():
            try:
                self.run_once()
                backoff = 0.1
            except Exception as exc:
                # Ids and types only: exception texts may quote personal data.
                logger.warning("consumer %s failed (%s); retrying in %.1fs", self.name, type(exc).__name__, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
                rewind_source(self.source)  # the uncommitted batch must come again


def drain(consumer: Consumer, *, idle_polls: int = 2, limit_s: float = 30.0) -> int:
    """Run a consumer until its source is idle (tests, batch jobs). Returns events handled."""
    handled, idle, deadline = 0, 0, time.monotonic() + limit_s
    while idle < idle_polls and time.monotonic() < deadline:
        n = consumer.run_once()
        handled += n or 0
        idle = idle + 1 if n is None else 0
    return handled
