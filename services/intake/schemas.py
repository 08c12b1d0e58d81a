"""Intake's HTTP schemas (ReportCreate / ReportPublic / CasePublic / TimelinePublic)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationInfo, field_validator

from contracts.agencies import Agency
from contracts.vocabulary import ChildCategory, ConcernCategory, ReporterRole, Sex, Urgency
from services.intake.facts import ChildFileFacts

PlaceName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]
ID_CARD_PATTERN = r"^\d{17}[\dXx]$"


def _today() -> date:
    return datetime.now(UTC).date()


def eighteenth_birthday(birth_date: date) -> date:
    try:
        return birth_date.replace(year=birth_date.year + 18)
    except ValueError:  # born on 29 February: of age on 1 March
        return date(birth_date.year + 18, 3, 1)


def a_minors_birth_date(value: date) -> date:
    if value > _today():
        raise ValueError("must not be in the future")
    if eighteenth_birthday(value) <= _today():
        raise ValueError("the child must be under 18")
    return value


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
    categories: list[ChildCategory] = Field(
        default_factory=list,
        max_length=len(ChildCategory),
        description="The reporter's observation of the child's categories, accepted for compatibility. It is kept "
        "as the file's `reported_categories`, not as its categories: those are derived from the file's facts. "
        "`ReportFiled.child_categories` carries the file's derived categories united with this observation, so "
        "that routing works before the file has facts.",
    )

    @field_validator("birth_date")
    @classmethod
    def _not_in_future(cls, value: date) -> date:
        return a_minors_birth_date(value)

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


class FactsProvenance(BaseModel):
    source: str
    recorded_by: Agency
    recorded_at: datetime


class PendingDuplicate(BaseModel):
    child_id: UUID = Field(description="The other child.")
    score: float | None
    exact: bool
    reasons: list[str]
    flagged_on: UUID = Field(description="The file the probable duplicate was flagged on.")


class ChildPublic(BaseModel):
    """The child's file (一人一档)."""

    child_id: UUID
    name: str
    sex: Sex
    birth_date: date
    township: str
    village: str
    categories: list[ChildCategory] = Field(description="Derived from the facts (see `category_reasons`).")
    case_ids: list[UUID]
    id_card_number: str | None = None
    registered_at: datetime | None = None
    registered_by: Agency | None = None
    facts: ChildFileFacts = Field(default_factory=ChildFileFacts)
    facts_provenance: dict[str, FactsProvenance] = Field(
        default_factory=dict, description="For each part of the facts: the source, agency and time of its last change."
    )
    category_reasons: list[str] = Field(default_factory=list, description="Why, as codes `<category>:<why>`.")
    categories_as_of: date | None = None
    categories_derived_at: datetime | None = None
    reported_categories: list[ChildCategory] = Field(
        default_factory=list, description="What reporters observed (reports' `child.categories`); not derived."
    )
    parents_away: bool = False
    parents_away_since: date | None = None
    frequent_visit_reasons: list[str] = Field(default_factory=list)
    has_entrusted_caregiver: bool = False
    open_case_id: UUID | None = None
    duplicates_pending: list[PendingDuplicate] = Field(
        default_factory=list, description="Probable duplicates waiting for a person to confirm or dismiss."
    )
    merged_into: UUID | None = Field(default=None, description="Set when this file was merged into another.")
    absorbed: list[UUID] = Field(default_factory=list, description="Files merged into this one.")


# --- the child's file ---------------------------------------------------------------------------------------------

SourceCode = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[a-z][a-z0-9_:.\-]{0,119}$")]


class ChildIdentityIn(BaseModel):
    """Who the child is. Categories are not given: they are derived from the facts."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]
    sex: Sex
    birth_date: date
    id_card_number: Annotated[str, StringConstraints(pattern=ID_CARD_PATTERN)] | None = Field(
        default=None, description="18-character resident identity card number, when known."
    )
    township: PlaceName
    village: PlaceName

    @field_validator("birth_date")
    @classmethod
    def _a_living_minor(cls, value: date) -> date:
        return a_minors_birth_date(value)


CHILD_REGISTRATION_EXAMPLE: dict[str, Any] = {
    "registered_by": "village",
    "child": {
        "name": "张雨涵", "sex": "female", "birth_date": "2017-03-08", "id_card_number": "330382201703081224",
        "township": "虹桥镇", "village": "溪西村",
    },
    "facts": {
        "guardians": [
            {"relation": "father", "status": "away_for_work", "away_since": "2026-02-20", "works_outside_county": True},
            {"relation": "mother", "status": "away_for_work", "away_since": "2026-02-20", "works_outside_county": True},
            {"relation": "grandparent", "status": "present", "serious_illness": True},
        ],
        "entrusted_caregiver": {"relation": "grandparent", "lives_with_child": True},
        "school": {"name": "虹桥镇第一小学", "grade": 3, "enrolled": True},
        "needs": [{"kind": "basic_living", "source": "dibao"}],
    },
}


class ChildRegister(BaseModel):
    """Register a child (one child, one file), or bring a registered child's facts up to date."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [CHILD_REGISTRATION_EXAMPLE]})

    registered_by: Agency = Field(description="The registering agency.")
    child: ChildIdentityIn
    facts: ChildFileFacts = Field(default_factory=ChildFileFacts, description="What the file records.")
    source: SourceCode = Field(
        default="registration", description="Where the facts come from, as a code (e.g. registration, home_visit)."
    )


class DuplicateOut(BaseModel):
    child_id: UUID = Field(description="The child it probably duplicates.")
    score: float
    exact: bool
    reasons: list[str]


class ChildLinks(BaseModel):
    child: str
    history: str
    facts: str


class RegistrationPublic(BaseModel):
    child_id: UUID
    created: bool = Field(description="A new file.")
    changed: bool = Field(description="The facts, categories or duplicates changed.")
    categories: list[ChildCategory]
    duplicates: list[DuplicateOut] = Field(description="Probable duplicates for a person to confirm or dismiss.")
    links: ChildLinks


FACTS_EXAMPLE: dict[str, Any] = {
    "recorded_by": "village",
    "source": "home_visit",
    "facts": {
        "guardians": [
            {"relation": "father", "status": "away_for_work", "away_since": "2026-02-20", "works_outside_county": True},
            {"relation": "mother", "status": "present"},
        ],
        "school": {"name": "虹桥镇第一小学", "grade": 3, "enrolled": True},
        "disability": {"has_disability": True, "certificate_level": 3},
        "psychological_abnormality": True,
        "psychological_notes": "近期情绪低落，不愿与同学交流。",
    },
}


class FactsUpdate(BaseModel):
    """The file's facts as they now stand (they replace the recorded ones); categories are re-derived."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [FACTS_EXAMPLE]})

    recorded_by: Agency
    source: SourceCode = Field(description="Where the facts come from, as a code (e.g. home_visit, school_record).")
    facts: ChildFileFacts


class FactsRecordedPublic(BaseModel):
    child_id: UUID
    changed: bool
    categories: list[ChildCategory]
    duplicates: list[DuplicateOut]


class HistoryEntry(BaseModel):
    version: int
    time: datetime
    change: str = Field(description="registered, facts_recorded, categories_derived, duplicate_flagged, ...")
    agency: Agency | None
    source: str | None
    details: dict[str, Any]


class ChildHistoryPublic(BaseModel):
    child_id: UUID
    entries: list[HistoryEntry]


class DuplicatePairPublic(BaseModel):
    pair: str = Field(description="The two child ids, sorted, joined by a colon; also the paging cursor.")
    child_id: UUID = Field(description="The file the probable duplicate was flagged on.")
    other_child_id: UUID
    score: float
    reasons: list[str]
    status: str
    township: str
    village: str
    flagged_at: datetime
    resolved_at: datetime | None
    resolved_by: Agency | None
    links: dict[str, str]

    @field_validator("flagged_at", "resolved_at")
    @classmethod
    def _in_utc(cls, value: datetime | None) -> datetime | None:
        """The registry's times are UTC; SQLite gives them back without their offset, which is no RFC 3339
        date-time (the documented format)."""
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class DuplicateListPublic(BaseModel):
    items: list[DuplicatePairPublic]
    next_cursor: str | None


DECISION_EXAMPLE: dict[str, Any] = {"by": "civil_affairs", "note": "户籍信息核对一致，同一名儿童。"}


class DuplicateDecision(BaseModel):
    """A person's decision on a probable duplicate."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [DECISION_EXAMPLE]})

    by: Agency = Field(description="The deciding agency.")
    note: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)] | None = None


class MergePublic(BaseModel):
    child_id: UUID = Field(description="The surviving file.")
    merged_child_id: UUID
    case_ids: list[UUID]
    categories: list[ChildCategory]


CHILD_REPORT_EXAMPLE: dict[str, Any] = {
    "reporter": {"agency": "village", "role": "child_director", "reference": "CD-0107"},
    "concern_category": "caregiver_unable",
    "urgency": "urgent",
    "observed_on": "2026-11-26",
    "observations": "走访发现祖母卧病在床，无力照料，孩子近一周独自做饭上学。",
}


class ChildReportCreate(BaseModel):
    """A report about a registered child, by id (e.g. a finding of the child director's visit)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [CHILD_REPORT_EXAMPLE]})

    reporter: ReporterIn
    concern_category: ConcernCategory
    urgency: Urgency
    observed_on: date = Field(description="When the reporter observed what is reported.")
    observations: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]

    @field_validator("observed_on")
    @classmethod
    def _observed_not_in_future(cls, value: date) -> date:
        if value > _today():
            raise ValueError("must not be in the future")
        return value


class RederiveRequest(BaseModel):
    """Re-derive the categories of the children whose categories change by time alone (a daily job)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"as_of": "2026-11-29"}]})

    as_of: date | None = Field(default=None, description="The date to derive on; today (UTC) when absent.")


class RederivePublic(BaseModel):
    as_of: date
    changed: list[UUID]


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
