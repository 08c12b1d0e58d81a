"""The relief desk: the directory, needs, matches and the figures, over the referral service's own store.

A bounded context inside the referral service: its aggregates (``Organisation``, ``Need``) live in the referral
store beside the referrals, and a match that passes both gates opens an ordinary ``Referral`` (owner agency
``charity``) in the same transaction as the need's ``MatchReferred`` event, so the two never disagree.

The projection (directory, usage, figures) follows the store's notification log from where it last read, so a
second process of the service sees the first one's changes on its next query; it decodes only this context's
events (by topic), so it does not open the sealed referral events.
"""

from __future__ import annotations

import statistics
import threading
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from contracts.agencies import LEAD_AGENCY, Agency
from contracts.vocabulary import ChildCategory, NeedCategory, Outcome, Priority, ReferralStatus
from huhang.auth.principal import Principal, Role
from huhang.problems import FieldError, NotFound, Unprocessable
from services.referral.application import ReferralApplication
from services.referral.domain import NotPermitted, Referral
from services.referral.matching import MatchIndex, NeedFacts, Ranked, Usage, Weights
from services.referral.needs import CHARITY_REFERRAL_TYPE, NEED_NAMESPACE, MatchOutcome, MatchStatus, Need
from services.referral.resources import Organisation, OrganisationDocument, organisation_aggregate_id, rows_of

TOPIC_PREFIXES = ("services.referral.resources:Organisation.", "services.referral.needs:Need.")
CHARITY_PLAN_TASKS = [9, 17]
ACCEPT_WITHIN = timedelta(days=3)
COMPLETE_WITHIN = timedelta(days=30)
LIVE = (MatchStatus.proposed.value, MatchStatus.referred.value)


@dataclass
class NeedRow:
    need_id: UUID
    case_id: UUID
    category: str
    township: str
    status: str = "open"
    match_id: UUID | None = None
    service_id: UUID | None = None
    organisation_id: UUID | None = None
    match_status: str | None = None
    referred_at: datetime | None = None


@dataclass
class Projection:
    position: int = 0
    index: MatchIndex = field(default_factory=MatchIndex)
    members: dict[UUID, frozenset[str]] = field(default_factory=dict)
    needs: dict[UUID, NeedRow] = field(default_factory=dict)
    match_to_need: dict[UUID, UUID] = field(default_factory=dict)
    response_hours: dict[UUID, list[float]] = field(default_factory=lambda: defaultdict(list))


class ReliefDesk:
    def __init__(self, app: ReferralApplication) -> None:
        self.app = app
        self._p = Projection()
        self._lock = threading.Lock()
        self._usage: tuple[int, dict[UUID, Usage]] | None = None

    # --- the projection --------------------------------------------------------------------------------------

    def refresh(self) -> Projection:
        """Read the notifications written since the last call (this process's or another's)."""
        with self._lock:
            recorder = cast(Any, self.app.recorder)
            while True:
                batch = recorder.select_notifications(self._p.position + 1, 1000, topics=())
                if not batch:
                    return self._p
                for notification in batch:
                    self._p.position = notification.id
                    if notification.topic.startswith(TOPIC_PREFIXES):
                        self._apply(self.app.mapper.to_domain_event(notification))

    def _apply(self, e: Any) -> None:
        p = self._p
        name = type(e).__name__
        if isinstance(e, (Organisation.Registered, Organisation.Updated)):  # type: ignore[attr-defined]
            doc = OrganisationDocument.model_validate(e.document)
            p.index.remove_organisation(doc.id)
            p.index.replace_many(rows_of(doc))
            p.members[doc.id] = frozenset(doc.members)
            return
        if name == "Recorded":
            p.needs[e.originator_id] = NeedRow(e.originator_id, e.case_id, e.category, e.township)
            return
        row = p.needs.get(e.originator_id)
        if row is None:
            return
        if name == "MatchProposed":
            row.status, row.match_id, row.service_id = "matched", e.match_id, e.service_id
            row.organisation_id, row.match_status = e.organisation_id, MatchStatus.proposed.value
            p.match_to_need[e.match_id] = e.originator_id
        elif name == "MatchReferred":
            row.match_status, row.referred_at = MatchStatus.referred.value, e.timestamp
        elif name == "MatchAccepted" and row.referred_at is not None and row.organisation_id is not None:
            p.response_hours[row.organisation_id].append((e.timestamp - row.referred_at).total_seconds() / 3600)
        elif name == "MatchWithdrawn":
            row.status, row.match_status = "open", MatchStatus.withdrawn.value
        elif name == "OutcomeRecorded":
            row.status, row.match_status = "met", MatchStatus.completed.value

    def usage(self) -> dict[UUID, Usage]:
        """Places taken and response times per service; computed again only after the store changed."""
        p = self._p
        cached = self._usage
        if cached is not None and cached[0] == p.position:
            return cached[1]
        self._usage = (p.position, self._compute_usage())
        return self._usage[1]

    def _compute_usage(self) -> dict[UUID, Usage]:
        p = self._p
        in_use: Counter[UUID] = Counter(
            r.service_id for r in p.needs.values() if r.service_id and r.match_status in LIVE
        )
        medians = {org: statistics.median(h) for org, h in p.response_hours.items() if h}
        return {
            row.service_id: Usage(in_use[row.service_id], medians.get(row.organisation_id))
            for row in p.index.rows()
        }

    # --- the directory ---------------------------------------------------------------------------------------

    def organisation(self, organisation_id: UUID) -> Organisation:
        try:
            found: Any = self.app.repository.get(organisation_aggregate_id(organisation_id))
        except AggregateNotFoundError:
            raise NotFound(f"No organisation with id {organisation_id}.") from None
        return cast(Organisation, found)

    def may_edit(self, principal: Principal, organisation_id: UUID) -> bool:
        """The lead agency's officers, the platform, and the organisation's own members."""
        if principal.has(Role.system):
            return True
        if principal.agency is LEAD_AGENCY and principal.has(Role.agency_officer, Role.supervisor):
            return True
        return self.is_member(principal, organisation_id)

    def is_member(self, principal: Principal, organisation_id: UUID) -> bool:
        members = self.refresh().members.get(organisation_id, frozenset())
        return principal.agency is Agency.charity and principal.subject in members

    def save_organisation(self, document: OrganisationDocument, principal: Principal) -> tuple[bool, bool]:
        """Register or update; returns (created, changed). Members are changed by the lead agency only."""
        data = document.model_dump(mode="json")
        try:
            existing = self.organisation(document.id)
        except NotFound:
            existing = None
        lead = principal.has(Role.system) or principal.agency is LEAD_AGENCY
        if not self.may_edit(principal, document.id) or (existing is None and not lead):
            raise NotPermitted(
                "Only the lead agency, or the organisation's own members, keep its directory entry.",
                errors=[FieldError(field="id", reason="not an organisation the caller acts for")],
            )
        if not lead and sorted(document.members) != sorted(existing.parsed.members if existing else []):
            raise NotPermitted("Only the lead agency binds principals to an organisation.",
                               errors=[FieldError(field="members", reason="changed by a non-lead caller")])
        if existing is None:
            self.app.save(Organisation(organisation_id=document.id, document=data, actor=principal.subject))
            return True, True
        changed = existing.update(data, principal.subject)
        if changed:
            self.app.save(existing)
        return False, changed

    # --- needs and matches -----------------------------------------------------------------------------------

    def need(self, need_id: UUID) -> Need:
        try:
            found: Any = self.app.repository.get(need_id)
        except AggregateNotFoundError:
            raise NotFound(f"No need with id {need_id}.") from None
        if not isinstance(found, Need):
            raise NotFound(f"No need with id {need_id}.")
        return found

    def record_need(
        self, *, case_id: UUID, child_id: UUID, category: NeedCategory, township: str, village: str,
        birth_date: date, child_categories: list[ChildCategory], found_by: Agency, details: dict[str, str],
        key: str,
    ) -> tuple[Need, bool]:
        need_id = uuid.uuid5(NEED_NAMESPACE, f"{case_id}/{category.value}/{key}")
        try:
            return self.need(need_id), False
        except NotFound:
            pass
        need = Need(need_id=need_id, case_id=case_id, child_id=child_id, category=category.value,
                    township=township, village=village, birth_date=birth_date,
                    child_categories=[c.value for c in child_categories], found_by=found_by.value, details=details)
        self.app.save(need)
        return need, True

    def matches(self, need: Need, on: date, weights: Weights = Weights(), limit: int = 20) -> list[Ranked]:
        projection = self.refresh()
        facts = NeedFacts(need.category_code, need.birth_date, need.categories, need.township, need.village)
        return projection.index.match(facts, on, self.usage(), weights, limit)

    def propose(self, need: Need, service_id: UUID, on: date, actor: Agency) -> UUID:
        """A match to one of the need's eligible services (checked again now: capacity may have gone)."""
        eligible = {r.row.service_id: r for r in self.matches(need, on, limit=10_000)}
        if service_id not in eligible:
            raise Unprocessable(
                "The service is not eligible for this need today (category, age, area, capacity or status).",
                errors=[FieldError(field="service_id", reason="not among the need's eligible services")],
            )
        match_id = need.propose(service_id, eligible[service_id].row.organisation_id, actor.value)
        self.app.save(need)
        return match_id

    def need_of_match(self, match_id: UUID) -> Need:
        need_id = self.refresh().match_to_need.get(match_id)
        if need_id is None:
            raise NotFound(f"No match with id {match_id}.")
        return self.need(need_id)

    def approve(self, need: Need, match_id: UUID, actor: Agency, now: datetime) -> Need:
        if need.approve(match_id, actor.value):
            return self._refer(need, match_id, now)
        self.app.save(need)
        return need

    def consent(self, need: Need, match_id: UUID, actor: Agency, consent_on: date, given_by: str,
                now: datetime) -> Need:
        if need.record_consent(match_id, actor.value, consent_on, given_by):
            return self._refer(need, match_id, now)
        self.app.save(need)
        return need

    def _refer(self, need: Need, match_id: UUID, now: datetime) -> Need:
        """Both gates hold: the referral to the organisation, saved with the need in one transaction."""
        referral_id = uuid.uuid5(NEED_NAMESPACE, f"referral/{match_id}")
        need.referred(match_id, referral_id)
        referral = Referral(
            referral_id=referral_id, case_id=need.case_id, child_id=need.child_id,
            owner_agency=Agency.charity.value, requester_agency=LEAD_AGENCY.value,
            referral_type=CHARITY_REFERRAL_TYPE, priority=Priority.routine.value, due_at=now + ACCEPT_WITHIN,
            plan_tasks=CHARITY_PLAN_TASKS, rule_ids=[f"relief-match/{need.category}"], rules_version="relief-1",
            source_event_id=match_id, correlation_id=need.id, township=need.township, village=need.village,
            complete_by=now + ACCEPT_WITHIN + COMPLETE_WITHIN, fallback_agencies=[],
        )
        self.app.save(need, referral)
        return need

    def check_member(self, principal: Principal, need: Need) -> UUID:
        match = need.match
        organisation_id = match["organisation_id"] if match else None
        if organisation_id is None or not (principal.has(Role.system) or self.is_member(principal, organisation_id)):
            raise NotPermitted("Only the matched organisation acts on this match.",
                               errors=[FieldError(field="match_id", reason="not matched to the caller")])
        return cast(UUID, organisation_id)

    def accept(self, need: Need, match_id: UUID, principal: Principal) -> Need:
        self.check_member(principal, need)
        need.accept(match_id, principal.subject)
        referral = self.app.get(need.match["referral_id"]) if need.match else None
        assert referral is not None
        referral.change_status(ReferralStatus.accepted, Agency.charity.value)
        self.app.save(need, referral)
        return need

    def record_outcome(self, need: Need, match_id: UUID, outcome: MatchOutcome, principal: Principal) -> Need:
        """The help given: the need is met and the referral completed (started first when it was only accepted)."""
        self.check_member(principal, need)
        need.record_outcome(match_id, outcome, principal.subject)
        assert need.match is not None
        referral = self.app.get(need.match["referral_id"])
        if ReferralStatus(referral.status) in (ReferralStatus.requested, ReferralStatus.received):
            referral.change_status(ReferralStatus.accepted, Agency.charity.value)
        if ReferralStatus(referral.status) is ReferralStatus.accepted:
            referral.change_status(ReferralStatus.in_progress, Agency.charity.value)
        referral.change_status(ReferralStatus.completed, Agency.charity.value, outcome=outcome.outcome)
        self.app.save(need, referral)
        return need

    def withdraw(self, need: Need, match_id: UUID, principal: Principal, reason_code: str, *,
                 by_organisation: bool) -> Need:
        """The lead agency withdraws a match (its referral, if open, is cancelled by the requester), or the
        organisation declines it (its referral, if open and not yet accepted, is rejected by the owner). The need
        is open to be matched again."""
        if by_organisation:
            self.check_member(principal, need)
        need.withdraw(match_id, principal.agency.value, reason_code)
        referral_id = need.match["referral_id"] if need.match else None
        if referral_id is None:
            self.app.save(need)
            return need
        referral = self.app.get(referral_id)
        if by_organisation:
            referral.change_status(ReferralStatus.rejected, Agency.charity.value, reason_code=reason_code)
        else:
            referral.change_status(ReferralStatus.cancelled, LEAD_AGENCY.value, note=f"match withdrawn: {reason_code}")
        self.app.save(need, referral)
        return need

    def offers(self, organisation_id: UUID, today: date) -> list[dict[str, Any]]:
        """The organisation's live matches as it may see them (de-identified until both gates hold)."""
        projection = self.refresh()
        out = []
        for row in projection.needs.values():
            if row.organisation_id == organisation_id and row.match_status in (*LIVE, MatchStatus.completed.value):
                out.append(self.need(row.need_id).view_for_organisation(organisation_id, today))
        return out

    def needs_of_case(self, case_id: UUID) -> list[Need]:
        return [self.need(r.need_id) for r in self.refresh().needs.values() if r.case_id == case_id]

    def directory(self) -> list[Organisation]:
        """Every organisation of the directory (the aggregates, read through the projection's ids)."""
        return [self.organisation(org_id) for org_id in sorted(self.refresh().members, key=str)]

    # --- figures ---------------------------------------------------------------------------------------------

    def figures(self) -> dict[str, Any]:
        """Needs open, matched, met by category and township; services under or over used (ids and counts)."""
        projection = self.refresh()
        by: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
        for row in projection.needs.values():
            by[(row.category, row.township)][row.status] += 1
        usage = self.usage()
        services = []
        for service in projection.index.rows():
            used = usage.get(service.service_id, Usage()).in_use
            share = None if not service.capacity else round(used / service.capacity, 3)
            load = "unlimited" if share is None else "over" if share >= 1 else "under" if share < 0.25 else "normal"
            services.append({"service_id": service.service_id, "organisation_id": service.organisation_id,
                             "category": service.category.value, "capacity": service.capacity, "in_use": used,
                             "load": load})
        return {
            "needs": [{"category": c, "township": t, "open": n["open"], "matched": n["matched"], "met": n["met"]}
                      for (c, t), n in sorted(by.items())],
            "services": sorted(services, key=lambda s: (s["load"], str(s["service_id"]))),
            "as_of": datetime.now(UTC),
        }


def outcome_of(outcome: Outcome, delivered_on: date, amount_yuan: Any, service_given: str | None) -> MatchOutcome:
    return MatchOutcome(outcome, delivered_on, amount_yuan, service_given)
