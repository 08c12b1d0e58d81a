"""The annual archive spot check (档案抽查, issue 8): a reproducible random sample of children's files per township,
a checklist per file, results recorded and summarised, follow-ups routed to the township.

Civil affairs spot-checks the files at least once a year (DOMAIN.md). Two aggregates in the indicators service's
own event store:

- ``SpotCheck``: the draw. Its one event records the year, the townships, the seed, the ``as_of`` the registered
  children were read at and the sample itself (ids only), so the sample never needs drawing again to be known, and
  anyone can draw it again from the seed and ``as_of`` to see that it was not picked by hand.
- ``SpotCheckFile``: one sampled file's results (pass / fail / not applicable per checklist item, with a short
  note). It carries ``child_id``, so its events are sealed under the child's key like every event about a child
  (huhang/personal.py): the notes are free text and may name someone.

A file whose result has a failed item not failed before raises the contract event ``SpotCheckFollowUpRequired``
(codes only, never the notes), which the routing rules send to the township as a referral (rule
``spot-check-follow-up``).

The sample: the children registered in the township as of the draw, ids sorted, then
``random.Random(f"{seed}:{township}").sample``. Seeding per township keeps each township's sample the same
whichever other townships are drawn with it.
"""

from __future__ import annotations

import math
import random
import secrets
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from functools import lru_cache
from importlib import resources
from typing import Any, Literal, Protocol, cast
from uuid import UUID

import yaml
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate, event
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine, or_, select

from contracts.cases import care_case_id
from contracts.envelope import CloudEvent
from contracts.events import SpotCheckFollowUpRequired, SpotCheckFollowUpRequiredData
from huhang.eventstore import integration_event_id
from huhang.personal import PersonalDataErased
from huhang.problems import FieldError, NotFound, Unprocessable
from huhang.sql import reading
from services.indicators import tables as ind_tables

SOURCE = "/huhang/indicators"
SPOT_CHECK_FILE_NAMESPACE = uuid.UUID("3c9e5a71-4b2d-4f8e-a6c1-7d0b2e9f5a34")
MAX_SAMPLE_PER_TOWNSHIP = 1000


# --- the checklist (data: contracts/spot_check_checklist.yaml) -----------------------------------------------------


class ChecklistItem(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    code: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    zh: str
    en: str
    applies: Literal["always", "parents_away"] = "always"


class Checklist(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str
    items: tuple[ChecklistItem, ...] = Field(min_length=1)

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(item.code for item in self.items)

    def item(self, code: str) -> ChecklistItem | None:
        return next((i for i in self.items if i.code == code), None)


@lru_cache(maxsize=1)
def load_checklist() -> Checklist:
    """The packaged checklist (read once per process, on first use)."""
    text = resources.files("contracts").joinpath("spot_check_checklist.yaml").read_text(encoding="utf-8")
    return Checklist.model_validate(yaml.safe_load(text))


class ItemResult(StrEnum):
    passed = "pass"
    failed = "fail"
    not_applicable = "not_applicable"


# --- who is registered where (asked of the indicators read models) --------------------------------------------------


@dataclass(frozen=True, slots=True)
class RegisteredChild:
    child_id: UUID
    township: str
    village: str


class ChildRoster(Protocol):
    """The children registered in a township as they stood at ``as_of`` (from ChildFileUpdated events)."""

    def registered(self, township: str, as_of: datetime) -> list[RegisteredChild]: ...


REGISTERED_INDICATOR = "children_registered"
"""The count indicator of the catalogue whose children are the registered children of a unit."""


class IndicatorRoster:
    """The roster read through the indicators service's query interface (services/indicators/model.py): the
    villages of the township that the registration count knows, and for each the children it counts."""

    def __init__(self, queries: Any, indicator: str = REGISTERED_INDICATOR) -> None:
        self.queries = queries
        self.indicator = indicator

    def registered(self, township: str, as_of: datetime) -> list[RegisteredChild]:
        prefix = f"{township}/"
        villages = {v.unit for v in self.queries.values(self.indicator, "village", as_of=as_of)
                    if v.unit.startswith(prefix) and v.breakdown is None}
        return [
            RegisteredChild(child_id, township, unit[len(prefix):])
            for unit in sorted(villages)
            for child_id in self.queries.children_behind(self.indicator, "village", unit, as_of)
        ]


class TableRoster:
    """The same children read from the indicators' temporal table of children (``ind_child``, the rows
    ``children_registered`` counts) in one query per township, rather than computing the county's figures once per
    village through the query interface."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def registered(self, township: str, as_of: datetime) -> list[RegisteredChild]:
        c = ind_tables.children.c
        at = as_of.astimezone(UTC)
        query = select(c.child_id, c.village).where(
            c.township == township, c.valid_from <= at, or_(c.valid_to.is_(None), c.valid_to > at))
        with reading(self.engine) as conn:
            return [RegisteredChild(UUID(r.child_id), township, r.village) for r in conn.execute(query)]


# --- the sample (pure) ---------------------------------------------------------------------------------------------


def sample_size(population: int, size: int | None, rate: float | None) -> int:
    """How many files of a township of ``population`` children: a fixed size, or a rate rounded up (at least one
    file of a township that has any); never more than there are."""
    wanted = size if size is not None else math.ceil(population * (rate or 0.0))
    if rate is not None and population and wanted == 0:
        wanted = 1
    return min(population, wanted)


def draw_sample(children: Iterable[UUID], seed: int, township: str, k: int) -> list[UUID]:
    """``k`` of ``children``, the same for the same seed, township and children whatever their order."""
    ordered = sorted(set(children), key=str)
    # Reproducible by design (anyone with the seed draws it again), so not a cryptographic generator.
    chosen = random.Random(f"{seed}:{township}").sample(ordered, min(k, len(ordered)))  # noqa: S311
    return sorted(chosen, key=str)


def new_seed() -> int:
    return secrets.randbits(53)  # exact in JSON numbers (JavaScript's safe integers) as well


# --- the aggregates --------------------------------------------------------------------------------------------------


class SpotCheck(Aggregate):
    """One annual spot check: what was drawn, from what, how."""

    @staticmethod
    def create_id(spot_check_id: UUID, **_: Any) -> UUID:
        return spot_check_id

    @event("Drawn")
    def __init__(
        self, spot_check_id: UUID, year: int, seed: int, as_of: datetime, size: int | None, rate: float | None,
        checklist_version: str, samples: dict[str, list[dict[str, str]]], populations: dict[str, int],
        drawn_by: str, drawn_by_agency: str,
    ) -> None:
        self.year = year
        self.seed = seed
        self.as_of = as_of
        self.size = size
        self.rate = rate
        self.checklist_version = checklist_version
        self.samples = {t: [dict(row) for row in rows] for t, rows in samples.items()}  # child_id, village
        self.populations = dict(populations)
        self.drawn_by = drawn_by
        self.drawn_by_agency = drawn_by_agency

    @property
    def townships(self) -> list[str]:
        return list(self.samples)

    def sampled(self, child_id: UUID) -> tuple[str, str] | None:
        """(township, village) of a sampled child; ``None`` when the child is not in the sample."""
        wanted = str(child_id)
        for township, rows in self.samples.items():
            for row in rows:
                if row["child_id"] == wanted:
                    return township, row["village"]
        return None


def spot_check_file_id(spot_check_id: UUID, child_id: UUID) -> UUID:
    return uuid.uuid5(SPOT_CHECK_FILE_NAMESPACE, f"{spot_check_id}/{child_id}")


class SpotCheckFile(Aggregate):
    """The results of one sampled file; a later recording replaces the earlier one (both stay in the log)."""

    @staticmethod
    def create_id(spot_check_id: UUID, child_id: UUID, **_: Any) -> UUID:
        return spot_check_file_id(spot_check_id, child_id)

    @event("Opened")
    def __init__(self, spot_check_id: UUID, child_id: UUID, year: int, township: str, village: str) -> None:
        self.spot_check_id = spot_check_id
        self.child_id = child_id
        self.year = year
        self.township = township
        self.village = village
        self.results: dict[str, dict[str, str]] = {}
        self.checked_on: date | None = None
        self.checked_by_agency: str | None = None
        self.last_newly_failed: list[str] = []

    @property
    def failed(self) -> frozenset[str]:
        return frozenset(code for code, r in self.results.items() if r["result"] == ItemResult.failed.value)

    def check(self, results: dict[str, dict[str, str]], checked_on: date, checked_by: str, agency: str) -> None:
        newly_failed = sorted(
            code for code, r in results.items() if r["result"] == ItemResult.failed.value and code not in self.failed
        )
        # The place is repeated on the event so that its follow-up (an integration event made from this event
        # alone) needs nothing else.
        self._checked(results=results, checked_on=checked_on, checked_by=checked_by, checked_by_agency=agency,
                      newly_failed=newly_failed, spot_check_id=self.spot_check_id, child_id=self.child_id,
                      year=self.year, township=self.township, village=self.village)

    @event("Checked")
    def _checked(self, results: dict[str, dict[str, str]], checked_on: date, checked_by: str, checked_by_agency: str,
                 newly_failed: list[str], spot_check_id: UUID, child_id: UUID, year: int, township: str,
                 village: str) -> None:
        self.results = {code: dict(r) for code, r in results.items()}
        self.checked_on = checked_on
        self.checked_by_agency = checked_by_agency
        self.last_newly_failed = list(newly_failed)


# --- the desk: what the API asks -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemSummary:
    code: str
    passed: int
    failed: int
    not_applicable: int

    @property
    def pass_rate(self) -> float | None:
        """Passed among the files the item applies to; ``None`` when it applied to none."""
        applicable = self.passed + self.failed
        return None if applicable == 0 else self.passed / applicable


@dataclass(frozen=True)
class TownshipSummary:
    township: str
    sampled: int
    checked: int
    files_with_failures: int
    items: tuple[ItemSummary, ...]


class SpotChecks:
    """Draws, records and summarises spot checks over an eventsourcing application (the indicators store)."""

    def __init__(self, app: Any, roster: ChildRoster, checklist: Checklist | None = None) -> None:
        self.app = app
        self.roster = roster
        self.checklist = checklist or load_checklist()

    def draw(
        self, *, year: int, townships: Sequence[str], size: int | None, rate: float | None, seed: int | None,
        as_of: datetime | None, drawn_by: str, agency: str,
    ) -> SpotCheck:
        if (size is None) == (rate is None):
            raise Unprocessable("Give a sample size or a sample rate per township, not both.",
                                errors=[FieldError(field="sample_size", reason="exactly one of sample_size and "
                                                   "sample_rate is required")])
        seed = new_seed() if seed is None else seed
        as_of = as_of or datetime.now(UTC)
        samples: dict[str, list[dict[str, str]]] = {}
        populations: dict[str, int] = {}
        for township in dict.fromkeys(townships):  # in the order given, once each
            registered = {c.child_id: c for c in self.roster.registered(township, as_of)}
            populations[township] = len(registered)
            chosen = draw_sample(registered, seed, township, sample_size(len(registered), size, rate))
            samples[township] = [{"child_id": str(c), "village": registered[c].village} for c in chosen]
        check = SpotCheck(
            spot_check_id=uuid.uuid4(), year=year, seed=seed, as_of=as_of, size=size, rate=rate,
            checklist_version=self.checklist.version, samples=samples, populations=populations, drawn_by=drawn_by,
            drawn_by_agency=agency,
        )
        self.app.save(check)
        return check

    def get(self, spot_check_id: UUID) -> SpotCheck:
        try:
            found = self.app.repository.get(spot_check_id)
        except AggregateNotFoundError:
            raise NotFound(f"No spot check with id {spot_check_id}.") from None
        if not isinstance(found, SpotCheck):
            raise NotFound(f"No spot check with id {spot_check_id}.")
        return found

    def file(self, check: SpotCheck, child_id: UUID) -> SpotCheckFile | None:
        """A sampled file's results; ``None`` when none were recorded, or when the child's personal data was erased
        since (its results were sealed with its key: the sample still lists the id, the summary no longer counts
        the file)."""
        try:
            return cast(SpotCheckFile, self.app.repository.get(spot_check_file_id(check.id, child_id)))
        except (AggregateNotFoundError, PersonalDataErased):
            return None

    def files(self, check: SpotCheck) -> dict[UUID, SpotCheckFile]:
        """The files of the sample with results recorded."""
        found = {}
        for rows in check.samples.values():
            for row in rows:
                child_id = UUID(row["child_id"])
                checked = self.file(check, child_id)
                if checked is not None and checked.checked_on is not None:
                    found[child_id] = checked
        return found

    def record(
        self, spot_check_id: UUID, child_id: UUID, results: dict[str, tuple[ItemResult, str]], checked_on: date,
        checked_by: str, agency: str,
    ) -> SpotCheckFile:
        check = self.get(spot_check_id)
        place = check.sampled(child_id)
        if place is None:
            raise NotFound(f"Child {child_id} is not in the sample of spot check {spot_check_id}.")
        missing = [code for code in self.checklist.codes if code not in results]
        unknown = sorted(set(results) - set(self.checklist.codes))
        errors = [FieldError(field="results", reason=f"item '{code}' not answered") for code in missing]
        errors += [FieldError(field="results", reason=f"unknown checklist item '{code}'") for code in unknown]
        if errors:
            raise Unprocessable("Every item of the checklist is answered once, and only those.", errors=errors)
        checked = self.file(check, child_id) or SpotCheckFile(
            spot_check_id=check.id, child_id=child_id, year=check.year, township=place[0], village=place[1],
        )
        checked.check(
            {code: {"result": r.value, "note": note} for code, (r, note) in results.items()}, checked_on,
            checked_by, agency,
        )
        self.app.save(checked)
        return checked

    def summary(self, check: SpotCheck) -> list[TownshipSummary]:
        """Per township: files sampled, checked, with a failure, and per checklist item passes, failures and not
        applicable among the checked files."""
        files = self.files(check)
        out = []
        for township, rows in check.samples.items():
            checked = [files[UUID(r["child_id"])] for r in rows if UUID(r["child_id"]) in files]
            items = tuple(
                ItemSummary(
                    code,
                    passed=sum(1 for f in checked if f.results.get(code, {}).get("result") == "pass"),
                    failed=sum(1 for f in checked if f.results.get(code, {}).get("result") == "fail"),
                    not_applicable=sum(1 for f in checked
                                       if f.results.get(code, {}).get("result") == "not_applicable"),
                )
                for code in self.checklist.codes
            )
            out.append(TownshipSummary(township, len(rows), len(checked), sum(1 for f in checked if f.failed), items))
        return out


# --- integration events --------------------------------------------------------------------------------------------


def spot_check_events(e: Any) -> Sequence[CloudEvent]:
    """A recorded file with newly failed items: a follow-up for the township (codes only, never the notes)."""
    if not isinstance(e, SpotCheckFile.Checked) or not e.newly_failed:  # type: ignore[attr-defined]
        return []
    case_id = care_case_id(e.child_id)
    event_id = integration_event_id(e)
    return [SpotCheckFollowUpRequired(
        id=event_id, source=SOURCE, subject=str(case_id), time=e.timestamp, correlationid=event_id,
        actoragency=e.checked_by_agency, dataschema=SpotCheckFollowUpRequired.schema_uri(),
        data=SpotCheckFollowUpRequiredData(
            spot_check_id=e.spot_check_id, child_id=e.child_id, case_id=case_id, year=e.year, township=e.township,
            village=e.village, items_failed=tuple(e.newly_failed),
        ),
    )]
