"""Monthly and annual indicator reports (issue 8): one function computes a report's content, renderers only render.

``build_report`` asks the indicators read models (``IndicatorQueries``, services/indicators/model.py) for the
figures of one unit (the county or a township) as they stood at the end of the period (or now, for the period
under way), and gathers them into a ``Report``: a summary of colours, a table per indicator (the unit's figure,
its breakdown, and one row per township of the county or village of the township), trend lines over the last 12
months, a colour map of the townships (or villages) and the agencies' response times. HTML and PDF
(services/indicators/reports_api.py, report_charts.py) and JSON and CSV (``report_json``, ``report_csv``) render
this one object, so every format shows the same numbers.

Reports are shared figures: small cells are always suppressed (fewer than ``SMALL_CELL`` children in a unit,
``suppress_small_cells=True`` of the queries), and where one row of a table is suppressed while the total is
shown, the next smallest row is suppressed too (secondary suppression), so the hidden figure cannot be found by
subtracting the others from the total.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from contracts.agencies import AGENCY_NAMES
from huhang.problems import FieldError, Unprocessable
from services.indicators.model import COUNTY, SMALL_CELL, Indicator, IndicatorQueries, IndicatorValue

CHINA = timezone(timedelta(hours=8), "CST")  # periods are calendar months and years in China
TREND_MONTHS = 12
COLOURS = ("green", "yellow", "red")
COLOUR_ZH = {"green": "绿", "yellow": "黄", "red": "红", None: "—"}
COLOUR_RANK = {"green": 0, "yellow": 1, "red": 2}
HEADLINE_INDICATOR = "visit_compliance"
ReportKind = Literal["monthly", "annual"]
ReportUnitKind = Literal["county", "township"]
FIRST_YEAR, LAST_YEAR = 2000, 2100
MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


@dataclass(frozen=True)
class Cell:
    """One figure as the report shows it. ``suppressed``: hidden (small cell, or secondary suppression)."""

    unit: str
    label: str
    value: float | None
    numerator: int | None
    denominator: int | None
    colour: str | None
    suppressed: bool
    breakdown: str | None = None


@dataclass(frozen=True)
class IndicatorTable:
    code: str
    name_zh: str
    name_en: str
    measure: str
    month: str | None  # the month a monthly indicator's figure is of; None for a stock
    total: Cell
    breakdown: tuple[Cell, ...]  # the unit's figure split by the indicator's breakdown dimension
    rows: tuple[Cell, ...]  # per township (county report) or village (township report)


@dataclass(frozen=True)
class TrendPoint:
    month: str
    value: float | None
    colour: str | None
    suppressed: bool


@dataclass(frozen=True)
class Trend:
    code: str
    name_zh: str
    measure: str
    points: tuple[TrendPoint, ...]


@dataclass(frozen=True)
class TileMap:
    """A grid of the sub-units, each coloured: by one indicator, or overall (the worst colour of any)."""

    title: str
    indicator: str | None
    tiles: tuple[Cell, ...]


@dataclass(frozen=True)
class AgencyTime:
    agency: str
    label: str
    accept_hours: float | None
    complete_hours: float | None
    accepted: int | None  # how many referrals the median is of
    completed: int | None


@dataclass(frozen=True)
class Report:
    kind: ReportKind
    unit_kind: ReportUnitKind
    unit: str
    period: str  # "2026-11" or "2026"
    title: str
    period_label: str
    as_of: datetime
    colour_summary: dict[str, int]
    tables: tuple[IndicatorTable, ...]
    trends: tuple[Trend, ...]
    maps: tuple[TileMap, ...]
    agency_times: tuple[AgencyTime, ...]
    agency_times_month: str | None
    notes: tuple[str, ...] = field(default=())


# --- the period ----------------------------------------------------------------------------------------------------


def period_bounds(kind: ReportKind, period: str) -> tuple[datetime, datetime, str]:
    """(start, end, label) of a calendar month ``YYYY-MM`` or year ``YYYY`` in China time; 422 naming the field."""
    if kind == "monthly":
        found = MONTH.match(period)
        if not found:
            raise Unprocessable("A month is written YYYY-MM.", errors=[FieldError(field="month",
                                                                                reason="not a month YYYY-MM")])
        year, month = int(found.group(1)), int(found.group(2))
        if not FIRST_YEAR <= year <= LAST_YEAR:
            raise Unprocessable("No report for that year.", errors=[FieldError(
                field="month", reason=f"the year must be between {FIRST_YEAR} and {LAST_YEAR}")])
        start = datetime(year, month, 1, tzinfo=CHINA)
        end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=CHINA)
        return start, end, f"{year}年{month}月"
    if not re.fullmatch(r"\d{4}", period):
        raise Unprocessable("A year is written YYYY.", errors=[FieldError(field="year", reason="not a year YYYY")])
    year = int(period)
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise Unprocessable("No report for that year.", errors=[FieldError(
            field="year", reason=f"must be between {FIRST_YEAR} and {LAST_YEAR}")])
    return datetime(year, 1, 1, tzinfo=CHINA), datetime(year + 1, 1, 1, tzinfo=CHINA), f"{year}年"


def report_as_of(kind: ReportKind, period: str, now: datetime) -> datetime:
    """The end of the period (its last microsecond), or ``now`` for the period under way; a period that has not
    begun is refused."""
    start, end, _ = period_bounds(kind, period)
    if start > now:
        raise Unprocessable("The period has not begun.", errors=[FieldError(
            field="month" if kind == "monthly" else "year", reason="in the future")])
    return min(end - timedelta(microseconds=1), now.replace(microsecond=0))


# --- building the report -------------------------------------------------------------------------------------------


def build_report(
    queries: IndicatorQueries, kind: ReportKind, unit_kind: ReportUnitKind, unit: str | None, period: str,
    now: datetime,
) -> Report:
    unit_name = COUNTY if unit_kind == "county" else (unit or "")
    if unit_kind == "township" and not unit_name:
        raise Unprocessable("A township report names its township.",
                            errors=[FieldError(field="unit", reason="required when unit_kind is township")])
    as_of = report_as_of(kind, period, now)
    _, _, period_label = period_bounds(kind, period)
    catalogue = list(queries.catalogue())
    sub_kind: Literal["township", "village"] = "township" if unit_kind == "county" else "village"
    own = [v for v in queries.values(None, unit_kind, None if unit_kind == "county" else unit_name, as_of, True)
           if v.unit == unit_name]
    subs = [v for v in queries.values(None, sub_kind, None, as_of, True)
            if sub_kind == "township" or v.unit.startswith(f"{unit_name}/")]
    tables = tuple(
        _table(ind, own, subs, unit_name) for ind in catalogue if unit_kind in ind.unit_kinds
    )
    totals = [t.total for t in tables if t.total.colour is not None]
    summary = {c: sum(1 for cell in totals if cell.colour == c) for c in COLOURS}
    trends = tuple(
        _trend(ind, queries.trend(ind.code, unit_kind, unit_name, TREND_MONTHS, as_of, True))
        for ind in catalogue if unit_kind in ind.unit_kinds and ind.measure == "share"
    )
    agency_times, agency_month = _agency_times(queries, catalogue, as_of)
    place = "全县" if unit_kind == "county" else unit_name
    title = f"{place}留守儿童和困境儿童关爱保护{'月度' if kind == 'monthly' else '年度'}指标报告"
    return Report(
        kind=kind, unit_kind=unit_kind, unit=unit_name, period=period, title=title, period_label=period_label,
        as_of=as_of, colour_summary=summary, tables=tables, trends=trends,
        maps=_maps(catalogue, tables, sub_kind), agency_times=agency_times, agency_times_month=agency_month,
        notes=(f"少于{SMALL_CELL}名儿童的单元格不予公开（以“*”表示），以免识别到具体儿童；"
               "为防止由合计反推，同一表中另有一个单元格一并隐去。",
               "数据截至报告时点，依事件日志重建，同一时点重复查询结果相同。"),
    )


def _label(unit: str) -> str:
    return unit.split("/", 1)[1] if "/" in unit else ("全县" if unit == COUNTY else unit)


def _cell(v: IndicatorValue) -> Cell:
    return Cell(unit=v.unit, label=v.breakdown if v.breakdown is not None else _label(v.unit), value=v.value,
                numerator=v.numerator, denominator=v.denominator, colour=v.colour, suppressed=v.suppressed,
                breakdown=v.breakdown)


def _hidden(cell: Cell) -> Cell:
    return replace(cell, value=None, numerator=None, denominator=None, colour=None, suppressed=True)


def secondary_suppression(total: Cell, rows: Sequence[Cell]) -> tuple[Cell, ...]:
    """Where exactly one row is suppressed and the total is shown, hide the smallest shown row as well, so the
    hidden one cannot be had by subtraction."""
    hidden = [r for r in rows if r.suppressed]
    shown = [r for r in rows if not r.suppressed]
    if len(hidden) != 1 or total.suppressed or not shown:
        return tuple(rows)
    smallest = min(shown, key=lambda r: (r.denominator if r.denominator is not None else (r.numerator or 0), r.unit))
    return tuple(_hidden(r) if r is smallest else r for r in rows)


def _table(ind: Indicator, own: Sequence[IndicatorValue], subs: Sequence[IndicatorValue], unit: str
           ) -> IndicatorTable:
    mine = [v for v in own if v.indicator == ind.code]
    total_value = next((v for v in mine if v.breakdown is None), None)
    total = _cell(total_value) if total_value else Cell(unit, _label(unit), None, None, None, None, False)
    breakdown = secondary_suppression(total, [_cell(v) for v in mine if v.breakdown is not None])
    rows = secondary_suppression(total, sorted(
        (_cell(v) for v in subs if v.indicator == ind.code and v.breakdown is None), key=lambda c: c.unit))
    month = total_value.month if total_value else None
    return IndicatorTable(ind.code, ind.name_zh, ind.name_en, ind.measure, month, total, breakdown, rows)


def _trend(ind: Indicator, values: Sequence[IndicatorValue]) -> Trend:
    points = tuple(
        TrendPoint(month=v.month or v.as_of.astimezone(CHINA).strftime("%Y-%m"), value=v.value, colour=v.colour,
                   suppressed=v.suppressed)
        for v in values
    )
    return Trend(ind.code, ind.name_zh, ind.measure, points)


def worst(colours: Sequence[str | None]) -> str | None:
    known = [c for c in colours if c in COLOUR_RANK]
    return max(known, key=lambda c: COLOUR_RANK[c]) if known else None


def _maps(catalogue: Sequence[Indicator], tables: Sequence[IndicatorTable], sub_kind: str) -> tuple[TileMap, ...]:
    coloured = [t for t in tables if any(r.colour for r in t.rows)]
    if not coloured:
        return ()
    units = sorted({r.unit for t in coloured for r in t.rows})
    per_unit: dict[str, list[str | None]] = {u: [] for u in units}
    for t in coloured:
        for r in t.rows:
            per_unit[r.unit].append(r.colour)
    place = "乡镇" if sub_kind == "township" else "村（社区）"
    overall = TileMap(f"各{place}综合赋色（各指标中最差的颜色）", None, tuple(
        Cell(u, _label(u), None, None, None, worst(per_unit[u]), all(c is None for c in per_unit[u]))
        for u in units))
    headline = next((t for t in coloured if t.code == HEADLINE_INDICATOR), coloured[0])
    by_one = TileMap(f"各{place}{headline.name_zh}", headline.code, headline.rows)
    return (overall, by_one)


def _agency_times(queries: IndicatorQueries, catalogue: Sequence[Indicator], as_of: datetime
                  ) -> tuple[tuple[AgencyTime, ...], str | None]:
    """Median hours to accept and to complete per agency (the catalogue's ``hours`` indicators of agencies)."""
    hours = [i for i in catalogue if i.measure == "hours" and "agency" in i.unit_kinds]
    accept = next((i for i in hours if "accept" in i.code), hours[0] if hours else None)
    complete = next((i for i in hours if "complete" in i.code), None)
    by_agency: dict[str, dict[str, IndicatorValue]] = {}
    month = None
    for role, ind in (("accept", accept), ("complete", complete)):
        if ind is None:
            continue
        for v in queries.values(ind.code, "agency", None, as_of, True):
            if v.breakdown is None:
                by_agency.setdefault(v.unit, {})[role] = v
                month = month or v.month
    labels = {a.value: names[0] for a, names in AGENCY_NAMES.items()}
    rows = tuple(
        AgencyTime(
            agency=code, label=str(labels.get(code, code)),
            accept_hours=found["accept"].value if "accept" in found else None,
            complete_hours=found["complete"].value if "complete" in found else None,
            accepted=found["accept"].numerator if "accept" in found else None,
            completed=found["complete"].numerator if "complete" in found else None,
        )
        for code, found in sorted(by_agency.items())
    )
    return rows, month


# --- JSON and CSV --------------------------------------------------------------------------------------------------


def report_json(report: Report) -> dict[str, Any]:
    document = asdict(report)
    document["as_of"] = report.as_of.isoformat()
    return document


def format_value(measure: str, value: float | None, suppressed: bool) -> str:
    """How a figure reads in HTML and PDF (JSON and CSV carry the number itself)."""
    if suppressed:
        return "*"
    if value is None:
        return "—"
    if measure == "share":
        return f"{value * 100:.1f}%"
    if measure == "hours":
        return f"{value:.1f} 小时"
    return f"{value:.0f}"


CSV_HEADER = ("section", "indicator", "unit", "breakdown", "month", "value", "numerator", "denominator", "colour",
              "suppressed")


def report_csv(report: Report) -> str:
    """Every figure of the report, one a line (UTF-8 with a BOM, for Excel)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_HEADER)

    def row(section: str, indicator: str, cell: Cell, month: str | None) -> None:
        writer.writerow([section, indicator, cell.unit, cell.breakdown or "", month or "",
                         "" if cell.value is None else repr(cell.value), _blank(cell.numerator),
                         _blank(cell.denominator), cell.colour or "", str(cell.suppressed).lower()])

    for table in report.tables:
        row("total", table.code, table.total, table.month)
        for cell in table.breakdown:
            row("breakdown", table.code, cell, table.month)
        for cell in table.rows:
            row("unit", table.code, cell, table.month)
    for trend in report.trends:
        for p in trend.points:
            writer.writerow(["trend", trend.code, report.unit, "", p.month, "" if p.value is None else repr(p.value),
                             "", "", p.colour or "", str(p.suppressed).lower()])
    for a in report.agency_times:
        for code, value, count in (("accept_hours", a.accept_hours, a.accepted),
                                   ("complete_hours", a.complete_hours, a.completed)):
            writer.writerow(["agency", code, a.agency, "", report.agency_times_month or "",
                             "" if value is None else repr(value), _blank(count), "", "", "false"])
    return "\ufeff" + out.getvalue()


def _blank(value: int | None) -> str:
    return "" if value is None else str(value)
