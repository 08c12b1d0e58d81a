"""Request and answer bodies of the spot-check API (services/indicators/spot_checks_api.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from services.indicators.spot_checks import MAX_SAMPLE_PER_TOWNSHIP, ItemResult

Township = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]
Code = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]
EARLIEST_AS_OF = datetime(2000, 1, 1, tzinfo=UTC)
Note = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]


class SpotCheckCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"year": 2026, "townships": ["虹桥镇", "柳市镇"], "sample_rate": 0.05},
        {"year": 2026, "townships": ["虹桥镇"], "sample_size": 20, "seed": 20261129},
    ]})
    year: int = Field(ge=2000, le=2100)
    townships: list[Township] = Field(min_length=1, max_length=100)
    sample_size: int | None = Field(default=None, ge=1, le=MAX_SAMPLE_PER_TOWNSHIP,
                                    description="Files per township (or `sample_rate`).")
    sample_rate: float | None = Field(default=None, gt=0, le=1,
                                      description="Share of each township's registered children, rounded up.")
    seed: int | None = Field(default=None, ge=0, le=2**53 - 1,
                             description="The random seed; generated and recorded when absent.")
    as_of: AwareDatetime | None = Field(
        default=None, description="The moment the registered children are read at (default: now); with the seed, "
        "it draws the same sample again.")

    @field_validator("as_of")
    @classmethod
    def _not_in_the_future(cls, value: datetime | None) -> datetime | None:
        if value is not None and not EARLIEST_AS_OF <= value <= datetime.now(UTC):
            raise ValueError("must be a past moment (from 2000 on): the children registered then are sampled")
        return value

    @model_validator(mode="after")
    def _size_or_rate(self) -> SpotCheckCreate:
        if (self.sample_size is None) == (self.sample_rate is None):
            raise ValueError("give exactly one of sample_size and sample_rate")
        return self


class SampledFile(BaseModel):
    child_id: UUID
    village: str
    checked: bool
    failed_items: list[str]


class TownshipSample(BaseModel):
    township: str
    registered: int = Field(description="Children registered in the township as of the draw.")
    files: list[SampledFile]


class SpotCheckView(BaseModel):
    spot_check_id: UUID
    year: int
    seed: int
    as_of: datetime
    sample_size: int | None
    sample_rate: float | None
    checklist_version: str
    drawn_by_agency: str
    sampled: int
    checked: int
    townships: list[TownshipSample]


class ItemAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    item: Code = Field(description="A checklist item code (contracts/spot_check_checklist.yaml).")
    result: ItemResult
    note: Note = ""


class FileResults(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "checked_on": "2026-11-29",
        "results": [
            {"item": "identity_verified", "result": "pass"},
            {"item": "guardians_recorded", "result": "pass"},
            {"item": "visit_regime_kept", "result": "fail", "note": "9月至11月无入户走访记录"},
            {"item": "entrusted_care_agreement", "result": "not_applicable"},
            {"item": "director_assigned", "result": "pass"},
            {"item": "risk_assessment_current", "result": "pass"},
            {"item": "needs_and_relief_recorded", "result": "pass"},
        ],
    }]})
    checked_on: date
    results: list[ItemAnswer] = Field(min_length=1, max_length=50)


class FileResultView(BaseModel):
    spot_check_id: UUID
    child_id: UUID
    township: str
    village: str
    checked_on: date
    results: list[ItemAnswer]
    failed_items: list[str]
    follow_up_items: list[str] = Field(description="Items newly failed by this recording: a follow-up is routed to "
                                       "the township for them.")


class ItemSummaryView(BaseModel):
    item: str
    label_zh: str
    label_en: str
    passed: int
    failed: int
    not_applicable: int
    pass_rate: float | None = Field(description="Passed among the checked files it applied to; null when none.")


class TownshipSummaryView(BaseModel):
    township: str
    sampled: int
    checked: int
    files_with_failures: int
    items: list[ItemSummaryView]


class SpotCheckSummary(BaseModel):
    spot_check_id: UUID
    year: int
    seed: int
    townships: list[TownshipSummaryView]
    items: list[ItemSummaryView] = Field(description="Every township together.")
