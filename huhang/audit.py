"""Verifying the hash-chained logs: what is wrong, and exactly where.

For one service, ``verify_log`` streams the stored events (the notification log, in position order) beside the
stored chain (``event_chain``), in batches, and compares them position by position; it also recomputes the chain
from the events themselves and holds it, and the stored chain, against every signed checkpoint (from the table and
from the published files). What it can find:

- ``ALTERED``: the event at a position is not what was chained there (its state, topic, or originator id and
  version changed);
- ``DELETED``: a chained position has no event any more;
- ``INSERTED``: an event at or below the chained head that was never chained;
- ``REORDERED``: an event found at another position than the one it was chained at (two events swapped; an
  originator's versions out of order);
- ``CHAIN_BROKEN``: the chain table itself was edited so that its rows no longer agree with their hashes or links;
- ``CHAIN_REWRITTEN``: the chain table agrees with the events but not with a signed checkpoint: the table was
  rewritten after the events were changed; the change lies between the last checkpoint that agrees and this one;
- ``BAD_SIGNATURE``: a checkpoint whose signature does not verify with a trusted key, or that cannot be read.

Events after the chained head are "not yet chained": reported, not an error. Only ids, positions and hashes are
reported, never stored content. What is verified is each row's hash (which commits to the event and to the row
before it); a row's other columns (originator id, version, topic, state hash, previous hash) only serve to describe
a record that does not match. The events and the chain are each read ahead in a thread while the previous batch is
compared, so memory stays bounded by a few batches (and by the number of records found out of place).
"""

from __future__ import annotations

import hashlib
import importlib
import threading
from collections import defaultdict
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from queue import Full, Queue
from typing import Any, Generic, TypeVar
from uuid import UUID

from sqlalchemy import Engine

from huhang.chain import (
    GENESIS,
    ChainRow,
    ChainStore,
    Link,
    originator_display,
    originator_key,
    record_hash,
    record_hasher,
    state_sha256,
)
from huhang.checkpoints import (
    CheckpointStore,
    SourcedCheckpoint,
    TrustedKeys,
    log_name,
    publish_dir,
    read_published,
    trusted_keys,
)
from huhang.settings import Settings

T = TypeVar("T")
SERVICES = ("intake", "referral", "guardianship", "notifications")
_END = float("inf")


class Problem(StrEnum):
    ALTERED = "ALTERED"
    DELETED = "DELETED"
    INSERTED = "INSERTED"
    REORDERED = "REORDERED"
    CHAIN_BROKEN = "CHAIN_BROKEN"
    CHAIN_REWRITTEN = "CHAIN_REWRITTEN"
    BAD_SIGNATURE = "BAD_SIGNATURE"


@dataclass(frozen=True)
class Finding:
    service: str
    problem: Problem
    position: int | None  # the record's position (for a checkpoint: the position it signs)
    originator_id: str | None = None
    originator_version: int | None = None
    detail: str = ""
    after: int | None = None  # CHAIN_REWRITTEN: the rewritten record lies in positions (after, position]
    source: str | None = None  # where the checkpoint concerned was read

    def describe(self) -> str:
        where = "" if self.position is None else f"position {self.position}"
        if self.problem is Problem.CHAIN_REWRITTEN and self.position is not None:
            where = f"positions {(self.after or 0) + 1}..{self.position}"
        what = (
            f" originator {self.originator_id} version {self.originator_version}"
            if self.originator_id is not None else ""
        )
        source = f" [{self.source}]" if self.source else ""
        return f"{self.problem.value:<15} {self.service} {where}{what}: {self.detail}{source}"


@dataclass
class LogReport:
    service: str
    log: str
    chained_head: int = 0
    events_checked: int = 0
    not_yet_chained: int = 0
    unchained_from: int | None = None
    unchained_to: int | None = None
    checkpoints_checked: int = 0  # distinct signed heads (position, head) held against the chain
    checkpoints_verified: int = 0  # those that agree with both the chain table and the events
    checkpoint_sources: int = 0  # the places they were read (table rows, file lines)
    signing_keys: dict[str, int] = field(default_factory=dict)  # key id -> checkpoints whose signature verifies
    findings: list[Finding] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def summary(self) -> str:
        unchained = (
            f"; {self.not_yet_chained} not yet chained ({self.unchained_from}..{self.unchained_to})"
            if self.not_yet_chained else ""
        )
        keys = ", ".join(f"{key_id} ({n})" for key_id, n in self.signing_keys.items())
        return (
            f"{self.service} (log {self.log}): {self.events_checked} events checked, chained up to position "
            f"{self.chained_head}{unchained}; {self.checkpoints_verified} of {self.checkpoints_checked} signed "
            f"checkpoints agree (read from {self.checkpoint_sources} places{'; signed by key ' + keys if keys else ''})"
        )


@dataclass
class AuditReport:
    logs: list[LogReport]

    @property
    def ok(self) -> bool:
        return all(log.ok for log in self.logs)

    @property
    def findings(self) -> list[Finding]:
        return [f for log in self.logs for f in log.findings]

    def render(self) -> str:
        lines = []
        for log in self.logs:
            lines.append(log.summary())
            lines.extend(f"  warning: {w}" for w in log.warnings)
            lines.extend(f"  {f.describe()}" for f in log.findings)
            if log.ok:
                lines.append("  intact")
        problems = len(self.findings)
        lines.append("INTACT: every chain and checkpoint verifies." if self.ok else
                     f"NOT INTACT: {problems} problem{'s' if problems != 1 else ''} found.")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "logs": [asdict(log) | {"ok": log.ok} for log in self.logs]}


class _Cursor(Generic[T]):
    """One item at a time from a stream of batches, with the batch at hand open to tight loops."""

    def __init__(self, batches: Iterator[Sequence[T]]) -> None:
        self._batches = batches
        self.batch: Sequence[T] = ()
        self.index = 0
        self.done = False
        self._fill()

    def _fill(self) -> None:
        while self.index >= len(self.batch):
            batch = next(self._batches, None)
            if batch is None:
                self.batch, self.index, self.done = (), 0, True
                return
            self.batch, self.index = batch, 0

    @property
    def current(self) -> T | None:
        return None if self.done else self.batch[self.index]

    def advance(self) -> None:
        self.skip_to(self.index + 1)

    def skip_to(self, index: int) -> None:
        self.index = index
        if index >= len(self.batch):
            self._fill()


@dataclass(frozen=True, slots=True)
class _Seen:
    """An event or chain row that did not match at its position, kept until the end to pair moves."""

    position: int
    originator_id: str
    originator_version: int
    state_sha256: bytes


class _LogVerifier:
    def __init__(self, report: LogReport, checkpoints: dict[int, dict[bytes, list[str]]]) -> None:
        self.service = report.service
        self.report = report
        self.head = report.chained_head
        self.checkpoints = checkpoints
        self._checkpoint_positions = sorted(checkpoints)
        self._next_checkpoint = 0
        self._last_good_checkpoint = 0
        self.r_prev: bytes = GENESIS  # the chain recomputed from the events: its last hash and position
        self.r_pos: int | None = None
        self.s_prev: bytes = GENESIS  # the stored chain
        self.s_pos: int | None = None
        self.unmatched_events: dict[int, _Seen] = {}
        self.unmatched_rows: dict[int, _Seen] = {}
        self._broken_at: set[int] = set()
        self.full_row: Callable[[int], ChainRow | None] = lambda position: None

    def find(self, problem: Problem, position: int | None, originator_id: str | None = None,
             originator_version: int | None = None, detail: str = "", **extra: Any) -> None:
        shown = None if originator_id is None else originator_display(originator_id)
        self.report.findings.append(
            Finding(self.service, problem, position, shown, originator_version, detail, **extra)
        )

    def run(
        self,
        events: Iterator[Sequence[Any]],
        links: Iterator[Sequence[Link]],
        full_row: Callable[[int], ChainRow | None],
    ) -> LogReport:
        """Compare the events with the chain's links (position, hash), position by position, both read in batches;
        a chain row's other columns are read (``full_row``) only to describe a record that does not match."""
        self.full_row = full_row
        ev, ln = _Cursor(self._guarded(events)), _Cursor(links)
        next_checkpoint = self._checkpoint_positions[0] if self._checkpoint_positions else _END
        while not (ev.done and ln.done):
            event, link = ev.current, ln.current
            position = min(event.id if event is not None else _END, link[0] if link is not None else _END)
            if position > next_checkpoint:
                next_checkpoint = self._check_checkpoints_before(position)
            if event is not None and link is not None and event.id == link[0]:
                if not self._run_of_matches(ev, ln, next_checkpoint):
                    self._both(event, link[0])  # something differs: the general path says what
                    ev.advance()
                    ln.advance()
            elif link is not None and link[0] == position:
                self._link_only(link[0])
                ln.advance()
            else:
                self._event_only(event)
                ev.advance()
        self._check_checkpoints_before(_END)
        self._pair_the_unmatched()
        self.report.findings.sort(key=lambda f: (f.position if f.position is not None else -1, f.problem.value))
        return self.report

    def _run_of_matches(self, ev: _Cursor[Any], ln: _Cursor[Link], until: float) -> int:
        """The common case, in a tight loop over the batches at hand: each event is exactly what was chained at its
        position, after the row before (up to the next checkpoint). Returns how many; 0 when the first is not."""
        sha256, hash_record = hashlib.sha256, record_hasher(self.service)
        events, links, i, j = ev.batch, ln.batch, ev.index, ln.index
        s_prev, r_prev, at, matched = self.s_prev, self.r_prev, 0, 0
        while i < len(events) and j < len(links):
            event = events[i]
            at, stored_hash = links[j]
            if event.id != at or at > until:
                break
            version, topic, state = event.originator_version, event.topic, event.state
            if type(version) is not int or type(topic) is not str or type(state) is not bytes:
                break
            oid = event.originator_id
            oid, sha = oid.hex if type(oid) is UUID else str(oid), sha256(state).digest()
            event_hash = hash_record(at, oid, version, topic, sha, s_prev)
            if event_hash != stored_hash:
                break
            # The chain recomputed from the events alone (for the checkpoints) is the stored one while they agree.
            r_prev = event_hash if r_prev == s_prev else hash_record(at, oid, version, topic, sha, r_prev)
            s_prev = event_hash
            matched += 1
            i += 1
            j += 1
        if matched:
            last = links[j - 1][0]
            self.s_prev, self.r_prev, self.s_pos, self.r_pos = s_prev, r_prev, last, last
            self.report.events_checked += matched
            ev.skip_to(i)
            ln.skip_to(j)
        return matched

    def _guarded(self, events: Iterator[Sequence[Any]]) -> Iterator[Sequence[Any]]:
        """The events until the store refuses one; that is reported, and the rest of the chain is unmatched."""
        try:
            yield from events
        except UnreadableLog as exc:
            self.find(Problem.ALTERED, exc.after, detail=f"the stored events after position {exc.after} cannot be "
                      f"read ({type(exc.error).__name__}): a stored event was changed into something its store "
                      "cannot decode; the events after it are not compared")

    # --- one position ------------------------------------------------------------------------------------------

    def _row(self, position: int) -> ChainRow:
        row = self.full_row(position)
        if row is None:  # removed while we read: describe it as a row of nothing
            return ChainRow(position, "?", -1, "", b"", b"", b"")
        return row

    def _broken(self, position: int, detail: str, oid: str | None = None, version: int | None = None) -> None:
        if position not in self._broken_at:  # one finding per chain row
            self._broken_at.add(position)
            self.find(Problem.CHAIN_BROKEN, position, oid, version, detail)

    def _follow(self, row: ChainRow) -> None:
        """The stored chain: each row must link to the row before it."""
        if row.prev_hash != self.s_prev:
            before = "the start" if self.s_pos is None else f"position {self.s_pos}"
            self._broken(row.position, f"the chain row does not link to the row before it ({before}): chain rows "
                         "were removed, added or edited here", row.originator_id, row.originator_version)
        self.s_prev, self.s_pos = row.hash, row.position

    def _both(self, event: Any, position: int) -> None:
        row = self._row(position)
        if isinstance(event, Undecodable):
            self.report.events_checked += 1
            self.find(Problem.ALTERED, position, row.originator_id, row.originator_version,
                      f"the stored event can no longer be read ({event.error}): it was changed into something its "
                      "store cannot decode")
            self._follow(row)
            self.r_prev, self.r_pos = GENESIS, position  # no chain can be recomputed through it
            return
        oid, version, topic, sha = _fields(event)
        self.report.events_checked += 1
        event_hash = record_hash(self.service, position, oid, version, topic, sha, row.prev_hash)
        if event_hash != row.hash:
            self._mismatch(row, oid, version, topic, sha)
        self._follow(row)
        # The chain recomputed from the events alone (for the checkpoints) is the stored one while they agree.
        self.r_prev = event_hash if row.prev_hash == self.r_prev else record_hash(
            self.service, position, oid, version, topic, sha, self.r_prev
        )
        self.r_pos = position

    def _mismatch(self, row: ChainRow, oid: str, version: int, topic: str, sha: bytes) -> None:
        """The event at the row's position is not what the row says: say what changed, or that the row did."""
        position = row.position
        if row.recomputed_hash(self.service) != row.hash:
            self._broken(position, "the chain row does not match its own hash: the chain table was edited here",
                         oid, version)
        elif (oid, version) == (row.originator_id, row.originator_version):
            changed = [name for name, same in (("state", sha == row.state_sha256), ("topic", topic == row.topic))
                       if not same]
            self.find(Problem.ALTERED, position, oid, version,
                      f"the stored event's {' and '.join(changed) or 'content'} changed since it was chained")
        else:
            self.unmatched_events[position] = _Seen(position, oid, version, sha)
            self.unmatched_rows[position] = _Seen(position, row.originator_id, row.originator_version,
                                                  row.state_sha256)

    def _link_only(self, position: int) -> None:
        row = self._row(position)
        self.unmatched_rows[position] = _Seen(position, row.originator_id, row.originator_version, row.state_sha256)
        self._follow(row)

    def _event_only(self, event: Any) -> None:
        position = event.id
        if isinstance(event, Undecodable):
            self.find(Problem.INSERTED, position, detail=f"a stored event that cannot be read ({event.error}) "
                      "and was never chained")
            self.r_prev, self.r_pos = GENESIS, position
            return
        oid, version, topic, sha = _fields(event)
        if position <= self.head:
            self.report.events_checked += 1
            self.unmatched_events[position] = _Seen(position, oid, version, sha)
        else:
            r = self.report
            r.not_yet_chained += 1
            r.unchained_from = position if r.unchained_from is None else r.unchained_from
            r.unchained_to = position
        self.r_prev = record_hash(self.service, position, oid, version, topic, sha, self.r_prev)
        self.r_pos = position

    # --- checkpoints -------------------------------------------------------------------------------------------

    def _check_checkpoints_before(self, position: float) -> float:
        """Check the checkpoints below ``position``; the position of the next one still to check."""
        positions = self._checkpoint_positions
        while self._next_checkpoint < len(positions) and positions[self._next_checkpoint] < position:
            self._check_checkpoint(positions[self._next_checkpoint])
            self._next_checkpoint += 1
        return positions[self._next_checkpoint] if self._next_checkpoint < len(positions) else _END

    def _check_checkpoint(self, position: int) -> None:
        """Every position up to ``position`` has been compared: hold both chains against the signed heads."""
        good = True
        for head, sources in sorted(self.checkpoints[position].items()):
            self.report.checkpoints_checked += 1
            table_agrees = self.s_pos == position and self.s_prev == head
            if not table_agrees:
                good = False
                stored = (
                    f"the chain table has {self.s_prev.hex()[:16]}…" if self.s_pos == position
                    else f"the chain table has no row at {position} (its rows end at {self.s_pos or 0} here)"
                )
                self.find(
                    Problem.CHAIN_REWRITTEN, position,
                    detail=f"a checkpoint signed head {head.hex()[:16]}… at position {position}, but {stored}: "
                    f"the chain was rewritten after a record in this range changed",
                    after=self._last_good_checkpoint, source=", ".join(sources),
                )
            elif self.r_pos == position and self.r_prev == head:
                self.report.checkpoints_verified += 1
            # else: the table agrees with the checkpoint but the events do not: the records are named above.
        if good:
            self._last_good_checkpoint = position

    # --- what did not match where it stood ---------------------------------------------------------------------

    def _pair_the_unmatched(self) -> None:
        rows_by_identity = {(s.originator_id, s.originator_version): s for s in self.unmatched_rows.values()}
        moved: list[tuple[_Seen, _Seen]] = []
        for seen in list(self.unmatched_events.values()):
            chained = rows_by_identity.get((seen.originator_id, seen.originator_version))
            if chained is not None and chained.position != seen.position:
                moved.append((seen, chained))
        out_of_order = self._out_of_order_originators([event for event, _ in moved])
        for event, chained in moved:
            del self.unmatched_events[event.position]
            del self.unmatched_rows[chained.position]
            detail = f"chained at position {chained.position}, now at position {event.position}"
            if event.state_sha256 != chained.state_sha256:
                detail += "; its state changed too"
            if event.originator_id in out_of_order:
                detail += "; this originator's versions are now out of order in the log"
            self.find(Problem.REORDERED, event.position, event.originator_id, event.originator_version, detail)
        for position, event in sorted(self.unmatched_events.items()):
            chained = self.unmatched_rows.pop(position, None)
            if chained is not None:
                self.find(Problem.ALTERED, position, event.originator_id, event.originator_version,
                          f"chained as originator {originator_display(chained.originator_id)} version "
                          f"{chained.originator_version}; the stored event's originator id or version changed")
            else:
                self.find(Problem.INSERTED, position, event.originator_id, event.originator_version,
                          f"an event at or below the chained head ({self.head}) that was never chained")
        for position, chained in sorted(self.unmatched_rows.items()):
            self.find(Problem.DELETED, position, chained.originator_id, chained.originator_version,
                      "a chained event is no longer stored")

    @staticmethod
    def _out_of_order_originators(moved: Sequence[_Seen]) -> set[str]:
        by_originator: dict[str, list[_Seen]] = defaultdict(list)
        for seen in moved:
            by_originator[seen.originator_id].append(seen)
        out = set()
        for originator, entries in by_originator.items():
            versions = [s.originator_version for s in sorted(entries, key=lambda s: s.position)]
            if versions != sorted(versions):
                out.add(originator)
        return out


def _fields(event: Any) -> tuple[str, int, str, bytes]:
    """An event's chained fields; a tampered row's odd values (NULLs, text) are taken as they are, not refused."""
    version = event.originator_version
    if not isinstance(version, int):
        try:
            version = int(version)
        except (TypeError, ValueError):
            version = -1
    topic = "" if event.topic is None else str(event.topic)
    return originator_key(event.originator_id), version, topic, state_sha256(event.state)


class UnreadableLog(Exception):
    """The event store refused to return a stored event (a row tampered beyond what its recorder can read)."""

    def __init__(self, after: int | None, error: Exception) -> None:
        super().__init__(f"after position {after}: {type(error).__name__}")
        self.after = after
        self.error = error


@dataclass(frozen=True)
class Undecodable:
    """A stored event that its store cannot return (a row tampered beyond what the recorder decodes)."""

    id: int
    error: str
    originator_id: None = None
    originator_version: None = None
    topic: None = None
    state: None = None


MAX_PROBES = 100_000


def log_batches(recorder: Any, batch_size: int = 1000) -> Iterator[Sequence[Any]]:
    """Every stored notification in position order, in batches (from the very first, whatever its id). A batch
    the store cannot return is read again one position at a time: what cannot be read is an ``Undecodable``."""
    start: int | None = None
    while True:
        try:
            batch = recorder.select_notifications(start, batch_size, inclusive_of_start=start is None)
        except Exception as exc:
            if start is None:  # rows at positions up to 0 exist only by tampering; past them, probe from 0
                try:
                    below = recorder.select_notifications(None, batch_size, stop=0)
                except Exception:
                    raise UnreadableLog(None, exc) from exc
                if below:
                    yield below
                start = 0
            start = yield from _probe(recorder, start, exc)
            continue
        if batch:
            yield batch
        if len(batch) < batch_size:
            return
        start = batch[-1].id


def _probe(recorder: Any, after: int, error: Exception) -> Generator[Sequence[Any], None, int]:
    """Read position by position after ``after`` up to the first that cannot be read; the position to go on from."""
    for position in range(after + 1, after + 1 + MAX_PROBES):
        try:
            found = recorder.select_notifications(position, 1, stop=position)
        except Exception as exc:
            yield [Undecodable(position, type(exc).__name__)]
            return position
        if found:
            yield found
    raise UnreadableLog(after, error)


def read_log(recorder: Any, batch_size: int = 1000) -> Iterator[Any]:
    for batch in log_batches(recorder, batch_size):
        yield from batch


def read_ahead(batches: Iterator[Sequence[T]], depth: int = 2) -> Iterator[Sequence[T]]:
    """The batches, the next ones read in a thread while these are compared (the database and the driver's C code
    work while Python hashes). Memory stays bounded by ``depth`` batches."""
    queue: Queue[tuple[Sequence[T] | None, BaseException | None]] = Queue(maxsize=depth)
    abandoned = threading.Event()

    def put(item: tuple[Sequence[T] | None, BaseException | None]) -> bool:
        while not abandoned.is_set():
            try:
                queue.put(item, timeout=0.1)
                return True
            except Full:
                continue
        return False

    def read() -> None:
        try:
            for batch in batches:
                if not put((batch, None)):
                    return
            put((None, None))
        except BaseException as exc:  # handed to the consumer, raised there
            put((None, exc))

    reader = threading.Thread(target=read, name="audit-read-ahead", daemon=True)
    reader.start()
    try:
        while True:
            batch, error = queue.get()
            if error is not None:
                raise error
            if batch is None:
                return
            yield batch
    finally:
        abandoned.set()


def _valid_checkpoints(
    service: str, log: str, sourced: Iterable[SourcedCheckpoint], trusted: TrustedKeys, report: LogReport,
) -> dict[int, dict[bytes, list[str]]]:
    """Signed heads by position and head (with where each was read); what does not verify becomes a finding."""
    valid: dict[int, dict[bytes, list[str]]] = defaultdict(lambda: defaultdict(list))
    for item in sourced:
        report.checkpoint_sources += 1
        cp = item.checkpoint
        if cp is None:
            report.findings.append(Finding(service, Problem.BAD_SIGNATURE, None, detail=item.error or "unreadable",
                                           source=item.source))
            continue
        why = trusted.check(cp)
        if why is None and (cp.log, cp.service) != (log, service):
            why = f"it is a checkpoint of log {cp.log} ({cp.service}), not {log} ({service})"
        if why is not None:
            report.findings.append(Finding(service, Problem.BAD_SIGNATURE, cp.position, detail=why,
                                           source=item.source))
            continue
        valid[cp.position][cp.head].append(item.source)
        report.signing_keys[cp.key_id] = report.signing_keys.get(cp.key_id, 0) + 1
    return valid


def verify_log(
    service: str,
    recorder: Any,
    engine: Engine,
    *,
    log: str,
    trusted: TrustedKeys,
    published: Iterable[SourcedCheckpoint] = (),
    batch_size: int = 1000,
) -> LogReport:
    """Verify one service's log: its events (``recorder``, the event store's application recorder) against its
    chain and checkpoints (in ``engine``, the service's read-model database) and the published checkpoints."""
    chain = ChainStore(engine)
    table = CheckpointStore(engine)
    report = LogReport(service, log)
    checkpoints = _valid_checkpoints(service, log, [*table.read(), *published], trusted, report)
    # The head is read after the checkpoints: a running chainer only signs what it has chained, so every checkpoint
    # read is at or below it unless the chain was cut short.
    head, _ = chain.head()
    report.chained_head = head
    verifier = _LogVerifier(report, checkpoints)
    if head and not checkpoints:
        report.warnings.append("no signed checkpoint yet: a rewrite of the chain table itself would go unseen")
    verifier.run(read_ahead(log_batches(recorder, batch_size)), read_ahead(chain.link_batches(head, batch_size)),
                 chain.row_at)
    return report


def verify_service(
    settings: Settings, service: Any, checkpoints_dir: Path | None = None, trusted: TrustedKeys | None = None,
) -> LogReport:
    """Verify a built service (a ``huhang.service.Service``) with the checkpoints published in ``checkpoints_dir``
    (default: the settings' publication folder)."""
    log = log_name(settings, service.name)
    return verify_log(
        service.name, service.application.recorder, service.positions.engine, log=log,
        trusted=trusted or trusted_keys(settings),
        published=read_published(checkpoints_dir or publish_dir(settings), log),
    )


def verify(settings: Settings, services: Sequence[str] = SERVICES, checkpoints_dir: Path | None = None) -> AuditReport:
    """Verify the named services' logs where the settings store them (the ``huhang audit verify`` command)."""
    trusted = trusted_keys(settings)
    reports = []
    for name in services:
        # The service's own composition (its event store's table is named after its application).
        built = importlib.import_module(f"services.{name}.main").build(settings)
        try:
            reports.append(verify_service(settings, built, checkpoints_dir, trusted))
        finally:
            built.application.close()
            built.positions.engine.dispose()
    return AuditReport(reports)
