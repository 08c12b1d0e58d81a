"""The referral: one agency asked to act on a case, through its FHIR Task-like lifecycle.

Every step is an event with the acting agency and time. Only the owner does the work; the requester may cancel;
a supervising agency (civil affairs, the working committee office) may escalate, reassign or transfer. A rejected
or failed referral is *returned* so that the router sends it to the next responsible agency.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from contracts.agencies import LEAD_AGENCY, SUPERVISING_AGENCIES, Agency
from contracts.lifecycle import OPEN, OWNER_ACTIONS, REQUESTER_ACTIONS, TRANSITIONS
from contracts.vocabulary import EscalationKind, FailureReason, Outcome, ReferralStatus, RejectionReason
from huhang.problems import Conflict, DomainError, FieldError, Unprocessable


class IllegalTransition(Conflict):
    type = "urn:huhang:problem:illegal-transition"


class NotPermitted(DomainError):
    status = 403
    type = "urn:huhang:problem:not-permitted"


SUPERVISORS = frozenset(a.value for a in SUPERVISING_AGENCIES)
WAITING = frozenset({ReferralStatus.requested.value, ReferralStatus.received.value})
REASON_CODES: dict[ReferralStatus, frozenset[str]] = {
    ReferralStatus.rejected: frozenset(r.value for r in RejectionReason),
    ReferralStatus.failed: frozenset(r.value for r in FailureReason),
}


def supervisor_of(owner_agency: str) -> str:
    """Who is asked to act when the owner is overdue: the lead agency, or the committee office above it."""
    return Agency.wcwc.value if owner_agency == LEAD_AGENCY.value else LEAD_AGENCY.value


class Referral(Aggregate):
    @staticmethod
    def create_id(referral_id: UUID, **_: Any) -> UUID:
        return referral_id

    @event("Requested")
    def __init__(
        self,
        referral_id: UUID,
        case_id: UUID,
        child_id: UUID,
        owner_agency: str,
        requester_agency: str,
        referral_type: str,
        priority: str,
        due_at: datetime,
        plan_tasks: list[int],
        rule_ids: list[str],
        rules_version: str,
        source_event_id: UUID,
        correlation_id: UUID,
        township: str,
        village: str,
        complete_by: datetime | None = None,
        fallback_agencies: list[str] | None = None,
    ) -> None:
        self.case_id = case_id
        self.child_id = child_id
        self.owner_agency = owner_agency
        self.requester_agency = requester_agency
        self.referral_type = referral_type
        self.priority = priority
        self.due_at = due_at
        self.complete_by = complete_by or due_at + timedelta(days=30)
        self.plan_tasks = list(plan_tasks)
        self.rule_ids = list(rule_ids)
        self.rules_version = rules_version
        self.source_event_id = source_event_id
        self.correlation_id = correlation_id
        self.township = township
        self.village = village
        self.fallback_agencies = list(fallback_agencies or [])
        self.status = ReferralStatus.requested.value
        self.assignee: str | None = None
        self.pending_owner: str | None = None
        self.escalation_level = 0

    # --- the lifecycle -------------------------------------------------------------------------------------

    def change_status(
        self, to: ReferralStatus, actor_agency: str, *, reason_code: str | None = None,
        outcome: Outcome | None = None, note: str | None = None,
    ) -> None:
        may = (actor_agency == self.owner_agency and to in OWNER_ACTIONS) or (
            actor_agency == self.requester_agency and to in REQUESTER_ACTIONS
        )
        if not may:
            raise NotPermitted(
                f"Agency '{actor_agency}' may not move this referral to '{to.value}'.",
                errors=[FieldError(field="agency", reason="neither the owner nor, for cancelling, the requester")],
            )
        current = ReferralStatus(self.status)
        allowed = TRANSITIONS[current]
        if to not in allowed:
            raise IllegalTransition(
                f"A referral in status '{current.value}' cannot become '{to.value}'. "
                f"Allowed: {sorted(s.value for s in allowed) or 'none (final status)'}.",
                errors=[FieldError(field="status", reason=f"current status is '{current.value}'")],
            )
        self._check_reason(to, reason_code, outcome)
        self._status_changed(
            status=to.value, actor_agency=actor_agency, reason_code=reason_code,
            outcome=outcome.value if outcome else None, note=note,
            case_id=self.case_id, owner_agency=self.owner_agency, correlation_id=self.correlation_id,
            requester_agency=self.requester_agency,
        )
        if to in REASON_CODES:
            self._returned(
                status=to.value, returned_by=actor_agency, reason_code=reason_code, case_id=self.case_id,
                child_id=self.child_id, referral_type=self.referral_type, priority=self.priority,
                due_in_seconds=int((self.due_at - self.created_on).total_seconds()),
                complete_within_seconds=int((self.complete_by - self.due_at).total_seconds()),
                next_agencies=list(self.fallback_agencies), plan_tasks=self.plan_tasks, rule_ids=self.rule_ids,
                rules_version=self.rules_version, township=self.township, village=self.village,
                correlation_id=self.correlation_id, requester_agency=self.requester_agency,
            )

    @staticmethod
    def _check_reason(to: ReferralStatus, reason_code: str | None, outcome: Outcome | None) -> None:
        codes = REASON_CODES.get(to)
        if codes is None and reason_code is not None:
            raise Unprocessable(
                f"A referral becoming '{to.value}' takes no reason code (use the note).",
                errors=[FieldError(field="reason_code", reason="only for rejected or failed")],
            )
        if codes is not None and reason_code not in codes:
            raise Unprocessable(
                f"A referral can only become '{to.value}' with a reason code.",
                errors=[FieldError(field="reason_code", reason=f"one of {sorted(codes)}")],
            )
        if to is ReferralStatus.completed and outcome is None:
            raise Unprocessable(
                "A referral can only be completed with an outcome.",
                errors=[FieldError(field="outcome", reason=f"one of {sorted(o.value for o in Outcome)}")],
            )

    @event("StatusChanged")
    def _status_changed(
        self, status: str, actor_agency: str, reason_code: str | None, outcome: str | None, note: str | None,
        case_id: UUID, owner_agency: str, correlation_id: UUID, requester_agency: str | None = None,
    ) -> None:
        # case, owner and correlation travel in the event so that it maps to its contract on its own.
        self.status = status
        if status == ReferralStatus.accepted.value:
            self.escalation_level = 0  # late acceptance escalated; completion is watched afresh

    @event("Returned")
    def _returned(
        self, status: str, returned_by: str, reason_code: str | None, case_id: UUID, child_id: UUID,
        referral_type: str, priority: str, due_in_seconds: int, complete_within_seconds: int,
        next_agencies: list[str], plan_tasks: list[int], rule_ids: list[str], rules_version: str,
        township: str, village: str, correlation_id: UUID, requester_agency: str | None = None,
    ) -> None:
        """Back to the router, which asks the next agency of the fallback list (everything it needs travels
        in the event)."""

    # --- ownership and assignment --------------------------------------------------------------------------

    def _check_open(self) -> None:
        if ReferralStatus(self.status) not in OPEN:
            raise IllegalTransition(
                f"The referral is '{self.status}': it can no longer change hands.",
                errors=[FieldError(field="status", reason=f"current status is '{self.status}'")],
            )

    def _check_owner_or_supervisor(self, actor_agency: str, what: str) -> None:
        if actor_agency != self.owner_agency and actor_agency not in SUPERVISORS:
            raise NotPermitted(
                f"Only the owner or a supervising agency may {what}.",
                errors=[FieldError(field="agency", reason="neither the owner nor a supervising agency")],
            )

    def propose_transfer(self, to_agency: str, actor_agency: str, note: str | None) -> None:
        self._check_owner_or_supervisor(actor_agency, "transfer a referral")
        self._check_open()
        if to_agency == self.owner_agency:
            raise Unprocessable(
                "The referral already belongs to that agency.",
                errors=[FieldError(field="to_agency", reason="is the current owner")],
            )
        self._transfer_proposed(to_agency=to_agency, actor_agency=actor_agency, note=note)

    @event("TransferProposed")
    def _transfer_proposed(self, to_agency: str, actor_agency: str, note: str | None) -> None:
        self.pending_owner = to_agency

    def answer_transfer(self, actor_agency: str, *, accept: bool, note: str | None = None) -> None:
        self._check_open()
        if self.pending_owner is None:
            raise IllegalTransition(
                "No transfer of this referral is waiting for an answer.",
                errors=[FieldError(field="transfer", reason="none pending")],
            )
        if actor_agency != self.pending_owner:
            raise NotPermitted(
                "Only the agency the referral is being transferred to may answer.",
                errors=[FieldError(field="agency", reason=f"the transfer is to '{self.pending_owner}'")],
            )
        if accept:
            self._transferred(
                from_agency=self.owner_agency, to_agency=actor_agency, case_id=self.case_id,
                correlation_id=self.correlation_id,
            )
        else:
            self._transfer_declined(actor_agency=actor_agency, note=note)

    @event("Transferred")
    def _transferred(self, from_agency: str, to_agency: str, case_id: UUID, correlation_id: UUID) -> None:
        self.owner_agency = to_agency
        self.pending_owner = None
        self.assignee = None
        self.escalation_level = 0  # the new owner's deadlines start afresh
        if self.status in WAITING:  # accepting the transfer accepts the referral; work under way stays so
            self.status = ReferralStatus.accepted.value

    @event("TransferDeclined")
    def _transfer_declined(self, actor_agency: str, note: str | None) -> None:
        self.pending_owner = None

    def reassign(self, officer_id: str, actor_agency: str) -> None:
        self._check_owner_or_supervisor(actor_agency, "reassign a referral")
        self._check_open()
        self._reassigned(officer_id=officer_id, actor_agency=actor_agency)

    @event("Reassigned")
    def _reassigned(self, officer_id: str, actor_agency: str) -> None:
        self.assignee = officer_id

    # --- deadlines -------------------------------------------------------------------------------------------

    def overdue(self, now: datetime) -> tuple[EscalationKind, datetime] | None:
        """What is overdue now, and since when; None if nothing is."""
        status = ReferralStatus(self.status)
        if status in (ReferralStatus.requested, ReferralStatus.received) and now > self.due_at:
            return EscalationKind.overdue_acceptance, self.due_at
        if status in (ReferralStatus.accepted, ReferralStatus.in_progress, ReferralStatus.on_hold) and (
            now > self.complete_by
        ):
            return EscalationKind.overdue_completion, self.complete_by
        return None

    def escalation_due(self, now: datetime, requested_at: datetime) -> tuple[int, EscalationKind, datetime] | None:
        """The escalation level now due: 1 once overdue, 2 once overdue by the same window again (at least an
        hour). None when no higher level than the one reached is due — so a sweep repeated escalates nothing."""
        overdue = self.overdue(now)
        if overdue is None:
            return None
        kind, since = overdue
        window = max(since - requested_at, timedelta(hours=1))
        level = 2 if now > since + window else 1
        if level <= self.escalation_level:
            return None
        return level, kind, since

    def escalate(self, level: int, kind: EscalationKind, since: datetime, actor_agency: str) -> None:
        if level <= self.escalation_level:
            return
        self._check_open()
        self._escalated(
            level=level, kind=kind.value, overdue_since=since, actor_agency=actor_agency,
            supervising_agency=supervisor_of(self.owner_agency), case_id=self.case_id,
            owner_agency=self.owner_agency, correlation_id=self.correlation_id,
        )

    @event("Escalated")
    def _escalated(
        self, level: int, kind: str, overdue_since: datetime, actor_agency: str, supervising_agency: str,
        case_id: UUID, owner_agency: str, correlation_id: UUID,
    ) -> None:
        self.escalation_level = level
