"""Referral's composition: the only place that builds its infrastructure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, FastAPI

from contracts.envelope import CloudEvent
from huhang.access.access_log import AccessLog
from huhang.access.api import install_access
from huhang.access.case_access import CaseAccess
from huhang.personal import ErasureFollower, child_keys, keys_of
from huhang.service import Subscription
from huhang.settings import Settings
from huhang.storage import eventsourcing_env, read_model_engine
from huhang.streams import DomainToContract, Positions
from services.referral.api import router
from services.referral.application import ReferralApplication
from services.referral.inbox import Inbox
from services.referral.integration import to_integration_events
from services.referral.needs_api import router as needs_router
from services.referral.needs_application import ReliefDesk
from services.referral.needs_integration import to_need_events
from services.referral.resources_api import router as directory_router

# Every service's events say something about who may see a case (its area, referrals, break-the-glass grants).
CASE_ACCESS_SOURCES = ("intake", "referral", "guardianship")


@dataclass
class ReferralService:
    settings: Settings
    application: ReferralApplication
    positions: Positions
    inbox: Inbox
    case_access: CaseAccess
    access_log: AccessLog
    name: str = "referral"
    title: str = "Huhang referral"
    access_shared: bool = False
    intake_here: bool = False

    def to_integration_events(self) -> DomainToContract:
        return _referral_and_need_events

    def routers(self) -> list[APIRouter]:
        return [router, directory_router, needs_router]

    def bind(self, api: FastAPI) -> None:
        api.state.referral = self.application
        api.state.inbox = self.inbox
        api.state.relief = ReliefDesk(self.application)  # relief and charity matching (issue 10)
        install_access(api, self.case_access, self.access_log)

    def subscriptions(self) -> list[Subscription]:
        return [
            Subscription("referral.inbox", self.inbox, ("referral",)),
            *self._case_access_subscription(),
            *self._erasure_subscription(),
        ]

    def connect(self, peers: Mapping[str, Any]) -> None:
        """In one process with intake: share its case-access read model (one follower for all services)."""
        self.intake_here = "intake" in peers
        shared = getattr(peers.get("intake"), "case_access", None)
        if isinstance(shared, CaseAccess):
            self.case_access, self.access_shared = shared, True

    def _case_access_subscription(self) -> list[Subscription]:
        """Its own case-access read model, fed by every service through Kafka; alone on the in-process transport
        (a referral-only process, as in tests) by its own events, which carry the case's child and place too."""
        if self.access_shared:
            return []
        sources = CASE_ACCESS_SOURCES if self.settings.transport == "kafka" else (self.name,)
        return [Subscription("referral.case_access", self.case_access, sources)]


    def _erasure_subscription(self) -> list[Subscription]:
        """Intake's erasures, through Kafka or in one process with intake; a referral-only process on the in-process
        transport (tests) has no intake to hear from."""
        if self.settings.transport != "kafka" and not self.intake_here:
            return []
        return [Subscription("referral.erasure", ErasureFollower(keys_of(self.application)), ("intake",))]


def _referral_and_need_events(e: Any) -> Sequence[CloudEvent]:
    """Referral's one mapping: its referrals' events, and the relief context's recorded needs."""
    return to_integration_events(e) or to_need_events(e)


def build(settings: Settings) -> ReferralService:
    engine = read_model_engine(settings, "referral")
    return ReferralService(
        settings=settings,
        application=ReferralApplication(
            eventsourcing_env(settings, "referral"), child_keys=child_keys(settings, engine)
        ),
        positions=Positions(engine),
        inbox=Inbox(engine, settings.inbox_counts_max_age_s, settings.inbox_page_max_age_s),
        case_access=CaseAccess(engine),
        access_log=AccessLog(engine, settings.access_log_flush_interval_s),
    )
