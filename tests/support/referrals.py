"""Shared set-up for tests of the referral service."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from huhang.bootstrap import subscription_consumers
from huhang.settings import Settings
from huhang.streams import drain
from services.referral.main import ReferralService, build


@contextmanager
def referral_service(settings: Settings) -> Iterator[ReferralService]:
    """A referral service on the given store, closed (connections released) afterwards."""
    service = build(settings)
    try:
        yield service
    finally:
        service.application.close()
        service.positions.engine.dispose()


def inbox_refresher(settings: Settings, service: ReferralService) -> Callable[[], None]:
    """Bring the inbox read model up to date by draining the service's subscription consumers."""
    consumers = subscription_consumers(settings, service)
    for consumer in consumers:
        consumer.poll_timeout_s = 0.01

    def refresh() -> None:
        for consumer in consumers:
            drain(consumer)

    return refresh
