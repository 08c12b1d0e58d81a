"""Guardianship's composition: the only place that builds its infrastructure."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, FastAPI

from huhang.service import Subscription
from huhang.settings import Settings
from huhang.storage import eventsourcing_env, read_model_engine
from huhang.streams import DomainToContract, Positions
from services.guardianship.api import router
from services.guardianship.application import GuardianshipApplication
from services.guardianship.integration import to_integration_events
from services.guardianship.known_cases import KnownCases


@dataclass
class GuardianshipService:
    settings: Settings
    application: GuardianshipApplication
    positions: Positions
    known_cases: KnownCases
    name: str = "guardianship"
    title: str = "Huhang guardianship"

    def to_integration_events(self) -> DomainToContract:
        return to_integration_events

    def routers(self) -> list[APIRouter]:
        return [router]

    def bind(self, api: FastAPI) -> None:
        api.state.guardianship = self.application
        api.state.known_cases = self.known_cases

    def subscriptions(self) -> list[Subscription]:
        return [Subscription("guardianship.known_cases", self.known_cases, ("intake",))]


def build(settings: Settings) -> GuardianshipService:
    engine = read_model_engine(settings, "guardianship")
    known_cases = KnownCases(engine)
    return GuardianshipService(
        settings=settings,
        application=GuardianshipApplication(eventsourcing_env(settings, "guardianship"), known_cases=known_cases),
        positions=Positions(engine),
        known_cases=known_cases,
    )
