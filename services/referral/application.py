"""Referral: opens referrals (idempotently) and keeps their lifecycle."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from contracts.commands import OpenReferral
from contracts.vocabulary import ReferralStatus
from huhang.eventstore import ServiceApplication
from huhang.groupcommit import GroupCommitter
from huhang.problems import DomainError, NotFound
from services.referral.domain import Referral


class StaleVersion(DomainError):
    status = 412
    type = "urn:huhang:problem:stale-version"


@dataclass(frozen=True)
class Opened:
    referral_id: UUID
    created: bool


class ReferralApplication(ServiceApplication):
    name = "referral"

    def __init__(self, env: dict[str, str] | None = None) -> None:
        super().__init__(env)
        self._committer = GroupCommitter(self)

    def open_referrals(self, commands: Sequence[OpenReferral]) -> list[Opened]:
        """Open each referral not opened before; a repeated command is a no-op (ids are deterministic)."""
        results: dict[UUID, bool] = {}
        new: list[Referral] = []
        for cmd in commands:
            if cmd.referral_id in results or self._exists(cmd.referral_id):
                results.setdefault(cmd.referral_id, False)
                continue
            new.append(self._new_referral(cmd))
            results[cmd.referral_id] = True
        if new:
            try:
                self._committer.save(*new)
            except IntegrityError:
                for cmd in commands:  # someone opened some of them meanwhile: open the rest one by one
                    if results.get(cmd.referral_id):
                        results[cmd.referral_id] = self._open_one(cmd)
        return [Opened(rid, created) for rid, created in results.items()]

    def _open_one(self, cmd: OpenReferral) -> bool:
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
            township=cmd.township, village=cmd.village,
        )

    def _exists(self, referral_id: UUID) -> bool:
        return bool(self.recorder.select_events(referral_id, limit=1))

    def change_status(
        self, referral_id: UUID, to: ReferralStatus, actor_agency: str, reason: str | None,
        expected_version: int | None = None,
    ) -> Referral:
        referral = self.get(referral_id)
        if expected_version is not None and referral.version != expected_version:
            raise StaleVersion(
                f"The referral is at version {referral.version}, not {expected_version}: reload and retry."
            )
        referral.change_status(to, actor_agency, reason)
        try:
            self._committer.save(referral)
        except IntegrityError:
            raise StaleVersion("The referral was changed meanwhile: reload and retry.") from None
        return referral

    def get(self, referral_id: UUID) -> Referral:
        try:
            referral: Any = self.repository.get(referral_id)
        except AggregateNotFoundError:
            raise NotFound(f"No referral with id {referral_id}.") from None
        if not isinstance(referral, Referral):
            raise NotFound(f"No referral with id {referral_id}.")
        return referral

    def history(self, referral_id: UUID) -> list[dict[str, Any]]:
        out = []
        for e in self.events.get(referral_id):
            e = cast(Any, e)
            if isinstance(e, Referral.StatusChanged):  # type: ignore[attr-defined]
                out.append({"status": e.status, "actor_agency": e.actor_agency, "reason": e.reason,
                            "time": e.timestamp, "version": e.originator_version})
            else:
                out.append({"status": ReferralStatus.requested.value, "actor_agency": e.requester_agency,
                            "reason": ",".join(e.rule_ids), "time": e.timestamp, "version": e.originator_version})
        return out
