"""The plan's guardianship ladder (DOMAIN.md workflows 1 and 3): who may take which step, and after which.

Each step is an ``Intervention`` (one aggregate per intervention, its id the client's or derived from the
Idempotency-Key) and a line in the child's ``InterventionLadder`` (one aggregate per child: the order of the steps,
against which the prior-step rules are checked under optimistic concurrency). The court's protection order and
revocation of guardianship are also recorded on the child's ``GuardianshipFile`` in the same atomic save, so that
``CourtProtectionOrderIssued`` is published by the one existing path and routed by the existing rules.

The rules, from the plan and the laws it rests on:

=====================================  ======================================  ====================================
step                                   who records it                          needs before it (on or before date)
=====================================  ======================================  ====================================
admonition (劝诫)                      village                                 -
police_report (报告公安机关)           village, township, civil_affairs,       -
                                       education (mandatory reporters)
police_reprimand (训诫)                police                                  - (police act on any report)
family_education_order (责令接受       police                                  police_reprimand (未成年人保护法
家庭教育指导)                                                                  第118条: ordered with the reprimand)
family_education_guidance (妇联指导)   womens_federation                       -
protection_order_application           civil_affairs, procuratorate, village,  -
(申请人身安全保护令)                   police, womens_federation (反家庭暴力法
                                       第23条: they apply for the child; a
                                       near relative's application is recorded
                                       by the agency that helped, applicant
                                       ``near_relative``)
protection_order_issued (签发)         court                                   an application not yet decided
guardianship_revocation_application    civil_affairs, procuratorate, village,  -
(申请撤销监护人资格)                   education, health, womens_federation,
                                       dpf (民法典第36条; near relatives as
                                       above)
guardianship_revoked (撤销)            court                                   a revocation application not yet
                                                                               decided (one per guardian)
temporary_guardianship_placement       civil_affairs                           - (emergencies come first)
(临时监护, 未成年人救助保护机构)
long_term_state_guardianship           civil_affairs; once, and it ends the    guardianship_revoked or
(长期监护)                             ladder: the state is the guardian       temporary_guardianship_placement
=====================================  ======================================  ====================================
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import IntegrityError

from contracts.agencies import Agency
from contracts.cases import care_case_id
from contracts.vocabulary import CourtOrderKind, InterventionDocumentKind, InterventionKind
from huhang.groupcommit import GroupCommitter
from huhang.problems import Conflict, FieldError, NotFound, Unprocessable
from services.guardianship.application import GuardianshipApplication
from services.guardianship.children import KnownChildren
from services.guardianship.domain import GuardianshipFile, NotPermitted
from services.guardianship.known_cases import KnownCases

K = InterventionKind
A = Agency
INTERVENTION_NAMESPACE = uuid.UUID("4e7c1a9d-3b2f-4d8e-a6c5-9f1e2d3c4b5a")
LADDER_NAMESPACE = uuid.UUID("a3d5c7e9-1b2f-4a6c-8e0d-2f4b6d8a0c1e")
MAX_ATTEMPTS = 5
T = TypeVar("T")


class Applicant(StrEnum):
    """Who applies to the court: the recording agency itself, or the child's near relative (近亲属) it helped."""

    agency = "agency"
    near_relative = "near_relative"


@dataclass(frozen=True)
class StepRule:
    kind: InterventionKind
    agencies: frozenset[Agency]
    requires_any: tuple[InterventionKind, ...] = ()  # at least one of these, dated on or before this step
    answers_prerequisite: bool = False  # each prior step answers at most one of these (an application, one ruling)
    once: bool = False
    ends_ladder: bool = False
    is_application: bool = False  # may be made by a near relative
    court_order_kind: CourtOrderKind | None = None  # recorded on the GuardianshipFile as well
    ruling_document: InterventionDocumentKind | None = None  # the court's ruling, its reference the case number


LADDER: dict[InterventionKind, StepRule] = {
    rule.kind: rule
    for rule in (
        StepRule(K.admonition, frozenset({A.village})),
        StepRule(K.police_report, frozenset({A.village, A.township, A.civil_affairs, A.education})),
        StepRule(K.police_reprimand, frozenset({A.police})),
        StepRule(K.family_education_order, frozenset({A.police}), requires_any=(K.police_reprimand,)),
        StepRule(K.family_education_guidance, frozenset({A.womens_federation})),
        StepRule(
            K.protection_order_application,
            frozenset({A.civil_affairs, A.procuratorate, A.village, A.police, A.womens_federation}),
            is_application=True,
        ),
        StepRule(
            K.protection_order_issued, frozenset({A.court}), requires_any=(K.protection_order_application,),
            answers_prerequisite=True, court_order_kind=CourtOrderKind.personal_safety_protection,
            ruling_document=InterventionDocumentKind.protection_order,
        ),
        StepRule(
            K.guardianship_revocation_application,
            frozenset({A.civil_affairs, A.procuratorate, A.village, A.education, A.health, A.womens_federation,
                       A.dpf}),
            is_application=True,
        ),
        StepRule(
            K.guardianship_revoked, frozenset({A.court}), requires_any=(K.guardianship_revocation_application,),
            answers_prerequisite=True, court_order_kind=CourtOrderKind.guardianship_revocation,
            ruling_document=InterventionDocumentKind.court_judgment,
        ),
        StepRule(K.temporary_guardianship_placement, frozenset({A.civil_affairs})),
        StepRule(
            K.long_term_state_guardianship, frozenset({A.civil_affairs}),
            requires_any=(K.guardianship_revoked, K.temporary_guardianship_placement), once=True, ends_ladder=True,
        ),
    )
}


@dataclass(frozen=True)
class Step:
    intervention_id: UUID
    kind: InterventionKind
    case_id: UUID
    occurred_on: date


@dataclass(frozen=True)
class DocumentRef:
    kind: InterventionDocumentKind
    reference: str
    issued_on: date


@dataclass(frozen=True)
class NextStep:
    kind: InterventionKind
    agencies: tuple[Agency, ...]
    after: tuple[InterventionKind, ...]  # the prior step(s) that make it possible (one of them), if any


# --- the rules, pure ----------------------------------------------------------------------------------------------


def check_may_record(kind: InterventionKind, agency: Agency) -> None:
    allowed = LADDER[kind].agencies
    if agency not in allowed:
        names = ", ".join(sorted(a.value for a in allowed))
        raise NotPermitted(
            f"'{agency.value}' may not record a {kind.value}; it is recorded by: {names}.",
            errors=[FieldError(field="agency", reason=f"must be one of: {names}")],
        )


def check_request(
    kind: InterventionKind, applicant: Applicant, documents: Sequence[DocumentRef], expires_on: date | None
) -> None:
    """What the request must hold for its kind, whatever the ladder so far (422 naming the field)."""
    rule = LADDER[kind]
    errors = []
    if applicant is not Applicant.agency and not rule.is_application:
        errors.append(FieldError(field="applicant", reason=f"only an application has an applicant, not a {kind}"))
    if rule.ruling_document is not None:
        rulings = [d for d in documents if d.kind is rule.ruling_document]
        if len(rulings) != 1:
            errors.append(FieldError(
                field="documents", reason=f"a {kind} refers to exactly one {rule.ruling_document} document",
            ))
        elif expires_on is not None and expires_on <= rulings[0].issued_on:
            errors.append(FieldError(field="expires_on", reason="must be after the ruling's issued_on"))
    if expires_on is not None and kind is not K.protection_order_issued:
        errors.append(FieldError(field="expires_on", reason=f"only a protection order expires, not a {kind}"))
    if errors:
        raise Unprocessable(f"The request does not fit a {kind}.", errors=errors)


def missing_steps(kind: InterventionKind, occurred_on: date, steps: Sequence[Step]) -> tuple[InterventionKind, ...]:
    """The prior step(s) this step still needs (one of them would do); empty when it may be taken."""
    rule = LADDER[kind]
    if not rule.requires_any:
        return ()
    prior = [s for s in steps if s.kind in rule.requires_any and s.occurred_on <= occurred_on]
    if rule.answers_prerequisite:
        answered = sum(1 for s in steps if s.kind is kind)
        return rule.requires_any if len(prior) <= answered else ()
    return () if prior else rule.requires_any


def check_ladder(kind: InterventionKind, occurred_on: date, steps: Sequence[Step]) -> None:
    """409 naming the missing step, a step taken once already, or a ladder that has ended."""
    rule = LADDER[kind]
    ended = next((s for s in steps if LADDER[s.kind].ends_ladder), None)
    if ended is not None:
        raise Conflict(
            f"The ladder ended with {ended.kind} on {ended.occurred_on}: the state is the child's guardian.",
            errors=[FieldError(field="kind", reason=f"no step after {ended.kind}")],
        )
    if rule.once and any(s.kind is kind for s in steps):
        raise Conflict(
            f"A {kind} is already recorded for this child.",
            errors=[FieldError(field="kind", reason=f"{kind} is taken once")],
        )
    missing = missing_steps(kind, occurred_on, steps)
    if missing:
        needed = " or ".join(m.value for m in missing)
        pending = " not yet answered" if rule.answers_prerequisite else ""
        raise Conflict(
            f"A {kind} needs a prior {needed}{pending}, on or before {occurred_on}.",
            errors=[FieldError(field="kind", reason=f"needs a prior {needed}{pending}")],
        )


def next_steps(steps: Sequence[Step], today: date) -> list[NextStep]:
    """The steps that may be taken now, in ladder order, and who takes them."""
    possible = []
    for kind, rule in LADDER.items():
        try:
            check_ladder(kind, today, steps)
        except Conflict:
            continue
        possible.append(NextStep(
            kind=kind, agencies=tuple(sorted(rule.agencies, key=lambda a: a.value)), after=rule.requires_any,
        ))
    return possible


# --- aggregates ---------------------------------------------------------------------------------------------------


class Intervention(Aggregate):
    """One step taken: what, by whom, when, on which case, with which documents (references, not contents)."""

    @staticmethod
    def create_id(intervention_id: UUID, **_: Any) -> UUID:
        return intervention_id

    @event("Recorded")
    def __init__(
        self, intervention_id: UUID, child_id: UUID, case_id: UUID, kind: str, agency: str, occurred_on: date,
        applicant: str, documents: list[dict[str, str]], expires_on: date | None, township: str, village: str,
        correlation_id: UUID, request_fingerprint: str,
    ) -> None:
        self.child_id = child_id
        self.case_id = case_id
        self.kind = kind
        self.agency = agency
        self.occurred_on = occurred_on
        self.applicant = applicant
        self.documents = documents
        self.expires_on = expires_on
        self.request_fingerprint = request_fingerprint


class InterventionLadder(Aggregate):
    """One per child: the steps taken so far, in the order recorded."""

    @staticmethod
    def create_id(child_id: UUID, **_: Any) -> UUID:
        return ladder_id(child_id)

    @event("Opened")
    def __init__(self, child_id: UUID) -> None:
        self.child_id = child_id
        self.steps: list[Step] = []

    def take(self, intervention_id: UUID, kind: InterventionKind, case_id: UUID, occurred_on: date) -> None:
        check_ladder(kind, occurred_on, self.steps)
        self._step_taken(intervention_id=intervention_id, kind=kind.value, case_id=case_id, occurred_on=occurred_on)

    @event("StepTaken")
    def _step_taken(self, intervention_id: UUID, kind: str, case_id: UUID, occurred_on: date) -> None:
        self.steps.append(Step(intervention_id, InterventionKind(kind), case_id, occurred_on))


def ladder_id(child_id: UUID) -> UUID:
    return uuid.uuid5(LADDER_NAMESPACE, str(child_id))


# --- the use cases ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordIntervention:
    case_id: UUID
    child_id: UUID
    kind: InterventionKind
    agency: Agency
    occurred_on: date
    documents: tuple[DocumentRef, ...]
    fingerprint: str  # of the request as received: a retry must be the same request
    applicant: Applicant = Applicant.agency
    expires_on: date | None = None
    intervention_id: UUID | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True)
class RecordedIntervention:
    intervention_id: UUID
    case_id: UUID
    child_id: UUID
    kind: InterventionKind
    agency: Agency
    occurred_on: date
    replayed: bool


@dataclass(frozen=True)
class LadderEntry:
    intervention_id: UUID
    case_id: UUID
    kind: InterventionKind
    agency: Agency
    occurred_on: date
    recorded_at: datetime
    applicant: Applicant
    documents: tuple[DocumentRef, ...]
    expires_on: date | None


@dataclass(frozen=True)
class Ladder:
    child_id: UUID
    steps: tuple[LadderEntry, ...]
    next_steps: tuple[NextStep, ...]
    ended: bool


@dataclass(frozen=True)
class _Place:
    township: str
    village: str
    correlation_id: UUID


class Interventions:
    """Records steps of the ladder in guardianship's event store (its outbox), and reads a child's ladder."""

    def __init__(
        self, app: GuardianshipApplication, known_cases: KnownCases, known_children: KnownChildren
    ) -> None:
        self.app = app
        self._known_cases = known_cases
        self._known_children = known_children
        self._committer = GroupCommitter(app)

    def record(self, cmd: RecordIntervention) -> RecordedIntervention:
        check_request(cmd.kind, cmd.applicant, cmd.documents, cmd.expires_on)
        check_may_record(cmd.kind, cmd.agency)  # before saying whether the case exists
        intervention_id = self._intervention_id(cmd)
        for _ in range(MAX_ATTEMPTS):
            replay = self._replay(intervention_id, cmd)
            if replay is not None:
                return replay
            place = self._place(cmd.case_id, cmd.child_id)
            aggregates = self._prepare(intervention_id, cmd, place)
            try:
                self._committer.save(*aggregates)
            except IntegrityError:
                continue  # the same child's ladder or the same intervention id was saved meanwhile: look again
            return RecordedIntervention(
                intervention_id, cmd.case_id, cmd.child_id, cmd.kind, cmd.agency, cmd.occurred_on, replayed=False,
            )
        raise RuntimeError("could not record the intervention after repeated conflicts")

    def ladder(self, child_id: UUID, today: date) -> Ladder:
        steps = self._steps(child_id)
        entries = tuple(self._entry(s.intervention_id) for s in steps)
        return Ladder(
            child_id=child_id, steps=entries, next_steps=tuple(next_steps(steps, today)),
            ended=any(LADDER[s.kind].ends_ladder for s in steps),
        )

    def _intervention_id(self, cmd: RecordIntervention) -> UUID:
        if cmd.intervention_id is not None:
            return cmd.intervention_id
        if cmd.idempotency_key is not None:
            return uuid.uuid5(INTERVENTION_NAMESPACE, f"{cmd.agency.value}\x1f{cmd.idempotency_key}")
        return uuid.uuid4()

    def _replay(self, intervention_id: UUID, cmd: RecordIntervention) -> RecordedIntervention | None:
        try:
            found: Any = self.app.repository.get(intervention_id)
        except AggregateNotFoundError:
            return None
        same = (
            isinstance(found, Intervention) and found.request_fingerprint == cmd.fingerprint
            and found.child_id == cmd.child_id and found.case_id == cmd.case_id
        )
        if not same:
            if cmd.intervention_id is None:
                raise Unprocessable(
                    "This Idempotency-Key was already used with a different request.",
                    errors=[FieldError(field="Idempotency-Key", reason="reused with a different body")],
                )
            raise Conflict(
                f"The intervention id {intervention_id} is already used by another intervention.",
                errors=[FieldError(field="intervention_id", reason="already used by another intervention")],
            )
        return RecordedIntervention(
            found.id, found.case_id, found.child_id, InterventionKind(found.kind), Agency(found.agency),
            found.occurred_on, replayed=True,
        )

    def _place(self, case_id: UUID, child_id: UUID) -> _Place:
        """The case must be known to guardianship: a reported case, or the child's standing care case."""
        known = self._known_children.get(child_id)
        case = self._known_cases.get(case_id)
        if case is not None:
            if case.child_id != child_id:
                raise Unprocessable(
                    "The child is not the child of this case.",
                    errors=[FieldError(field="child_id", reason="not the child of this case")],
                )
            place = _Place(case.township, case.village, case.correlation_id)
        elif case_id == care_case_id(child_id) and known is not None:
            place = _Place(known.township, known.village, case_id)
        else:
            raise NotFound(
                f"No case with id {case_id} is known to guardianship (yet).",
                errors=[FieldError(field="case_id", reason="unknown case")],
            )
        if known is not None and known.merged_into is not None:
            raise Unprocessable(
                f"This child's file was merged into {known.merged_into}: record the step on the surviving file.",
                errors=[FieldError(field="child_id", reason=f"merged into {known.merged_into}")],
            )
        return place

    def _prepare(self, intervention_id: UUID, cmd: RecordIntervention, place: _Place) -> list[Aggregate]:
        ladder = self._load(ladder_id(cmd.child_id), lambda: InterventionLadder(child_id=cmd.child_id))
        ladder.take(intervention_id, cmd.kind, cmd.case_id, cmd.occurred_on)
        intervention = Intervention(
            intervention_id=intervention_id, child_id=cmd.child_id, case_id=cmd.case_id, kind=cmd.kind.value,
            agency=cmd.agency.value, occurred_on=cmd.occurred_on, applicant=cmd.applicant.value,
            documents=[
                {"kind": d.kind.value, "reference": d.reference, "issued_on": d.issued_on.isoformat()}
                for d in cmd.documents
            ],
            expires_on=cmd.expires_on, township=place.township, village=place.village,
            correlation_id=place.correlation_id, request_fingerprint=cmd.fingerprint,
        )
        aggregates: list[Aggregate] = [intervention, ladder]
        rule = LADDER[cmd.kind]
        if rule.court_order_kind is not None:
            aggregates.append(self._court_order(intervention_id, cmd, place, rule))
        return aggregates

    def _court_order(
        self, intervention_id: UUID, cmd: RecordIntervention, place: _Place, rule: StepRule
    ) -> GuardianshipFile:
        """The court's ruling, on the child's GuardianshipFile: it publishes ``CourtProtectionOrderIssued``."""
        assert rule.court_order_kind is not None
        ruling = next(d for d in cmd.documents if d.kind is rule.ruling_document)
        file = self._load(cmd.child_id, lambda: GuardianshipFile(child_id=cmd.child_id))
        if ruling.reference in file.court_case_numbers:
            raise Conflict(
                f"The ruling {ruling.reference} is already recorded for this child.",
                errors=[FieldError(field="documents", reason=f"{rule.ruling_document} already recorded")],
            )
        file.record_court_order(
            order_id=intervention_id, case_id=cmd.case_id, order_kind=rule.court_order_kind.value,
            court_case_number=ruling.reference, issued_on=ruling.issued_on, expires_on=cmd.expires_on,
            recorded_by=cmd.agency.value, township=place.township, village=place.village,
            correlation_id=place.correlation_id,
        )
        return file

    def _load(self, aggregate_id: UUID, new: Callable[[], T]) -> T:
        try:
            found: T = self.app.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return new()
        return found

    def _steps(self, child_id: UUID) -> list[Step]:
        ladder: Any = None
        with contextlib.suppress(AggregateNotFoundError):
            ladder = self.app.repository.get(ladder_id(child_id))
        return list(ladder.steps) if isinstance(ladder, InterventionLadder) else []

    def _entry(self, intervention_id: UUID) -> LadderEntry:
        i: Intervention = self.app.repository.get(intervention_id)
        return LadderEntry(
            intervention_id=i.id, case_id=i.case_id, kind=InterventionKind(i.kind), agency=Agency(i.agency),
            occurred_on=i.occurred_on, recorded_at=i.created_on, applicant=Applicant(i.applicant),
            documents=tuple(
                DocumentRef(InterventionDocumentKind(d["kind"]), d["reference"], date.fromisoformat(d["issued_on"]))
                for d in i.documents
            ),
            expires_on=i.expires_on,
        )
