"""HTTP schemas of the child directors (儿童主任): roster, assignment of children, training record, coverage."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from services.guardianship.ladder_schemas import NotInFuture

PlaceName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]
PersonName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50, pattern=r"^[^\x00-\x1f\x7f0-9]+$")
]
# A mainland mobile number, or a landline with its area code (0577-62345678).
Phone = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^(1[3-9]\d{9}|0\d{2,3}-?\d{7,8})$")]


class LeaveReason(StrEnum):
    resigned = "resigned"  # 辞职
    post_changed = "post_changed"  # 岗位调整
    retired = "retired"  # 退休
    dismissed = "dismissed"  # 免职
    other = "other"


DIRECTOR_EXAMPLE: dict[str, Any] = {
    "name": "陈丽华", "phone": "13857712345", "township": "虹桥镇", "village": "溪西村", "appointed_on": "2024-04-15",
}


class DirectorCreate(BaseModel):
    """Appoint a child director (儿童主任) to a village. Name and phone are staff personal data: never logged."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [DIRECTOR_EXAMPLE]})

    name: PersonName
    phone: Phone | None = Field(default=None, description="Optional: a mobile or landline number.")
    township: PlaceName
    village: PlaceName
    appointed_on: NotInFuture


class DirectorLeave(BaseModel):
    """The director leaves the post; the children they followed are released, to be assigned to another."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"left_on": "2026-11-27", "reason": "post_changed"}]}
    )

    left_on: NotInFuture = Field(description="The first day out of office.")
    reason: LeaveReason | None = None


class DirectorAssign(BaseModel):
    """The child's director: a child has at most one; assigning another moves the child."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"director_id": "9a4e2c71-3b5d-4f6a-8e1c-2d7b9f0a5c36"}]}
    )

    director_id: UUID


TRAINING_EXAMPLE: dict[str, Any] = {
    "trained_on": "2026-06-18", "course": "乐清市儿童主任全覆盖培训(2026年度)", "hours": 8,
}


class TrainingCreate(BaseModel):
    """A training the director attended, for the training archive and the annual full-coverage check."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [TRAINING_EXAMPLE]})

    training_id: UUID | None = Field(
        default=None, description="Your id: a retry with the same id and body records nothing twice "
        "(or send an Idempotency-Key header).",
    )
    trained_on: NotInFuture
    course: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    hours: float = Field(gt=0, le=200)


class DirectorPublic(BaseModel):
    director_id: UUID
    name: str
    phone: str | None
    township: str
    village: str
    appointed_on: date
    left_on: date | None
    children: int = Field(description="Children assigned.")


class WorkloadPublic(BaseModel):
    children: int = Field(description="Children assigned (files merged into another not counted).")
    frequent_visits: int = Field(description="Of which on the more frequent visit regime, as far as known.")
    not_yet_known: int = Field(description="Assigned children guardianship has not heard of (yet).")
    merged_children: list[UUID] = Field(description="Assigned files since merged: assign the surviving file.")


class TrainingPublic(BaseModel):
    training_id: UUID
    trained_on: date
    course: str
    hours: float


class DirectorDetail(DirectorPublic):
    leave_reason: str | None
    child_ids: list[UUID]
    workload: WorkloadPublic
    trainings: list[TrainingPublic]


class DeparturePublic(BaseModel):
    director_id: UUID
    left_on: date
    released_children: list[UUID] = Field(description="The children to assign to another director.")


class AssignmentPublic(BaseModel):
    child_id: UUID
    director_id: UUID | None
    previous_director_id: UUID | None = None


class VillageCoveragePublic(BaseModel):
    township: str
    village: str
    covered_children: int = Field(description="Left-behind children and children in difficulty on file.")
    directors: int = Field(description="Directors serving now.")
    flags: list[str] = Field(description="no_director; needs_another_director (more than 30 covered children).")


class UntrainedDirectorPublic(BaseModel):
    director_id: UUID
    name: str
    township: str
    village: str
    last_trained_on: date | None


class CoveragePublic(BaseModel):
    year: int
    township: str | None
    as_of: date
    villages: list[VillageCoveragePublic] = Field(description="Every village with covered children or directors.")
    villages_without_director: list[VillageCoveragePublic]
    villages_needing_another_director: list[VillageCoveragePublic]
    untrained_directors: list[UntrainedDirectorPublic] = Field(
        description="Directors in office at the year's end (today, in the current year) without a training that "
        "year: the annual full-coverage training is not met."
    )
    directors_in_office: int
