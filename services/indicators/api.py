"""Indicators over HTTP (issue 8): the catalogue, figures as of any date (JSON or CSV), trends, the children behind a
figure, and colour changes.

Who reads what is decided in ``huhang/access/guards.py`` (``indicator_reader``): civil affairs, wcwc, auditors
and the platform read every unit with small cells shown (unless ``published=true``); a township's principals read
their township and its villages, an agency its own referral figures, both with small cells suppressed (value and
counts null, ``suppressed: true``). The children behind a figure: civil affairs, wcwc and the unit's own area.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from huhang.access.guards import (
    FORBIDDEN_DOC,
    AccessLogDep,
    IndicatorReader,
    IndicatorReaderDep,
    PurposeDep,
    indicator_drill_down,
    indicator_unit_check,
)
from huhang.problems import PROBLEM_RESPONSES, FieldError, NotFound, Unprocessable
from services.indicators.model import Indicator, IndicatorValue, UnitKind
from services.indicators.queries import SqlIndicatorQueries

router = APIRouter(prefix="/v1", tags=["indicators"])
RESPONSES = {**PROBLEM_RESPONSES, **FORBIDDEN_DOC}
CSV_COLUMNS = ("indicator", "unit_kind", "unit", "month", "as_of", "breakdown", "numerator", "denominator", "value",
               "colour", "suppressed")
UnitText = Annotated[str | None, Query(max_length=210, description="One unit: a township, `<township>/<village>`, an "
                                                                   "agency code or `county`; all when left out.")]


def get_queries(request: Request) -> SqlIndicatorQueries:
    return request.app.state.indicator_queries


QueriesDep = Annotated[SqlIndicatorQueries, Depends(get_queries)]


class ThresholdPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    colour: Literal["green", "yellow", "red"]
    at: float | None = Field(description="At least (direction up) or at most (down); null: everything else.")


class IndicatorPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    code: str
    name_zh: str
    name_en: str
    measure: Literal["share", "count", "hours"]
    direction: Literal["up", "down", "none"]
    unit_kinds: list[UnitKind]
    per_month: bool
    breakdowns: list[str]
    small_cells: bool
    description: str
    thresholds: list[ThresholdPublic]


class IndicatorValuePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    indicator: str
    unit_kind: UnitKind
    unit: str
    month: str | None
    as_of: datetime
    breakdown: str | None
    numerator: int | None
    denominator: int | None
    value: float | None
    colour: Literal["green", "yellow", "red"] | None
    suppressed: bool


class ColourChangePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    change_id: str
    indicator: str
    unit_kind: UnitKind
    unit: str
    previous: Literal["green", "yellow", "red"] | None
    colour: Literal["green", "yellow", "red"] | None
    value: float | None
    changed_at: datetime


def _indicator(queries: SqlIndicatorQueries, code: str, field: str, not_found: bool = False) -> Indicator:
    try:
        return queries.indicator(code)
    except KeyError:
        if not_found:
            raise NotFound(f"No indicator {code!r}.") from None
        raise Unprocessable("Unknown indicator.", errors=[FieldError(field=field, reason="not in the catalogue")]) \
            from None


def _moment(value: datetime | None, field: str = "as_of") -> datetime | None:
    """A query's time, UTC when it names no offset; within the years the platform can hold (else 422)."""
    if value is None:
        return None
    if not 2000 <= value.year <= 2100:
        raise Unprocessable("Out of range.", errors=[FieldError(field=field, reason="a year from 2000 to 2100")])
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _scope(reader: IndicatorReader, queries: SqlIndicatorQueries, code: str | None, unit_kind: UnitKind,
           unit: str | None) -> str | None:
    """The unit the reader may ask for when it named none (its township, its agency); 403 outside its scope."""
    if not reader.full and unit is None:
        if reader.township is not None and unit_kind == "township":
            unit = reader.township
        elif reader.agency is not None and unit_kind == "agency":
            unit = reader.agency.value
        elif reader.village is not None and unit_kind == "village":
            unit = reader.village
        elif reader.township is not None and unit_kind == "village":
            return None  # filtered to the township's villages afterwards
    agency_figure = code is None or "agency" in queries.indicator(code).unit_kinds
    indicator_unit_check(reader, unit_kind, unit if unit is not None else f"{reader.township}/", agency_figure)
    return unit


def _visible(reader: IndicatorReader, rows: list[IndicatorValue]) -> list[IndicatorValue]:
    if reader.full or reader.township is None:
        return rows
    prefix = f"{reader.township}/"
    return [v for v in rows if v.unit == reader.township or v.unit.startswith(prefix)]


def _wants_csv(fmt: str | None, accept: str | None) -> bool:
    return fmt == "csv" or (fmt is None and accept is not None and "text/csv" in accept)


def _csv(rows: list[IndicatorValue]) -> Response:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for v in rows:
        record: dict[str, Any] = IndicatorValuePublic.model_validate(v).model_dump(mode="json")
        writer.writerow(["" if record[c] is None else record[c] for c in CSV_COLUMNS])
    return Response("\ufeff" + out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="indicators.csv"'})


@router.get("/indicators", response_model=list[IndicatorPublic], responses=RESPONSES,
            summary="The indicator catalogue with its colour thresholds (contracts/indicators.yaml)")
def catalogue(queries: QueriesDep, _: IndicatorReaderDep) -> list[IndicatorPublic]:
    return [IndicatorPublic.model_validate(i) for i in queries.catalogue()]


@router.get("/indicators/values", response_model=list[IndicatorValuePublic],
            responses={**RESPONSES, 200: {"content": {"application/json": {}, "text/csv": {}}}},
            summary="Indicator figures per unit as of a date (JSON, or CSV with format=csv or Accept: text/csv)")
def values(
    queries: QueriesDep,
    reader: IndicatorReaderDep,
    indicator: Annotated[str | None, Query(max_length=60, description="An indicator code; all when left out.")] = None,
    unit_kind: UnitKind = "township",
    unit: UnitText = None,
    as_of: Annotated[datetime | None, Query(description="The figure as it stood then (UTC when no offset); now "
                                                        "when left out.")] = None,
    published: Annotated[bool, Query(description="For publication: small cells suppressed for everyone.")] = False,
    format: Annotated[Literal["json", "csv"] | None, Query(description="json or csv.")] = None,
    accept: Annotated[str | None, Header(max_length=500)] = None,
) -> Any:
    if indicator is not None:
        _indicator(queries, indicator, "indicator")
    unit = _scope(reader, queries, indicator, unit_kind, unit)
    rows = queries.values(indicator, unit_kind, unit, _moment(as_of), published or not reader.full)
    rows = _visible(reader, rows)
    if _wants_csv(format, accept):
        return _csv(rows)
    return [IndicatorValuePublic.model_validate(v) for v in rows]


@router.get("/indicators/colour-changes", response_model=list[ColourChangePublic], responses=RESPONSES,
            summary="Units whose colour changed, oldest first")
def colour_changes(
    queries: QueriesDep,
    reader: IndicatorReaderDep,
    since: Annotated[datetime | None, Query(description="Only changes after this time.")] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> list[ColourChangePublic]:
    changes = queries.colour_changes(_moment(since, "since"), limit)
    if not reader.full:
        prefix = f"{reader.township}/"
        changes = [
            c for c in changes
            if (reader.township is not None and (c.unit == reader.township or c.unit.startswith(prefix)))
            or (reader.agency is not None and c.unit_kind == "agency" and c.unit == reader.agency.value)
            or (reader.village is not None and c.unit_kind == "village" and c.unit == reader.village)
        ]
    return [ColourChangePublic.model_validate({**_fields(c), "change_id": str(c.change_id)}) for c in changes]


def _fields(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__slots__}


@router.get("/indicators/{code}/trend", response_model=list[IndicatorValuePublic], responses=RESPONSES,
            summary="One unit's figure at each month end, oldest first")
def trend(
    code: Annotated[str, Path(max_length=60)],
    queries: QueriesDep,
    reader: IndicatorReaderDep,
    unit_kind: UnitKind,
    unit: Annotated[str, Query(max_length=210)],
    months: Annotated[int, Query(ge=1, le=36)] = 12,
    as_of: datetime | None = None,
    published: bool = False,
) -> list[IndicatorValuePublic]:
    ind = _indicator(queries, code, "code", not_found=True)
    _unit_kind_of(ind, unit_kind)
    indicator_unit_check(reader, unit_kind, unit, "agency" in ind.unit_kinds)
    rows = queries.trend(code, unit_kind, unit, months, _moment(as_of), published or not reader.full)
    return [IndicatorValuePublic.model_validate(v) for v in rows]


@router.get("/indicators/{code}/children", response_model=list[str], responses=RESPONSES,
            summary="The child ids behind a figure (drill-down): civil affairs, wcwc, the unit's own area")
def children(
    request: Request,
    code: Annotated[str, Path(max_length=60)],
    queries: QueriesDep,
    reader: IndicatorReaderDep,
    log: AccessLogDep,
    purpose: PurposeDep,
    unit_kind: UnitKind,
    unit: Annotated[str, Query(max_length=210)],
    as_of: datetime | None = None,
) -> list[str]:
    """Ids only: for a share, the children in the denominator not in the numerator (not visited, no agreement...);
    for a count, the children counted. Logged as a search."""
    ind = _indicator(queries, code, "code", not_found=True)
    _unit_kind_of(ind, unit_kind)
    indicator_drill_down(request, reader.principal, log, purpose, unit_kind, unit)
    return [str(c) for c in queries.children_behind(code, unit_kind, unit, _moment(as_of))]


def _unit_kind_of(ind: Indicator, unit_kind: UnitKind) -> None:
    if unit_kind not in ind.unit_kinds:
        raise Unprocessable("The indicator is not computed for this unit kind.", errors=[FieldError(
            field="unit_kind", reason=f"one of {', '.join(ind.unit_kinds)}")])
