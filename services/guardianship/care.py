"""Guardianship care of one child, as eventsourcing aggregates.

- ``CareFile`` (one per child): entrusted-care agreements (委托照护协议), contacts between the parents away and
  the child, and the child director's contacts and home visits with their findings.
- The notices the scheduled checks raise, each an aggregate created once with an id derived from the child, what
  is due and the due period (``VisitOverdueNotice``, ``ParentContactMissedNotice``, ``EntrustedCareNotice``):
  however often the check runs, a second notice with the same id cannot be saved, so nothing is raised twice, and
  raising needs no aggregate to be loaded (100,000 children in seconds).

Values are stored as plain JSON types (codes as strings, dates); names and notes stay in these events, never in
integration events.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from contracts.agencies import Agency
from contracts.vocabulary import EntrustedCareProblem, VisitFinding
from huhang.problems import Conflict, DomainError, FieldError, NotFound, Unprocessable

CARE_FILE_NAMESPACE = uuid.UUID("3f6b0c2a-7d41-4e8b-9a15-6c2d8e4f1b07")
NOTICE_NAMESPACE = uuid.UUID("a41c7e9d-2b58-4f03-8d6e-19f5b3c7a2e4")
CARE_AGENCIES = frozenset({Agency.village.value, Agency.township.value, Agency.civil_affairs.value})
CAREGIVER_FINDINGS = {
    VisitFinding.caregiver_unable.value: EntrustedCareProblem.caregiver_unable.value,
    VisitFinding.caregiver_neglectful.value: EntrustedCareProblem.caregiver_neglectful.value,
}


class NotPermitted(DomainError):
    status = 403
    type = "urn:huhang:problem:not-permitted"


def check_may_record_care(agency: str, field: str = "agency") -> None:
    """The child director's village, the township's child supervisor and civil affairs record care."""
    if agency not in CARE_AGENCIES:
        raise NotPermitted(
            f"Care of a child is recorded by the village, the township or civil affairs, not '{agency}'.",
            errors=[FieldError(field=field, reason=f"must be one of {', '.join(sorted(CARE_AGENCIES))}")],
        )


def care_file_id(child_id: UUID) -> UUID:
    return uuid.uuid5(CARE_FILE_NAMESPACE, str(child_id))


def _idempotent_replay(seen: dict[str, str], entity_id: UUID, fingerprint: str, what: str) -> bool:
    """True when this entity was already recorded from the same request; 422 when from another one."""
    recorded = seen.get(str(entity_id))
    if recorded is None:
        return False
    if recorded != fingerprint:
        raise Unprocessable(
            f"This Idempotency-Key was already used for another {what}.",
            errors=[FieldError(field="Idempotency-Key", reason="reused with a different body")],
        )
    return True


class CareFile(Aggregate):
    """The care record of one child (id derived from the child id)."""

    @staticmethod
    def create_id(child_id: UUID, **_: Any) -> UUID:
        return care_file_id(child_id)

    @event("Opened")
    def __init__(self, child_id: UUID) -> None:
        self.child_id = child_id
        self.agreements: dict[str, dict[str, Any]] = {}
        self.fingerprints: dict[str, str] = {}
        self.visits: dict[str, dict[str, Any]] = {}
        self.parent_contacts: list[dict[str, Any]] = []
        self.last_contact_on: date | None = None
        self.last_home_visit_on: date | None = None
        self.last_parent_contact_on: date | None = None

    # --- entrusted care ---------------------------------------------------------------------------------------

    def record_agreement(
        self, agreement_id: UUID, caregiver_name: str, relation: str, start_on: date, end_on: date | None,
        signed: bool, signed_on: date | None, recorded_by: str, fingerprint: str,
    ) -> bool:
        """Record an agreement; False when the same request was recorded before (a retry)."""
        check_may_record_care(recorded_by, "recorded_by")
        if _idempotent_replay(self.fingerprints, agreement_id, fingerprint, "agreement"):
            return False
        if end_on is not None and end_on < start_on:
            raise Unprocessable(
                "An agreement cannot end before it starts.",
                errors=[FieldError(field="end_on", reason="must not be before start_on")],
            )
        if signed != (signed_on is not None):
            raise Unprocessable(
                "A signed agreement has its signing date, an unsigned one has none.",
                errors=[FieldError(field="signed_on", reason="required exactly when signed is true")],
            )
        self._agreement_recorded(
            agreement_id=agreement_id, child_id=self.child_id, caregiver_name=caregiver_name, relation=relation,
            start_on=start_on, end_on=end_on, signed=signed, signed_on=signed_on, recorded_by=recorded_by,
            fingerprint=fingerprint,
        )
        return True

    @event("AgreementRecorded")
    def _agreement_recorded(
        self, agreement_id: UUID, child_id: UUID, caregiver_name: str, relation: str, start_on: date,
        end_on: date | None, signed: bool, signed_on: date | None, recorded_by: str, fingerprint: str,
    ) -> None:
        self.agreements[str(agreement_id)] = {
            "agreement_id": agreement_id, "caregiver_name": caregiver_name, "relation": relation,
            "start_on": start_on, "end_on": end_on, "signed": signed, "signed_on": signed_on,
        }
        self.fingerprints[str(agreement_id)] = fingerprint

    def sign_agreement(self, agreement_id: UUID, signed_on: date, recorded_by: str) -> None:
        check_may_record_care(recorded_by)
        agreement = self.agreements.get(str(agreement_id))
        if agreement is None:
            raise NotFound(
                f"No agreement {agreement_id} for this child.",
                errors=[FieldError(field="agreement_id", reason="unknown agreement")],
            )
        if agreement["signed"]:
            if agreement["signed_on"] == signed_on:
                return  # the same signature again: nothing to do
            raise Conflict(
                f"The agreement was already signed on {agreement['signed_on'].isoformat()}.",
                errors=[FieldError(field="signed_on", reason="already signed")],
            )
        self._agreement_signed(
            agreement_id=agreement_id, child_id=self.child_id, signed_on=signed_on, recorded_by=recorded_by,
            start_on=agreement["start_on"], end_on=agreement["end_on"],
        )

    @event("AgreementSigned")
    def _agreement_signed(
        self, agreement_id: UUID, child_id: UUID, signed_on: date, recorded_by: str, start_on: date | None = None,
        end_on: date | None = None,
    ) -> None:
        """The agreement's term rides on the signature (published as ``EntrustedCareAgreementSigned``). Signatures
        stored before it did lack both attributes: they replay with the defaults, and are not published."""
        self.agreements[str(agreement_id)].update(signed=True, signed_on=signed_on)

    # --- parent contact ---------------------------------------------------------------------------------------

    def record_parent_contact(
        self, contact_id: UUID, contacted_on: date, channel: str, parent: str, recorded_by: str, fingerprint: str
    ) -> bool:
        check_may_record_care(recorded_by, "recorded_by")
        if _idempotent_replay(self.fingerprints, contact_id, fingerprint, "parent contact"):
            return False
        self._parent_contact_recorded(
            contact_id=contact_id, child_id=self.child_id, contacted_on=contacted_on, channel=channel,
            parent=parent, recorded_by=recorded_by, fingerprint=fingerprint,
        )
        return True

    @event("ParentContactRecorded")
    def _parent_contact_recorded(
        self, contact_id: UUID, child_id: UUID, contacted_on: date, channel: str, parent: str, recorded_by: str,
        fingerprint: str,
    ) -> None:
        self.fingerprints[str(contact_id)] = fingerprint
        self.parent_contacts.append(
            {"contact_id": contact_id, "contacted_on": contacted_on, "channel": channel, "parent": parent}
        )
        self.last_parent_contact_on = _later(self.last_parent_contact_on, contacted_on)

    # --- the child director's contacts and visits -------------------------------------------------------------

    def record_visit(
        self, visit_id: UUID, kind: str, visited_on: date, agency: str, director_id: UUID | None,
        findings: Sequence[str], notes: str | None, report_id: UUID | None, report_case_id: UUID | None,
        next_contact_due_on: date, next_home_visit_due_on: date, frequent_reasons: Sequence[str], township: str,
        village: str, fingerprint: str,
    ) -> bool:
        check_may_record_care(agency)
        if _idempotent_replay(self.fingerprints, visit_id, fingerprint, "visit"):
            return False
        self._visit_recorded(
            visit_id=visit_id, child_id=self.child_id, kind=kind, visited_on=visited_on, agency=agency,
            director_id=director_id, findings=sorted(set(findings)), notes=notes, report_id=report_id,
            report_case_id=report_case_id, next_contact_due_on=next_contact_due_on,
            next_home_visit_due_on=next_home_visit_due_on, frequent_reasons=list(frequent_reasons),
            township=township, village=village, fingerprint=fingerprint,
        )
        return True

    @event("VisitRecorded")
    def _visit_recorded(
        self, visit_id: UUID, child_id: UUID, kind: str, visited_on: date, agency: str, director_id: UUID | None,
        findings: list[str], notes: str | None, report_id: UUID | None, report_case_id: UUID | None,
        next_contact_due_on: date, next_home_visit_due_on: date, frequent_reasons: list[str], township: str,
        village: str, fingerprint: str,
    ) -> None:
        self.fingerprints[str(visit_id)] = fingerprint
        self.visits[str(visit_id)] = {
            "visit_id": visit_id, "kind": kind, "visited_on": visited_on, "findings": findings,
            "report_id": report_id, "report_case_id": report_case_id, "next_contact_due_on": next_contact_due_on,
            "next_home_visit_due_on": next_home_visit_due_on,
        }
        self.last_contact_on = _later(self.last_contact_on, visited_on)
        if kind == "home_visit":
            self.last_home_visit_on = _later(self.last_home_visit_on, visited_on)


def _later(current: date | None, candidate: date) -> date:
    """Records may arrive late (a visit entered a week after it was made): the latest date counts."""
    return candidate if current is None or candidate > current else current


def caregiver_problems(findings: Iterable[str]) -> list[str]:
    """The entrusted-care problems a visit's findings flag (caregiver unable or neglectful)."""
    return sorted({CAREGIVER_FINDINGS[f] for f in findings if f in CAREGIVER_FINDINGS})


# --- entrusted care: the rule ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class AgreementTerms:
    agreement_id: str
    start_on: date
    end_on: date | None  # the last day of care; None: until further notice
    signed: bool

    def in_force_on(self, day: date) -> bool:
        return self.start_on <= day and (self.end_on is None or day <= self.end_on)


@dataclass(frozen=True)
class AgreementProblem:
    problem: str  # EntrustedCareProblem: missing, unsigned or expired
    agreement_id: str | None  # the unsigned or expired agreement; None when missing


def agreement_problem(agreements: Iterable[AgreementTerms], today: date) -> AgreementProblem | None:
    """What is wrong with the entrusted care of a child whose parents are away, on ``today``.

    An agreement is in force from its start day through its end day (the end day is the last day of care:
    expired the day after). A signed agreement in force: nothing wrong. Only unsigned ones in force: ``unsigned``.
    None in force: ``expired`` if one has ended (the latest to end), else ``missing``.
    """
    terms = sorted(agreements, key=lambda a: (a.start_on, a.agreement_id))
    in_force = [a for a in terms if a.in_force_on(today)]
    if any(a.signed for a in in_force):
        return None
    if in_force:
        return AgreementProblem(EntrustedCareProblem.unsigned.value, in_force[-1].agreement_id)
    ended = [a for a in terms if a.end_on is not None and a.end_on < today]
    if ended:
        latest = max(ended, key=lambda a: (a.end_on or today, a.agreement_id))
        return AgreementProblem(EntrustedCareProblem.expired.value, latest.agreement_id)
    return AgreementProblem(EntrustedCareProblem.missing.value, None)


# --- the notices raised by the scheduled checks ---------------------------------------------------------------


def notice_id(*parts: object) -> UUID:
    return uuid.uuid5(NOTICE_NAMESPACE, "/".join(str(p) for p in parts))


class VisitOverdueNotice(Aggregate):
    """A contact or home visit not made by its due day: one per child, kind and due day."""

    @staticmethod
    def create_id(child_id: UUID, kind: str, due_on: date, **_: Any) -> UUID:
        return notice_id("visit-overdue", child_id, kind, due_on.isoformat())

    @event("Raised")
    def __init__(
        self, child_id: UUID, kind: str, due_on: date, days_overdue: int, raised_on: date, township: str,
        village: str,
    ) -> None:
        self.child_id = child_id


class ParentContactMissedNotice(Aggregate):
    """A week more without contact from the parents: one per child, counting start and number of weeks missed."""

    @staticmethod
    def create_id(child_id: UUID, counted_from: date, consecutive_misses: int, **_: Any) -> UUID:
        return notice_id("parent-contact-missed", child_id, counted_from.isoformat(), consecutive_misses)

    @event("Raised")
    def __init__(
        self, child_id: UUID, counted_from: date, consecutive_misses: int, last_contact_on: date | None,
        days_without_contact: int, escalated: bool, raised_on: date, township: str, village: str,
    ) -> None:
        self.child_id = child_id


class EntrustedCareNotice(Aggregate):
    """Entrusted care flagged by the checks: one per child, problem and what it is about (the unsigned or expired
    agreement, or the day from which the agreement is missing)."""

    @staticmethod
    def create_id(child_id: UUID, problem: str, reference: str, **_: Any) -> UUID:
        return notice_id("entrusted-care", child_id, problem, reference)

    @event("Raised")
    def __init__(
        self, child_id: UUID, problem: str, reference: str, raised_on: date, township: str, village: str
    ) -> None:
        self.child_id = child_id


Notice = VisitOverdueNotice | ParentContactMissedNotice | EntrustedCareNotice
