"""Indicator colour changes (赋色管理, issue 8) in the feeds: the lead agency, and the unit's township.

A small subscription of its own to the indicators service's events (``IndicatorColourChanged``): one notice per
event and recipient (``notice_id``), so a redelivered event adds nothing. The text names the indicator, the unit
and the colours (codes and place names; the figure only when it is not a small cell: the event carries none then).
"""

from __future__ import annotations

from collections.abc import Sequence

from contracts.agencies import LEAD_AGENCY, Agency
from contracts.envelope import CloudEvent
from contracts.events import IndicatorColourChanged
from contracts.vocabulary import Priority
from huhang.sql import insert_ignoring_duplicates
from services.notifications.domain import NotificationKind, notice_id
from services.notifications.feed import NotificationFeed, notifications_table

COLOUR_ZH = {"green": "绿色", "yellow": "黄色", "red": "红色", None: "无"}


def recipients(e: IndicatorColourChanged) -> list[Agency]:
    return [LEAD_AGENCY, Agency.township] if e.data.township is not None else [LEAD_AGENCY]


class ColourNotices:
    def __init__(self, feed: NotificationFeed) -> None:
        self.feed = feed

    def handle(self, events: Sequence[CloudEvent]) -> None:
        rows = []
        for e in events:
            if not isinstance(e, IndicatorColourChanged):
                continue
            d = e.data
            before, after = (c.value if c else None for c in (d.previous_colour, d.colour))
            worse = after == "red" or (after == "yellow" and before == "green")
            figure = f" ({d.value:.3g})" if d.value is not None else ""
            village = d.unit.split("/", 1)[1] if d.unit_kind == "village" else None
            for agency in recipients(e):
                rows.append({
                    "id": str(notice_id(e.id, agency)), "agency": agency.value, "case_id": e.subject,
                    "event_id": str(e.id), "kind": NotificationKind.indicator_colour_changed.value,
                    "priority": (Priority.urgent if worse else Priority.routine).value,
                    "text_zh": f"指标 {d.indicator}：{d.unit} 由{COLOUR_ZH[before]}变为{COLOUR_ZH[after]}{figure}",
                    "text_en": f"Indicator {d.indicator}: {d.unit} went from {before or 'none'} to "
                               f"{after or 'none'}{figure}.",
                    "created_at": e.time, "event_type": e.type, "township": d.township, "village": village,
                })
        if rows:
            with self.feed.engine.begin() as conn:
                insert_ignoring_duplicates(conn, notifications_table, rows)
