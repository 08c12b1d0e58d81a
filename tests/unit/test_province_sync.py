"""The province sync export over HTTP: JSON lines in the versioned format (validated against the committed schema),
incremental since a cursor, each changed child once per page in its current state, erasures said so, pages bounded,
and only for the lead agency's system."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from faker import Faker
from fastapi.testclient import TestClient
from pydantic import TypeAdapter

from contracts.agencies import Agency
from contracts.jsonschema import SCHEMAS_DIR
from contracts.province_sync import FORMAT, MEDIA_TYPE, SyncLine
from huhang.auth.principal import Principal, Role
from huhang.bootstrap import build_services, embedded_api
from huhang.settings import Settings
from services.intake.schemas import CHILD_REGISTRATION_EXAMPLE
from tests.support.auth import SYSTEM, bearer, officer

PROVINCE = Principal("client-province", "client", Agency.civil_affairs, frozenset({Role.agency_officer}))
SYNC = "/v1/province-sync/children"
LINE = TypeAdapter(SyncLine)


class Platform:
    def __init__(self) -> None:
        settings = Settings(storage="memory")
        self.services = build_services(settings, ["intake"])
        self.app = embedded_api(settings, self.services)
        self.client = TestClient(self.app)
        self.fake = Faker("zh_CN")

    def register(self) -> tuple[uuid.UUID, str]:
        child = {**CHILD_REGISTRATION_EXAMPLE["child"], "name": self.fake.name(), "id_card_number": None}
        answer = self.client.post("/v1/children", json={**CHILD_REGISTRATION_EXAMPLE, "child": child},
                                  headers=bearer(self.app, SYSTEM))
        assert answer.status_code == 201, answer.text
        return uuid.UUID(answer.json()["child_id"]), child["name"]

    def page(self, cursor: int = 0, principal: Principal = PROVINCE, **params: Any) -> list[dict[str, Any]]:
        answer = self.client.get(SYNC, params={"cursor": cursor, **params}, headers=bearer(self.app, principal))
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith(MEDIA_TYPE)
        lines = [json.loads(line) for line in answer.text.splitlines()]
        for line in lines:
            LINE.validate_python(line)
        assert lines[-1]["type"] == "page_end"
        assert answer.headers["Huhang-Next-Cursor"] == str(lines[-1]["next_cursor"])
        return lines


@pytest.fixture
def platform() -> Iterator[Platform]:
    built = Platform()
    yield built
    for service in built.services.values():
        service.application.close()


def test_a_first_page_holds_every_child_once_with_identity_and_then_the_page_end(platform):
    first, first_name = platform.register()
    second, _ = platform.register()

    lines = platform.page()

    records, end = lines[:-1], lines[-1]
    assert [uuid.UUID(r["child_id"]) for r in records] == [first, second]
    assert records[0]["identity"]["name"] == first_name
    assert records[0]["format"] == FORMAT
    assert records[0]["change"] == "file"
    assert end["records"] == 2
    assert end["has_more"] is False


def test_the_next_cursor_gives_only_what_changed_since(platform):
    platform.register()
    cursor = platform.page()[-1]["next_cursor"]
    assert platform.page(cursor)[:-1] == []
    assert platform.page(cursor)[-1]["next_cursor"] == cursor

    later, _ = platform.register()
    lines = platform.page(cursor)
    assert [uuid.UUID(r["child_id"]) for r in lines[:-1]] == [later]


def test_pages_are_bounded_and_lose_nothing(platform):
    children = [platform.register()[0] for _ in range(5)]
    seen: list[uuid.UUID] = []
    cursor = 0
    for _ in range(10):
        lines = platform.page(cursor, limit=2)
        seen += [uuid.UUID(r["child_id"]) for r in lines[:-1]]
        assert len(lines) - 1 <= 2
        cursor = lines[-1]["next_cursor"]
        if not lines[-1]["has_more"]:
            break
    assert seen == children


def test_an_erased_child_comes_as_erased_with_ids_only(platform):
    child, name = platform.register()
    cursor = platform.page()[-1]["next_cursor"]
    platform.services["intake"].application.erase_child(child, reason="retention_expired", by="civil_affairs")

    lines = platform.page(cursor)

    [record] = lines[:-1]
    assert record["change"] == "erased"
    assert record["identity"] is None
    assert name not in json.dumps(lines, ensure_ascii=False)


def test_the_committed_schema_is_the_format(platform):
    schema = json.loads((SCHEMAS_DIR / "province-sync-children.v1.json").read_text(encoding="utf-8"))
    assert schema["$id"] == f"urn:huhang:schema:{FORMAT}"


@pytest.mark.parametrize("principal", [officer(Agency.civil_affairs), officer(Agency.police),
                                       Principal("client-police", "client", Agency.police,
                                                 frozenset({Role.agency_officer}))])
def test_only_the_lead_agencys_system_reads_it(platform, principal):
    answer = platform.client.get(SYNC, headers=bearer(platform.app, principal))
    assert answer.status_code == 403
