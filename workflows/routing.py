"""The routing workflow: case events in, referrals opened at the responsible agencies out.

One long-lived Prefect flow run consumes case events in batches; each batch is two Prefect tasks (plan with the
rules, then open through the referral service, with retries). A flow run per event would cost about a second
each (ARCHITECTURE.md); a task costs milliseconds. The source is committed only after the referrals are open,
and referral ids are derived from the event, so a batch handled twice opens nothing twice.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import TypeVar, cast

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.utilities.annotations import quote

from contracts.commands import OpenReferral
from contracts.envelope import CloudEvent
from contracts.events import ReferralReturned
from contracts.routing import RoutingRules
from huhang.parking import ParkedEvents, handle_or_park, retry_parked, unavailable
from huhang.streams import EventSource, rewind_source
from workflows.referral_gateway import ReferralGateway
from workflows.rules_provider import RulesProvider

logger = logging.getLogger(__name__)
T = TypeVar("T")


REROUTE_NAMESPACE = uuid.UUID("5e7a9c1b-3d5f-4a7c-9e1b-2c4e6a8c0e3f")


def routable(rules: RoutingRules, event: CloudEvent) -> bool:
    return isinstance(event, ReferralReturned) or event.type in rules.event_types  # type: ignore[attr-defined]


def reroute(event: ReferralReturned) -> OpenReferral | None:
    """A rejected or failed referral goes to the next agency of its fallback list (none left: nothing)."""
    d = event.data
    if not d.next_agencies:
        return None
    owner, rest = d.next_agencies[0], d.next_agencies[1:]
    due_at = event.time + timedelta(seconds=d.due_in_seconds)
    return OpenReferral(
        referral_id=uuid.uuid5(REROUTE_NAMESPACE, f"{event.id}/{owner.value}"), case_id=d.case_id,
        child_id=d.child_id, owner_agency=owner, requester_agency=d.requester_agency, referral_type=d.referral_type,
        priority=d.priority, due_at=due_at, complete_by=due_at + timedelta(seconds=d.complete_within_seconds),
        fallback_agencies=rest, plan_tasks=d.plan_tasks, rule_ids=(*d.rule_ids, RETURNED_RULE_ID),
        rules_version=d.rules_version, source_event_id=event.id, correlation_id=event.correlationid,
        township=d.township, village=d.village,
    )


RETURNED_RULE_ID = "returned-to-next-agency"


def plan_referrals(rules: RoutingRules, events: Sequence[CloudEvent]) -> list[OpenReferral]:
    """Pure: the referrals the rules demand for these events."""
    commands: list[OpenReferral] = []
    for event in events:
        if isinstance(event, ReferralReturned):
            rerouted = reroute(event)
            commands.extend([rerouted] if rerouted else [])
            continue
        if event.type not in rules.event_types:  # type: ignore[attr-defined]
            continue
        data = event.data  # type: ignore[attr-defined]
        for routed in rules.route(event):
            commands.append(
                OpenReferral(
                    referral_id=routed.referral_id, case_id=data.case_id, child_id=data.child_id,
                    owner_agency=routed.agency, requester_agency=event.actoragency,
                    referral_type=routed.referral_type, priority=routed.priority, due_at=routed.due_at,
                    complete_by=routed.complete_by, fallback_agencies=routed.fallback_agencies,
                    plan_tasks=routed.plan_tasks, rule_ids=routed.rule_ids, rules_version=routed.rules_version,
                    source_event_id=event.id, correlation_id=event.correlationid,
                    township=data.township, village=data.village,
                )
            )
    return commands


@task(name="plan-referrals", cache_policy=NO_CACHE)
def plan_referrals_task(rules: RoutingRules, events: Sequence[CloudEvent]) -> list[OpenReferral]:
    return plan_referrals(rules, events)


@task(name="open-referrals", cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[0.5, 2, 5])
def open_referrals_task(gateway: ReferralGateway, commands: list[OpenReferral]) -> int:
    return gateway.open(commands)


def _as_is(value: T) -> T:
    """Hand a parameter to a Prefect task without Prefect inspecting it (``quote``)."""
    return cast(T, quote(value))


class Router:
    """Routes batches of case events. A batch that keeps failing (``max_attempts`` flow runs in a row, faults of the
    referral service's availability excepted) is split to park the events that cannot be routed
    (``huhang.parking``); the rest is routed and committed. Parked events handed back are routed at the next look."""

    NAME = "router"

    def __init__(
        self, source: EventSource, gateway: ReferralGateway, rules: RoutingRules | RulesProvider, *,
        parking: ParkedEvents | None = None, max_attempts: int = 5, retry_check_s: float = 1.0,
    ) -> None:
        self.source = source
        self.gateway = gateway
        self._rules = rules
        self.parking = parking
        self.max_attempts = max_attempts
        self.retry_check_s = retry_check_s
        self._failures = 0
        self._next_retry_check = 0.0

    @property
    def rules(self) -> RoutingRules:
        """The rules in force now (a provider reloads a changed rules file)."""
        return self._rules.current() if isinstance(self._rules, RulesProvider) else self._rules

    def route_batch(self, poll_timeout_s: float) -> int | None:
        """Route one batch inside the running flow; None when there was nothing to route."""
        self._retry_parked()
        batch = self.source.poll(poll_timeout_s)
        if batch is None:
            return None
        rules = self.rules
        events = [e for e in batch.events if routable(rules, e)]
        opened = 0
        if events:
            try:
                # quote(): Prefect need not walk the parameters (it cannot store them anyway); measured ~30 % of
                # the router's busy time otherwise.
                commands = plan_referrals_task(_as_is(rules), _as_is(events))
                if commands:
                    opened = open_referrals_task(_as_is(self.gateway), _as_is(commands))
            except Exception as exc:
                opened = self._park_poison(rules, events, exc)
            self._failures = 0
        batch.commit()
        return opened

    def _route_directly(self, rules: RoutingRules, events: Sequence[CloudEvent]) -> int:
        """Plan and open without Prefect tasks (no task retries): for splitting a failing batch."""
        commands = plan_referrals(rules, events)
        return self.gateway.open(commands) if commands else 0

    def _park_poison(self, rules: RoutingRules, events: Sequence[CloudEvent], exc: Exception) -> int:
        """Raise (the flow run fails; the batch comes again) until the batch failed ``max_attempts`` times for a
        reason of its own; then route what can be routed and park the rest."""
        if self.parking is None or unavailable(exc):
            raise exc
        self._failures += 1
        if self._failures < self.max_attempts:
            raise exc
        opened = 0

        def route(part: Sequence[CloudEvent]) -> None:
            nonlocal opened
            opened += self._route_directly(rules, part)

        handle_or_park(route, events, parking=self.parking, consumer=self.NAME, attempts=self._failures)
        return opened

    def _retry_parked(self) -> None:
        if self.parking is None or time.monotonic() < self._next_retry_check:
            return
        self._next_retry_check = time.monotonic() + self.retry_check_s
        rules = self.rules

        def route(events: Sequence[CloudEvent]) -> None:
            self._route_directly(rules, events)

        retry_parked(route, self.parking, self.NAME)


@flow(name="route-case-events", validate_parameters=False, log_prints=False)
def route_case_events(
    router: Router, stop: threading.Event, max_batches: int | None = None, poll_timeout_s: float = 0.5
) -> int:
    """Route case events until stopped (or ``max_batches`` non-empty batches, for jobs and tests)."""
    opened, batches = 0, 0
    while not stop.is_set() and (max_batches is None or batches < max_batches):
        result = router.route_batch(poll_timeout_s)
        if result is not None:
            opened += result
            batches += 1
    return opened


def run_router(router: Router, stop: threading.Event) -> None:
    """Keep the routing flow running; after a failed run, start another (the batch comes again)."""
    backoff = 1.0
    while not stop.is_set():
        try:
            route_case_events(router, stop)
        except Exception as exc:
            # Case events carry codes and ids only, so the reason is safe to log.
            logger.warning(
                "routing flow run failed (%s: %.200s); restarting in %.0fs", type(exc).__name__, exc, backoff
            )
            rewind_source(router.source)
            stop.wait(backoff)
            backoff = min(backoff * 2, 30.0)
