"""Notifications' composition: the only place that builds its infrastructure."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, FastAPI

from huhang.access.access_log import AccessLog
from huhang.access.api import install_access
from huhang.personal import ErasureFollower, child_keys, data_key, keys_of
from huhang.service import Subscription
from huhang.settings import Settings
from huhang.storage import eventsourcing_env, read_model_engine
from huhang.streams import DomainToContract, Positions
from services.notifications.api import router
from services.notifications.application import NotificationsApplication
from services.notifications.colours import ColourNotices
from services.notifications.feed import NotificationFeed
from services.notifications.integration import to_integration_events
from services.notifications.stream import StreamPolicy
from services.notifications.webhooks_api import WebhookApi
from services.notifications.webhooks_api import router as webhooks_router
from services.notifications.webhooks_deliverer import Deliverer, DeliveryPolicy
from services.notifications.webhooks_model import Backoff
from services.notifications.webhooks_store import SecretBox, WebhookStore


@dataclass
class NotificationsService:
    settings: Settings
    application: NotificationsApplication
    positions: Positions
    feed: NotificationFeed
    access_log: AccessLog
    webhooks: WebhookStore
    name: str = "notifications"
    title: str = "Huhang notifications"

    def to_integration_events(self) -> DomainToContract:
        return to_integration_events

    def routers(self) -> list[APIRouter]:
        return [router, webhooks_router]

    def bind(self, api: FastAPI) -> None:
        api.state.notifications = self.application
        api.state.feed = self.feed
        api.state.feed_stream = StreamPolicy(
            self.settings.notifications_stream_heartbeat_s, self.settings.notifications_stream_poll_s,
            self.settings.notifications_stream_max_s,
        )
        api.state.webhooks = WebhookApi(
            self.webhooks, self.settings.environment == "development", self.settings.webhook_secret_overlap_s
        )
        install_access(api, None, self.access_log)

    def subscriptions(self) -> list[Subscription]:
        return [
            Subscription("notifications.feed", self.feed, ("intake", "referral", "guardianship")),
            Subscription("notifications.webhooks", self.webhooks, ("intake", "referral", "guardianship")),
            Subscription("notifications.erasure", ErasureFollower(keys_of(self.application)), ("intake",)),
            Subscription("notifications.colours", ColourNotices(self.feed), ("indicators",)),
        ]

    def deliverer(self) -> Deliverer:
        """The webhook deliverer (a background loop: ``Runtime.start_webhook_deliverer``)."""
        s = self.settings
        backoff = Backoff(s.webhook_backoff_base_s, s.webhook_backoff_factor, s.webhook_backoff_cap_s,
                          s.webhook_max_attempts)
        return Deliverer(self.webhooks, DeliveryPolicy(
            backoff=backoff, timeout_s=s.webhook_timeout_s, per_endpoint=s.webhook_per_endpoint,
            senders=s.webhook_senders, lease_s=s.webhook_lease_s, poll_interval_s=s.webhook_poll_interval_s,
        ))


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
        webhooks=WebhookStore(engine, SecretBox(data_key(settings))),
    )
