"""The webhook API's HTTP schemas: subscriptions, their secrets (shown once), deliveries and replays."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from contracts.agencies import Agency
from contracts.events import CONTRACT_EVENTS

EVENT_TYPES = frozenset(e.event_type for e in CONTRACT_EVENTS)
EventType = Annotated[str, StringConstraints(max_length=100)]  # a CloudEvents `type`; known ones are checked

WEBHOOK_EXAMPLE: dict[str, Any] = {
    "url": "https://school-registry.example.gov.cn/huhang/webhooks",
    "event_types": ["cn.huhang.referral.requested.v1", "cn.huhang.referral.status-changed.v1"],
}


def _aware(row: dict[str, Any]) -> dict[str, Any]:
    """Times as stored are UTC (SQLite gives them back without a zone): answered with their offset."""
    return {k: v.replace(tzinfo=UTC) if isinstance(v, datetime) and v.tzinfo is None else v for k, v in row.items()}


def _known_types(value: list[str] | None) -> list[str] | None:
    if value is not None:
        unknown = sorted(set(value) - EVENT_TYPES)
        if unknown:
            raise ValueError(f"unknown event types: {', '.join(unknown)} (see the integration events' `type`)")
    return value


class WebhookCreate(BaseModel):
    url: str = Field(max_length=2000, description="https; http only to a loopback address in development.")
    event_types: list[EventType] = Field(
        default_factory=list, max_length=100, description="CloudEvents `type`s wanted; empty for every type."
    )
    township: str | None = Field(default=None, max_length=60, description="Only cases of this township.")
    village: str | None = Field(default=None, max_length=60, description="Only cases of this village (needs "
                                                                          "`township`).")

    model_config = ConfigDict(json_schema_extra={"examples": [WEBHOOK_EXAMPLE]})

    _types = field_validator("event_types")(_known_types)


class WebhookUpdate(BaseModel):
    """Only the fields given change. `enabled: true` re-enables a subscription disabled by a 410."""

    url: str | None = Field(default=None, max_length=2000)
    event_types: list[EventType] | None = Field(default=None, max_length=100)
    township: str | None = Field(default=None, max_length=60)
    village: str | None = Field(default=None, max_length=60)
    enabled: bool | None = None

    model_config = ConfigDict(json_schema_extra={"examples": [{"enabled": False}]})

    _types = field_validator("event_types")(_known_types)


class WebhookPublic(BaseModel):
    id: UUID
    agency: Agency
    url: str
    event_types: list[str]
    township: str | None
    village: str | None
    enabled: bool
    disabled_reason: str | None = Field(description="`disabled` by the agency, or `gone`: the endpoint answered 410.")
    previous_secret_until: datetime | None = Field(description="Until then the previous secret signs too.")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: dict[str, Any]) -> WebhookPublic:
        return cls.model_validate({**_aware(row), "event_types": json.loads(row["event_types"])})


class WebhookCreated(WebhookPublic):
    secret: str = Field(description="The signing secret (`whsec_...`, Standard Webhooks). Shown only now.")


class WebhooksPublic(BaseModel):
    agency: Agency
    items: list[WebhookPublic]


class SecretRotated(BaseModel):
    secret: str = Field(description="The new signing secret. Shown only now.")
    previous_secret_until: datetime = Field(description="Until then requests are signed with both secrets.")


class DeliveryPublic(BaseModel):
    id: UUID = Field(description="The delivery (one per subscription and event).")
    event_id: UUID = Field(description="The integration event; sent as `webhook-id`.")
    case_id: str
    event_type: str
    status: str = Field(description="pending, inflight, delivered or dead.")
    attempts: int
    last_status: int | None = Field(description="The last HTTP status; null after a timeout or connection failure.")
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None


    @classmethod
    def of(cls, row: dict[str, Any]) -> DeliveryPublic:
        return cls.model_validate(_aware(row))


class DeliveriesPublic(BaseModel):
    items: list[DeliveryPublic]


class ReplayQueued(BaseModel):
    queued: int = Field(description="How many deliveries were queued again.")
