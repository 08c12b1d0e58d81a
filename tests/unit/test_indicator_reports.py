"""Monthly and annual indicator reports (issue 8): one content model rendered as HTML, PDF, JSON and CSV with the
same numbers; small cells suppressed (with a second cell where one hidden cell could be had by subtraction); trend
lines, the colour map and agency response times; who may read which report.

The figures come from the indicators service's real read models (SQLite, migrated) fed with integration events
as JSON, the way the service's subscription keeps them.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from contracts.cases import care_case_id
from huhang.auth.principal import Principal
from huhang.settings import Settings
from huhang.storage import temporary_engine
from huhang.web import create_api
from services.indicators import reports_api
from services.indicators.migrate import migrate
from services.indicators.queries import SqlIndicatorQueries
from services.indicators.report_charts import tile_map_svg, trend_svg
from services.indicators.reports import Cell, Report, build_report, report_csv, report_json, secondary_suppression
from services.indicators.reports_api import render_html, render_pdf
from services.indicators.store import IndicatorStore
from tests.support.auth import SYSTEM, bearer
from tests.support.principals import AUDITOR, LEAD_OFFICER, POLICE_OFFICER, TOWNSHIP_OFFICER, WCWC_OFFICER

NOW = datetime(2026, 11, 29, 4, 0, tzinfo=UTC)  # 12:00 in China
REGISTERED = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
# township -> village -> (children, visited this month)
COUNTY_LAYOUT = {
    "虹桥镇": {"溪西村": (12, 12), "溪东村": (8, 8)},
    "柳市镇": {"长虹村": (10, 5)},
    "北白象镇": {"白象村": (3, 0)},  # fewer than 5: suppressed in every shared table
    "乐成街道": {"城东社区": (6, 6)},
    "大荆镇": {"大荆村": (7, 7)},
}


def event(type_: str, at: datetime, **data: Any) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "type": type_, "time": at.isoformat(), "data": data}


def county_events(now: datetime) -> list[dict[str, Any]]:
    events = []
    visit_day = (now - timedelta(days=3)).date().isoformat()
    for township, villages in COUNTY_LAYOUT.items():
        for village, (children, visited) in villages.items():
            for i in range(children):
                child = uuid.uuid4()
                events.append(event(
                    "cn.huhang.child.file-updated.v1", REGISTERED, child_id=str(child),
                    case_id=str(care_case_id(child)), township=township, village=village,
                    categories=["left_behind"], added_categories=["left_behind"], removed_categories=[],
                    category_reasons=[], parents_away=True, parents_away_since="2025-12-01",
                    frequent_visit_reasons=[], has_entrusted_caregiver=True,
                ))
                if i < visited:
                    for kind in ("contact", "home_visit"):
                        events.append(event(
                            "cn.huhang.guardianship.visit-recorded.v1", now - timedelta(days=3),
                            visit_id=str(uuid.uuid4()), child_id=str(child), case_id=str(care_case_id(child)),
                            kind=kind, visited_on=visit_day, findings=["all_well"], next_contact_due_on=visit_day,
                            next_home_visit_due_on=visit_day, township=township, village=village,
                        ))
    for agency, hours in (("police", (10, 20, 30)), ("education", (50, 50))):
        for h in hours:
            referral = str(uuid.uuid4())
            requested = now - timedelta(days=5)
            events.append(event(
                "cn.huhang.referral.requested.v1", requested, referral_id=referral, case_id=str(uuid.uuid4()),
                child_id=str(uuid.uuid4()), owner_agency=agency, requester_agency="education",
                referral_type="guardianship_investigation", priority="urgent",
                due_at=(requested + timedelta(days=1)).isoformat(), plan_tasks=[4], rule_id="r", rules_version="v",
                source_event_id=str(uuid.uuid4()), township="虹桥镇", village="溪西村",
            ))
            events.append(event(
                "cn.huhang.referral.status-changed.v1", requested + timedelta(hours=h), referral_id=referral,
                case_id=str(uuid.uuid4()), owner_agency=agency, status="accepted",
            ))
    return events


@pytest.fixture(scope="module")
def queries() -> Iterator[SqlIndicatorQueries]:
    engine = temporary_engine("indicator-reports")
    migrate(engine)
    IndicatorStore(engine).ingest(county_events(datetime.now(UTC)))
    yield SqlIndicatorQueries(engine)
    engine.dispose()


@pytest.fixture(scope="module")
def county(queries: SqlIndicatorQueries) -> Report:
    return build_report(queries, "monthly", "county", None, datetime.now(UTC).strftime("%Y-%m"), datetime.now(UTC))


def table(report: Report, code: str) -> Any:
    return next(t for t in report.tables if t.code == code)


def row(report: Report, code: str, unit: str) -> Cell:
    return next(r for r in table(report, code).rows if r.unit == unit)


# --- the content ---------------------------------------------------------------------------------------------------


def test_a_township_with_fewer_than_five_children_is_suppressed_and_a_second_cell_with_it(county):
    registered = table(county, "children_registered")

    assert registered.total.value == 46
    assert not registered.total.suppressed
    assert row(county, "children_registered", "北白象镇").suppressed
    assert row(county, "children_registered", "北白象镇").value is None
    # 46 minus the others would give 北白象镇's 3: the smallest shown row is hidden too
    assert row(county, "children_registered", "乐成街道").suppressed
    assert row(county, "children_registered", "虹桥镇").value == 20
    assert row(county, "children_registered", "大荆镇").value == 7


def test_figures_colours_and_the_colour_map(county):
    assert row(county, "visit_compliance", "虹桥镇").value == 1.0
    assert row(county, "visit_compliance", "虹桥镇").colour == "green"
    assert row(county, "visit_compliance", "柳市镇").value == 0.5
    assert row(county, "visit_compliance", "柳市镇").colour == "red"
    overall, by_visits = county.maps
    assert {t.unit: t.colour for t in by_visits.tiles}["柳市镇"] == "red"
    assert {t.unit for t in overall.tiles} == set(COUNTY_LAYOUT)
    assert sum(county.colour_summary.values()) == sum(1 for t in county.tables if t.total.colour)


def test_trends_cover_twelve_months_ending_with_the_period(county):
    visits = next(t for t in county.trends if t.code == "visit_compliance")

    assert len(visits.points) == 12
    assert visits.points[-1].month == datetime.now(UTC).strftime("%Y-%m")
    assert visits.points[-1].value == pytest.approx(38 / 46)


def test_agency_response_times_are_medians_per_agency(county):
    times = {a.agency: a for a in county.agency_times}

    assert times["police"].accept_hours == pytest.approx(20)
    assert times["education"].accept_hours == pytest.approx(50)
    assert times["police"].label == "市公安局"


def test_an_annual_report_is_as_of_the_year_end_and_a_future_period_is_refused(queries):
    annual = build_report(queries, "annual", "county", None, "2025", NOW)

    assert annual.as_of.year == 2025
    assert annual.as_of.month == 12
    assert annual.as_of.day == 31
    assert table(annual, "children_registered").total.value in (None, 0.0)  # nobody registered before 2026
    with pytest.raises(Exception, match="period has not begun"):
        build_report(queries, "monthly", "county", None, "2027-01", NOW)


def test_secondary_suppression_leaves_tables_without_a_single_hidden_cell_alone():
    def cell(unit: str, value: float | None, suppressed: bool = False) -> Cell:
        return Cell(unit, unit, value, None if value is None else int(value), None, None, suppressed)

    total = cell("county", 30)
    two_hidden = [cell("a", None, True), cell("b", None, True), cell("c", 25)]
    none_hidden = [cell("a", 10), cell("b", 20)]

    assert secondary_suppression(total, two_hidden) == tuple(two_hidden)
    assert secondary_suppression(total, none_hidden) == tuple(none_hidden)


# --- the same numbers in every format ---------------------------------------------------------------------------------


def test_json_and_csv_carry_the_same_figures(county):
    document = report_json(county)
    rows = list(csv.DictReader(io.StringIO(report_csv(county).lstrip("\ufeff"))))

    def csv_value(section: str, indicator: str, unit: str) -> str:
        return next(r["value"] for r in rows if (r["section"], r["indicator"], r["unit"]) == (section, indicator, unit))

    json_table = next(t for t in document["tables"] if t["code"] == "visit_compliance")
    json_row = next(r for r in json_table["rows"] if r["unit"] == "柳市镇")
    assert float(csv_value("unit", "visit_compliance", "柳市镇")) == json_row["value"] == 0.5
    assert csv_value("unit", "children_registered", "北白象镇") == ""
    suppressed = next(r for r in rows if (r["indicator"], r["unit"]) == ("children_registered", "北白象镇"))
    assert suppressed["suppressed"] == "true"
    assert suppressed["numerator"] == ""
    assert float(csv_value("total", "children_registered", "county")) == 46


def test_the_html_shows_the_figures_charts_with_text_alternatives_and_no_script(county):
    html = render_html(county)

    assert "<script" not in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert county.title in html
    assert "走访合规率" in html
    assert html.count("<svg") == len(county.trends) + len(county.maps) + 1
    assert html.count("<desc") == html.count("<svg")
    assert html.count("<title id=") == html.count("<svg")
    assert "50.0%" in html  # 柳市镇's visit compliance
    assert ">*<" in html  # a suppressed cell


def test_the_charts_describe_themselves(county):
    visits = next(t for t in county.trends if t.code == "visit_compliance")

    assert "82.6%" in trend_svg(visits, "t")
    assert "柳市镇：红" in tile_map_svg(county.maps[1], "m")


def test_the_pdf_is_a_pdf_with_pages_and_its_metadata(county):
    pdf = render_pdf(county)

    assert pdf.startswith(b"%PDF-")
    assert pdf.rstrip().endswith(b"%%EOF")
    pages = len(re.findall(rb"/Type /Page[^s]", pdf))
    assert pages >= 2  # a summary, maps and trends do not fit one A4 page
    assert b"STSong-Light" in pdf


# --- over HTTP -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api(queries: SqlIndicatorQueries) -> FastAPI:
    app = create_api("reports", Settings(storage="memory"), [reports_api.router])
    reports_api.install(app, queries)
    return app


def get(api: FastAPI, principal: Principal, path: str, **params: str) -> Any:
    return TestClient(api).get(path, params=params, headers=bearer(api, principal))


MONTHLY = "/v1/reports/indicators/monthly"


@pytest.mark.parametrize("fmt", ["html", "pdf", "json", "csv"])
def test_every_format_answers_with_its_media_type(api, fmt):
    answer = get(api, LEAD_OFFICER, MONTHLY, month=datetime.now(UTC).strftime("%Y-%m"), format=fmt)

    assert answer.status_code == 200, answer.text
    expected = {"html": "text/html", "pdf": "application/pdf", "json": "application/json", "csv": "text/csv"}
    assert answer.headers["content-type"].startswith(expected[fmt])


def test_the_api_json_has_the_suppressed_township_hidden(api):
    document = get(api, AUDITOR, MONTHLY, month=datetime.now(UTC).strftime("%Y-%m"), format="json").json()

    registered = next(t for t in document["tables"] if t["code"] == "children_registered")
    hidden = next(r for r in registered["rows"] if r["unit"] == "北白象镇")
    assert hidden["suppressed"]
    assert hidden["value"] is None
    assert hidden["numerator"] is None


def test_a_township_report_lists_its_villages(api):
    document = get(api, TOWNSHIP_OFFICER, MONTHLY, unit_kind="township", unit="虹桥镇",
                   month=datetime.now(UTC).strftime("%Y-%m"), format="json").json()

    registered = next(t for t in document["tables"] if t["code"] == "children_registered")
    assert registered["total"]["value"] == 20
    assert {r["unit"] for r in registered["rows"]} == {"虹桥镇/溪西村", "虹桥镇/溪东村"}


@pytest.mark.parametrize(("principal", "unit_kind", "unit", "allowed"), [
    (SYSTEM, "county", None, True),
    (LEAD_OFFICER, "county", None, True),
    (WCWC_OFFICER, "township", "柳市镇", True),
    (AUDITOR, "county", None, True),
    (TOWNSHIP_OFFICER, "township", "虹桥镇", True),
    (TOWNSHIP_OFFICER, "township", "柳市镇", False),
    (TOWNSHIP_OFFICER, "county", None, False),
    (POLICE_OFFICER, "county", None, False),
], ids=lambda v: getattr(v, "subject", None) or str(v))
def test_who_may_read_which_report(api, principal, unit_kind, unit, allowed):
    params = {"unit_kind": unit_kind, "year": "2026", "format": "json", **({"unit": unit} if unit else {})}
    answer = get(api, principal, "/v1/reports/indicators/annual", **params)

    assert answer.status_code == (200 if allowed else 403), answer.text


@pytest.mark.parametrize(("path", "params", "field"), [
    (MONTHLY, {"month": "2026-13"}, "month"),
    (MONTHLY, {"month": "0000-01"}, "month"),
    ("/v1/reports/indicators/annual", {"year": "9999"}, "year"),
    ("/v1/reports/indicators/annual", {"year": "20x6"}, "year"),
])
def test_a_malformed_period_answers_422_naming_the_field(api, path, params, field):
    answer = get(api, LEAD_OFFICER, path, **params)

    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["errors"][0]["field"] == field
