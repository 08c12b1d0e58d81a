"""The CloudEvents Kafka protocol binding (v1.0.2), **binary content mode**, as the platform publishes it.

The record's value is the event's ``data`` only (JSON, ``content-type: application/json``); every other attribute
is a ``ce_<name>`` header (UTF-8): ``ce_specversion``, ``ce_id``, ``ce_source``, ``ce_type``, ``ce_subject``,
``ce_time`` (RFC 3339), ``ce_dataschema`` and the extensions ``ce_correlationid``, ``ce_causationid`` (when set)
and ``ce_actoragency``. The record key is the subject (the case id), so one case's events keep their order.

Binary mode lets partners route and filter on headers without parsing the value, and it is what the AsyncAPI
document (``contracts/asyncapi.yaml``) describes. Reading also accepts the structured mode the platform published
before (``content-type: application/cloudevents+json``, the whole envelope as the value), so records already in
the topics stay readable. Lives in ``contracts/`` so that partners and the document use the same names as the code.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from contracts.envelope import CloudEvent
from contracts.events import parse_event

CONTENT_TYPE_HEADER = "content-type"
DATA_CONTENT_TYPE = "application/json"
STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
HEADER_PREFIX = "ce_"

# The envelope attributes carried as headers, in the order they are written (the data goes in the value).
ATTRIBUTES: tuple[str, ...] = (
    "specversion", "id", "source", "type", "subject", "time", "dataschema", "correlationid", "causationid",
    "actoragency",
)
REQUIRED_ATTRIBUTES: tuple[str, ...] = ("specversion", "id", "source", "type")

Headers = list[tuple[str, bytes]]


def to_binary(event: CloudEvent) -> tuple[bytes, bytes, Headers]:
    """(key, value, headers) of the Kafka record for ``event``."""
    envelope = event.model_dump(mode="json", exclude={"data", "datacontenttype"})
    headers: Headers = [(CONTENT_TYPE_HEADER, DATA_CONTENT_TYPE.encode())]
    headers += [(HEADER_PREFIX + name, str(envelope[name]).encode()) for name in ATTRIBUTES
                if envelope.get(name) is not None]
    data = event.data.model_dump_json().encode()  # type: ignore[attr-defined]
    return event.subject.encode(), data, headers


def from_record(value: bytes, headers: Sequence[tuple[str, bytes | None]]) -> CloudEvent:
    """The event of a record, binary or structured mode; ``ValueError`` (or pydantic's) when it is neither."""
    found = {name.lower(): raw.decode() for name, raw in headers if raw is not None}
    if found.get(CONTENT_TYPE_HEADER, "").startswith(STRUCTURED_CONTENT_TYPE):
        return parse_event(value)
    attributes: dict[str, Any] = {
        name[len(HEADER_PREFIX):]: raw for name, raw in found.items() if name.startswith(HEADER_PREFIX)
    }
    missing = [name for name in REQUIRED_ATTRIBUTES if name not in attributes]
    if missing:
        raise ValueError(f"not a binary-mode CloudEvent: no {', '.join(HEADER_PREFIX + m for m in missing)}")
    attributes.pop("data", None)
    attributes["datacontenttype"] = DATA_CONTENT_TYPE
    # The structured document spliced together, the data as it came: parsed once, by the contract (decoding it
    # to Python and encoding it again cost a third of a follower's time). Data that is not JSON fails there.
    head = json.dumps(attributes, ensure_ascii=False).encode()
    return parse_event(head[:-1] + b', "data": ' + value + b"}")
