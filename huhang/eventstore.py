"""The eventsourcing base every service application builds on."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from eventsourcing.persistence import JSONTranscoder, Transcoding

from huhang.streams import WakeableApplication

EVENT_ID_NAMESPACE = uuid.UUID("0b8f1f7e-5d0c-4f3b-8c1e-3a9f6d2e7c41")


class DateAsISO(Transcoding):
    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


class ServiceApplication(WakeableApplication):
    """A service's eventsourcing Application: JSON with dates, followers woken on save."""

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(DateAsISO())


def integration_event_id(domain_event: Any) -> uuid.UUID:
    """A stable id for the integration event made from one domain event.

    Mapping the same stored domain event again (after a relay crash) gives the same id, which is what
    consumers deduplicate on.
    """
    return uuid.uuid5(EVENT_ID_NAMESPACE, f"{domain_event.originator_id}/{domain_event.originator_version}")
