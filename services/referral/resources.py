"""The directory of relief and charity resources, in the shape of Open Referral HSDS 3.0 (issue 10).

One ``Organisation`` aggregate per organisation (an agency, a charity, a social organisation, a volunteer team, a
school, a hospital) holds its services, locations and contacts; every change is an event in the referral store,
so the directory as it stood on any day can be reconstructed. Organisations are about no child: their events are
not sealed. A service's contact is an organisation's desk (a phone number of the organisation), never a child's.

Which principals act for an organisation: those of agency ``charity`` whose subject (client id or account id) the
lead agency has bound to the organisation (``members``). The Principal itself stays as it is (ids and codes).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from contracts.vocabulary import ChildCategory, NeedCategory

ORGANISATION_NAMESPACE = uuid.UUID("5d0b2a4c-7e1f-4c3a-9b8d-6f2e1a0c9b7d")
Short = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Code = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]


class OrganisationKind(StrEnum):
    agency = "agency"
    charity = "charity"
    social_organisation = "social_organisation"
    volunteer_team = "volunteer_team"
    school = "school"
    hospital = "hospital"


class ServiceStatus(StrEnum):
    """HSDS ``service.status``."""

    active = "active"
    inactive = "inactive"
    defunct = "defunct"
    temporarily_closed = "temporarily closed"


class Cost(StrEnum):
    free = "free"
    reduced = "reduced"
    paid = "paid"


# --- HSDS-shaped documents (the API's and the import file's shape) ---------------------------------------------


class Hsds(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Contact(Hsds):
    """HSDS ``contact`` with one ``phone``: the organisation's desk, not a person's private number."""

    id: UUID | None = None
    name: Short | None = None
    title: Short | None = None
    phone: Annotated[str, StringConstraints(pattern=r"^[0-9+\- ]{5,20}$")] | None = None
    email: Annotated[str, StringConstraints(max_length=200)] | None = None


class Location(Hsds):
    """HSDS ``location`` with its ``address``, placed in a township (and village) of the county."""

    id: UUID
    name: Short
    township: Code
    village: Code | None = None
    address_1: Short | None = None


class AreaServed(Hsds):
    """HSDS ``service_area``: a township, or one village of it."""

    township: Code
    village: Code | None = None


class Eligibility(Hsds):
    """HSDS ``eligibility`` (with ``minimum_age``/``maximum_age``, both inclusive, in full years on the day)."""

    minimum_age: int = Field(default=0, ge=0, le=25)
    maximum_age: int = Field(default=17, ge=0, le=25)
    child_categories: list[ChildCategory] = Field(
        default_factory=list, description="Any of these (empty: every child)."
    )

    @model_validator(mode="after")
    def _ages(self) -> Eligibility:
        if self.minimum_age > self.maximum_age:
            raise ValueError("minimum_age must not exceed maximum_age")
        return self


class Schedule(Hsds):
    """HSDS ``schedule`` (a recurrence in iCalendar RRULE terms, and a description)."""

    freq: Annotated[str, StringConstraints(pattern=r"^(DAILY|WEEKLY|MONTHLY|YEARLY|ONCE)$")] = "ONCE"
    valid_from: date | None = None
    valid_to: date | None = None
    description: Short | None = None


class ServiceDocument(Hsds):
    """HSDS ``service`` with its ``service_at_location`` (``location_ids``), eligibility, area, capacity, cost."""

    id: UUID
    name: Short
    category: NeedCategory
    status: ServiceStatus = ServiceStatus.active
    description: Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)] | None = None
    eligibility: Eligibility = Field(default_factory=Eligibility)
    service_areas: list[AreaServed] = Field(default_factory=list, description="Empty: the whole county.")
    capacity: int | None = Field(default=None, ge=0, description="Children at a time (empty: no limit).")
    cost: Cost = Cost.free
    schedule: Schedule = Field(default_factory=Schedule)
    location_ids: list[UUID] = Field(default_factory=list, description="HSDS service_at_location.")
    contacts: list[Contact] = Field(default_factory=list)


ORGANISATION_EXAMPLE: dict[str, Any] = {
    "id": "6f1d2c3b-4a5e-4f60-8b7a-9c0d1e2f3a4b", "name": "乐清市阳光助学会", "kind": "charity",
    "members": ["client-yangguang"],
    "locations": [{"id": "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", "name": "虹桥服务点", "township": "虹桥镇"}],
    "contacts": [{"name": "服务台", "phone": "0577-62000000"}],
    "services": [{
        "id": "1b2c3d4e-5f6a-4b7c-8d9e-0f1a2b3c4d5e", "name": "留守儿童助学金", "category": "tuition_supplies",
        "eligibility": {"minimum_age": 6, "maximum_age": 15, "child_categories": ["left_behind"]},
        "service_areas": [{"township": "虹桥镇"}, {"township": "淡溪镇"}], "capacity": 20, "cost": "free",
        "schedule": {"freq": "YEARLY", "description": "每学期初发放"},
        "location_ids": ["0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"],
    }],
}


class OrganisationDocument(Hsds):
    """HSDS ``organization`` with its locations and services (the unit of create, update and import)."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra={"examples": [ORGANISATION_EXAMPLE]})

    id: UUID
    name: Short
    kind: OrganisationKind
    description: Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)] | None = None
    website: Annotated[str, StringConstraints(max_length=200)] | None = None
    members: list[Annotated[str, StringConstraints(min_length=1, max_length=100)]] = Field(
        default_factory=list, description="Subjects (client or account ids) of agency `charity` acting for it."
    )
    locations: list[Location] = Field(default_factory=list)
    services: list[ServiceDocument] = Field(default_factory=list)
    contacts: list[Contact] = Field(default_factory=list)

    @model_validator(mode="after")
    def _locations_known(self) -> OrganisationDocument:
        known = {loc.id for loc in self.locations}
        for service in self.services:
            unknown = [str(i) for i in service.location_ids if i not in known]
            if unknown:
                raise ValueError(f"service {service.id} names unknown locations: {', '.join(unknown)}")
        return self


# --- the aggregate --------------------------------------------------------------------------------------------


class Organisation(Aggregate):
    """An organisation of the directory; each registration or update is one event carrying the whole document
    (a directory entry is small, and a full document per change makes every version readable on its own)."""

    @staticmethod
    def create_id(organisation_id: UUID, **_: Any) -> UUID:
        return uuid.uuid5(ORGANISATION_NAMESPACE, str(organisation_id))

    @event("Registered")
    def __init__(self, organisation_id: UUID, document: dict[str, Any], actor: str) -> None:
        self.organisation_id = organisation_id
        self.document = document

    def update(self, document: dict[str, Any], actor: str) -> bool:
        """Record a new version; an unchanged document records nothing (an import run twice is a no-op)."""
        if document == self.document:
            return False
        self._updated(document=document, actor=actor)
        return True

    @event("Updated")
    def _updated(self, document: dict[str, Any], actor: str) -> None:
        self.document = document

    @property
    def parsed(self) -> OrganisationDocument:
        return OrganisationDocument.model_validate(self.document)


def organisation_aggregate_id(organisation_id: UUID) -> UUID:
    return uuid.uuid5(ORGANISATION_NAMESPACE, str(organisation_id))


@dataclass(frozen=True)
class ServiceRow:
    """One service as matching reads it: flat, hashable, no text."""

    service_id: UUID
    organisation_id: UUID
    category: NeedCategory
    active: bool
    minimum_age: int
    maximum_age: int
    child_categories: frozenset[ChildCategory]
    townships: frozenset[str]  # served whole
    villages: frozenset[tuple[str, str]]  # served one village at a time
    capacity: int | None
    cost: Cost
    location_township: str | None


def rows_of(document: OrganisationDocument) -> list[ServiceRow]:
    locations = {loc.id: loc for loc in document.locations}
    rows = []
    for s in document.services:
        first = locations.get(s.location_ids[0]) if s.location_ids else None
        rows.append(ServiceRow(
            service_id=s.id, organisation_id=document.id, category=s.category,
            active=s.status is ServiceStatus.active, minimum_age=s.eligibility.minimum_age,
            maximum_age=s.eligibility.maximum_age, child_categories=frozenset(s.eligibility.child_categories),
            townships=frozenset(a.township for a in s.service_areas if a.village is None),
            villages=frozenset((a.township, a.village) for a in s.service_areas if a.village is not None),
            capacity=s.capacity, cost=s.cost, location_township=first.township if first else None,
        ))
    return rows
