"""Intake's composition: the only place that builds its infrastructure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, FastAPI

from contracts.envelope import CloudEvent
from huhang.access import break_glass
from huhang.access.access_log import AccessLog
from huhang.access.api import break_glass_router, install_access
from huhang.access.break_glass import BreakGlass
from huhang.access.case_access import CaseAccess
from huhang.idempotency import IdempotencyStore
from huhang.integrity import CaseIntegrity
from huhang.personal import child_keys
from huhang.service import Subscription
from huhang.settings import Settings
from huhang.storage import eventsourcing_env, read_model_engine
from huhang.streams import DomainToContract, Positions
from services.intake.api import children, router
from services.intake.application import IntakeApplication
from services.intake.erasure_api import router as erasure_router
from services.intake.history_api import router as history_router
from services.intake.inbound import to_integration_events as inbound_integration_events
from services.intake.inbound_api import router as inbound_router
from services.intake.integration import to_integration_events
from services.intake.integrity_api import router as integrity_router
from services.intake.province_sync import router as province_sync_router
from services.intake.survey_api import router as survey_router
from services.intake.timeline import CaseTimeline

ALL_CASE_EVENT_SOURCES = ("intake", "referral", "guardianship")


def intake_integration_events(domain_event: Any) -> Sequence[CloudEvent]:
    """Intake's one mapping: its own aggregates' events, the break-the-glass grants and the inbound facts it keeps."""
    return (
        to_integration_events(domain_event) or break_glass.to_integration_events(domain_event)
        or inbound_integration_events(domain_event)
    )


@dataclass
class IntakeService:
    settings: Settings
    application: IntakeApplication
    positions: Positions
    timeline: CaseTimeline
    case_access: CaseAccess
    access_log: AccessLog
    break_glass: BreakGlass
    idempotency: IdempotencyStore
    name: str = "intake"
    title: str = "Huhang intake"
    peers: dict[str, Any] = field(default_factory=dict)  # the other services built in this process (embedded)

    def to_integration_events(self) -> DomainToContract:
        return intake_integration_events

    def routers(self) -> list[APIRouter]:
        return [router, children, survey_router, history_router, break_glass_router, erasure_router, inbound_router,
                province_sync_router, integrity_router]

    def connect(self, peers: Mapping[str, Any]) -> None:
        """In one process with the other services: the case tamper check reads their stores through them."""
        self.peers = dict(peers)

    def bind(self, api: FastAPI) -> None:
        api.state.intake = self.application
        api.state.timeline = self.timeline
        api.state.break_glass = self.break_glass
        api.state.idempotency = self.idempotency
        # The tamper check reads every service's store: through the services here, the others built from settings.
        api.state.case_integrity = CaseIntegrity(self.settings, {**self.peers, self.name: self})
        install_access(api, self.case_access, self.access_log)

    def subscriptions(self) -> list[Subscription]:
        return [
            Subscription("intake.timeline", self.timeline, ALL_CASE_EVENT_SOURCES),
            Subscription("intake.case_access", self.case_access, ALL_CASE_EVENT_SOURCES),
        ]


def build(settings: Settings) -> IntakeService:
    engine = read_model_engine(settings, "intake")
    application = IntakeApplication(
        eventsourcing_env(settings, "intake"),
        identity_key=settings.identity_key.get_secret_value().encode(),
        read_engine=engine,
        child_keys=child_keys(settings, engine),
    )
    return IntakeService(
        settings=settings,
        application=application,
        positions=Positions(engine),
        timeline=CaseTimeline(engine),
        case_access=CaseAccess(engine),
        access_log=AccessLog(engine, settings.access_log_flush_interval_s),
        break_glass=BreakGlass(application, timedelta(seconds=settings.break_glass_duration_s)),
        idempotency=IdempotencyStore(engine, settings.idempotency_lease_s, settings.idempotency_retention_s),
    )
