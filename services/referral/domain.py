"""The referral: one agency asked to act on a case, through its FHIR Task-like lifecycle."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from contracts.lifecycle import OWNER_ACTIONS, REQUESTER_ACTIONS, TRANSITIONS
from contracts.vocabulary import ReferralStatus
from huhang.problems import Conflict, DomainError, FieldError


class IllegalTransition(Conflict):
    type = "urn:huhang:problem:illegal-transition"


class NotPermitted(DomainError):
    status = 403
    type = "urn:huhang:problem:not-permitted"


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
    ) -> None:
        self.case_id = case_id
        self.child_id = child_id
        self.owner_agency = owner_agency
        self.requester_agency = requester_agency
        self.referral_type = referral_type
        self.priority = priority
        self.due_at = due_at
        self.plan_tasks = list(plan_tasks)
        self.rule_ids = list(rule_ids)
        self.rules_version = rules_version
        self.source_event_id = source_event_id
        self.correlation_id = correlation_id
        self.township = township
        self.village = village
        self.status = ReferralStatus.requested.value

    def change_status(self, to: ReferralStatus, actor_agency: str, reason: str | None) -> None:
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
        self._status_changed(
            status=to.value, actor_agency=actor_agency, reason=reason,
            case_id=self.case_id, owner_agency=self.owner_agency, correlation_id=self.correlation_id,
        )

    @event("StatusChanged")
    def _status_changed(
        self, status: str, actor_agency: str, reason: str | None,
        case_id: UUID, owner_agency: str, correlation_id: UUID,
    ) -> None:
        # case, owner and correlation travel in the event so that it maps to its contract on its own.
        self.status = status
