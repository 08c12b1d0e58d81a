"""Notifications' composition: the only place that builds its infrastructure."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, FastAPI

from huhang.access.access_log import AccessLog
from huhang.access.api import install_access
from huhang.personal import ErasureFollower, child_keys, keys_of
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
    access_log: AccessLog
    name: str = "notifications"
    title: str = "Huhang notifications"

    def to_integration_events(self) -> DomainToContract:
        return to_integration_events

    def routers(self) -> list[APIRouter]:
        return [router]

    def bind(self, api: FastAPI) -> None:
        api.state.notifications = self.application
        api.state.feed = self.feed
        install_access(api, None, self.access_log)

    def subscriptions(self) -> list[Subscription]:
        return [
            Subscription("notifications.feed", self.feed, ("intake", "referral")),
            Subscription("notifications.erasure", ErasureFollower(keys_of(self.application)), ("intake",)),
        ]


def build(settings: Settings) -> NotificationsService:
    engine = read_model_engine(settings, "notifications")
    return NotificationsService(
        settings=settings,
        application=NotificationsApplication(
            eventsourcing_env(settings, "notifications"), child_keys=child_keys(settings, engine)
        ),
        positions=Positions(engine),
        feed=NotificationFeed(engine),
        access_log=AccessLog(engine, settings.access_log_flush_interval_s),
    )
