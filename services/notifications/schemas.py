"""Notifications' HTTP schemas (NotificationPublic / NotificationsPublic)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, Field

from contracts.agencies import Agency
from contracts.vocabulary import Priority
from services.notifications.domain import NotificationKind


class NotificationPublic(BaseModel):
    sequence: int = Field(description="Position in the feed; pass the last one seen as `after`.")
    id: UUID
    agency: Agency
    case_id: UUID
    event_id: UUID = Field(description="The integration event this notice was made from.")
    kind: NotificationKind
    priority: Priority
    text_zh: str
    text_en: str
    created_at: datetime


class NotificationsPublic(BaseModel):
    agency: Agency
    items: list[NotificationPublic]
    next_cursor: int = Field(description="Pass as `after` for what comes next (the same value when nothing came).")
