"""Referral: opens referrals (idempotently) and keeps their lifecycle, transfers and escalations."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from contracts.commands import OpenReferral
from contracts.vocabulary import EscalationKind, Outcome, Priority, ReferralStatus
from huhang.eventstore import ServiceApplication, project
from huhang.groupcommit import GroupCommitter
from huhang.personal import ChildKeys
from huhang.problems import DomainError, FieldError, NotFound
from services.referral.domain import SUPERVISORS, NotPermitted, Referral, supervisor_of

ESCALATION_NAMESPACE = uuid.UUID("a3c1e5f7-2b4d-4e6f-8a0c-1d3e5f7a9b2c")
SUPERVISION_TYPE = "overdue_referral_supervision"
SUPERVISION_DUE = timedelta(days=1)


class StaleVersion(DomainError):
    status = 412
    type = "urn:huhang:problem:stale-version"


@dataclass
class ReadReferral:
    """A referral with the stored events it was made from: a request that answers with the referral and its
    history (or acts on it, then answers) reads the events once. An action through :meth:`ReferralApplication._act`
    keeps it current: the events it saved are added, or the whole is read again when it had to retry."""

    referral: Referral
    events: list[Any]

    def history(self) -> list[dict[str, Any]]:
        return history_of(self.events)


@dataclass(frozen=True)
class Opened:
    referral_id: UUID
    created: bool


@dataclass(frozen=True)
class Escalation:
    referral_id: UUID
    level: int
    kind: EscalationKind
    supervision_referral_id: UUID | None


class ReferralApplication(ServiceApplication):
    name = "referral"

    def __init__(self, env: dict[str, str] | None = None, *, child_keys: ChildKeys | None = None) -> None:
        super().__init__(env, child_keys=child_keys)
        self._committer = GroupCommitter(self)

    # --- opening ---------------------------------------------------------------------------------------------

    def open_referrals(self, commands: Sequence[OpenReferral]) -> list[Opened]:
        """Open each referral not opened before; a repeated command is a no-op (ids are deterministic)."""
        unique = list({cmd.referral_id: cmd for cmd in commands}.values())
        try:
            # The common case: all new, one save. A repeat (redelivery) conflicts and takes the slow path.
            self._committer.save(*(self._new_referral(cmd) for cmd in unique))
        except IntegrityError:
            return [Opened(cmd.referral_id, self._open_one(cmd)) for cmd in unique]
        return [Opened(cmd.referral_id, True) for cmd in unique]

    def _open_one(self, cmd: OpenReferral) -> bool:
        if self._exists(cmd.referral_id):
            return False
        try:
            self._committer.save(self._new_referral(cmd))
        except IntegrityError:
            return False
        return True

    @staticmethod
    def _new_referral(cmd: OpenReferral) -> Referral:
        return Referral(
            referral_id=cmd.referral_id, case_id=cmd.case_id, child_id=cmd.child_id,
            owner_agency=cmd.owner_agency.value, requester_agency=cmd.requester_agency.value,
            referral_type=cmd.referral_type, priority=cmd.priority.value, due_at=cmd.due_at,
            plan_tasks=list(cmd.plan_tasks), rule_ids=list(cmd.rule_ids), rules_version=cmd.rules_version,
            source_event_id=cmd.source_event_id, correlation_id=cmd.correlation_id,
            township=cmd.township, village=cmd.village, complete_by=cmd.complete_by,
            fallback_agencies=[a.value for a in cmd.fallback_agencies],
        )

    def _exists(self, referral_id: UUID) -> bool:
        return bool(self.recorder.select_events(referral_id, limit=1))

    # --- commands on one referral ----------------------------------------------------------------------------

    def _act(
        self, referral_id: UUID, expected_version: int | None, command: Callable[[Referral], None],
        loaded: ReadReferral | None = None,
    ) -> Referral:
        """Apply ``command`` to the referral and save it. ``loaded``: the referral as this request read it a moment
        before (its access check); if another request changed the referral meanwhile and the caller named no
        version (``If-Match``), it is read again once and the command applied to that."""
        read = loaded if loaded is not None else self.read(referral_id)
        may_read_again = loaded is not None and expected_version is None
        while True:
            referral = read.referral
            if expected_version is not None and referral.version != expected_version:
                raise StaleVersion(
                    f"The referral is at version {referral.version}, not {expected_version}: reload and retry."
                )
            command(referral)
            new = list(referral.pending_events)
            try:
                self._committer.save(referral)
            except IntegrityError:
                if not may_read_again:
                    raise StaleVersion("The referral was changed meanwhile: reload and retry.") from None
                may_read_again = False
                fresh = self.read(referral_id)
                read.referral, read.events = fresh.referral, fresh.events
                continue
            read.events.extend(new)
            return referral

    def change_status(
        self, referral_id: UUID, to: ReferralStatus, actor_agency: str, reason: str | None = None,
        expected_version: int | None = None, *, reason_code: str | None = None, outcome: Outcome | None = None,
        loaded: ReadReferral | None = None,
    ) -> Referral:
        return self._act(
            referral_id, expected_version,
            lambda r: r.change_status(to, actor_agency, reason_code=reason_code, outcome=outcome, note=reason),
            loaded,
        )

    def propose_transfer(
        self, referral_id: UUID, to_agency: str, actor_agency: str, note: str | None, expected_version: int | None,
        loaded: ReadReferral | None = None,
    ) -> Referral:
        return self._act(
            referral_id, expected_version, lambda r: r.propose_transfer(to_agency, actor_agency, note), loaded
        )

    def answer_transfer(
        self, referral_id: UUID, actor_agency: str, accept: bool, note: str | None, expected_version: int | None,
        loaded: ReadReferral | None = None,
    ) -> Referral:
        return self._act(
            referral_id, expected_version, lambda r: r.answer_transfer(actor_agency, accept=accept, note=note),
            loaded,
        )

    def reassign(
        self, referral_id: UUID, officer_id: str, actor_agency: str, expected_version: int | None,
        loaded: ReadReferral | None = None,
    ) -> Referral:
        return self._act(referral_id, expected_version, lambda r: r.reassign(officer_id, actor_agency), loaded)

    def escalate_by_supervisor(self, referral_id: UUID, actor_agency: str, now: datetime) -> Escalation:
        referral = self.get(referral_id)
        if actor_agency not in SUPERVISORS:
            raise NotPermitted(
                "Only a supervising agency may escalate a referral.",
                errors=[FieldError(field="agency", reason="not a supervising agency")],
            )
        return self._escalate(
            referral, referral.escalation_level + 1, EscalationKind.supervisor, now, actor_agency, now
        )

    # --- deadlines -------------------------------------------------------------------------------------------

    def escalate_if_due(self, referral_id: UUID, now: datetime) -> Escalation | None:
        """Escalate one referral if a higher level is due; running it again escalates nothing twice."""
        referral = self.get(referral_id)
        due = referral.escalation_due(now, referral.created_on)
        if due is None:
            return None
        level, kind, since = due
        # The sweep acts for the supervising agency (who is asked to act at level 2).
        return self._escalate(referral, level, kind, since, supervisor_of(referral.owner_agency), now)

    def _escalate(
        self, referral: Referral, level: int, kind: EscalationKind, since: datetime, actor: str, now: datetime
    ) -> Escalation:
        referral.escalate(level, kind, since, actor)
        supervision: Referral | None = None
        if level >= 2 and kind is not EscalationKind.supervisor:
            supervision = self._supervision_referral(referral, level, now)
        try:
            self._committer.save(referral, *([supervision] if supervision else []))
        except IntegrityError:
            raise StaleVersion("The referral was changed meanwhile: reload and retry.") from None
        return Escalation(referral.id, level, kind, supervision.id if supervision else None)

    @staticmethod
    def _supervision_referral(referral: Referral, level: int, now: datetime) -> Referral:
        """At level 2 the supervising agency is asked to act, in a referral of its own, due a day from now."""
        supervisor = supervisor_of(referral.owner_agency)
        now_due = now + SUPERVISION_DUE
        return Referral(
            referral_id=uuid.uuid5(ESCALATION_NAMESPACE, f"{referral.id}/{level}"), case_id=referral.case_id,
            child_id=referral.child_id, owner_agency=supervisor, requester_agency=supervisor,
            referral_type=SUPERVISION_TYPE, priority=Priority.asap.value, due_at=now_due,
            plan_tasks=referral.plan_tasks, rule_ids=[f"escalation-level-{level}"],
            rules_version=referral.rules_version, source_event_id=referral.id,
            correlation_id=referral.correlation_id, township=referral.township, village=referral.village,
            fallback_agencies=[],
        )

    # --- queries ---------------------------------------------------------------------------------------------

    def get(self, referral_id: UUID) -> Referral:
        try:
            referral: Any = self.repository.get(referral_id)
        except AggregateNotFoundError:
            raise NotFound(f"No referral with id {referral_id}.") from None
        if not isinstance(referral, Referral):
            raise NotFound(f"No referral with id {referral_id}.")
        return referral

    def read(self, referral_id: UUID) -> ReadReferral:
        """The referral and its stored events, read once."""
        events = list(self.events.get(referral_id))
        referral = project(None, events) if events else None
        if not isinstance(referral, Referral):
            raise NotFound(f"No referral with id {referral_id}.")
        return ReadReferral(referral, events)

    def history(self, referral_id: UUID) -> list[dict[str, Any]]:
        """Every step, with actor, time and reason (notes stay here, never in integration events)."""
        return history_of(self.events.get(referral_id))


def history_of(events: Iterable[Any]) -> list[dict[str, Any]]:
    """A referral's steps from its stored events: actor, time and reason of each."""
    out = []
    for stored in events:
        e = cast(Any, stored)
        entry: dict[str, Any] = {"step": type(e).__name__, "time": e.timestamp, "version": e.originator_version}
        if isinstance(e, Referral.Requested):  # type: ignore[attr-defined]
            entry.update(status="requested", actor_agency=e.requester_agency, rule_ids=list(e.rule_ids),
                         rules_version=e.rules_version, owner_agency=e.owner_agency)
        elif isinstance(e, Referral.StatusChanged):  # type: ignore[attr-defined]
            entry.update(status=e.status, actor_agency=e.actor_agency, reason_code=e.reason_code,
                         outcome=e.outcome, note=e.note)
        elif isinstance(e, Referral.Transferred):  # type: ignore[attr-defined]
            entry.update(actor_agency=e.to_agency, from_agency=e.from_agency, to_agency=e.to_agency)
        elif isinstance(e, Referral.TransferProposed):  # type: ignore[attr-defined]
            entry.update(actor_agency=e.actor_agency, to_agency=e.to_agency, note=e.note)
        elif isinstance(e, Referral.TransferDeclined):  # type: ignore[attr-defined]
            entry.update(actor_agency=e.actor_agency, note=e.note)
        elif isinstance(e, Referral.Reassigned):  # type: ignore[attr-defined]
            entry.update(actor_agency=e.actor_agency, officer_id=e.officer_id)
        elif isinstance(e, Referral.Escalated):  # type: ignore[attr-defined]
            entry.update(actor_agency=e.actor_agency, level=e.level, kind=e.kind,
                         supervising_agency=e.supervising_agency)
        elif isinstance(e, Referral.Returned):  # type: ignore[attr-defined]
            entry.update(actor_agency=e.returned_by, status=e.status, reason_code=e.reason_code,
                         next_agencies=list(e.next_agencies))
        out.append(entry)
    return out
