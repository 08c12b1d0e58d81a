"""Guardianship care (委托照护, parent contact, the visit regime) on guardianship's event store.

Not an eventsourcing Application of its own: the care aggregates are saved through guardianship's application, so
they share its store, its notification log (the outbox) and its integration mapping. Every command names a child
guardianship knows of (``KnownChildren``, from intake's file); a child merged into another is refused.

``check`` is the scheduled check: from the read models (``CareStatus`` joined with ``KnownChildren``), it raises
what is overdue as notice aggregates whose ids derive from child, kind and due period, so that running it again
raises nothing twice.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from contracts.cases import care_case_id
from contracts.vocabulary import ReporterRole, VisitFinding, VisitKind
from huhang.groupcommit import GroupCommitter
from huhang.problems import Conflict, FieldError, NotFound, Unprocessable
from services.guardianship.application import GuardianshipApplication
from services.guardianship.care import (
    AgreementTerms,
    CareFile,
    EntrustedCareNotice,
    ParentContactMissedNotice,
    VisitOverdueNotice,
    agreement_problem,
    care_file_id,
    check_may_record_care,
)
from services.guardianship.care_status import CareStatus, ChildCare
from services.guardianship.children import KnownChild, KnownChildren
from services.guardianship.directors import ChildDirector
from services.guardianship.domain import GuardianshipFile
from services.guardianship.visits import (
    NextDue,
    VisitPolicy,
    days_overdue,
    frequent_reasons,
    next_due,
    parent_contact_state,
)
from workflows.intake_gateway import ChildReport, IntakeGateway, IntakeUnavailable

logger = logging.getLogger(__name__)

ENTITY_ID_NAMESPACE = uuid.UUID("d2a7f5c1-4b6e-4c39-8e0a-7f1b2c3d4e5f")
MAX_ATTEMPTS = 5
SAVE_CHUNK = 500
RECENT = 20  # visits and parent contacts shown with a child's care, latest first
T = TypeVar("T")


@dataclass(frozen=True)
class RecordAgreement:
    caregiver_name: str
    relation: str
    start_on: date
    end_on: date | None
    signed: bool
    signed_on: date | None
    recorded_by: str
    fingerprint: str
    idempotency_key: str | None = None


@dataclass(frozen=True)
class RecordParentContact:
    contacted_on: date
    channel: str
    parent: str
    recorded_by: str
    fingerprint: str
    idempotency_key: str | None = None


@dataclass(frozen=True)
class VisitReport:
    """A mandatory report filed from a visit finding, in the same request."""

    concern_category: str
    urgency: str
    observations: str
    reporter_role: str = ReporterRole.child_director.value
    reporter_reference: str | None = None


@dataclass(frozen=True)
class RecordVisit:
    kind: str
    visited_on: date
    agency: str
    director_id: UUID | None
    findings: tuple[str, ...]
    notes: str | None
    fingerprint: str
    report: VisitReport | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True)
class Recorded:
    id: UUID
    replayed: bool


@dataclass(frozen=True)
class RecordedVisit:
    visit_id: UUID
    child_id: UUID
    kind: str
    visited_on: date
    findings: tuple[str, ...]
    next_due: NextDue
    report_id: UUID | None
    report_case_id: UUID | None
    replayed: bool


@dataclass(frozen=True)
class CheckResult:
    checked_on: date
    children_checked: int
    visit_overdue: int
    parent_contact_missed: int
    entrusted_care_flagged: int

    @property
    def raised(self) -> int:
        return self.visit_overdue + self.parent_contact_missed + self.entrusted_care_flagged


@dataclass(frozen=True)
class _Due:
    """A notice a check found due: which kind, for which child, its due period and how to build it."""

    counter: str  # visit, parent or care (CheckResult)
    child_id: UUID
    column: str  # the care_status ``raised_*`` column remembering its due period
    key: Any
    build: Callable[[], Any]


class CareApplication:
    def __init__(
        self, app: GuardianshipApplication, known_children: KnownChildren, status: CareStatus,
        policy: VisitPolicy, intake: IntakeGateway | None = None,
    ) -> None:
        self.app = app
        self.known_children = known_children
        self.status = status
        self.policy = policy
        self.intake = intake  # set by the composition (in-process or HTTP)
        self._committer = GroupCommitter(app)

    # --- commands ---------------------------------------------------------------------------------------------

    def record_agreement(self, child_id: UUID, cmd: RecordAgreement) -> Recorded:
        self.child(child_id)
        check_may_record_care(cmd.recorded_by, "recorded_by")
        agreement_id = _entity_id("agreement", child_id, cmd.recorded_by, cmd.idempotency_key)

        def change(file: CareFile) -> Recorded:
            new = file.record_agreement(
                agreement_id=agreement_id, caregiver_name=cmd.caregiver_name, relation=cmd.relation,
                start_on=cmd.start_on, end_on=cmd.end_on, signed=cmd.signed, signed_on=cmd.signed_on,
                recorded_by=cmd.recorded_by, fingerprint=cmd.fingerprint,
            )
            return Recorded(agreement_id, replayed=not new)

        return self._change_file(child_id, change)

    def sign_agreement(self, child_id: UUID, agreement_id: UUID, signed_on: date, agency: str) -> None:
        self.child(child_id)
        check_may_record_care(agency)

        def change(file: CareFile) -> None:
            file.sign_agreement(agreement_id=agreement_id, signed_on=signed_on, recorded_by=agency)

        self._change_file(child_id, change, must_exist=True)

    def record_parent_contact(self, child_id: UUID, cmd: RecordParentContact) -> Recorded:
        self.child(child_id)
        check_may_record_care(cmd.recorded_by, "recorded_by")
        contact_id = _entity_id("parent-contact", child_id, cmd.recorded_by, cmd.idempotency_key)

        def change(file: CareFile) -> Recorded:
            new = file.record_parent_contact(
                contact_id=contact_id, contacted_on=cmd.contacted_on, channel=cmd.channel, parent=cmd.parent,
                recorded_by=cmd.recorded_by, fingerprint=cmd.fingerprint,
            )
            return Recorded(contact_id, replayed=not new)

        return self._change_file(child_id, change)

    def record_visit(self, child_id: UUID, cmd: RecordVisit) -> RecordedVisit:
        """Record a contact or home visit with its findings; file the report it carries first (intake), so that
        the visit names the report's case. Nothing is recorded if intake refuses the report."""
        child = self.child(child_id)
        check_may_record_care(cmd.agency)
        _check_findings(cmd)
        if cmd.director_id is not None:
            self._check_director(cmd.director_id)
        visit_id = _entity_id("visit", child_id, cmd.agency, cmd.idempotency_key)
        loaded = self._file(child_id)  # read once: for the replay check, then for the change
        replay = self._replayed_visit(loaded, child_id, visit_id, cmd.fingerprint)
        if replay is not None:
            return replay
        filed = self._file_report(child_id, visit_id, cmd) if cmd.report is not None else None
        reasons = self.frequent_reasons(child)

        def change(file: CareFile) -> RecordedVisit:
            last_contact = max(d for d in (file.last_contact_on, cmd.visited_on) if d is not None)
            last_home = file.last_home_visit_on
            if cmd.kind == VisitKind.home_visit.value and (last_home is None or cmd.visited_on > last_home):
                last_home = cmd.visited_on
            due = next_due(last_contact, last_home, _registered_on(child, cmd.visited_on), bool(reasons), self.policy)
            new = file.record_visit(
                visit_id=visit_id, kind=cmd.kind, visited_on=cmd.visited_on, agency=cmd.agency,
                director_id=cmd.director_id, findings=cmd.findings, notes=cmd.notes,
                report_id=filed.report_id if filed else None, report_case_id=filed.case_id if filed else None,
                next_contact_due_on=due.contact_due_on, next_home_visit_due_on=due.home_visit_due_on,
                frequent_reasons=reasons, township=child.township, village=child.village,
                fingerprint=cmd.fingerprint,
            )
            return _recorded_visit(file, child_id, visit_id, replayed=not new)

        return self._change_file(child_id, change, loaded=loaded)

    def _check_director(self, director_id: UUID) -> None:
        director: Any = None
        with contextlib.suppress(AggregateNotFoundError):
            director = self.app.repository.get(director_id)
        if not isinstance(director, ChildDirector):
            raise Unprocessable(
                f"No child director {director_id} is on guardianship's roster.",
                errors=[FieldError(field="director_id", reason="unknown child director")],
            )

    @staticmethod
    def _replayed_visit(file: CareFile | None, child_id: UUID, visit_id: UUID,
                        fingerprint: str) -> RecordedVisit | None:
        if file is None or str(visit_id) not in file.fingerprints:
            return None
        if file.fingerprints[str(visit_id)] != fingerprint:
            raise Unprocessable(
                "This Idempotency-Key was already used for another visit.",
                errors=[FieldError(field="Idempotency-Key", reason="reused with a different body")],
            )
        return _recorded_visit(file, child_id, visit_id, replayed=True)

    def _file_report(self, child_id: UUID, visit_id: UUID, cmd: RecordVisit) -> Any:
        assert cmd.report is not None
        if self.intake is None:
            raise IntakeUnavailable(
                "Reports cannot be filed from here: intake is not connected. Nothing was recorded.",
                errors=[FieldError(field="report", reason="intake unavailable")],
            )
        report = cmd.report
        return self.intake.file_report(ChildReport(
            child_id=child_id, reporter_agency=cmd.agency, reporter_role=report.reporter_role,
            reporter_reference=report.reporter_reference, concern_category=report.concern_category,
            urgency=report.urgency, observations=report.observations, observed_on=cmd.visited_on,
            idempotency_key=str(visit_id),
        ))

    # --- queries ----------------------------------------------------------------------------------------------

    def child(self, child_id: UUID) -> KnownChild:
        child = self.known_children.get(child_id)
        if child is None:
            raise NotFound(
                f"No child with id {child_id} is known to guardianship (yet).",
                errors=[FieldError(field="child_id", reason="unknown child")],
            )
        if child.merged_into is not None:
            raise Conflict(
                f"The child's file was merged into {child.merged_into}; record care there.",
                errors=[FieldError(field="child_id", reason=f"merged into {child.merged_into}")],
            )
        return child

    def risk_level(self, child_id: UUID) -> str | None:
        with contextlib.suppress(AggregateNotFoundError):
            file: Any = self.app.repository.get(child_id)
            if isinstance(file, GuardianshipFile):
                return file.risk_level
        return None

    def frequent_reasons(self, child: KnownChild) -> tuple[str, ...]:
        return frequent_reasons(child.frequent_visit_reasons, self.risk_level(child.child_id))

    def agreement(self, child_id: UUID, agreement_id: UUID) -> dict[str, Any]:
        file = self._file(child_id)
        found = file.agreements.get(str(agreement_id)) if file is not None else None
        if found is None:
            raise NotFound(
                f"No agreement {agreement_id} for child {child_id}.",
                errors=[FieldError(field="agreement_id", reason="unknown agreement")],
            )
        return dict(found)

    def care_of(self, child_id: UUID, today: date) -> dict[str, Any]:
        """The child's care as it stands on ``today``: agreements, contacts, visits, what is due and overdue."""
        child = self.child(child_id)
        file = self._file(child_id)
        registered_on = _registered_on(child, today)
        reasons = self.frequent_reasons(child)
        last_contact = file.last_contact_on if file else None
        last_home = file.last_home_visit_on if file else None
        last_parent = file.last_parent_contact_on if file else None
        due = next_due(last_contact, last_home, registered_on, bool(reasons), self.policy)
        agreements = sorted(file.agreements.values(), key=lambda a: a["start_on"]) if file else []
        parent_contact: dict[str, Any] | None = None
        agreement_state = "not_required"
        if child.parents_away:
            state = parent_contact_state(last_parent, child.parents_away_since, registered_on, today)
            parent_contact = {
                "last_contact_on": last_parent, "days_without_contact": state.days_without_contact,
                "consecutive_misses": state.consecutive_misses, "missed": state.missed,
            }
            problem = agreement_problem(_terms(agreements), today)
            agreement_state = "in_force" if problem is None else problem.problem
        visits = sorted(file.visits.values(), key=lambda v: v["visited_on"], reverse=True) if file else []
        contacts = sorted(file.parent_contacts, key=lambda c: c["contacted_on"], reverse=True) if file else []
        return {
            "child_id": child_id, "case_id": care_case_id(child_id), "township": child.township,
            "village": child.village, "covered": child.covered, "parents_away": child.parents_away,
            "frequent_visits": bool(reasons), "frequent_reasons": list(reasons),
            "last_contact_on": last_contact, "last_home_visit_on": last_home,
            "next_contact_due_on": due.contact_due_on, "next_home_visit_due_on": due.home_visit_due_on,
            "contact_overdue_days": days_overdue(due.contact_due_on, today),
            "home_visit_overdue_days": days_overdue(due.home_visit_due_on, today),
            "parent_contact": parent_contact, "entrusted_care": agreement_state, "agreements": agreements,
            "visits": visits[:RECENT], "parent_contacts": contacts[:RECENT], "as_of": today,
        }

    # --- the scheduled check ----------------------------------------------------------------------------------

    def check(self, today: date) -> CheckResult:
        """Raise what is overdue on ``today`` for every covered child; idempotent."""
        self.status.catch_up()
        agreements = self.status.agreements_of_children_with_parents_away()
        counts = {"visit": 0, "parent": 0, "care": 0}
        checked = 0
        for page in self.status.covered_children():  # a page at a time: memory stays bounded
            checked += len(page)
            pending: list[_Due] = []
            for care in page:
                pending += self._due_visits(care, today)
                if care.parents_away:
                    pending += self._due_parent_contact(care, today)
                    pending += self._due_agreement(care, agreements.get(care.child_id, []), today)
            for due in self._save_notices(pending):
                counts[due.counter] += 1
            raised: dict[UUID, dict[str, Any]] = {}
            for due in pending:
                raised.setdefault(due.child_id, {})[due.column] = due.key
            self.status.mark_raised(raised)
        logger.info("care check %s: %d children, %d notices raised", today.isoformat(), checked, sum(counts.values()))
        return CheckResult(today, checked, counts["visit"], counts["parent"], counts["care"])

    def _due_visits(self, care: ChildCare, today: date) -> list[_Due]:
        child = care  # the child as the file has it, with its care
        frequent = bool(frequent_reasons(child.frequent_visit_reasons, care.risk_level))
        due = next_due(care.last_contact_on, care.last_home_visit_on, _registered_on(child, today), frequent,
                       self.policy)
        found = []
        for kind, due_on, column in ((VisitKind.contact.value, due.contact_due_on, "raised_contact_due_on"),
                                     (VisitKind.home_visit.value, due.home_visit_due_on, "raised_home_visit_due_on")):
            late = days_overdue(due_on, today)
            if late and care.raised.get(column) != due_on:  # raised already for this due day: nothing to build
                found.append(_Due("visit", child.child_id, column, due_on, _builder(
                    VisitOverdueNotice, child_id=child.child_id, kind=kind, due_on=due_on, days_overdue=late,
                    raised_on=today, township=child.township, village=child.village,
                )))
        return found

    @staticmethod
    def _due_parent_contact(care: ChildCare, today: date) -> list[_Due]:
        child, last = care, care.last_parent_contact_on
        state = parent_contact_state(last, child.parents_away_since, _registered_on(child, today), today)
        if not state.missed:
            return []
        key = f"{state.counted_from.isoformat()}/{state.consecutive_misses}"
        if care.raised.get("raised_parent_contact") == key:
            return []
        return [_Due("parent", child.child_id, "raised_parent_contact", key, _builder(
            ParentContactMissedNotice, child_id=child.child_id, counted_from=state.counted_from,
            consecutive_misses=state.consecutive_misses, last_contact_on=last,
            days_without_contact=state.days_without_contact, escalated=state.escalated, raised_on=today,
            township=child.township, village=child.village,
        ))]

    @staticmethod
    def _due_agreement(care: ChildCare, agreements: Sequence[AgreementTerms], today: date) -> list[_Due]:
        child = care
        problem = agreement_problem(agreements, today)
        if problem is None:
            return []
        # missing: once from the day the parents' absence was followed (a new absence flags again)
        followed = [d for d in (child.parents_away_since, child.registered_on) if d is not None]
        reference = problem.agreement_id or (max(followed) if followed else today).isoformat()
        if care.raised.get("raised_entrusted_care") == f"{problem.problem}/{reference}":
            return []
        return [_Due("care", child.child_id, "raised_entrusted_care", f"{problem.problem}/{reference}", _builder(
            EntrustedCareNotice, child_id=child.child_id, problem=problem.problem, reference=reference,
            raised_on=today, township=child.township, village=child.village,
        ))]

    def _save_notices(self, dues: Sequence[_Due]) -> list[_Due]:
        """Save the new notices in chunks; a notice saved before (or by another check meanwhile) is skipped."""
        saved: list[_Due] = []
        for start in range(0, len(dues), SAVE_CHUNK):
            chunk = dues[start:start + SAVE_CHUNK]
            try:
                self._committer.save(*(d.build() for d in chunk))
                saved.extend(chunk)
            except IntegrityError:
                for due in chunk:
                    with contextlib.suppress(IntegrityError):
                        self._committer.save(due.build())
                        saved.append(due)
        return saved

    # --- the care file ----------------------------------------------------------------------------------------

    def _file(self, child_id: UUID) -> CareFile | None:
        try:
            file: Any = self.app.repository.get(care_file_id(child_id))
        except AggregateNotFoundError:
            return None
        return file if isinstance(file, CareFile) else None

    def _change_file(self, child_id: UUID, change: Callable[[CareFile], T], must_exist: bool = False,
                     loaded: CareFile | None = None) -> T:
        """Apply ``change`` to the child's care file and save it, loading the file again after a conflict.
        ``loaded``: the file as the caller read it just before (saves the first load)."""
        for attempt in range(MAX_ATTEMPTS):
            file = loaded if attempt == 0 and loaded is not None else self._file(child_id)
            if file is None:
                if must_exist:
                    raise NotFound(
                        f"No care recorded for child {child_id}.",
                        errors=[FieldError(field="child_id", reason="no care file")],
                    )
                file = CareFile(child_id=child_id)
            result = change(file)
            try:
                self._committer.save(file)
            except IntegrityError:
                continue  # another request changed the same file meanwhile: load it again
            return result
        raise RuntimeError("could not save the care file after repeated conflicts")


def _entity_id(kind: str, child_id: UUID, agency: str, idempotency_key: str | None) -> UUID:
    if idempotency_key is None:
        return uuid.uuid4()
    return uuid.uuid5(ENTITY_ID_NAMESPACE, f"{kind}\x1f{child_id}\x1f{agency}\x1f{idempotency_key}")


def _registered_on(child: KnownChild | ChildCare, fallback: date) -> date:
    return child.registered_on if child.registered_on is not None else fallback


def _builder(cls: type, **kwargs: Any) -> Callable[[], Any]:
    return lambda: cls(**kwargs)


def _terms(agreements: Iterable[dict[str, Any]]) -> list[AgreementTerms]:
    return [AgreementTerms(str(a["agreement_id"]), a["start_on"], a["end_on"], a["signed"]) for a in agreements]


def _check_findings(cmd: RecordVisit) -> None:
    findings = set(cmd.findings)
    if VisitFinding.all_well.value in findings and len(findings) > 1:
        raise Unprocessable(
            "A visit that found all well cannot also report a problem.",
            errors=[FieldError(field="findings", reason="all_well excludes every other finding")],
        )
    if VisitFinding.suspected_abuse.value in findings and cmd.report is None:
        raise Unprocessable(
            "Suspected abuse must be reported (强制报告): add the report to the visit.",
            errors=[FieldError(field="report", reason="required when findings include suspected_abuse")],
        )


def _recorded_visit(file: CareFile, child_id: UUID, visit_id: UUID, replayed: bool) -> RecordedVisit:
    v = file.visits[str(visit_id)]
    return RecordedVisit(
        visit_id=visit_id, child_id=child_id, kind=v["kind"], visited_on=v["visited_on"],
        findings=tuple(v["findings"]),
        next_due=NextDue(v["next_contact_due_on"], v["next_home_visit_due_on"]),
        report_id=v["report_id"], report_case_id=v["report_case_id"], replayed=replayed,
    )
