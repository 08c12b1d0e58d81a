"""Intake's composition: the only place that builds its infrastructure."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, FastAPI

from huhang.service import Subscription
from huhang.settings import Settings
from huhang.storage import eventsourcing_env, read_model_engine
from huhang.streams import DomainToContract, Positions
from services.intake.api import children, router
from services.intake.application import IntakeApplication
from services.intake.integration import to_integration_events
from services.intake.survey_api import router as survey_router
from services.intake.timeline import CaseTimeline

ALL_CASE_EVENT_SOURCES = ("intake", "referral", "guardianship")


@dataclass
class IntakeService:
    settings: Settings
    application: IntakeApplication
    positions: Positions
    timeline: CaseTimeline
    name: str = "intake"
    title: str = "Huhang intake"

    def to_integration_events(self) -> DomainToContract:
        return to_integration_events

    def routers(self) -> list[APIRouter]:
        return [router, children, survey_router]

    def bind(self, api: FastAPI) -> None:
        api.state.intake = self.application
        api.state.timeline = self.timeline

    def subscriptions(self) -> list[Subscription]:
        return [Subscription("intake.timeline", self.timeline, ALL_CASE_EVENT_SOURCES)]


def build(settings: Settings) -> IntakeService:
    engine = read_model_engine(settings, "intake")
    return IntakeService(
        settings=settings,
        application=IntakeApplication(
            eventsourcing_env(settings, "intake"),
            identity_key=settings.identity_key.get_secret_value().encode(),
            read_engine=engine,
        ),
        positions=Positions(engine),
        timeline=CaseTimeline(engine),
    )
