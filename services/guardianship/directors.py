"""Child directors (儿童主任): the roster per village, the children each one follows, and their training record.

The plan: at least one child director per village, more where a village has over 30 covered children (left-behind
plus in difficulty); directors keep a training archive and are trained every year (full coverage).

- ``ChildDirector``: one aggregate per director (appointed, left, children taken and released, trainings).
- ``DirectorAssignment``: one aggregate per child, naming its director: a child has at most one. Reassigning moves
  the child: the child's assignment and both directors change in one atomic save, so no reader ever sees the
  child with two directors or none in between, and a concurrent change retries on the fresh state.
- ``DirectorRoster``: the read model for the roster, the coverage report and the training check; a projection of
  the directors' events brought up to date from the notification log (``catch_up``) after every change and before
  every read. Each row is the director's state at a version and is only replaced by a later version, and the
  position moves only forward in the same transaction: a repeated or concurrent catch-up converges.

A director's name and phone are personal data of staff: they are stored, never logged.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import IntegrityError
from eventsourcing.utils import get_topic
from sqlalchemy import (
    Column,
    Connection,
    Date,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    exists,
    func,
    or_,
    select,
)

from huhang.groupcommit import GroupCommitter
from huhang.problems import Conflict, FieldError, NotFound, Unprocessable
from huhang.sql import create_tables, dialect_insert, insert_ignoring_duplicates, reading
from huhang.streams import Positions, WakeableApplication, positions_table
from services.guardianship.children import KnownChild, KnownChildren
from services.guardianship.domain import GuardianshipFile
from services.guardianship.visits import frequent_reasons

DIRECTOR_NAMESPACE = uuid.UUID("7c2e9a41-5d3b-4f80-b1e6-0a9d8c7b6e52")
ASSIGNMENT_NAMESPACE = uuid.UUID("c1f3e5a7-9b2d-4c6e-8a0f-3d5b7f9e1a2c")
TRAINING_NAMESPACE = uuid.UUID("e8a6c4b2-0f1d-4e3c-9a7b-5d3f1b9c7e0a")
MORE_THAN_ONE_ABOVE = 30  # a village with more than 30 covered children needs another director
DIRECTORS_FOR_A_LARGE_VILLAGE = 2
POSITION_NAME = "guardianship.child_director_roster"
MAX_ATTEMPTS = 5
T = TypeVar("T")


@dataclass(frozen=True)
class Training:
    training_id: UUID
    trained_on: date
    course: str
    hours: float


# --- aggregates ---------------------------------------------------------------------------------------------------


class ChildDirector(Aggregate):
    @staticmethod
    def create_id(director_id: UUID, **_: Any) -> UUID:
        return director_id

    @event("Appointed")
    def __init__(
        self, director_id: UUID, name: str, phone: str | None, township: str, village: str, appointed_on: date,
        request_fingerprint: str,
    ) -> None:
        self.name = name
        self.phone = phone
        self.township = township
        self.village = village
        self.appointed_on = appointed_on
        self.request_fingerprint = request_fingerprint
        self.left_on: date | None = None
        self.leave_reason: str | None = None
        self.released_on_leave: list[UUID] = []
        self.children: list[UUID] = []
        self.trainings: list[Training] = []
        self.training_fingerprints: dict[UUID, str] = {}

    @property
    def active(self) -> bool:
        return self.left_on is None

    def leave(self, left_on: date, reason: str | None) -> bool:
        """False when the same leave is recorded already (a retry); the children are released."""
        if self.left_on is not None:
            if self.left_on == left_on:
                return False
            raise Conflict(
                f"This director left on {self.left_on}.",
                errors=[FieldError(field="left_on", reason=f"the director left on {self.left_on} already")],
            )
        if left_on < self.appointed_on:
            raise Unprocessable(
                "A director cannot leave before being appointed.",
                errors=[FieldError(field="left_on", reason=f"must not be before appointed_on {self.appointed_on}")],
            )
        self._left(left_on=left_on, reason=reason, released_children=list(self.children))
        return True

    @event("Left")
    def _left(self, left_on: date, reason: str | None, released_children: list[UUID]) -> None:
        self.left_on = left_on
        self.leave_reason = reason
        self.released_on_leave = list(released_children)
        self.children = []

    def take_child(self, child_id: UUID) -> None:
        if not self.active:
            raise Conflict(
                f"This director left on {self.left_on} and takes no children.",
                errors=[FieldError(field="director_id", reason=f"the director left on {self.left_on}")],
            )
        if child_id not in self.children:
            self._child_taken(child_id=child_id)

    @event("ChildTaken")
    def _child_taken(self, child_id: UUID) -> None:
        self.children.append(child_id)

    def release_child(self, child_id: UUID, reason: str) -> None:
        if child_id in self.children:
            self._child_released(child_id=child_id, reason=reason)

    @event("ChildReleased")
    def _child_released(self, child_id: UUID, reason: str) -> None:
        self.children.remove(child_id)

    def record_training(
        self, training_id: UUID, trained_on: date, course: str, hours: float, fingerprint: str
    ) -> bool:
        """False when this training is recorded already with the same request (a retry)."""
        if training_id in self.training_fingerprints:
            if self.training_fingerprints[training_id] == fingerprint:
                return False
            raise Conflict(
                f"The training id {training_id} is already used by another training.",
                errors=[FieldError(field="training_id", reason="already used by another training")],
            )
        if self.left_on is not None and trained_on >= self.left_on:
            raise Conflict(
                f"This director left on {self.left_on}.",
                errors=[FieldError(field="trained_on", reason=f"the director left on {self.left_on}")],
            )
        if any(t.trained_on == trained_on and t.course == course for t in self.trainings):
            raise Conflict(
                "This course on this day is already in the director's training record.",
                errors=[FieldError(field="course", reason=f"already recorded on {trained_on}")],
            )
        self._training_recorded(
            training_id=training_id, trained_on=trained_on, course=course, hours=hours, request_fingerprint=fingerprint,
        )
        return True

    @event("TrainingRecorded")
    def _training_recorded(
        self, training_id: UUID, trained_on: date, course: str, hours: float, request_fingerprint: str
    ) -> None:
        self.trainings.append(Training(training_id, trained_on, course, hours))
        self.training_fingerprints[training_id] = request_fingerprint


class DirectorAssignment(Aggregate):
    """One per child: its child director, if any."""

    @staticmethod
    def create_id(child_id: UUID, **_: Any) -> UUID:
        return assignment_id(child_id)

    @event("Opened")
    def __init__(self, child_id: UUID) -> None:
        self.child_id = child_id
        self.director_id: UUID | None = None

    def assign(self, director_id: UUID) -> None:
        self._assigned(director_id=director_id, previous_director_id=self.director_id)

    @event("Assigned")
    def _assigned(self, director_id: UUID, previous_director_id: UUID | None) -> None:
        self.director_id = director_id

    def release(self, reason: str) -> None:
        if self.director_id is not None:
            self._released(director_id=self.director_id, reason=reason)

    @event("Released")
    def _released(self, director_id: UUID, reason: str) -> None:
        self.director_id = None


def assignment_id(child_id: UUID) -> UUID:
    return uuid.uuid5(ASSIGNMENT_NAMESPACE, str(child_id))


# --- the roster (read model) --------------------------------------------------------------------------------------

metadata = MetaData()
directors_table = Table(
    "child_directors",
    metadata,
    Column("director_id", String(36), primary_key=True),
    Column("name", String(50), nullable=False),
    Column("phone", String(20), nullable=True),
    Column("township", String(50), nullable=False),
    Column("village", String(50), nullable=False),
    Column("appointed_on", Date, nullable=False),
    Column("left_on", Date, nullable=True),
    Column("children", Integer, nullable=False),
    Column("version", Integer, nullable=False),
    Index("ix_child_directors_place", "township", "village"),
)
trainings_table = Table(
    "child_director_trainings",
    metadata,
    Column("training_id", String(36), primary_key=True),
    Column("director_id", String(36), nullable=False),
    Column("trained_on", Date, nullable=False),
    Column("course", String(100), nullable=False),
    Column("hours", Float, nullable=False),
    Index("ix_child_director_trainings_director", "director_id", "trained_on"),
)

TOPICS = tuple(
    get_topic(cls)
    for cls in (
        ChildDirector.Appointed,  # type: ignore[attr-defined]
        ChildDirector.Left,  # type: ignore[attr-defined]
        ChildDirector.ChildTaken,  # type: ignore[attr-defined]
        ChildDirector.ChildReleased,  # type: ignore[attr-defined]
        ChildDirector.TrainingRecorded,  # type: ignore[attr-defined]
    )
)


@dataclass(frozen=True)
class RosterEntry:
    director_id: UUID
    name: str
    phone: str | None
    township: str
    village: str
    appointed_on: date
    left_on: date | None
    children: int


@dataclass(frozen=True)
class UntrainedDirector:
    director_id: UUID
    name: str
    township: str
    village: str
    last_trained_on: date | None


_insert = dialect_insert


def in_office_on(day: date) -> Any:
    """SQL: the director was in office on this day (appointed by then, not yet left: the day of leaving is out)."""
    d = directors_table
    return and_(d.c.appointed_on <= day, or_(d.c.left_on.is_(None), d.c.left_on > day))


class DirectorRoster:
    def __init__(self, engine: Engine, app: WakeableApplication, batch_size: int = 1000) -> None:
        self.engine = engine
        self.app = app
        self.batch_size = batch_size
        self._lock = threading.Lock()
        create_tables(metadata, engine)
        create_tables(positions_table.metadata, engine, [positions_table])

    def catch_up(self) -> int:
        """Apply what the log holds beyond the recorded position; returns the number of events seen."""
        seen = 0
        with self._lock:  # one catch-up at a time in this process; other processes converge (see above)
            while True:
                with self.engine.begin() as conn:
                    notifications = self.app.recorder.select_notifications(
                        start=self._position(conn), limit=self.batch_size, topics=TOPICS, inclusive_of_start=False,
                    )
                    if not notifications:
                        return seen
                    self._apply(conn, {UUID(str(n.originator_id)) for n in notifications})
                    self._advance(conn, notifications[-1].id)
                seen += len(notifications)

    @staticmethod
    def _position(conn: Connection) -> int:
        return Positions.read_in(conn, POSITION_NAME)

    @staticmethod
    def _advance(conn: Connection, position: int) -> None:
        Positions.advance_in(conn, POSITION_NAME, position)

    def _apply(self, conn: Connection, director_ids: set[UUID]) -> None:
        rows: list[dict[str, Any]] = []
        trainings: list[dict[str, Any]] = []
        for director_id in sorted(director_ids):
            d: ChildDirector = self.app.repository.get(director_id)
            rows.append({
                "director_id": str(d.id), "name": d.name, "phone": d.phone, "township": d.township,
                "village": d.village, "appointed_on": d.appointed_on, "left_on": d.left_on,
                "children": len(d.children), "version": d.version,
            })
            trainings.extend(
                {"training_id": str(t.training_id), "director_id": str(d.id), "trained_on": t.trained_on,
                 "course": t.course, "hours": t.hours}
                for t in d.trainings
            )
        t = directors_table
        stmt = _insert(conn, t)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["director_id"],
                set_={c: stmt.excluded[c] for c in ("left_on", "children", "version")},
                where=t.c.version < stmt.excluded.version,  # an older state never replaces a newer one
            ),
            rows,
        )
        insert_ignoring_duplicates(conn, trainings_table, trainings)

    # --- what the roster answers ------------------------------------------------------------------------------

    def entries(self, township: str | None = None, village: str | None = None, include_left: bool = False
                ) -> list[RosterEntry]:
        d = directors_table
        query = select(d).order_by(d.c.township, d.c.village, d.c.appointed_on, d.c.director_id)
        if township is not None:
            query = query.where(d.c.township == township)
        if village is not None:
            query = query.where(d.c.village == village)
        if not include_left:
            query = query.where(d.c.left_on.is_(None))
        with reading(self.engine) as conn:
            return [
                RosterEntry(
                    director_id=UUID(r.director_id), name=r.name, phone=r.phone, township=r.township,
                    village=r.village, appointed_on=r.appointed_on, left_on=r.left_on, children=r.children,
                )
                for r in conn.execute(query)
            ]

    def directors_by_village(self, township: str | None = None) -> dict[tuple[str, str], int]:
        """(township, village) -> directors serving now (not left)."""
        d = directors_table
        query = select(d.c.township, d.c.village, func.count()).where(d.c.left_on.is_(None))
        if township is not None:
            query = query.where(d.c.township == township)
        with reading(self.engine) as conn:
            rows = conn.execute(query.group_by(d.c.township, d.c.village))
            return {(tw, v): int(n) for tw, v, n in rows}

    def untrained(self, year: int, on: date, township: str | None = None) -> list[UntrainedDirector]:
        """Directors in office on ``on`` without any training dated in the calendar year ``year``."""
        d, t = directors_table, trainings_table
        in_year = and_(
            t.c.director_id == d.c.director_id, t.c.trained_on >= date(year, 1, 1), t.c.trained_on <= date(year, 12, 31)
        )
        last_trained = (
            select(func.max(t.c.trained_on)).where(t.c.director_id == d.c.director_id).scalar_subquery()
        )
        query = (
            select(d.c.director_id, d.c.name, d.c.township, d.c.village, last_trained.label("last_trained_on"))
            .where(in_office_on(on), ~exists().where(in_year))
            .order_by(d.c.township, d.c.village, d.c.appointed_on, d.c.director_id)
        )
        if township is not None:
            query = query.where(d.c.township == township)
        with reading(self.engine) as conn:
            return [
                UntrainedDirector(UUID(r.director_id), r.name, r.township, r.village, r.last_trained_on)
                for r in conn.execute(query)
            ]

    def in_office(self, on: date, township: str | None = None) -> int:
        d = directors_table
        query = select(func.count()).select_from(d).where(in_office_on(on))
        if township is not None:
            query = query.where(d.c.township == township)
        with reading(self.engine) as conn:
            return int(conn.execute(query).scalar_one())


# --- the use cases ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AppointDirector:
    name: str
    phone: str | None
    township: str
    village: str
    appointed_on: date
    fingerprint: str
    idempotency_key: str | None = None


@dataclass(frozen=True)
class Appointed:
    director_id: UUID
    replayed: bool


@dataclass(frozen=True)
class Departure:
    director_id: UUID
    left_on: date
    released_children: tuple[UUID, ...]  # to be assigned to another director
    replayed: bool


@dataclass(frozen=True)
class Assignment:
    child_id: UUID
    director_id: UUID
    previous_director_id: UUID | None
    changed: bool


@dataclass(frozen=True)
class RecordTraining:
    trained_on: date
    course: str
    hours: float
    fingerprint: str
    training_id: UUID | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True)
class TrainingRecorded:
    director_id: UUID
    training_id: UUID
    replayed: bool


@dataclass(frozen=True)
class Workload:
    children: int  # assigned, merged-away files not counted
    frequent_visits: int  # of which on the more frequent visit regime (as far as known)
    not_yet_known: int  # assigned children whose file guardianship has not heard of (yet)
    merged_children: tuple[UUID, ...]  # assigned files since merged into another: assign the surviving file


@dataclass(frozen=True)
class DirectorView:
    director_id: UUID
    name: str
    phone: str | None
    township: str
    village: str
    appointed_on: date
    left_on: date | None
    leave_reason: str | None
    children: tuple[UUID, ...]
    workload: Workload
    trainings: tuple[Training, ...]


@dataclass(frozen=True)
class VillageCoverage:
    township: str
    village: str
    covered_children: int
    directors: int
    flags: tuple[str, ...]  # "no_director", "needs_another_director"


@dataclass(frozen=True)
class CoverageReport:
    year: int
    township: str | None
    as_of: date
    villages: tuple[VillageCoverage, ...]
    untrained_directors: tuple[UntrainedDirector, ...]
    directors_in_office: int  # on the training check's day: the year's last day, or today in the current year


def village_flags(covered_children: int, directors: int) -> tuple[str, ...]:
    """The plan: at least one director per village with covered children; more where over 30 covered children."""
    flags = []
    if covered_children > 0 and directors == 0:
        flags.append("no_director")
    if covered_children > MORE_THAN_ONE_ABOVE and directors < DIRECTORS_FOR_A_LARGE_VILLAGE:
        flags.append("needs_another_director")
    return tuple(flags)


class ChildDirectors:
    def __init__(self, app: WakeableApplication, known_children: KnownChildren, roster: DirectorRoster) -> None:
        self.app = app
        self.roster = roster
        self._known_children = known_children
        self._committer = GroupCommitter(app)

    # --- commands ---------------------------------------------------------------------------------------------

    def appoint(self, cmd: AppointDirector) -> Appointed:
        if cmd.idempotency_key is None:
            director_id = uuid.uuid4()
        else:
            director_id = uuid.uuid5(DIRECTOR_NAMESPACE, cmd.idempotency_key)
            existing = self._find(director_id)
            if existing is not None:
                return self._replayed_appointment(existing, cmd)
        director = ChildDirector(
            director_id=director_id, name=cmd.name, phone=cmd.phone, township=cmd.township, village=cmd.village,
            appointed_on=cmd.appointed_on, request_fingerprint=cmd.fingerprint,
        )
        try:
            self._committer.save(director)
        except IntegrityError:
            existing = self._find(director_id)  # the same key's first request won meanwhile
            if existing is None:
                raise
            return self._replayed_appointment(existing, cmd)
        self.roster.catch_up()
        return Appointed(director_id, replayed=False)

    @staticmethod
    def _replayed_appointment(existing: Any, cmd: AppointDirector) -> Appointed:
        if not isinstance(existing, ChildDirector) or existing.request_fingerprint != cmd.fingerprint:
            raise Unprocessable(
                "This Idempotency-Key was already used with a different request body.",
                errors=[FieldError(field="Idempotency-Key", reason="reused with a different body")],
            )
        return Appointed(existing.id, replayed=True)

    def leave(self, director_id: UUID, left_on: date, reason: str | None) -> Departure:
        for _ in range(MAX_ATTEMPTS):
            director = self._director(director_id, field="director_id")
            left = director.leave(left_on, reason)
            assignments = []
            for child_id in director.released_on_leave if left else []:
                assignment: DirectorAssignment = self.app.repository.get(assignment_id(child_id))
                assignment.release("director_left")
                assignments.append(assignment)
            try:
                self._committer.save(director, *assignments)
            except IntegrityError:
                continue
            self.roster.catch_up()
            return Departure(director_id, left_on, tuple(director.released_on_leave), replayed=not left)
        raise RuntimeError("could not record the leave after repeated conflicts")

    def assign(self, child_id: UUID, director_id: UUID) -> Assignment:
        """Give the child this director; a child with another director moves to this one."""
        child = self._known_child(child_id)
        for _ in range(MAX_ATTEMPTS):
            director = self._director(director_id, field="director_id", status=422)
            _check_place(child, director)
            director.take_child(child_id)  # refuses a director who left
            assignment = self._load(assignment_id(child_id), lambda: DirectorAssignment(child_id=child_id))
            previous_id = assignment.director_id
            if previous_id == director_id:
                return Assignment(child_id, director_id, previous_id, changed=False)  # a retry: nothing to do
            changed: list[Aggregate] = [assignment, director]
            assignment.assign(director_id)
            if previous_id is not None:
                previous: ChildDirector = self.app.repository.get(previous_id)
                previous.release_child(child_id, "reassigned")
                changed.append(previous)
            try:
                self._committer.save(*changed)
            except IntegrityError:
                continue  # the child or a director changed meanwhile: look again
            self.roster.catch_up()
            return Assignment(child_id, director_id, previous_id, changed=True)
        raise RuntimeError("could not assign the child after repeated conflicts")

    def record_training(self, director_id: UUID, cmd: RecordTraining) -> TrainingRecorded:
        training_id = cmd.training_id
        if training_id is None:
            training_id = (
                uuid.uuid4() if cmd.idempotency_key is None
                else uuid.uuid5(TRAINING_NAMESPACE, f"{director_id}\x1f{cmd.idempotency_key}")
            )
        for _ in range(MAX_ATTEMPTS):
            director = self._director(director_id, field="director_id")
            try:
                recorded = director.record_training(
                    training_id, cmd.trained_on, cmd.course, cmd.hours, cmd.fingerprint
                )
            except Conflict as conflict:
                if cmd.training_id is None and cmd.idempotency_key is not None and _names(conflict, "training_id"):
                    raise Unprocessable(
                        "This Idempotency-Key was already used with a different request body.",
                        errors=[FieldError(field="Idempotency-Key", reason="reused with a different body")],
                    ) from None
                raise
            if not recorded:
                return TrainingRecorded(director_id, training_id, replayed=True)
            try:
                self._committer.save(director)
            except IntegrityError:
                continue
            self.roster.catch_up()
            return TrainingRecorded(director_id, training_id, replayed=False)
        raise RuntimeError("could not record the training after repeated conflicts")

    # --- queries ----------------------------------------------------------------------------------------------

    def get(self, director_id: UUID) -> DirectorView:
        d = self._director(director_id, field="director_id")
        return DirectorView(
            director_id=d.id, name=d.name, phone=d.phone, township=d.township, village=d.village,
            appointed_on=d.appointed_on, left_on=d.left_on, leave_reason=d.leave_reason,
            children=tuple(d.children), workload=self._workload(d.children),
            trainings=tuple(sorted(d.trainings, key=lambda t: (t.trained_on, str(t.training_id)))),
        )

    def director_of(self, child_id: UUID) -> UUID | None:
        assignment = self._find(assignment_id(child_id))
        return assignment.director_id if isinstance(assignment, DirectorAssignment) else None

    def roster_entries(
        self, township: str | None = None, village: str | None = None, include_left: bool = False
    ) -> list[RosterEntry]:
        self.roster.catch_up()
        return self.roster.entries(township, village, include_left)

    def coverage(self, year: int, today: date, township: str | None = None) -> CoverageReport:
        """Villages without a director or needing another, today; directors untrained in ``year``."""
        self.roster.catch_up()
        covered = {
            place: n for place, n in self._known_children.covered_by_village().items()
            if township is None or place[0] == township
        }
        directors = self.roster.directors_by_village(township)
        villages = tuple(
            VillageCoverage(tw, v, covered.get((tw, v), 0), directors.get((tw, v), 0),
                            village_flags(covered.get((tw, v), 0), directors.get((tw, v), 0)))
            for tw, v in sorted(set(covered) | set(directors))
        )
        check_day = min(date(year, 12, 31), today)
        return CoverageReport(
            year=year, township=township, as_of=today, villages=villages,
            untrained_directors=tuple(self.roster.untrained(year, check_day, township)),
            directors_in_office=self.roster.in_office(check_day, township),
        )

    # --- helpers ----------------------------------------------------------------------------------------------

    def _workload(self, children: Sequence[UUID]) -> Workload:
        known = self._known_children.get_many(children)
        frequent = unknown = 0
        merged = []
        for child_id in children:
            child = known.get(child_id)
            if child is None:
                unknown += 1
            elif child.merged_into is not None:
                merged.append(child_id)
            elif frequent_reasons(child.frequent_visit_reasons, self._risk_level(child_id)):
                frequent += 1
        return Workload(
            children=len(children) - len(merged), frequent_visits=frequent, not_yet_known=unknown,
            merged_children=tuple(merged),
        )

    def _risk_level(self, child_id: UUID) -> str | None:
        file = self._find(child_id)
        return file.risk_level if isinstance(file, GuardianshipFile) else None

    def _known_child(self, child_id: UUID) -> KnownChild:
        child = self._known_children.get(child_id)
        if child is None:
            raise NotFound(
                f"No child with id {child_id} is known to guardianship (yet).",
                errors=[FieldError(field="child_id", reason="unknown child")],
            )
        if child.merged_into is not None:
            raise Unprocessable(
                f"This child's file was merged into {child.merged_into}: assign the surviving file.",
                errors=[FieldError(field="child_id", reason=f"merged into {child.merged_into}")],
            )
        return child

    def _director(self, director_id: UUID, field: str, status: int = 404) -> ChildDirector:
        found = self._find(director_id)
        if not isinstance(found, ChildDirector):
            error = NotFound if status == 404 else Unprocessable
            raise error(
                f"No child director with id {director_id}.",
                errors=[FieldError(field=field, reason="unknown child director")],
            )
        return found

    def _find(self, aggregate_id: UUID) -> Any:
        with contextlib.suppress(AggregateNotFoundError):
            return self.app.repository.get(aggregate_id)
        return None

    def _load(self, aggregate_id: UUID, new: Callable[[], T]) -> T:
        found = self._find(aggregate_id)
        return new() if found is None else found


def _check_place(child: KnownChild, director: ChildDirector) -> None:
    if (child.township, child.village) != (director.township, director.village):
        raise Unprocessable(
            "A child director follows the children of the village they serve.",
            errors=[FieldError(
                field="director_id",
                reason=f"serves {director.township} {director.village}, the child lives in "
                f"{child.township} {child.village}",
            )],
        )


def _names(error: Conflict, field: str) -> bool:
    return any(e.field == field for e in error.errors)
