"""The CloudEvents 1.0 envelope every integration event travels in.

``subject`` is the case id; Kafka messages are keyed by it, so all events of one case keep their order.
Extension attributes follow the CloudEvents naming rule (lower-case letters and digits only).
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from contracts.agencies import Agency

SCHEMA_BASE = "urn:huhang:schema:"


class Contract(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CloudEvent(Contract):
    """Common attributes; concrete events add ``type`` (a literal) and ``data``."""

    event_type: ClassVar[str]
    schema_name: ClassVar[str]

    specversion: Literal["1.0"] = "1.0"
    id: UUID = Field(description="Unique per event; consumers deduplicate on it.")
    source: str = Field(description="URI reference of the producing service, e.g. /huhang/intake.")
    subject: str = Field(description="The case id; also the Kafka message key.")
    time: datetime
    datacontenttype: Literal["application/json"] = "application/json"
    dataschema: str
    correlationid: UUID = Field(description="The id of the first event of the chain (usually the report).")
    causationid: UUID | None = Field(default=None, description="The id of the event that caused this one.")
    actoragency: Agency = Field(description="The agency on whose behalf the event was produced.")

    @classmethod
    def schema_uri(cls) -> str:
        return f"{SCHEMA_BASE}{cls.schema_name}"
