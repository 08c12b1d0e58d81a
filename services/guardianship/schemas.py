"""Guardianship's HTTP schemas (AssessmentCreate / AssessmentPublic / CourtOrderCreate / GuardianshipPublic)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationInfo, field_validator

from contracts.agencies import Agency
from contracts.vocabulary import CourtOrderKind, RiskColour, RiskLevel
from services.guardianship.risk import GuardianshipRiskFactor

CHINA_STANDARD_TIME = timezone(timedelta(hours=8), "CST")  # no daylight saving: a fixed offset is exact


def _today() -> date:
    """Today where the orders are issued (a court's date runs eight hours ahead of UTC)."""
    return datetime.now(CHINA_STANDARD_TIME).date()


ASSESSMENT_EXAMPLE: dict[str, Any] = {
    "child_id": "5b0f3a52-9c1e-4d7a-8f26-3e4b1c9d7a10",
    "factors": ["caregiver_elderly_or_frail", "extreme_poverty", "previous_neglect_report"],
    "assessor_agency": "civil_affairs",
}


class AssessmentCreate(BaseModel):
    """A family guardianship capacity assessment (家庭监护能力评估), as structured factors."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [ASSESSMENT_EXAMPLE]})

    child_id: UUID = Field(description="The child of the case.")
    factors: list[GuardianshipRiskFactor] = Field(
        default_factory=list, max_length=len(GuardianshipRiskFactor),
        description="The risk factors found; none means no risk factor was found.",
    )
    assessor_agency: Agency = Field(description="Code of the assessing agency (usually civil_affairs).")

    @field_validator("factors")
    @classmethod
    def _unique(cls, value: list[GuardianshipRiskFactor]) -> list[GuardianshipRiskFactor]:
        if len(set(value)) != len(value):
            raise ValueError("factors must not repeat")
        return value


class AssessmentPublic(BaseModel):
    assessment_id: UUID
    case_id: UUID
    child_id: UUID
    risk_level: RiskLevel
    colour: RiskColour = Field(description="Colour-coded management (赋色管理): green, yellow or red.")
    previous_risk_level: RiskLevel | None
    reasons: list[str] = Field(description="Why, in codes: severe factors and the score against the threshold.")


COURT_ORDER_EXAMPLE: dict[str, Any] = {
    "child_id": "5b0f3a52-9c1e-4d7a-8f26-3e4b1c9d7a10",
    "agency": "court",
    "order_kind": "personal_safety_protection",
    "court_case_number": "(2026)浙0382民保令1号",
    "issued_on": "2026-11-20",
    "expires_on": "2027-05-19",
}


class CourtOrderCreate(BaseModel):
    """A court order concerning the child (人身安全保护令, 撤销监护人资格, 家庭教育指导令), recorded by the court."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [COURT_ORDER_EXAMPLE]})

    child_id: UUID = Field(description="The child of the case.")
    agency: Agency = Field(description="The recording agency: only `court` may record court orders.")
    order_kind: CourtOrderKind
    court_case_number: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)] = Field(
        description="The court's case number, e.g. (2026)浙0382民保令1号."
    )
    issued_on: date
    expires_on: date | None = Field(default=None, description="When the order lapses, if it does.")

    @field_validator("issued_on")
    @classmethod
    def _issued_not_in_future(cls, value: date) -> date:
        if value > _today():
            raise ValueError("must not be in the future")
        return value

    @field_validator("expires_on")
    @classmethod
    def _expires_after_issue(cls, value: date | None, info: ValidationInfo) -> date | None:
        issued_on = info.data.get("issued_on")
        if value is not None and issued_on is not None and value <= issued_on:
            raise ValueError("must be after issued_on")
        return value


class CourtOrderPublic(BaseModel):
    order_id: UUID
    case_id: UUID
    child_id: UUID
    order_kind: CourtOrderKind
    court_case_number: str
    issued_on: date
    expires_on: date | None


class AssessmentEntry(BaseModel):
    assessment_id: UUID
    case_id: UUID
    assessed_at: datetime
    assessor_agency: Agency
    factors: list[GuardianshipRiskFactor]
    risk_level: RiskLevel
    colour: RiskColour
    previous_risk_level: RiskLevel | None
    reasons: list[str]


class CourtOrderEntry(BaseModel):
    order_id: UUID
    case_id: UUID
    recorded_at: datetime
    order_kind: CourtOrderKind
    court_case_number: str
    issued_on: date
    expires_on: date | None


class GuardianshipPublic(BaseModel):
    child_id: UUID
    risk_level: RiskLevel | None = Field(description="The latest assessment's level; null before any assessment.")
    colour: RiskColour | None
    assessments: list[AssessmentEntry]
    court_orders: list[CourtOrderEntry]
