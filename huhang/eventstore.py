"""The eventsourcing base every service application builds on."""

from __future__ import annotations

import time
import uuid
from datetime import date
from typing import Any

from eventsourcing.application import Repository
from eventsourcing.persistence import (
    IntegrityError,
    InternalError,
    JSONTranscoder,
    ProgrammingError,
    Transcoding,
)

from huhang.personal import ChildDataMapper, ChildKeys
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
    """A service's eventsourcing Application: JSON with dates, followers woken on save, and with ``child_keys``
    every event about a child sealed under that child's key (huhang/personal.py)."""

    def __init__(self, env: dict[str, str] | None = None, *, child_keys: ChildKeys | None = None) -> None:
        self._child_keys = child_keys  # read by construct_mapper, which the base constructor calls
        super().__init__(env)

    def construct_mapper(self) -> Any:
        if self._child_keys is None:
            return super().construct_mapper()
        mapper = ChildDataMapper(self.construct_transcoder(), self._child_keys)
        mapper.first_event = self._first_stored_event
        return mapper

    def construct_repository(self) -> Any:
        # eventsourcing's, configured from the environment as ever, with the faster projector by default
        repository = super().construct_repository()
        repository.__class__ = _Repository
        return repository

    def _first_stored_event(self, originator_id: uuid.UUID) -> Any:
        found = self.recorder.select_events(originator_id, limit=1)
        return found[0] if found else None

    def _record(self, processing_event: Any) -> Any:
        """Every child these events are about has a key before they are sealed: made in one go for a batch."""
        if isinstance(self.mapper, ChildDataMapper):
            self.mapper.keys.ensure(self.mapper.subjects_of(processing_event.events))
        return super()._record(processing_event)

    def construct_recorder(self) -> Any:
        # The service's API and worker processes may create the tables at the same moment.
        last: Exception | None = None
        for attempt in range(5):
            try:
                return super().construct_recorder()
            except (IntegrityError, InternalError, ProgrammingError) as exc:
                last = exc
                time.sleep(0.2 * (attempt + 1))
        raise last  # type: ignore[misc]

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(DateAsISO())


def project(aggregate: Any, domain_events: Any) -> Any:
    """eventsourcing's ``project_aggregate`` without its per-event ``isinstance`` check against a runtime
    protocol (an assert, measured at 5 % of a request that loads an aggregate): every event here mutates."""
    for domain_event in domain_events:
        aggregate = domain_event.mutate(aggregate)
    return aggregate


class _Repository(Repository):
    """The repository, projecting with :func:`project` unless told otherwise."""

    def get(self, aggregate_id: Any, *, projector_func: Any = project, **kwargs: Any) -> Any:
        return super().get(aggregate_id, projector_func=projector_func, **kwargs)


def integration_event_id(domain_event: Any) -> uuid.UUID:
    """A stable id for the integration event made from one domain event.

    Mapping the same stored domain event again (after a relay crash) gives the same id, which is what
    consumers deduplicate on.
    """
    return uuid.uuid5(EVENT_ID_NAMESPACE, f"{domain_event.originator_id}/{domain_event.originator_version}")


def envelope(domain_event: Any, source: str, subject: Any, actor: str, correlation_id: Any = None) -> dict[str, Any]:
    """The CloudEvents attributes of an integration event made from one domain event (all but ``dataschema`` and
    ``data``): its stable id, the source service, the case it is about, the time and acting agency; the correlation
    id of the chain it continues, else its own id (it starts one)."""
    event_id = integration_event_id(domain_event)
    return {
        "id": event_id, "source": source, "subject": str(subject), "time": domain_event.timestamp,
        "correlationid": event_id if correlation_id is None else correlation_id, "actoragency": actor,
    }
