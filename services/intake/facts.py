"""What a child's file (一人一档) records beyond identity: household, guardians, school, disability, health, needs.

Frozen pydantic models, stored in the ``Child.FactsRecorded`` event as plain JSON (``model_dump(mode="json")``).
Every field is optional with a default that means "not recorded", so a file can start from a bare registration
and grow. Categories are never typed in here: ``services.intake.categories.derive_categories`` derives them
from these facts.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationInfo, field_validator

Note = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


def _today() -> date:
    return datetime.now(UTC).date()


def _not_in_future(value: date | None) -> date | None:
    if value is not None and value > _today():
        raise ValueError("must not be in the future")
    return value


class GuardianRelation(StrEnum):
    father = "father"
    mother = "mother"
    grandparent = "grandparent"
    other_relative = "other_relative"
    other = "other"


PARENT_RELATIONS = frozenset({GuardianRelation.father, GuardianRelation.mother})


class GuardianStatus(StrEnum):
    present = "present"  # lives with the child
    away_for_work = "away_for_work"  # 外出务工
    deceased = "deceased"
    incarcerated = "incarcerated"  # 服刑在押
    missing = "missing"  # 失联 / whereabouts unknown
    unknown = "unknown"  # not yet established


class CaregiverRelation(StrEnum):
    grandparent = "grandparent"
    other_relative = "other_relative"
    neighbour = "neighbour"
    family_friend = "family_friend"
    other = "other"


class NeedKind(StrEnum):
    basic_living = "basic_living"  # 基本生活
    medical = "medical"  # 医疗康复
    education = "education"  # 教育
    housing = "housing"  # 住房


class NeedSource(StrEnum):
    """Where a difficulty need is established."""

    dibao = "dibao"  # 低保 minimum living guarantee
    tekun = "tekun"  # 特困供养 extreme poverty support
    low_income_margin = "low_income_margin"  # 低保边缘
    medical_assistance = "medical_assistance"  # 医疗救助 / serious illness
    education_assistance = "education_assistance"  # 教育资助
    housing_assistance = "housing_assistance"  # 危房改造 / housing support
    survey_assessment = "survey_assessment"  # found in the survey (摸底排查)
    other = "other"


class GuardianshipSituationKind(StrEnum):
    missing = "missing"  # 监护缺失
    improper = "improper"  # 监护不当


class GuardianshipFindingSource(StrEnum):
    civil_affairs_assessment = "civil_affairs_assessment"
    police_finding = "police_finding"
    court_decision = "court_decision"
    procuratorate_finding = "procuratorate_finding"
    village_finding = "village_finding"
    school_finding = "school_finding"
    survey = "survey"


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Guardian(Frozen):
    """A parent or another guardian of the child."""

    relation: GuardianRelation = Field(description="The guardian's relation to the child.")
    status: GuardianStatus = Field(default=GuardianStatus.unknown, description="Where the guardian is.")
    away_since: date | None = Field(
        default=None,
        description="Start of the current, uninterrupted absence for work (only with status away_for_work).",
    )
    works_outside_county: bool | None = Field(
        default=None, description="Works outside the county (县外); null when not known. Only with away_for_work."
    )
    serious_physical_disability: bool = Field(default=False, description="重度肢体残疾 or similar.")
    serious_mental_disability: bool = Field(default=False, description="重度精神残疾.")
    serious_intellectual_disability: bool = Field(default=False, description="重度智力残疾.")
    serious_illness: bool = Field(default=False, description="重病.")

    @field_validator("away_since")
    @classmethod
    def _away_since_only_when_away(cls, value: date | None, info: ValidationInfo) -> date | None:
        if value is not None and info.data.get("status") != GuardianStatus.away_for_work:
            raise ValueError("only recorded for a guardian away for work")
        return _not_in_future(value)

    @field_validator("works_outside_county")
    @classmethod
    def _county_only_when_away(cls, value: bool | None, info: ValidationInfo) -> bool | None:
        if value is not None and info.data.get("status") != GuardianStatus.away_for_work:
            raise ValueError("only recorded for a guardian away for work")
        return value

    @property
    def is_parent(self) -> bool:
        return self.relation in PARENT_RELATIONS

    @property
    def has_serious_disability(self) -> bool:
        return (
            self.serious_physical_disability or self.serious_mental_disability or self.serious_intellectual_disability
        )


class EntrustedCaregiver(Frozen):
    """Who looks after the child while the parents are away (委托照护人). The agreement itself is guardianship's."""

    relation: CaregiverRelation = Field(description="The caregiver's relation to the child.")
    lives_with_child: bool = Field(default=True, description="The caregiver lives with the child.")


class School(Frozen):
    name: ShortText | None = Field(default=None, description="The school's name.")
    grade: Annotated[int, Field(ge=0, le=12)] | None = Field(
        default=None, description="Grade: 0 kindergarten, 1-6 primary, 7-9 junior, 10-12 senior."
    )
    enrolled: bool | None = Field(default=None, description="Currently enrolled; null when not known.")
    dropped_out_on: date | None = Field(default=None, description="When the child left school (辍学), if so.")

    @field_validator("dropped_out_on")
    @classmethod
    def _dropout_means_not_enrolled(cls, value: date | None, info: ValidationInfo) -> date | None:
        if value is not None and info.data.get("enrolled"):
            raise ValueError("a child who dropped out is not enrolled")
        return _not_in_future(value)


class Disability(Frozen):
    has_disability: bool = Field(default=False, description="The child has a disability.")
    certificate_level: Annotated[int, Field(ge=1, le=4)] | None = Field(
        default=None, description="Level on the disability certificate (残疾证), 1 (most severe) to 4."
    )

    @field_validator("certificate_level")
    @classmethod
    def _certificate_means_disability(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and not info.data.get("has_disability"):
            raise ValueError("only recorded for a child with a disability (has_disability)")
        return value


class DifficultyNeed(Frozen):
    kind: NeedKind = Field(description="The kind of difficulty (困境).")
    source: NeedSource = Field(description="Where the need is established, e.g. dibao (低保), tekun (特困).")


class GuardianshipSituation(Frozen):
    kind: GuardianshipSituationKind = Field(description="missing (监护缺失) or improper (监护不当).")
    source: GuardianshipFindingSource = Field(description="Who established it.")


class ChildFileFacts(Frozen):
    """What the file records about the child's situation. Identity (name, sex, birth date, ID number, place) is
    kept apart; categories are derived from these facts, never typed in."""

    guardians: tuple[Guardian, ...] = Field(
        default=(), max_length=8, description="Parents and other guardians; at most one father and one mother."
    )
    entrusted_caregiver: EntrustedCaregiver | None = Field(
        default=None, description="The entrusted caregiver while the parents are away."
    )
    school: School | None = None
    disability: Disability = Field(default_factory=Disability)
    health_notes: Note | None = Field(default=None, description="Health notes (sensitive; never leaves intake).")
    psychological_notes: Note | None = Field(default=None, description="Psychological notes (sensitive).")
    psychological_abnormality: bool = Field(
        default=False, description="The child shows psychological or behavioural abnormality (more frequent visits)."
    )
    needs: tuple[DifficultyNeed, ...] = Field(default=(), max_length=8, description="Difficulty needs (困境).")
    guardianship: GuardianshipSituation | None = Field(
        default=None, description="A finding of missing or improper guardianship, with who made it."
    )

    @field_validator("guardians")
    @classmethod
    def _one_father_one_mother(cls, value: tuple[Guardian, ...]) -> tuple[Guardian, ...]:
        for relation in PARENT_RELATIONS:
            if sum(1 for g in value if g.relation == relation) > 1:
                raise ValueError(f"at most one {relation.value} may be recorded")
        return value

    @field_validator("needs")
    @classmethod
    def _one_need_per_kind(cls, value: tuple[DifficultyNeed, ...]) -> tuple[DifficultyNeed, ...]:
        kinds = [n.kind for n in value]
        if len(set(kinds)) != len(kinds):
            raise ValueError("each kind of need may be recorded once")
        return value

    @property
    def parents(self) -> tuple[Guardian, ...]:
        return tuple(g for g in self.guardians if g.is_parent)

    def stored(self) -> dict[str, Any]:
        """The plain-JSON form kept in events."""
        return self.model_dump(mode="json")

    def fingerprint(self) -> str:
        return facts_fingerprint(self.stored())


SECTIONS: tuple[str, ...] = tuple(ChildFileFacts.model_fields)


def facts_fingerprint(stored: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(stored, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


EMPTY_FACTS: dict[str, Any] = ChildFileFacts().stored()
