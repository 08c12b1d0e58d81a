"""The province sync format (``huhang.province-sync.children.v1``): children's files and their changes, exported
incrementally for the provincial system (浙里护苗), so that no one types a child's file twice.

``GET /v1/province-sync/children?cursor=N`` answers JSON lines (``application/x-ndjson``, UTF-8): one
``ChildSyncRecord`` per child whose file changed after the cursor (its state now, not every step: the province keeps
the current file), then one ``SyncPageEnd`` line with the cursor of the next page. Start with ``cursor=0``; store
``next_cursor`` only after the page is applied; ``has_more`` says to ask again at once. Applying a page twice is
harmless: records are keyed by ``child_id`` and carry the whole current state. A merged file says where it went
(``merged_into``); an erased child comes as ``change: erased`` with ids only: delete it.

This is a disclosure to the lead agency's system only (the guard ``ProvinceSync``): unlike the integration events,
records carry the child's identity (name, sex, birth date, ID number) because matching them is the province's job.
The JSON Schema is ``contracts/schemas/province-sync-children.v1.json``. Changes are additive; a breaking change is
a ``.v2`` format at a new path.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Final, Literal
from uuid import UUID

from pydantic import Field, TypeAdapter

from contracts.envelope import Contract
from contracts.vocabulary import ChildCategory

FORMAT: Final = "huhang.province-sync.children.v1"
MEDIA_TYPE = "application/x-ndjson"


class ChildIdentity(Contract):
    name: str
    sex: str
    birth_date: date
    id_card_number: str | None


class ChildSyncRecord(Contract):
    format: Literal["huhang.province-sync.children.v1"] = "huhang.province-sync.children.v1"
    type: Literal["child"] = "child"
    change: Literal["file", "erased"] = Field(description="file: the file as it is now; erased: delete it.")
    child_id: UUID
    care_case_id: UUID = Field(description="The child's standing care case (contracts.cases.care_case_id).")
    position: int = Field(ge=1, description="The last change of this child included (a cursor value).")
    identity: ChildIdentity | None = Field(description="Null when erased.")
    township: str | None
    village: str | None
    categories: tuple[ChildCategory, ...] = Field(description="Derived from the file's facts, with the reporters'.")
    category_reasons: tuple[str, ...]
    case_ids: tuple[UUID, ...] = Field(description="The child's protection cases (opened by reports).")
    merged_into: UUID | None = Field(description="The surviving file when this one was merged as a duplicate.")


class SyncPageEnd(Contract):
    format: Literal["huhang.province-sync.children.v1"] = "huhang.province-sync.children.v1"
    type: Literal["page_end"] = "page_end"
    cursor: int = Field(ge=0, description="The cursor this page was asked from.")
    next_cursor: int = Field(ge=0, description="Ask the next page with this cursor.")
    has_more: bool
    records: int = Field(ge=0)


SyncLine = ChildSyncRecord | SyncPageEnd


def province_sync_schema() -> dict[str, Any]:
    """The JSON Schema of one line of the export."""
    schema = TypeAdapter(SyncLine).json_schema()
    return {**schema, "$id": f"urn:huhang:schema:{FORMAT}", "title": FORMAT}
