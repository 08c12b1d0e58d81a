"""The composition root: builds services, their transports and the routing workflow from settings.

Embedded and distributed differ only here, by configuration: in-process followers of the notification logs
or Kafka (relays + consumer groups); in-process or HTTP calls to the referral service.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from fastapi import APIRouter, FastAPI

from contracts.topics import GUARDIANSHIP_TOPIC, INDICATORS_TOPIC, INTAKE_TOPIC, REFERRAL_TOPIC
from huhang.auth.client import system_auth
from huhang.lease import lease_for, leased
from huhang.ops import BacklogWatch, followers_of
from huhang.ops_api import install_ops
from huhang.parking import ParkedEvents, parked_events
from huhang.parking_api import install_parking
from huhang.service import Service, Subscription
from huhang.settings import Settings
from huhang.storage import read_model_engine
from huhang.streams import BySource, Consumer, EventSource, MergedSource, NotificationLogSource, Positions
from huhang.web import create_api
from workflows.care_checks import CareCheckGateway, HttpCareCheckGateway, LocalCareCheckGateway, run_care_checker
from workflows.referral_gateway import HttpReferralGateway, LocalReferralGateway, ReferralGateway
from workflows.routing import Router, run_router
from workflows.rules_provider import RulesProvider
from workflows.sweeps import HttpSweepGateway, LocalSweepGateway, SweepGateway, run_sweeper

logger = logging.getLogger(__name__)
DIGEST_INTERVAL_S = 3600.0  # each agency's digest of yesterday is tried hourly (written once a day)

SERVICE_NAMES = ("intake", "referral", "guardianship", "notifications", "indicators")
TOPIC_OF: Mapping[str, str] = {
    "intake": INTAKE_TOPIC, "referral": REFERRAL_TOPIC, "guardianship": GUARDIANSHIP_TOPIC,
    "indicators": INDICATORS_TOPIC,
}


def topic_of(settings: Settings, service: str) -> str:
    return f"{settings.kafka_namespace}{TOPIC_OF[service]}"


def all_topics(settings: Settings) -> list[str]:
    return [topic_of(settings, s) for s in TOPIC_OF]
ROUTED_SOURCES = ("intake", "guardianship", "referral", "indicators")
# referral: returned referrals go to the next agency; indicators: spot-check follow-ups go to the township


def build_service(settings: Settings, name: str) -> Service:
    module = importlib.import_module(f"services.{name}.main")
    return module.build(settings)


def build_services(settings: Settings, names: Iterable[str] = SERVICE_NAMES) -> dict[str, Service]:
    services = {name: build_service(settings, name) for name in names}
    for service in services.values():
        connect = getattr(service, "connect", None)  # services that call peers in-process when they are here
        if callable(connect):
            connect(services)
    return services


def service_api(settings: Settings, service: Service) -> FastAPI:
    """One service's own HTTP application (distributed mode). Intake, the front door, also issues tokens."""
    front_door = service.name == "intake"
    api = create_api(service.title, settings, service.routers(), open_routers=_token_routers(front_door))
    if front_door:
        _bind_accounts(api, settings)
    service.bind(api)
    install_ops(api, settings, {service.name: service})
    install_parking(api, _parking_stores(settings, [service], router=service.name == "referral"))
    return api


def embedded_api(settings: Settings, services: Mapping[str, Service]) -> FastAPI:
    """One HTTP application serving every service's routes and the token endpoint (embedded mode)."""
    routers = [r for s in services.values() for r in s.routers()]
    api = create_api("Huhang (护航)", settings, routers, open_routers=_token_routers(True))
    _bind_accounts(api, settings)
    from huhang.console.serve import mount_console

    mount_console(api)  # the web console at /console/, same origin as the API
    for service in services.values():
        service.bind(api)
    install_ops(api, settings, services)
    install_parking(api, _parking_stores(settings, services.values(), router=settings.storage != "memory"))
    return api


def _parking_stores(settings: Settings, services: Iterable[Service], *, router: bool) -> dict[str, ParkedEvents]:
    """The parked events an API serves: its services' own, and the router's (the ``workflows`` store) with
    referral's (the router opens referrals) and in the embedded app (memory: the router's store is its own)."""
    stores = {service.name: parked_events(service.positions.engine) for service in services}
    if router:
        stores["workflows"] = parked_events(read_model_engine(settings, "workflows"))
    return stores


def _token_routers(serve: bool) -> list[APIRouter]:
    from huhang.auth.endpoint import token_router

    return [token_router] if serve else []


def _bind_accounts(api: FastAPI, settings: Settings) -> None:
    """The token endpoint's accounts store (its own store: huhang/auth/accounts.py)."""
    from huhang.auth.accounts import AccountStore

    api.state.accounts = AccountStore(read_model_engine(settings, "auth"))


def _log_source(
    follower: str, source_service: Service, positions: Positions, settings: Settings, batch_size: int | None = None
) -> EventSource:
    return NotificationLogSource(
        f"{follower}<-{source_service.name}", source_service.application,
        source_service.to_integration_events(), positions, batch_size=batch_size or settings.batch_size,
        interval_s=settings.follow_interval_s, window_s=settings.follow_window_s,
    )


def _kafka_source(
    settings: Settings, group: str, sources: Iterable[str], max_records: int | None = None
) -> EventSource:
    from huhang.kafka import KafkaSource

    return KafkaSource(
        settings.kafka_bootstrap_servers, [topic_of(settings, s) for s in sources],
        group_id=f"{settings.kafka_namespace}huhang.{group}",
        max_poll_interval_ms=settings.kafka_max_poll_interval_ms,
        session_timeout_ms=settings.kafka_session_timeout_ms, max_records=max_records or settings.batch_size,
        window_s=settings.follow_window_s,
    )


def subscription_consumers(
    settings: Settings, service: Service, peers: Mapping[str, Service] | None = None
) -> list[Consumer]:
    """The consumers feeding a service's read models: in-process followers of the peers' logs, or Kafka.

    A subscription to the service's own events always follows its own log directly; those fed through Kafka share
    one consumer group.
    """
    consumers = []
    over_kafka = []
    for sub in service.subscriptions():
        if settings.transport == "kafka" and sub.sources != (service.name,):
            over_kafka.append(sub)
        else:
            consumers.append(Consumer(
                sub.name, _subscription_source(settings, service, sub, peers), sub.handler,
                parking=parked_events(service.positions.engine), max_attempts=settings.poison_max_attempts,
                lease=lease_for(settings, sub.name),  # follows a log: one process at a time
            ))
    if over_kafka:
        # One consumer (one group, one poll loop) for all of them: a Kafka consumer per read model cost more
        # CPU polling while idle than the read models cost handling events.
        name = f"{service.name}.subscriptions"
        sources = sorted({source for sub in over_kafka for source in sub.sources})
        handler = BySource([(sub.handler, sub.sources) for sub in over_kafka])
        consumers.append(Consumer(  # a consumer group: Kafka shares the partitions out, no lease
            name, _kafka_source(settings, name, sources), handler,
            parking=parked_events(service.positions.engine), max_attempts=settings.poison_max_attempts,
        ))
    return consumers


def _subscription_source(
    settings: Settings, service: Service, sub: Subscription, peers: Mapping[str, Service] | None
) -> EventSource:
    if sub.sources == (service.name,):
        return _log_source(sub.name, service, service.positions, settings)
    if settings.transport == "kafka":
        return _kafka_source(settings, sub.name, sub.sources)
    if peers is None:
        raise ValueError("in-process transport needs the peer services in this process")
    return MergedSource([_log_source(sub.name, peers[s], service.positions, settings) for s in sub.sources])


def relay(settings: Settings, service: Service) -> Consumer:
    """The outbox relay: the service's notification log to its Kafka topic."""
    from huhang.kafka import KafkaPublisher

    name = f"{service.name}.relay"
    return Consumer(
        name,
        _log_source(name, service, service.positions, settings),
        KafkaPublisher(settings.kafka_bootstrap_servers, topic_of(settings, service.name), client_id=f"huhang-{name}"),
        kill_before_commit=settings.failpoint == f"{name}:before-commit",
        parking=parked_events(service.positions.engine), max_attempts=settings.poison_max_attempts,
        lease=lease_for(settings, name),  # two workers of a service never publish its outbox at once
    )


def build_router(settings: Settings, services: Mapping[str, Service] | None = None) -> Router:
    rules = RulesProvider(settings.routing_rules_path)
    gateway: ReferralGateway
    if settings.transport == "kafka":
        # Routing batches are kept short: each costs two Prefect tasks, and a short batch keeps latency low and
        # stays well inside the consumer group's poll interval.
        source = _kafka_source(settings, "router", ROUTED_SOURCES, max_records=settings.router_batch_size)
        gateway = HttpReferralGateway(settings.referral_url, auth=system_auth(settings, "huhang-router"))
        engine = read_model_engine(settings, "workflows")
    else:
        if services is None:
            raise ValueError("in-process routing needs the services in this process")
        engine = read_model_engine(settings, "workflows")
        positions = Positions(engine)
        source = MergedSource([
            _log_source("router", services[s], positions, settings, settings.router_batch_size)
            for s in ROUTED_SOURCES if s in services
        ])
        gateway = LocalReferralGateway(services["referral"].application)
    # What cannot be routed is parked in the workflows store (beside the router's positions, when it follows logs).
    return Router(source, gateway, rules, parking=parked_events(engine), max_attempts=settings.poison_max_attempts)


def build_sweep_gateway(settings: Settings, services: Mapping[str, Service] | None = None) -> SweepGateway:
    if settings.transport == "kafka" or services is None:
        return HttpSweepGateway(settings.referral_url, auth=system_auth(settings, "huhang-sweeper"))
    return LocalSweepGateway(services["referral"])  # type: ignore[arg-type]


def build_care_check_gateway(settings: Settings, services: Mapping[str, Service] | None = None) -> CareCheckGateway:
    if services is None or "guardianship" not in services:
        return HttpCareCheckGateway(settings.guardianship_url, auth=system_auth(settings, "huhang-care-checker"))
    return LocalCareCheckGateway(services["guardianship"].care)  # type: ignore[attr-defined]


@dataclass
class Runtime:
    """Background loops of one process, stopped together."""

    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self, name: str, target: Callable[[threading.Event], None]) -> None:
        thread = threading.Thread(target=target, args=(self.stop,), name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def start_consumers(self, consumers: Iterable[Consumer]) -> None:
        consumers = list(consumers)
        for consumer in consumers:
            self.start(consumer.name, consumer.run)
        followers = followers_of(consumers)
        if followers:  # their progress and backlog, for operators (huhang/ops.py)
            self.start(f"{followers[0].name}.watch", BacklogWatch(followers).run)

    def start_router(self, router: Router) -> None:
        self.start("router", lambda stop: run_router(router, stop))

    def start_sweeper(self, gateway: SweepGateway, interval_s: float) -> None:
        self.start("sweeper", lambda stop: run_sweeper(gateway, stop, interval_s))

    def start_care_checker(self, gateway: CareCheckGateway, interval_s: float) -> None:
        self.start("care-checker", lambda stop: run_care_checker(gateway, stop, interval_s))

    def start_chainers(self, settings: Settings, services: Iterable[Service]) -> None:
        """One chainer per service: hash-chains its event log and signs checkpoints of the head (huhang/chain.py)."""
        from huhang.chain import build_chainer

        for service in services:
            name = f"{service.name}.chainer"
            self.start(name, leased(lease_for(settings, name), build_chainer(settings, service).run))

    def start_webhook_deliverer(self, services: Iterable[Service]) -> None:
        """Notifications' webhook deliverer, where notifications runs (services/notifications/webhooks_deliverer.py)."""
        for service in services:
            make = getattr(service, "deliverer", None)
            if callable(make):
                self.start(f"{service.name}.webhooks", make().run)

    def start_digester(self, services: Iterable[Service], interval_s: float = DIGEST_INTERVAL_S) -> None:
        """Each agency's daily digest of yesterday, where notifications runs: tried at start and every interval,
        written once per agency and day whoever tries (services/notifications/digest.py)."""
        from services.notifications.digest import write_digests, yesterday
        from services.notifications.feed import NotificationFeed

        def digester(feed: NotificationFeed) -> Callable[[threading.Event], None]:
            return lambda stop: run(feed, stop)

        def run(feed: NotificationFeed, stop: threading.Event) -> None:
            while True:
                now = datetime.now(UTC)
                try:
                    write_digests(feed, yesterday(now), now)
                except Exception as exc:  # the next interval tries again
                    logger.warning("daily digests not written: %s", type(exc).__name__)
                if stop.wait(interval_s):
                    return

        for service in services:
            feed = getattr(service, "feed", None)
            if isinstance(feed, NotificationFeed):
                self.start(f"{service.name}.digests", digester(feed))

    def shutdown(self, timeout_s: float = 10.0) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout_s)
