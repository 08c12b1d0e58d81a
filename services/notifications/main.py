"""Notifications' composition: the only place that builds its infrastructure."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, FastAPI

from huhang.service import Subscription
from huhang.settings import Settings
from huhang.storage import eventsourcing_env, read_model_engine
from huhang.streams import DomainToContract, Positions
from services.notifications.api import router
from services.notifications.application import NotificationsApplication
from services.notifications.feed import NotificationFeed
from services.notifications.integration import to_integration_events


@dataclass
class NotificationsService:
    settings: Settings
    application: NotificationsApplication
    positions: Positions
    feed: NotificationFeed
    name: str = "notifications"
    title: str = "Huhang notifications"

    def to_integration_events(self) -> DomainToContract:
        return to_integration_events

    def routers(self) -> list[APIRouter]:
        return [router]

    def bind(self, api: FastAPI) -> None:
        api.state.notifications = self.application
        api.state.feed = self.feed

    def subscriptions(self) -> list[Subscription]:
        return [Subscription("notifications.feed", self.feed, ("intake", "referral"))]


def build(settings: Settings) -> NotificationsService:
    engine = read_model_engine(settings, "notifications")
    return NotificationsService(
        settings=settings,
        application=NotificationsApplication(eventsourcing_env(settings, "notifications")),
        positions=Positions(engine),
        feed=NotificationFeed(engine),
    )
