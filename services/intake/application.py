"""Intake: receives mandatory reports, keeps the child's file (one child, one file), opens or updates the case.

The child's file: registration (one at a time or a survey's batch), facts recorded with their source, categories
derived from them (``services.intake.categories``), probable duplicates flagged for a person to confirm (a merge)
or dismiss. Nothing is merged silently.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError
from sqlalchemy import Engine
from sqlalchemy.pool import StaticPool

from contracts.agencies import LEAD_AGENCY, Agency
from huhang.eventstore import ServiceApplication
from huhang.groupcommit import GroupCommitter
from huhang.personal import ChildKeys
from huhang.problems import Conflict, FieldError, NotFound, Unprocessable
from huhang.storage import temporary_engine
from services.intake.categories import derive_categories, sort_categories
from services.intake.domain import Case, Child, Erasure, Report, applied_key
from services.intake.facts import ChildFileFacts, facts_fingerprint
from services.intake.match_index import MatchIndex
from services.intake.matching import Match, PersonRecord
from services.intake.registry import (
    REGISTRATION_SOURCE,
    ChildRegistry,
    DuplicateList,
    FlaggedPair,
    RegisterChild,
    Registration,
    RegistryRow,
    child_file_view,
    history_entries,
    pair_key,
)

REPORT_ID_NAMESPACE = uuid.UUID("2c7d9b3a-8e41-4f6a-b0d2-5e9c1a7f3b86")
MAX_ATTEMPTS = 5
MAX_MERGE_HOPS = 8
DUPLICATE_CANDIDATES = 5
REGISTER_CHUNK = 500  # registrations per save; a larger batch is saved chunk by chunk, pipelined
REDERIVE_CHUNK = 500
_AGENCY_CODES = frozenset(a.value for a in Agency)

__all__ = [
    "REGISTRATION_SOURCE",
    "ChildFacts",
    "FileReport",
    "FiledReport",
    "IntakeApplication",
    "RegisterChild",
    "Registration",
    "ReportAboutChild",
]


def utc_today() -> date:
    return datetime.now(UTC).date()


@dataclass(frozen=True)
class ChildFacts:
    """A child's identity as given by a reporter or a registrar; ``categories`` are their observation."""

    name: str
    sex: str
    birth_date: date
    id_card_number: str | None
    township: str
    village: str
    categories: tuple[str, ...]


@dataclass(frozen=True)
class FileReport:
    """The command: one mandatory report as received."""

    reporter_agency: str
    reporter_role: str
    reporter_reference: str | None
    child: ChildFacts
    concern_category: str
    urgency: str
    observations: str
    observed_on: date
    fingerprint: str
    idempotency_key: str | None = None


@dataclass(frozen=True)
class ReportAboutChild:
    """The command: a report about a child already registered, by id (e.g. a finding of a director's visit)."""

    reporter_agency: str
    reporter_role: str
    reporter_reference: str | None
    concern_category: str
    urgency: str
    observations: str
    observed_on: date
    fingerprint: str
    idempotency_key: str | None = None


ReportDetails = FileReport | ReportAboutChild


@dataclass(frozen=True)
class FiledReport:
    report_id: UUID
    case_id: UUID
    child_id: UUID
    replayed: bool


@dataclass(frozen=True)
class Merge:
    survivor_id: UUID
    merged_child_id: UUID
    case_ids: tuple[UUID, ...]
    categories: tuple[str, ...]


@dataclass
class _Entry:
    """One registration command on its way through a batch."""

    cmd: RegisterChild
    identity_id: UUID  # the id the identity gives (a merged file's id, followed to the survivor)
    facts: dict[str, Any]  # the command's facts, stored form
    fingerprint: str  # of ``facts`` (computed once per command)
    child: Child | None = None  # None: the file already says all this (not loaded)
    created: bool = False
    changed: bool = False
    categories: tuple[str, ...] = ()

    @property
    def record(self) -> PersonRecord:
        return person_record(self.identity_id, self.cmd.identity)

    @property
    def child_id(self) -> UUID:
        return self.child.id if self.child is not None else self.identity_id


@dataclass
class _Batch:
    """What the chunks of one registration batch share: the files loaded or created (by the id the identity gives),
    and the pairs flagged or known (by pair key)."""

    children: dict[UUID, Child] = field(default_factory=dict)
    known: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Collected:
    """Events collected from their aggregates in the registering thread, to be saved from another (the aggregates
    may change meanwhile: the next chunk is prepared on them)."""

    events: list[Any]

    def collect_events(self) -> list[Any]:
        return self.events


@dataclass(frozen=True)
class _Chunk:
    """A chunk of a registration batch, prepared: what to save, and what to write and answer once it is saved."""

    events: _Collected
    registry_rows: list[RegistryRow]
    flagged: list[FlaggedPair]
    registrations: list[Registration]


def person_record(child_id: UUID, identity: ChildFacts) -> PersonRecord:
    return PersonRecord(
        child_id=child_id, name=identity.name, sex=identity.sex, birth_date=identity.birth_date,
        id_card_number=identity.id_card_number, township=identity.township, village=identity.village,
    )


def _stored_facts(child: Child) -> ChildFileFacts:
    return ChildFileFacts.model_validate(child.facts) if child.facts else ChildFileFacts()


def _agency(value: str, field: str) -> None:
    """Agency codes travel in the integration events: an unknown one is refused here, not in the relay."""
    if value not in _AGENCY_CODES:
        raise Unprocessable(
            f"Unknown agency code {value!r}.", errors=[FieldError(field=field, reason="unknown agency")]
        )


class IntakeApplication(ServiceApplication):
    name = "intake"

    def __init__(
        self,
        env: dict[str, str] | None = None,
        *,
        identity_key: bytes,
        read_engine: Engine | None = None,
        today: Callable[[], date] = utc_today,
        child_keys: ChildKeys | None = None,
    ) -> None:
        super().__init__(env, child_keys=child_keys)
        self._identity_key = identity_key
        self._committer = GroupCommitter(self)
        self._today = today
        engine = read_engine if read_engine is not None else temporary_engine("intake")
        # Without keys of its own (an application built bare, in tests), the index's keys come from the identity key.
        index_keys = child_keys if child_keys is not None else ChildKeys(
            engine, hmac.new(identity_key, b"huhang.intake.match-index", hashlib.sha256).digest()
        )
        self.match_index = MatchIndex(engine, index_keys)
        self.registry = ChildRegistry(engine)
        self.duplicate_list = DuplicateList(engine)
        # A registration batch prepares a chunk while the one before it is saved: two threads on the read models,
        # which one shared connection (an in-memory SQLite database) cannot serve at once.
        self._pipelined = not isinstance(engine.pool, StaticPool)

    # --- reports ---------------------------------------------------------------------------------------------------

    def file_report(self, cmd: FileReport) -> FiledReport:
        return self._file(cmd, lambda: self._child_for_report(cmd))

    def file_report_about_child(self, child_id: UUID, cmd: ReportAboutChild) -> FiledReport:
        """A report about a registered child, by id; Idempotency-Key as for any report."""

        def child() -> tuple[Child, list[FlaggedPair], bool]:
            found = self._follow_merges(self._get(child_id, Child, "child"))
            if cmd.observed_on < found.birth_date:
                raise Unprocessable(
                    "The report is dated before the child's birth.",
                    errors=[FieldError(field="observed_on", reason="must not be before the child's birth date")],
                )
            return found, [], False

        return self._file(cmd, child)

    def _file(
        self, cmd: ReportDetails, find_child: Callable[[], tuple[Child, list[FlaggedPair], bool]]
    ) -> FiledReport:
        """``find_child``: the child's file, the probable duplicates it flagged, whether the file is new."""
        report_id = self._report_id(cmd)
        for _ in range(MAX_ATTEMPTS):
            replay = self._replay(report_id, cmd)
            if replay is not None:
                return replay
            child, flagged, created = find_child()
            case, report = self._prepare(report_id, cmd, child)
            try:
                self._committer.save(child, case, report)
            except IntegrityError:
                continue  # a concurrent request for the same child or key won: look again
            if created or flagged:  # the registry's rows change only then
                self._after_save([child], flagged)
            return FiledReport(report_id, case.id, child.id, replayed=False)
        raise RuntimeError("could not file the report after repeated conflicts")

    def _report_id(self, cmd: ReportDetails) -> UUID:
        if cmd.idempotency_key is None:
            return uuid.uuid4()
        return uuid.uuid5(REPORT_ID_NAMESPACE, f"{cmd.reporter_agency}\x1f{cmd.idempotency_key}")

    def _replay(self, report_id: UUID, cmd: ReportDetails) -> FiledReport | None:
        if cmd.idempotency_key is None:
            return None
        try:
            report: Report = self.repository.get(report_id)
        except AggregateNotFoundError:
            return None
        if report.request_fingerprint != cmd.fingerprint:
            raise Unprocessable(
                "This Idempotency-Key was already used with a different request body.",
                errors=[FieldError(field="Idempotency-Key", reason="reused with a different body")],
            )
        return FiledReport(report.id, report.case_id, report.child_id, replayed=True)

    def _child_for_report(self, cmd: FileReport) -> tuple[Child, list[FlaggedPair], bool]:
        """The reported child's file, registered if new; probable duplicates of the reported identity flagged."""
        identity = cmd.child
        child_id = self.child_id_for(identity)
        record = person_record(child_id, identity)
        found = self._load(child_id)
        if found is None:
            # Filed in the index before saving (a concurrent registration sees this child), and matched in one go.
            matches = self.match_index.file_and_match([record], [record], limit=DUPLICATE_CANDIDATES)[child_id]
            child = Child(
                child_id=child_id, name=identity.name, sex=identity.sex, birth_date=identity.birth_date,
                id_card_number=identity.id_card_number, township=identity.township, village=identity.village,
                categories=sorted(identity.categories), registered_by=cmd.reporter_agency,
            )
            self._derive(child, self._today(), cmd.reporter_agency, registering=True)
        else:
            child = self._follow_merges(found)
            new_categories = sorted(set(identity.categories) - set(child.reported_categories))
            if new_categories:
                child.categories_reported(new_categories, reported_by=cmd.reporter_agency)
            matches = self.match_index.candidates(record, limit=DUPLICATE_CANDIDATES)
        known = self._known_pairs([(child.id, child, matches)])
        flagged, _ = self._flag(child, matches, known)
        return child, flagged, found is None

    def _prepare(self, report_id: UUID, cmd: ReportDetails, child: Child) -> tuple[Case, Report]:
        if child.open_case_id is not None:
            case: Case = self.repository.get(child.open_case_id)
        else:
            case = Case(
                case_id=uuid.uuid4(), child_id=child.id, township=child.township, village=child.village,
                opened_by=cmd.reporter_agency,
            )
            child.case_opened(case.id)
        case.file_report(
            report_id=report_id, child_id=child.id, township=case.township, village=case.village,
            reporter_agency=cmd.reporter_agency, reporter_role=cmd.reporter_role,
            concern_category=cmd.concern_category, urgency=cmd.urgency,
            child_categories=child.all_categories, observed_on=cmd.observed_on,
        )
        report = Report(
            report_id=report_id, case_id=case.id, child_id=child.id, reporter_agency=cmd.reporter_agency,
            reporter_role=cmd.reporter_role, reporter_reference=cmd.reporter_reference,
            concern_category=cmd.concern_category, urgency=cmd.urgency, observations=cmd.observations,
            observed_on=cmd.observed_on, request_fingerprint=cmd.fingerprint,
        )
        return case, report

    def child_id_for(self, facts: ChildFacts) -> UUID:
        """One child, one file: the same identity always gives the same child id.

        Keyed (HMAC) so that the id reveals nothing about the identity it was made from.
        """
        if facts.id_card_number:
            identity = f"id\x1f{facts.id_card_number.strip().upper()}"
        else:
            identity = "\x1f".join(
                ("person", facts.name.strip(), facts.birth_date.isoformat(), facts.sex,
                 facts.township.strip(), facts.village.strip())
            )
        digest = hmac.new(self._identity_key, identity.encode(), hashlib.sha256).digest()
        return UUID(bytes=digest[:16], version=4)

    # --- registration ----------------------------------------------------------------------------------------------

    def register_children(self, commands: Sequence[RegisterChild]) -> list[Registration]:
        """Register children or bring their files up to date: one save per ``REGISTER_CHUNK`` commands, idempotent.

        Per child: at most one repository lookup (plus one per merge hop for a merged file). A command whose facts
        equal the file's, or that repeats a (source, facts) already recorded, changes nothing. Probable duplicates
        (in the store or within the batch) are flagged on the child registered, never merged. A larger batch is
        saved chunk by chunk, each chunk prepared while the one before it is saved (``_register``), and registers
        as its chunks would, one call after another: a chunk's matching sees the chunks before it, not after it.
        """
        if not commands:
            return []
        for cmd in commands:
            _agency(cmd.registered_by, "registered_by")
        done: list[Registration] = []  # the registrations of the chunks saved so far
        trust_registry = True
        for _ in range(MAX_ATTEMPTS):
            try:
                self._register(commands[len(done):], trust_registry, done)
                return done
            except IntegrityError:
                # A concurrent registration of one of these children won, or the registry missed a file: look again
                # from the chunk that conflicted on, this time in the event store for every child.
                trust_registry = False
        raise RuntimeError("could not register the children after repeated conflicts")

    def register_child(self, command: RegisterChild) -> Registration:
        return self.register_children([command])[0]

    def _register(self, commands: Sequence[RegisterChild], trust_registry: bool, done: list[Registration]) -> None:
        """Register the commands chunk by chunk, appending each chunk's registrations to ``done`` once it is saved
        (with its registry rows and flagged duplicates).

        A pipeline of two: while a chunk is saved (in a thread of its own), the next is prepared on top of it: the
        files it changed are taken as they are in memory (``_Batch``), not read back, and the next chunk's save waits
        for the last one's, so a chunk is stored only after the chunks it builds on. A conflict stops the pipeline
        and ``register_children`` starts again from the chunk that conflicted.

        ``trust_registry``: the registry's rows (one query per chunk) say which children have a file, and a child
        whose file already holds exactly these facts, with nothing due by time, is not even loaded. A file the
        registry missed makes the save conflict; the chunk is then tried again looking every child up."""
        as_of = self._today()
        batch = _Batch()
        chunks = [commands[i:i + REGISTER_CHUNK] for i in range(0, len(commands), REGISTER_CHUNK)]
        if len(chunks) == 1 or not self._pipelined:
            for chunk in chunks:
                done.extend(self._save_chunk(self._prepare_chunk(chunk, batch, trust_registry, as_of)))
            return
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="intake-register") as saver:
            saving: Future[list[Registration]] | None = None
            for chunk in chunks:
                prepared = self._prepare_chunk(chunk, batch, trust_registry, as_of)
                if saving is not None:
                    done.extend(saving.result())  # a conflict raises here, before the next chunk is submitted
                saving = saver.submit(self._save_chunk, prepared)
            if saving is not None:
                done.extend(saving.result())

    def _prepare_chunk(
        self, commands: Sequence[RegisterChild], batch: _Batch, trust_registry: bool, as_of: date
    ) -> _Chunk:
        """Everything up to the save: the files changed (their events collected), the registry rows and flagged
        duplicates to write once saved, the registrations to answer."""
        children = batch.children
        entries = [self._entry(cmd) for cmd in commands]
        rows = (
            self.registry.rows({e.identity_id for e in entries if e.identity_id not in children})
            if trust_registry else None
        )
        touched: dict[UUID, Child] = {}  # the files this chunk changes, by id
        new_records: list[PersonRecord] = []
        for entry in entries:
            cmd, identity_id = entry.cmd, entry.identity_id
            row = rows.get(identity_id) if rows is not None else None
            if identity_id not in children and row is not None and row.unchanged_by(entry.fingerprint, as_of):
                entry.categories = row.categories
                continue
            child = children.get(identity_id)
            if child is None:
                found = self._load(identity_id) if rows is None or row is not None else None
                if found is None:
                    child = Child(
                        child_id=identity_id, name=cmd.identity.name, sex=cmd.identity.sex,
                        birth_date=cmd.identity.birth_date, id_card_number=cmd.identity.id_card_number,
                        township=cmd.identity.township, village=cmd.identity.village,
                        categories=sorted(cmd.identity.categories), registered_by=cmd.registered_by,
                    )
                    new_records.append(entry.record)
                    entry.created = True
                else:
                    child = self._follow_merges(found)
                children[identity_id] = child
            entry.child = touched[child.id] = child
            entry.changed = self._record_facts(
                child, cmd.facts, cmd.source, cmd.registered_by, as_of, registering=entry.created, stored=entry.facts,
            ) or entry.created
        # New children go into the index first: matching then sees the whole batch, and a concurrent batch sees it.
        candidates = self.match_index.file_and_match(
            new_records, [e.record for e in entries], limit=DUPLICATE_CANDIDATES
        )
        known = self._known_pairs(
            [(e.child_id, e.child, candidates.get(e.identity_id, [])) for e in entries]
        )
        for key, status in batch.known.items():  # flagged by an earlier chunk, perhaps not yet on the list
            known.setdefault(key, status)
        flagged_pairs: list[FlaggedPair] = []
        results: list[Registration] = []
        for entry in entries:
            matches = candidates.get(entry.identity_id, [])
            if entry.child is None and any(pair_key(entry.child_id, m.child_id) not in known for m in matches):
                # A file not loaded because nothing in it changes, with a probable duplicate new to it: flag it there.
                if entry.identity_id not in children:
                    children[entry.identity_id] = self._follow_merges(self._get(entry.identity_id, Child, "child"))
                entry.child = children[entry.identity_id]
                touched[entry.child.id] = entry.child
            if entry.child is not None:
                flagged, pending = self._flag(entry.child, matches, known)
            else:
                flagged = []
                pending = [m for m in matches if known.get(pair_key(entry.child_id, m.child_id)) == "pending"]
            flagged_pairs.extend(flagged)
            results.append(Registration(
                child_id=entry.child_id, created=entry.created, changed=entry.changed or bool(flagged),
                categories=tuple(entry.child.categories) if entry.child else entry.categories,
                duplicates=tuple(pending),
            ))
        batch.known = known
        fingerprints = {e.child.id: e.fingerprint for e in entries if e.child is not None and e.child.facts == e.facts}
        return _Chunk(
            events=_Collected([e for child in touched.values() for e in child.collect_events()]),
            registry_rows=[RegistryRow.of(c, fingerprints.get(c.id)) for c in touched.values()],
            flagged=flagged_pairs, registrations=results,
        )

    def _save_chunk(self, chunk: _Chunk) -> list[Registration]:
        self._committer.save(chunk.events)
        self.registry.upsert(chunk.registry_rows)
        self.duplicate_list.flagged(chunk.flagged)
        return chunk.registrations

    def _entry(self, cmd: RegisterChild) -> _Entry:
        facts = cmd.facts.stored()
        return _Entry(cmd, self.child_id_for(cmd.identity), facts, facts_fingerprint(facts))

    def _record_facts(
        self, child: Child, facts: ChildFileFacts, source: str, by: str, as_of: date, *, registering: bool = False,
        stored: dict[str, Any] | None = None,
    ) -> bool:
        """Record the facts if they say something new, then re-derive. Whether anything changed."""
        stored = stored if stored is not None else facts.stored()
        applied = child.applied_facts  # empty for a new file: no key to compute
        if stored != child.facts and (not applied or applied_key(source, stored) not in applied):
            child.record_facts(facts=stored, source=source, recorded_by=by)
            self._derive(child, as_of, by, registering=registering, facts=facts)
            return True
        if not registering and child.care_summary is not None and (
            child.rederive_on is None or as_of < child.rederive_on
        ):
            return False  # same facts, and time alone changes nothing yet: nothing to derive
        return self._derive(child, as_of, by, registering=registering)

    def _derive(
        self, child: Child, as_of: date, by: str, *, registering: bool = False, facts: ChildFileFacts | None = None
    ) -> bool:
        """Re-derive the categories; record them (with what was added and removed, and why) when anything that
        ``ChildFileUpdated`` says would change, and always on registration. ``facts``: the file's facts, when the
        caller has them validated already."""
        if child.categories_as_of is not None and as_of < child.categories_as_of:
            as_of = child.categories_as_of  # never derive back in time
        derived = derive_categories(facts if facts is not None else _stored_facts(child), as_of)
        if not registering and derived.summary() == child.care_summary and derived.next_change_on == child.rederive_on:
            return False
        before = set(child.categories)
        child.categories_derived(
            categories=list(derived.categories),
            added=[c for c in derived.categories if c not in before],
            removed=list(sort_categories(before - set(derived.categories))),
            reasons=list(derived.reasons), as_of=as_of, township=child.township, village=child.village,
            parents_away=derived.parents_away, parents_away_since=derived.parents_away_since,
            frequent_visit_reasons=list(derived.frequent_visit_reasons),
            has_entrusted_caregiver=derived.has_entrusted_caregiver, rederive_on=derived.next_change_on,
            derived_by=by,
        )
        return True

    # --- duplicates ------------------------------------------------------------------------------------------------

    def _known_pairs(self, pairs: Sequence[tuple[UUID, Child | None, Sequence[Match]]]) -> dict[str, str]:
        """The status of each (child, candidate) pair flagged before, by pair key (the list and the files)."""
        keys = {pair_key(child_id, m.child_id) for child_id, _, matches in pairs for m in matches}
        known = self.duplicate_list.statuses(keys) if keys else {}
        for child_id, child, _ in pairs:
            for other, entry in (child.duplicates.items() if child is not None else ()):
                known[pair_key(child_id, other)] = str(entry.get("status"))
        return known

    def _flag(
        self, child: Child, matches: Sequence[Match], known: dict[str, str]
    ) -> tuple[list[FlaggedPair], list[Match]]:
        """Flag on ``child`` the probable duplicates not flagged before; the pending ones (new or not).

        A candidate is not checked against the store: the index is written before the save, so a child registered
        concurrently is seen; a save that then failed for good leaves a flag pointing to no file (dismissable).
        """
        flagged: list[FlaggedPair] = []
        pending: list[Match] = []
        for match in matches:
            if match.child_id == child.id or match.child_id == child.merged_into or match.child_id in child.absorbed:
                continue
            key = pair_key(child.id, match.child_id)
            status = known.get(key)
            if status is None:
                child.duplicate_flagged(
                    other_child_id=match.child_id, score=round(float(match.score), 4), exact=match.exact,
                    reasons=list(match.reasons),
                )
                known[key] = "pending"
                flagged.append(FlaggedPair(
                    child_id=child.id, other_child_id=match.child_id, score=round(float(match.score), 4),
                    reasons=tuple(match.reasons), township=child.township, village=child.village,
                    flagged_at=datetime.now(UTC),
                ))
                pending.append(match)
            elif status == "pending":
                pending.append(match)
        return flagged, pending

    def pending_duplicates(
        self, township: str | None = None, status: str | None = "pending", after: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        return self.duplicate_list.list(status=status, township=township, after=after, limit=limit)

    def dismiss_duplicate(self, child_id: UUID, other_id: UUID, by: str, note: str | None = None) -> None:
        """A person decided the two are different children. The flag stays in the history, dismissed."""
        _agency(by, "by")
        for _ in range(MAX_ATTEMPTS):
            child: Child = self._get(child_id, Child, "child")
            other = self._load(other_id)
            holders = ((child, other_id), (other, child_id)) if other is not None else ((child, other_id),)
            holder = next((c for c, o in holders if o in c.duplicates), None)
            if holder is None:
                raise NotFound(f"No probable duplicate of child {child_id} and child {other_id} was flagged.")
            entry = holder.duplicates[other_id if holder is child else child_id]
            if entry.get("status") != "pending":
                raise Conflict(
                    f"This probable duplicate was already {entry.get('status')}.",
                    errors=[FieldError(field="other_id", reason=f"already {entry.get('status')}")],
                )
            holder.duplicate_dismissed(other_child_id=other_id if holder is child else child_id, by=by, note=note)
            try:
                self._committer.save(holder)
            except IntegrityError:
                continue
            self.duplicate_list.resolved(child_id, other_id, "dismissed", by)
            return
        raise RuntimeError("could not dismiss after repeated conflicts")

    def confirm_duplicate(self, child_id: UUID, other_id: UUID, by: str, note: str | None = None) -> Merge:
        """A person confirmed the two are the same child: ``other_id`` is merged into ``child_id``.

        Both histories stay: the merged file records ``MergedInto`` and points to the survivor; the survivor records
        ``Absorbed`` and takes over the merged file's cases (its open case too, if it had none) and reported
        categories, and its facts if it had none.
        """
        _agency(by, "by")
        if child_id == other_id:
            raise Unprocessable(
                "A child cannot be merged into itself.",
                errors=[FieldError(field="other_id", reason="must differ from child_id")],
            )
        for _ in range(MAX_ATTEMPTS):
            survivor: Child = self._get(child_id, Child, "child")
            merged: Child = self._get(other_id, Child, "child")
            for which, c in (("child_id", survivor), ("other_id", merged)):
                if c.merged_into is not None:
                    raise Conflict(
                        f"Child {c.id} was already merged into {c.merged_into}.",
                        errors=[FieldError(field=which, reason=f"already merged into {c.merged_into}")],
                    )
            merged.merged(survivor_id=survivor.id, by=by, note=note)
            survivor.absorb(
                merged_child_id=merged.id, by=by, note=note, case_ids=list(merged.case_ids),
                open_case_id=merged.open_case_id, reported_categories=list(merged.reported_categories),
                township=survivor.township, village=survivor.village,
            )
            if not survivor.facts and merged.facts:
                survivor.record_facts(facts=dict(merged.facts), source=f"merge:{merged.id}", recorded_by=by)
            self._derive(survivor, self._today(), by)
            try:
                self._committer.save(survivor, merged)
            except IntegrityError:
                continue
            self.duplicate_list.resolved(child_id, other_id, "confirmed", by)
            self.match_index.remove([merged.id])
            self._after_save([survivor, merged], [])
            return Merge(survivor.id, merged.id, tuple(survivor.case_ids), tuple(survivor.categories))
        raise RuntimeError("could not merge after repeated conflicts")

    # --- erasure ---------------------------------------------------------------------------------------------------

    def erase_child(self, child_id: UUID, reason: str, by: str) -> bool:
        """Erase the child's personal data (crypto-shredding); whether it was erased now (False: it was already).

        The erasure is recorded first (an event naming the child by id, published as ``ChildDataErased`` so that
        every service destroys its own key), then intake's key for the child is destroyed and the copies intake
        derived (the duplicate index, the registry's and the duplicate list's rows) are purged. Every stored event
        stays as it was: the hash chain still verifies, and the non-personal trail (the case timeline) remains. A
        retry after a crash in between completes what is left."""
        _agency(by, "erased_by")
        keys = self._child_keys
        if keys is None:
            raise Conflict("This intake does not seal personal data per child, so it cannot erase it.")
        erasure_id = Erasure.create_id(child_id)
        try:
            self.repository.get(erasure_id)
            erased_now = False
        except AggregateNotFoundError:
            self._get(child_id, Child, "child")  # 404 for an unknown child, 410 for one erased already
            self._committer.save(Erasure(erased_child_id=child_id, reason=reason, by=by))
            erased_now = True
        keys.erase(child_id)
        self.match_index.remove([child_id])
        self.registry.forget([child_id])
        self.duplicate_list.forget([child_id])
        return erased_now

    # --- facts and categories over time ----------------------------------------------------------------------------

    def record_facts(self, child_id: UUID, facts: ChildFileFacts, recorded_by: str, source: str) -> Registration:
        """Replace the file's facts (PUT) and re-derive its categories; nothing is recorded if nothing changed."""
        _agency(recorded_by, "recorded_by")
        for _ in range(MAX_ATTEMPTS):
            child: Child = self._get(child_id, Child, "child")
            if child.merged_into is not None:
                raise Conflict(
                    f"This file was merged into child {child.merged_into}; record facts there.",
                    errors=[FieldError(field="child_id", reason=f"merged into {child.merged_into}")],
                )
            changed = self._record_facts(child, facts, source, recorded_by, self._today())
            try:
                self._committer.save(child)
            except IntegrityError:
                continue
            self._after_save([child], [])
            pending = tuple(
                Match(child_id=o, score=float(e.get("score") or 0), exact=bool(e.get("exact")),
                      reasons=tuple(e.get("reasons") or ()))
                for o, e in child.pending_duplicates().items()
            )
            return Registration(child.id, False, changed, tuple(child.categories), pending)
        raise RuntimeError("could not record the facts after repeated conflicts")

    def children_due_for_rederivation(self, as_of: date) -> list[UUID]:
        """Children whose categories change by ``as_of`` with no new facts (parents reaching three months away)."""
        return self.registry.due(as_of)

    def rederive_categories(self, as_of: date, child_ids: Sequence[UUID] | None = None) -> list[UUID]:
        """Re-derive the categories of the children due (or of those given) as of a date; the ones that changed.

        Run by a scheduled job (daily); running it twice changes nothing twice.
        """
        ids = list(child_ids) if child_ids is not None else self.children_due_for_rederivation(as_of)
        changed: list[UUID] = []
        for start in range(0, len(ids), REDERIVE_CHUNK):
            changed.extend(self._rederive_chunk(ids[start:start + REDERIVE_CHUNK], as_of))
        return changed

    def _rederive_chunk(self, ids: Sequence[UUID], as_of: date) -> list[UUID]:
        for _ in range(MAX_ATTEMPTS):
            children = [c for c in (self._load(i) for i in ids) if c is not None and c.merged_into is None]
            changed = [c for c in children if self._derive(c, as_of, LEAD_AGENCY.value)]
            try:
                self._committer.save(*changed)
            except IntegrityError:
                continue
            self._after_save(children, [])
            return [c.id for c in changed]
        raise RuntimeError("could not re-derive after repeated conflicts")

    # --- reading ---------------------------------------------------------------------------------------------------

    def get_case(self, case_id: UUID) -> dict[str, Any]:
        case: Case = self._get(case_id, Case, "case")
        return {
            "case_id": case.id, "child_id": case.child_id, "township": case.township,
            "village": case.village, "opened_at": case.created_on, "opened_by": case.opened_by,
            "reports": [self._report_summary(rid) for rid in case.report_ids],
        }

    def get_child(self, child_id: UUID) -> Child:
        return self._get(child_id, Child, "child")

    def get_child_file(self, child_id: UUID) -> dict[str, Any]:
        """The whole file: identity, facts with the source and time of each part, categories with reasons, cases,
        probable duplicates pending (flagged on this file or on the other), merge links."""
        child = self.get_child(child_id)
        pending = self.duplicate_list.list(status="pending", child_id=child.id, limit=100)
        return child_file_view(child, list(self.events.get(child.id)), pending)

    def get_child_history(self, child_id: UUID) -> list[dict[str, Any]]:
        """Every change of the file, in order, with its source, agency and time."""
        child = self.get_child(child_id)
        return history_entries(self.events.get(child.id))

    def _report_summary(self, report_id: UUID) -> dict[str, Any]:
        report: Report = self.repository.get(report_id)
        return {
            "report_id": report.id, "filed_at": report.created_on, "reporter_agency": report.reporter_agency,
            "reporter_role": report.reporter_role, "concern_category": report.concern_category,
            "urgency": report.urgency, "observed_on": report.observed_on,
        }

    # --- helpers ---------------------------------------------------------------------------------------------------

    def _after_save(self, children: Sequence[Child], flagged: Sequence[FlaggedPair]) -> None:
        """Bring the registry's working lists up to date with what was just saved (idempotent)."""
        self.registry.upsert([RegistryRow.of(c) for c in children])
        self.duplicate_list.flagged(flagged)

    def _load(self, child_id: UUID) -> Child | None:
        try:
            found: Any = self.repository.get(child_id)
        except AggregateNotFoundError:
            return None
        return found if isinstance(found, Child) else None

    def _follow_merges(self, child: Child) -> Child:
        for _ in range(MAX_MERGE_HOPS):
            if child.merged_into is None:
                return child
            child = self.repository.get(child.merged_into)
        raise RuntimeError("merge chain too long")

    def _get(self, aggregate_id: UUID, kind: type, label: str) -> Any:
        try:
            aggregate: Any = self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            raise NotFound(f"No {label} with id {aggregate_id}.") from None
        if not isinstance(aggregate, kind):
            raise NotFound(f"No {label} with id {aggregate_id}.")
        return aggregate
