"""Guardianship's composition: the only place that builds its infrastructure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, FastAPI

from huhang.access.access_log import AccessLog
from huhang.access.api import install_access
from huhang.access.case_access import CaseAccess
from huhang.auth.client import system_auth
from huhang.idempotency import IdempotencyStore
from huhang.personal import ErasureFollower, child_keys, keys_of
from huhang.service import Subscription
from huhang.settings import Settings
from huhang.storage import eventsourcing_env, read_model_engine
from huhang.streams import DomainToContract, Positions
from services.guardianship.api import router
from services.guardianship.application import GuardianshipApplication
from services.guardianship.care_api import router as care_router
from services.guardianship.care_application import CareApplication
from services.guardianship.care_status import CareStatus
from services.guardianship.children import KnownChildren
from services.guardianship.directors import ChildDirectors, DirectorRoster
from services.guardianship.directors_api import router as directors_router
from services.guardianship.integration import to_integration_events
from services.guardianship.interventions import Interventions
from services.guardianship.interventions_api import router as interventions_router
from services.guardianship.known_cases import KnownCases
from services.guardianship.visits import VisitPolicy
from workflows.intake_gateway import HttpIntakeGateway, LocalIntakeGateway


@dataclass
class GuardianshipService:
    settings: Settings
    application: GuardianshipApplication
    positions: Positions
    known_cases: KnownCases
    known_children: KnownChildren
    interventions: Interventions
    child_directors: ChildDirectors
    care: CareApplication
    case_access: CaseAccess
    access_log: AccessLog
    idempotency: IdempotencyStore
    name: str = "guardianship"
    title: str = "Huhang guardianship"
    access_shared: bool = False

    def to_integration_events(self) -> DomainToContract:
        return to_integration_events

    def routers(self) -> list[APIRouter]:
        return [router, interventions_router, directors_router, care_router]

    def bind(self, api: FastAPI) -> None:
        api.state.guardianship = self.application
        api.state.known_cases = self.known_cases
        api.state.known_children = self.known_children
        api.state.interventions = self.interventions
        api.state.child_directors = self.child_directors
        api.state.care = self.care
        if getattr(api.state, "idempotency", None) is None:  # one key store per process (intake's, embedded)
            api.state.idempotency = self.idempotency
        install_access(api, self.case_access, self.access_log)

    def connect(self, peers: Mapping[str, Any]) -> None:
        """In one process with intake: file reports from visit findings in-process rather than over HTTP, and share
        intake's case-access read model."""
        intake = peers.get("intake")
        if intake is not None:
            self.care.intake = LocalIntakeGateway(intake.application)
            shared = getattr(intake, "case_access", None)
            if isinstance(shared, CaseAccess):  # one case-access read model (and one follower) for the process
                self.case_access, self.access_shared = shared, True

    def subscriptions(self) -> list[Subscription]:
        return [
            Subscription("guardianship.known_cases", self.known_cases, ("intake",)),
            Subscription("guardianship.known_children", self.known_children, ("intake",)),
            *([] if self.access_shared else [
                Subscription("guardianship.case_access", self.case_access, ("intake", "referral", "guardianship"))
            ]),
            Subscription("guardianship.erasure", ErasureFollower(keys_of(self.application)), ("intake",)),
        ]


def build(settings: Settings) -> GuardianshipService:
    engine = read_model_engine(settings, "guardianship")
    known_cases = KnownCases(engine)
    known_children = KnownChildren(engine)
    application = GuardianshipApplication(
        eventsourcing_env(settings, "guardianship"), known_cases=known_cases, child_keys=child_keys(settings, engine)
    )
    return GuardianshipService(
        settings=settings,
        application=application,
        positions=Positions(engine),
        known_cases=known_cases,
        known_children=known_children,
        interventions=Interventions(application, known_cases, known_children),
        child_directors=ChildDirectors(application, known_children, DirectorRoster(engine, application)),
        care=CareApplication(
            application, known_children, CareStatus(engine, application),
            VisitPolicy(
                contact_every_months=settings.visit_contact_every_months,
                home_visit_every_months=settings.visit_home_every_months,
                frequent_home_visit_every_months=settings.visit_frequent_home_every_months,
            ),
            intake=HttpIntakeGateway(settings.intake_url, auth=system_auth(settings, "huhang-guardianship")),
        ),
        case_access=CaseAccess(engine),
        access_log=AccessLog(engine, settings.access_log_flush_interval_s),
        idempotency=IdempotencyStore(engine, settings.idempotency_lease_s, settings.idempotency_retention_s),
    )
