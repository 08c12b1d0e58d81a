"""Hash-chained event logs: every stored event of a service commits to the one before it.

Each service's notification log gives every stored event a position (its notification id, in commit order). The
chainer follows the log and appends one row per event to ``event_chain`` in the service's read-model database::

    hash = SHA-256(canonical(service, position, originator_id, originator_version, topic, SHA-256(state), prev_hash))

with ``prev_hash`` the hash of the row before (32 zero bytes for the first). Changing, removing, adding or moving
any stored event afterwards no longer agrees with its row (``huhang.audit`` says which and where); rewriting the
chain table to agree no longer agrees with the signed checkpoints of its head (``huhang.checkpoints``), which are
also published where the database cannot rewrite them.

The chainer's durable position is the chain itself: it starts from the last row in the table, so a crash between
appending and anything else repeats nothing. Two chainers on one log (a scaled worker) compute the same rows; the
one that loses the race on a position re-reads the head and goes on.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple, cast
from uuid import UUID

from sqlalchemy import BigInteger, Column, Engine, LargeBinary, MetaData, Table, Text, insert, select
from sqlalchemy.exc import IntegrityError

from huhang.bundle_verify import RECORD_TAG as RECORD_TAG
from huhang.bundle_verify import RecordHasher as RecordHasher
from huhang.bundle_verify import record_hash as record_hash
from huhang.bundle_verify import record_hasher as record_hasher
from huhang.checkpoints import Checkpointer, build_checkpointer
from huhang.settings import Settings

# The record hash is defined once, in the offline bundle verifier (standard library only), so that what an inspector
# runs is the code the chain is made with.
from huhang.sql import create_tables, reading

logger = logging.getLogger(__name__)

GENESIS = bytes(32)
# The chainer reads its log at most this often: nobody waits on the chain, so it may take larger batches than the
# followers that carry events between services (idle, two reads a second; under load, one batch per read).
CHAIN_WINDOW_S = 0.5

metadata = MetaData()
chain_table = Table(
    "event_chain",
    metadata,
    Column("position", BigInteger, primary_key=True, autoincrement=False),
    Column("originator_id", Text, nullable=False),
    Column("originator_version", BigInteger, nullable=False),
    Column("topic", Text, nullable=False),
    Column("state_sha256", LargeBinary(32), nullable=False),
    Column("prev_hash", LargeBinary(32), nullable=False),
    Column("hash", LargeBinary(32), nullable=False),
)


def state_sha256(state: Any) -> bytes:
    """SHA-256 of a stored event's state (bytes; anything else a tampered row may hold is hashed as its text)."""
    if not isinstance(state, bytes | bytearray | memoryview):
        state = b"" if state is None else str(state).encode()
    return hashlib.sha256(state).digest()


def originator_key(originator_id: Any) -> str:
    """An originator id as the chain records it: a UUID as its 32 hex digits (the quickest form to make, which
    the verifier does for every event), anything else as its text."""
    return originator_id.hex if type(originator_id) is UUID else str(originator_id)


def originator_display(key: str) -> str:
    """A chained originator id as people read it (UUIDs hyphenated)."""
    if len(key) == 32:
        try:
            return str(UUID(hex=key))
        except ValueError:
            pass
    return key


Link = tuple[int, bytes]  # a chain row's position and hash


class ChainRow(NamedTuple):
    position: int
    originator_id: str
    originator_version: int
    topic: str
    state_sha256: bytes
    prev_hash: bytes
    hash: bytes

    def recomputed_hash(self, service: str) -> bytes:
        """The hash this row's own fields give: differs from ``hash`` when the row was edited."""
        return record_hash(
            service, self.position, self.originator_id, self.originator_version, self.topic, self.state_sha256,
            self.prev_hash,
        )


def chain_notifications(service: str, notifications: Sequence[Any], prev_hash: bytes) -> list[ChainRow]:
    """The chain rows of consecutive notifications, linked to ``prev_hash``."""
    rows = []
    for n in notifications:
        originator_id = originator_key(n.originator_id)
        sha = state_sha256(n.state)
        digest = record_hash(service, n.id, originator_id, n.originator_version, n.topic, sha, prev_hash)
        rows.append(ChainRow(n.id, originator_id, n.originator_version, n.topic, sha, prev_hash, digest))
        prev_hash = digest
    return rows


_LINKS_SQL = (
    "SELECT position, hash FROM event_chain WHERE position > ? AND position <= ? ORDER BY position LIMIT ?"
)


class ChainConflict(RuntimeError):
    """Another chainer appended the same positions first."""


class ChainStore:
    """The ``event_chain`` table of one service's log."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        create_tables(metadata, engine, [chain_table])

    def head(self) -> tuple[int, bytes]:
        """The last chained position and its hash; ``(0, GENESIS)`` for an empty chain."""
        with reading(self.engine) as conn:
            row = conn.execute(
                select(chain_table.c.position, chain_table.c.hash).order_by(chain_table.c.position.desc()).limit(1)
            ).first()
        return (0, GENESIS) if row is None else (int(row[0]), bytes(row[1]))

    def append(self, rows: Sequence[ChainRow]) -> None:
        """Append rows in one transaction; ``ChainConflict`` when a position is already chained."""
        if not rows:
            return
        values = [
            {
                "position": r.position, "originator_id": r.originator_id, "originator_version": r.originator_version,
                "topic": r.topic, "state_sha256": r.state_sha256, "prev_hash": r.prev_hash, "hash": r.hash,
            }
            for r in rows
        ]
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(chain_table), values)
        except IntegrityError:
            raise ChainConflict(f"positions {rows[0].position}..{rows[-1].position} are already chained") from None

    def rows_after(self, after: int | None, limit: int, through: int | None = None) -> list[ChainRow]:
        """Rows after a position (all from the first when ``after`` is None), in position order."""
        c = chain_table.c
        query = select(
            c.position, c.originator_id, c.originator_version, c.topic, c.state_sha256, c.prev_hash, c.hash
        ).order_by(c.position).limit(limit)
        if after is not None:
            query = query.where(c.position > after)
        if through is not None:
            query = query.where(c.position <= through)
        with reading(self.engine) as conn:
            return [ChainRow._make(row) for row in conn.execute(query).all()]

    def row_at(self, position: int) -> ChainRow | None:
        rows = self.rows_after(position - 1, 1, position)
        return rows[0] if rows else None

    def link_batches(self, through: int, batch_size: int = 1000) -> Iterator[list[Link]]:
        """``(position, hash)`` of every row up to ``through``, in position order and in batches: all the verifier
        needs while the events match (a hash commits to the one before it). Read with the driver's own cursor,
        several times faster than through SQLAlchemy's rows (one statement for SQLite and PostgreSQL but for the
        parameter marks)."""
        sql = _LINKS_SQL if self.engine.dialect.paramstyle == "qmark" else _LINKS_SQL.replace("?", "%s")
        after = -(2**63)
        with reading(self.engine) as conn:
            dbapi = conn.connection.dbapi_connection
            assert dbapi is not None
            cursor = dbapi.cursor()
            try:
                while True:
                    cursor.execute(sql, (after, through, batch_size))
                    # Tuples of (int, bytes) from sqlite3 and psycopg alike: taken as they come.
                    links = cast(list[Link], cursor.fetchall())
                    if links:
                        yield links
                    if len(links) < batch_size:
                        return
                    after = links[-1][0]
            finally:
                cursor.close()

    def scan(self, through: int, batch_size: int = 1000) -> Iterator[ChainRow]:
        """Every row up to ``through``, in position order, read in batches (memory bounded)."""
        for rows in self.scan_batches(through, batch_size):
            yield from rows

    def scan_batches(self, through: int, batch_size: int = 1000) -> Iterator[list[ChainRow]]:
        after: int | None = None
        while True:
            rows = self.rows_after(after, batch_size, through)
            if rows:
                yield rows
            if len(rows) < batch_size:
                return
            after = rows[-1].position


class Chainer:
    """Follows one service's notification log and appends its chain; signs checkpoints of the head.

    ``run`` chains in batches as events arrive (woken by saves in this process, polling for others), signs a
    checkpoint every ``checkpoint_interval_s`` when the head moved, and a last one when stopped.
    """

    def __init__(
        self,
        service: str,
        app: Any,
        store: ChainStore,
        *,
        checkpointer: Checkpointer | None = None,
        batch_size: int = 500,
        interval_s: float = 0.05,
        window_s: float = 0.1,
        checkpoint_interval_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.service = service
        self.app = app
        self.store = store
        self.checkpointer = checkpointer
        self.batch_size = batch_size
        self.interval_s = interval_s
        self.window_s = window_s
        self.checkpoint_interval_s = checkpoint_interval_s
        self.clock = clock
        self._head: tuple[int, bytes] | None = None

    @property
    def head(self) -> tuple[int, bytes]:
        if self._head is None:
            self._head = self.store.head()
        return self._head

    def chain_once(self) -> int:
        """Chain the next batch of the log; the number of events chained (0: nothing new, or lost a race)."""
        position, prev_hash = self.head
        notifications = self._read(position)
        if not notifications:
            return 0
        rows = chain_notifications(self.service, notifications, prev_hash)
        try:
            self.store.append(rows)
        except ChainConflict:
            self._head = None  # another chainer got there first: start again from the table's head
            return 0
        except Exception:
            self._head = None
            raise
        self._head = (rows[-1].position, rows[-1].hash)
        return len(rows)

    def _read(self, after: int) -> Sequence[Any]:
        select_notifications = getattr(self.app, "select_notifications", None)
        if callable(select_notifications):  # a WakeableApplication: the read shared with the other followers
            return select_notifications(after, self.batch_size)
        return self.app.recorder.select_notifications(
            start=after, limit=self.batch_size, inclusive_of_start=False
        )

    def catch_up(self, limit_s: float = 60.0) -> int:
        """Chain everything stored so far (tests, shutdown). Returns the number of events chained."""
        chained, deadline = 0, time.monotonic() + limit_s
        while time.monotonic() < deadline:
            n = self.chain_once()
            chained += n
            if n < self.batch_size and self._head is not None:
                return chained
        return chained

    def checkpoint(self) -> Any:
        """Sign and publish the head if it moved since the last checkpoint; the checkpoint, or None."""
        if self.checkpointer is None:
            return None
        position, head = self.head
        if position == 0:
            return None
        return self.checkpointer.checkpoint_if_moved(position, head)

    def run(self, stop: threading.Event) -> None:
        backoff = 0.1
        next_checkpoint = self.clock() + self.checkpoint_interval_s
        while not stop.is_set():
            try:
                started = self.clock()
                chained = self.chain_once()
                if self.clock() >= next_checkpoint:
                    self.checkpoint()
                    next_checkpoint = self.clock() + self.checkpoint_interval_s
                if chained < self.batch_size:
                    self._wait(stop, started)
                backoff = 0.1
            except Exception as exc:
                # Types only: exception texts may quote stored data.
                logger.warning("chainer %s failed (%s); retrying in %.1fs", self.service, type(exc).__name__, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
        self._finish()

    def _wait(self, stop: threading.Event, started: float) -> None:
        """Keeping up: look at the log at most once per window, woken early by a save in this process."""
        wait_for_save = getattr(self.app, "wait_for_save", None)
        if callable(wait_for_save):
            wait_for_save(self.interval_s)
        else:
            stop.wait(self.interval_s)
        rest = started + self.window_s - self.clock()
        if rest > 0:
            stop.wait(rest)

    def _finish(self) -> None:
        """At shutdown: chain what is left and sign the head."""
        try:
            self.catch_up(limit_s=5.0)
            self.checkpoint()
        except Exception as exc:
            logger.warning("chainer %s could not sign its head at shutdown (%s)", self.service, type(exc).__name__)


def build_chainer(settings: Settings, service: Any) -> Chainer:
    """The chainer of one service (a ``huhang.service.Service``): its chain beside its read models."""
    engine = service.positions.engine
    return Chainer(
        service.name, service.application, ChainStore(engine),
        checkpointer=build_checkpointer(settings, service.name, engine), batch_size=settings.batch_size,
        interval_s=settings.follow_interval_s, window_s=max(settings.follow_window_s, CHAIN_WINDOW_S),
        checkpoint_interval_s=settings.audit_checkpoint_interval_s,
    )
