"""Intake's HTTP schemas (ReportCreate / ReportPublic / CasePublic / TimelinePublic)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationInfo, field_validator

from contracts.agencies import Agency
from contracts.vocabulary import ChildCategory, ConcernCategory, ReporterRole, Sex, Urgency

PlaceName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]
ID_CARD_PATTERN = r"^\d{17}[\dXx]$"


def _today() -> date:
    return datetime.now(UTC).date()


def eighteenth_birthday(birth_date: date) -> date:
    try:
        return birth_date.replace(year=birth_date.year + 18)
    except ValueError:  # born on 29 February: of age on 1 March
        return date(birth_date.year + 18, 3, 1)


class ReporterIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agency: Agency = Field(description="Code of the reporting agency.")
    role: ReporterRole = Field(description="Role of the person reporting.")
    reference: Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)] | None = Field(
        default=None, description="The reporter's staff or badge number in their own agency (not a name)."
    )


class ChildIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]
    sex: Sex
    birth_date: date
    id_card_number: Annotated[str, StringConstraints(pattern=ID_CARD_PATTERN)] | None = Field(
        default=None, description="18-character resident identity card number, when known."
    )
    township: PlaceName
    village: PlaceName
    categories: list[ChildCategory] = Field(default_factory=list, max_length=len(ChildCategory))

    @field_validator("birth_date")
    @classmethod
    def _not_in_future(cls, value: date) -> date:
        if value > _today():
            raise ValueError("must not be in the future")
        if eighteenth_birthday(value) <= _today():
            raise ValueError("the child must be under 18")
        return value

    @field_validator("categories")
    @classmethod
    def _unique(cls, value: list[ChildCategory]) -> list[ChildCategory]:
        if len(set(value)) != len(value):
            raise ValueError("categories must not repeat")
        return value


REPORT_EXAMPLE: dict[str, Any] = {
    "reporter": {"agency": "education", "role": "teacher", "reference": "T-0421"},
    "child": {
        "name": "李小雨",
        "sex": "female",
        "birth_date": "2016-05-12",
        "township": "虹桥镇",
        "village": "溪西村",
        "categories": ["left_behind"],
    },
    "concern_category": "guardian_neglect",
    "urgency": "urgent",
    "observed_on": "2026-11-27",
    "observations": "连续三天未到校，班主任家访发现孩子独自在家，祖母卧病，家中无人照看，缺乏食物。",
}


class ReportCreate(BaseModel):
    """A mandatory report (强制报告)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [REPORT_EXAMPLE]})

    reporter: ReporterIn
    child: ChildIn
    concern_category: ConcernCategory
    urgency: Urgency
    observed_on: date = Field(description="When the reporter observed what is reported.")
    observations: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]

    @field_validator("observed_on")
    @classmethod
    def _observed_not_in_future_nor_before_birth(cls, value: date, info: ValidationInfo) -> date:
        if value > _today():
            raise ValueError("must not be in the future")
        child = info.data.get("child")
        if child is not None and value < child.birth_date:
            raise ValueError("must not be before the child's birth date")
        return value


class ReportLinks(BaseModel):
    case: str
    timeline: str
    referrals: str
    child: str


class ReportPublic(BaseModel):
    report_id: UUID
    case_id: UUID
    child_id: UUID
    links: ReportLinks


class ReportSummary(BaseModel):
    report_id: UUID
    filed_at: datetime
    reporter_agency: Agency
    reporter_role: ReporterRole
    concern_category: ConcernCategory
    urgency: Urgency
    observed_on: date


class CasePublic(BaseModel):
    case_id: UUID
    child_id: UUID
    township: str
    village: str
    opened_at: datetime
    opened_by: Agency
    reports: list[ReportSummary]


class ChildPublic(BaseModel):
    child_id: UUID
    name: str
    sex: Sex
    birth_date: date
    township: str
    village: str
    categories: list[ChildCategory]
    case_ids: list[UUID]


class TimelineEntry(BaseModel):
    event_id: UUID
    time: datetime
    type: str
    source: str
    actor_agency: Agency
    correlation_id: UUID
    causation_id: UUID | None
    data: dict[str, Any]


class TimelinePublic(BaseModel):
    case_id: UUID
    events: list[TimelineEntry]
