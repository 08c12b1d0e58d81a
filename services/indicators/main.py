"""Indicators' composition: the only place that builds its infrastructure.

It follows the integration events of intake, guardianship and referral (one Subscription: in-process embedded,
Kafka distributed), keeps them in its inbox and projects them (``store.py``), and after a batch re-evaluates the
colours at most every ``indicators_colour_check_interval_s`` (``colours.py``). Its tables are migrated at build.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from fastapi import APIRouter, FastAPI

from contracts.envelope import CloudEvent
from huhang.access.access_log import AccessLog
from huhang.access.api import install_access
from huhang.personal import ErasureFollower, child_keys, keys_of
from huhang.service import Subscription
from huhang.settings import Settings
from huhang.storage import eventsourcing_env, read_model_engine
from huhang.streams import DomainToContract, Positions
from services.indicators import reports_api, spot_checks_api
from services.indicators.api import router
from services.indicators.application import IndicatorsApplication
from services.indicators.colours import ColourWatch
from services.indicators.integration import to_integration_events
from services.indicators.migrate import migrate
from services.indicators.queries import SqlIndicatorQueries
from services.indicators.spot_checks import TableRoster
from services.indicators.store import IndicatorStore

logger = logging.getLogger(__name__)
SOURCES = ("intake", "referral", "guardianship")


@dataclass
class Follower:
    """The subscription's handler: keep and project the batch, then (now and then) check the colours."""

    store: IndicatorStore
    watch: ColourWatch
    interval_s: float
    _last: float = field(default=float("-inf"))

    def handle(self, events: Sequence[CloudEvent]) -> None:
        self.store.handle(events)
        now = time.monotonic()
        if now - self._last >= self.interval_s:
            self._last = now
            try:
                self.watch.check()
            except Exception as exc:  # the figures are kept; the next batch tries the colours again
                logger.warning("indicator colours not checked: %s", type(exc).__name__)


@dataclass
class IndicatorsService:
    settings: Settings
    application: IndicatorsApplication
    positions: Positions
    store: IndicatorStore
    queries: SqlIndicatorQueries
    watch: ColourWatch
    access_log: AccessLog
    name: str = "indicators"
    title: str = "Huhang indicators"

    def to_integration_events(self) -> DomainToContract:
        return to_integration_events

    def routers(self) -> list[APIRouter]:
        return [router, spot_checks_api.router, reports_api.router]

    def bind(self, api: FastAPI) -> None:
        api.state.indicator_queries = self.queries
        spot_checks_api.install(api, self.application, TableRoster(self.store.engine))
        reports_api.install(api, self.queries)
        install_access(api, None, self.access_log)

    def subscriptions(self) -> list[Subscription]:
        follower = Follower(self.store, self.watch, self.settings.indicators_colour_check_interval_s)
        return [
            Subscription("indicators.inbox", follower, SOURCES),
            # an erased child's spot-check notes become unreadable here too (crypto-shredding, huhang/personal.py)
            Subscription("indicators.erasure", ErasureFollower(keys_of(self.application)), ("intake",)),
        ]


def build(settings: Settings) -> IndicatorsService:
    engine = read_model_engine(settings, "indicators")
    migrate(engine)
    # with child keys: a spot check's file results (notes) are sealed under the child's key (huhang/personal.py)
    application = IndicatorsApplication(eventsourcing_env(settings, "indicators"),
                                        child_keys=child_keys(settings, engine))
    queries = SqlIndicatorQueries(engine)
    return IndicatorsService(
        settings=settings,
        application=application,
        positions=Positions(engine),
        store=IndicatorStore(engine),
        queries=queries,
        watch=ColourWatch(queries, application),
        access_log=AccessLog(engine, settings.access_log_flush_interval_s),
    )
