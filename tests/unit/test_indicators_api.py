"""The indicators API on the hand-made county (tests/unit/test_indicators.py): who reads which unit, small cells
suppressed for all but civil affairs, wcwc and auditors (and for everyone when published), CSV, drill-down, errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from contracts.agencies import Agency
from huhang.auth.principal import Principal
from huhang.bootstrap import service_api
from huhang.settings import Settings
from services.indicators.main import IndicatorsService, build
from tests.support.auth import bearer, officer
from tests.support.principals import (
    ADMINISTRATOR,
    AUDITOR,
    CHILD_DIRECTOR,
    LEAD_OFFICER,
    OTHER_CHILD_DIRECTOR,
    POLICE_OFFICER,
    TOWNSHIP_OFFICER,
    WCWC_OFFICER,
)
from tests.unit.test_indicators import AV, BW, MARCH_END, A, B, C, county

AS_OF = MARCH_END.isoformat()
EDUCATION = officer(Agency.education)


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Any, IndicatorsService]]:
    settings = Settings(storage="memory")
    service = build(settings)
    service.store.ingest(county())
    app = service_api(settings, service)
    with TestClient(app) as client:
        yield client, service
    service.store.engine.dispose()


def get(served: tuple[Any, IndicatorsService], principal: Principal, path: str, **params: Any) -> Any:
    client, _ = served
    headers = params.pop("headers", {})
    return client.get(path, params={"as_of": AS_OF, **params}, headers={**bearer(client.app, principal), **headers})


def by_unit(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["unit"]: r for r in rows if r["breakdown"] is None}


def test_the_catalogue_names_each_indicator_in_both_languages(served):
    answer = get(served, AUDITOR, "/v1/indicators")
    assert answer.status_code == 200
    visit = {i["code"]: i for i in answer.json()}["visit_compliance"]
    assert visit["name_zh"] == "走访合规率"
    assert visit["thresholds"][0] == {"colour": "green", "at": 0.95}


def test_the_lead_agency_sees_small_cells_unless_published(served):
    rows = by_unit(get(served, LEAD_OFFICER, "/v1/indicators/values", indicator="contact_compliance").json())
    assert set(rows) == {A, B}
    assert rows[B]["denominator"] == 2
    assert not rows[B]["suppressed"]
    published = by_unit(get(served, WCWC_OFFICER, "/v1/indicators/values", indicator="contact_compliance",
                            published="true").json())
    assert published[B]["suppressed"]
    assert published[B]["value"] is None
    assert published[B]["denominator"] is None
    assert published[A]["denominator"] == 5


def test_a_township_reads_its_own_units_with_small_cells_suppressed(served):
    rows = by_unit(get(served, TOWNSHIP_OFFICER, "/v1/indicators/values", indicator="risk_red_share").json())
    assert set(rows) == {A}
    assert rows[A]["suppressed"]
    villages = get(served, TOWNSHIP_OFFICER, "/v1/indicators/values", unit_kind="village").json()
    assert {r["unit"] for r in villages} == {AV}
    refused = get(served, TOWNSHIP_OFFICER, "/v1/indicators/values", unit=B)
    assert refused.status_code == 403
    assert refused.json()["errors"][0]["field"] == "unit"
    assert get(served, TOWNSHIP_OFFICER, "/v1/indicators/values", unit_kind="county").status_code == 403


def test_a_village_reads_its_own_village_only(served):
    rows = get(served, CHILD_DIRECTOR, "/v1/indicators/values", unit_kind="village").json()
    assert {r["unit"] for r in rows} == {AV}
    assert get(served, OTHER_CHILD_DIRECTOR, "/v1/indicators/values", unit_kind="village", unit=AV).status_code == 403


def test_an_agency_reads_its_own_referral_figures_only(served):
    rows = get(served, POLICE_OFFICER, "/v1/indicators/values", indicator="referral_accept_hours",
               unit_kind="agency").json()
    assert by_unit(rows) == {"police": by_unit(rows)["police"]}
    assert by_unit(rows)["police"]["value"] == 6.0
    assert get(served, POLICE_OFFICER, "/v1/indicators/values", indicator="referrals_open", unit_kind="agency",
               unit="education").status_code == 403
    assert get(served, POLICE_OFFICER, "/v1/indicators/values").status_code == 403  # townships: not its figures
    overdue = by_unit(get(served, EDUCATION, "/v1/indicators/values", indicator="referrals_overdue",
                          unit_kind="agency").json())
    assert overdue["education"]["numerator"] == 1
    assert overdue["education"]["colour"] == "yellow"
    assert get(served, ADMINISTRATOR, "/v1/indicators").status_code == 403


def test_csv_by_format_or_accept(served):
    for params in ({"format": "csv"}, {"headers": {"Accept": "text/csv"}}):
        answer = get(served, AUDITOR, "/v1/indicators/values", indicator="visit_compliance", **params)
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/csv")
        lines = answer.text.lstrip("\ufeff").splitlines()
        assert lines[0].startswith("indicator,unit_kind,unit,month,as_of")
        assert any(line.startswith(f"visit_compliance,township,{A},") for line in lines[1:])


def test_drill_down_for_the_lead_agency_and_the_units_own_area(served):
    expected = sorted(C[1:])
    for principal, unit_kind, unit in ((LEAD_OFFICER, "township", A), (TOWNSHIP_OFFICER, "village", AV),
                                       (CHILD_DIRECTOR, "village", AV)):
        answer = get(served, principal, "/v1/indicators/visit_compliance/children", unit_kind=unit_kind, unit=unit)
        assert answer.status_code == 200
        assert sorted(answer.json()) == expected
    for principal, unit in ((OTHER_CHILD_DIRECTOR, AV), (AUDITOR, AV), (POLICE_OFFICER, AV), (TOWNSHIP_OFFICER, BW)):
        answer = get(served, principal, "/v1/indicators/visit_compliance/children", unit_kind="village", unit=unit)
        assert answer.status_code == 403, principal


def test_trend_and_bad_input(served):
    trend = get(served, LEAD_OFFICER, "/v1/indicators/visit_compliance/trend", unit_kind="township", unit=A,
                months=2)
    assert [p["month"] for p in trend.json()] == ["2026-02", "2026-03"]
    unknown = get(served, LEAD_OFFICER, "/v1/indicators/values", indicator="nonsense")
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["field"] == "indicator"
    assert get(served, LEAD_OFFICER, "/v1/indicators/nonsense/trend", unit_kind="township",
               unit=A).status_code == 404
    wrong_kind = get(served, LEAD_OFFICER, "/v1/indicators/director_coverage/trend", unit_kind="village", unit=AV)
    assert wrong_kind.status_code == 422
    assert wrong_kind.json()["errors"][0]["field"] == "unit_kind"
    assert get(served, LEAD_OFFICER, "/v1/indicators/values", as_of="yesterday").status_code == 422


def test_colour_changes_within_the_callers_scope(served):
    _, service = served
    service.watch.check(MARCH_END)
    everything = get(served, LEAD_OFFICER, "/v1/indicators/colour-changes").json()
    assert {c["unit"] for c in everything} >= {A, B}
    township = get(served, TOWNSHIP_OFFICER, "/v1/indicators/colour-changes").json()
    assert township
    assert all(c["unit"] == A or c["unit"].startswith(f"{A}/") for c in township)
