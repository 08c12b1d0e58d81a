"""A unit's colour change reaches the lead agency's and the township's feeds, once, through the running platform
(embedded: the indicators service's own log followed in-process by notifications)."""

from __future__ import annotations

import time

from huhang.bootstrap import build_services, subscription_consumers
from huhang.settings import Settings
from services.notifications.feed import FeedFilter
from tests.unit.test_indicators import MARCH_END, A, county


def test_colour_changes_are_told_to_the_lead_agency_and_the_township() -> None:
    settings = Settings(storage="memory")
    services = build_services(settings)
    indicators, notifications = services["indicators"], services["notifications"]
    indicators.store.ingest(county())  # type: ignore[attr-defined]
    changes = indicators.watch.check(MARCH_END)  # type: ignore[attr-defined]
    assert changes
    consumers = [c for c in subscription_consumers(settings, notifications, services)
                 if c.name == "notifications.colours"]
    assert len(consumers) == 1
    feed = notifications.feed  # type: ignore[attr-defined]
    deadline = time.monotonic() + 20
    township_filter = FeedFilter(frozenset(), A, None)
    while time.monotonic() < deadline:
        consumers[0].run_once()
        lead = feed.for_agency("civil_affairs", limit=1000)
        if len(lead) >= len(changes):
            break
        time.sleep(0.1)
    lead = feed.for_agency("civil_affairs", limit=1000)
    assert len(lead) == len(changes)
    assert {n["kind"] for n in lead} == {"indicator_colour_changed"}
    township = feed.for_agency("township", limit=1000, where=township_filter)
    assert township
    assert all(n["township"] == A for n in township)
    red = [n for n in township if "visit_compliance" in n["text_en"] and n["text_en"].startswith(
        f"Indicator visit_compliance: {A} ")]
    assert red
    assert red[0]["priority"] == "urgent"
