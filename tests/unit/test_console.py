"""The web console's server side: the files served with their headers, the catalogues, the director's worklist, and
the distributed console's gateway forwarding to a real upstream over HTTP."""

from __future__ import annotations

import copy
import json
import re
import threading
import time
from collections.abc import Iterator
from datetime import date, timedelta
from enum import StrEnum
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from contracts import vocabulary
from contracts.agencies import Agency
from huhang.console.gateway import ConsoleSettings, RouteTable, console_gateway
from huhang.console.serve import STATIC_DIR
from services.intake.schemas import CHILD_REGISTRATION_EXAMPLE
from tests.support.auth import SYSTEM
from tests.support.principals import (
    CHILD_DIRECTOR,
    LEAD_OFFICER,
    OTHER_CHILD_DIRECTOR,
    POLICE_OFFICER,
    TOWNSHIP_OFFICER,
    VILLAGE,
    as_,
)
from tests.support.processes import free_port
from tests.unit.test_access_api import Platform, build_platform, close

SCRIPTS = sorted(p for p in STATIC_DIR.rglob("*.js"))


@pytest.fixture(scope="module")
def platform() -> Iterator[Platform]:
    built = build_platform()
    yield built
    close(built)


# --- the files ----------------------------------------------------------------------------------------------------


def test_the_embedded_app_serves_the_console_with_a_strict_policy(platform: Platform) -> None:
    page = platform.client.get("/console/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "default-src 'none'" in policy
    assert "unsafe-inline" not in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["cache-control"] == "no-cache"
    assert page.headers["etag"]
    again = platform.client.get("/console/", headers={"If-None-Match": page.headers["etag"]})
    assert again.status_code == 304
    assert platform.client.get("/console", follow_redirects=False).headers["location"] == "/console/"
    assert platform.client.get("/console/sw.js").headers["service-worker-allowed"] == "/console/"
    assert platform.client.get("/console/i18n/zh-CN.json").json()["app.name"] == "护航"
    assert platform.client.get("/console/../huhang/settings.py").status_code == 404


def test_no_inline_script_or_style_and_every_module_imported_exists() -> None:
    html = (STATIC_DIR / "index.html").read_text()
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []
    assert "<style" not in html
    assert " style=" not in html
    assert not re.search(r"<[^>]+\son[a-z]+=", html)
    for script in SCRIPTS:
        text = script.read_text()
        assert ".innerHTML" not in text, script.name
        assert "eval(" not in text, script.name
        for imported in re.findall(r"from \"(\.{1,2}/[^\"]+)\"", text):
            assert (script.parent / imported).resolve().exists(), (script.name, imported)


def test_the_service_worker_caches_every_file_of_the_shell() -> None:
    shell = re.search(r"const SHELL = \[(.*?)\];", (STATIC_DIR / "sw.js").read_text(), re.S)
    assert shell is not None
    listed = set(re.findall(r"\"([^\"]+)\"", shell.group(1))) - {"./"}
    files = {str(p.relative_to(STATIC_DIR)) for p in STATIC_DIR.rglob("*") if p.is_file() and p.name != "sw.js"}
    assert listed == files


def test_the_catalogues_agree_and_name_every_string_and_code_the_pages_use() -> None:
    zh = json.loads((STATIC_DIR / "i18n" / "zh-CN.json").read_text())
    en = json.loads((STATIC_DIR / "i18n" / "en.json").read_text())
    assert set(zh) == set(en)
    used = {key for s in SCRIPTS for key in re.findall(r"\bt\(\"([a-z_.]+)\"", s.read_text())}
    assert used
    assert used <= set(zh), used - set(zh)
    for kind, codes in {
        "agency": Agency, "status": vocabulary.ReferralStatus, "priority": vocabulary.Priority,
        "finding": vocabulary.VisitFinding, "concern": vocabulary.ConcernCategory, "urgency": vocabulary.Urgency,
        "channel": vocabulary.ParentContactChannel, "parent": vocabulary.ParentRelation,
        "visit_kind": vocabulary.VisitKind, "colour": vocabulary.RiskColour, "outcome": vocabulary.Outcome,
        "reason": vocabulary.RejectionReason,
    }.items():
        enum: type[StrEnum] = codes
        missing = {c.value for c in enum} - {k.split(".", 1)[1] for k in zh if k.startswith(f"{kind}.")}
        assert not missing, (kind, missing)
    chinese = [k for k in zh if k.startswith(("nav.", "signin.", "visit.")) and k != "nav.language"]  # the switch
    assert all(re.search(r"[\u4e00-\u9fff]", zh[k]) for k in chinese)


# --- the director's worklist --------------------------------------------------------------------------------------


def test_the_worklist_shows_the_village_s_children_overdue_first(platform: Platform) -> None:
    second = copy.deepcopy(CHILD_REGISTRATION_EXAMPLE)
    second["child"].update({"name": "王小军", "id_card_number": None, "birth_date": "2016-07-01", "sex": "male"})
    registered = platform.post("/v1/children", SYSTEM, json=second)
    assert registered.status_code == 201, registered.text
    visited = registered.json()["child_id"]
    platform.catch_up()
    recorded = platform.post(f"/v1/children/{visited}/visits", CHILD_DIRECTOR, json={
        "kind": "home_visit", "visited_on": date.today().isoformat(), "agency": "village", "findings": ["all_well"],
    })
    assert recorded.status_code == 201, recorded.text
    later = (date.today() + timedelta(days=75)).isoformat()

    answer = platform.get("/v1/care/worklist", CHILD_DIRECTOR, params={"as_of": later})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["village"], body["as_of"]) == (VILLAGE, later)
    ids = [item["child_id"] for item in body["items"]]
    assert set(ids) == {str(platform.child_id), visited}
    overdue = [max(i["contact_overdue_days"], i["home_visit_overdue_days"]) for i in body["items"]]
    due = [min(i["next_contact_due_on"], i["next_home_visit_due_on"]) for i in body["items"]]
    assert overdue[0] > 0
    assert [(-o, d) for o, d in zip(overdue, due, strict=True)] == sorted((-o, d) for o, d in zip(overdue, due,
                                                                                                strict=True))
    assert body["items"][ids.index(visited)]["covered"] is True
    assert "name" not in json.dumps(body)  # ids and codes: names stay in the child's file

    assert platform.get("/v1/care/worklist", TOWNSHIP_OFFICER, params={"village": VILLAGE}).json()["items"]
    assert platform.get("/v1/care/worklist", LEAD_OFFICER, params={"township": "虹桥镇", "village": VILLAGE}).json()
    assert platform.get("/v1/care/worklist", OTHER_CHILD_DIRECTOR).json()["items"] == []


def test_the_worklist_refuses_other_villages_and_agencies_without_an_area(platform: Platform) -> None:
    refused = platform.get("/v1/care/worklist", OTHER_CHILD_DIRECTOR, params={"village": VILLAGE})
    assert refused.status_code == 403
    assert refused.json()["errors"][0]["field"] == "village"
    assert platform.get("/v1/care/worklist", POLICE_OFFICER).status_code == 403
    unnamed = platform.get("/v1/care/worklist", LEAD_OFFICER)
    assert unnamed.status_code == 422
    assert unnamed.headers["content-type"] == "application/problem+json"
    assert {e["field"] for e in unnamed.json()["errors"]} == {"township", "village"}


# --- the gateway (distributed) ------------------------------------------------------------------------------------


def test_the_route_table_finds_each_path_s_service() -> None:
    table = RouteTable.from_services()
    assert table.service_for("POST", "/v1/oauth/token") == "intake"
    assert table.service_for("GET", "/v1/children/3f0e/care") == "guardianship"
    assert table.service_for("GET", "/v1/children/3f0e") == "intake"
    assert table.service_for("POST", "/v1/children/3f0e/visits") == "guardianship"
    assert table.service_for("GET", "/v1/care/worklist") == "guardianship"
    assert table.service_for("POST", "/v1/referrals/3f0e/status") == "referral"
    assert table.service_for("GET", "/v1/agencies/police/notifications") == "notifications"
    assert table.service_for("GET", "/v1/cases/3f0e/history") == "intake"
    assert table.service_for("GET", "/v1/no-such-thing") is None


def _echo_app() -> FastAPI:
    app = FastAPI()

    @app.api_route("/{rest:path}", methods=["GET", "POST"])
    async def echo(rest: str, request: Request) -> Any:
        return {
            "path": request.url.path, "query": request.url.query, "body": (await request.body()).decode(),
            "authorization": request.headers.get("authorization"), "key": request.headers.get("idempotency-key"),
        }

    return app


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(_echo_app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(5)


def test_the_gateway_forwards_the_api_and_serves_the_console(upstream: str) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    settings = ConsoleSettings(guardianship_url=upstream, intake_url=upstream, referral_url=dead)
    with TestClient(console_gateway(settings)) as client:
        sent = client.post(
            "/v1/children/3f0e/visits?x=1", json={"kind": "contact"},
            headers={"Authorization": "Bearer t", "Idempotency-Key": "k-1"},
        )
        assert sent.status_code == 200
        assert sent.json() == {"path": "/v1/children/3f0e/visits", "query": "x=1", "body": '{"kind":"contact"}',
                               "authorization": "Bearer t", "key": "k-1"}
        token = client.post("/v1/oauth/token", data={"grant_type": "password"})
        assert token.json()["path"] == "/v1/oauth/token"
        down = client.get("/v1/agencies/police/referrals")
        assert down.status_code == 502
        assert down.headers["content-type"] == "application/problem+json"
        assert client.get("/v1/no-such-thing").status_code == 404
        page = client.get("/console/")
        assert page.status_code == 200
        assert "content-security-policy" in page.headers
        assert client.get("/healthz").json() == {"status": "ok"}


def test_the_worklist_path_is_guarded_like_the_rest(platform: Platform) -> None:
    assert platform.client.get("/v1/care/worklist").status_code == 401
    assert platform.client.get("/v1/care/worklist", headers=as_(platform.app, CHILD_DIRECTOR)).status_code == 200


def test_a_visit_sent_twice_with_its_idempotency_key_is_recorded_once(platform: Platform) -> None:
    """What the console's offline queue relies on: a request repeated after a lost answer changes nothing."""
    visits = f"/v1/children/{platform.child_id}/visits"
    before = len(platform.get(f"/v1/children/{platform.child_id}/care", CHILD_DIRECTOR).json()["visits"])
    body = {"kind": "contact", "visited_on": date.today().isoformat(), "agency": "village", "findings": ["all_well"]}
    first = platform.post(visits, CHILD_DIRECTOR, json=body, headers={"Idempotency-Key": "console-q-1"})
    again = platform.post(visits, CHILD_DIRECTOR, json=body, headers={"Idempotency-Key": "console-q-1"})
    assert first.status_code == again.status_code == 201
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.json()["visit_id"] == first.json()["visit_id"]
    after = platform.get(f"/v1/children/{platform.child_id}/care", CHILD_DIRECTOR).json()["visits"]
    assert len(after) == before + 1
