"""Referral's composition: the only place that builds its infrastructure."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, FastAPI

from huhang.service import Subscription
from huhang.settings import Settings
from huhang.storage import eventsourcing_env, read_model_engine
from huhang.streams import DomainToContract, Positions
from services.referral.api import router
from services.referral.application import ReferralApplication
from services.referral.inbox import Inbox
from services.referral.integration import to_integration_events


@dataclass
class ReferralService:
    settings: Settings
    application: ReferralApplication
    positions: Positions
    inbox: Inbox
    name: str = "referral"
    title: str = "Huhang referral"

    def to_integration_events(self) -> DomainToContract:
        return to_integration_events

    def routers(self) -> list[APIRouter]:
        return [router]

    def bind(self, api: FastAPI) -> None:
        api.state.referral = self.application
        api.state.inbox = self.inbox

    def subscriptions(self) -> list[Subscription]:
        return [Subscription("referral.inbox", self.inbox, ("referral",))]


def build(settings: Settings) -> ReferralService:
    engine = read_model_engine(settings, "referral")
    return ReferralService(
        settings=settings,
        application=ReferralApplication(eventsourcing_env(settings, "referral")),
        positions=Positions(engine),
        inbox=Inbox(engine),
    )
