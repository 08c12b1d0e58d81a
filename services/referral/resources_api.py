"""The resource directory's HTTP API: organisations in the shape of Open Referral HSDS 3.0, and their import.

Read by every authenticated caller (a directory of services holds no child's data; the principals bound to an
organisation are shown to the lead agency only). Kept by the lead agency, and by an organisation's own members for
their organisation. Import: HSDS-shaped JSON (``{"organizations": [...]}``) or a CSV of services, one per row.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field, ValidationError

from huhang.access.guards import FORBIDDEN_DOC, Forbidden, PrincipalDep, ReliefLead
from huhang.access.policy import may_match_relief
from huhang.auth.principal import Principal
from huhang.problems import PROBLEM_RESPONSES, FieldError, Unprocessable, problem_doc
from services.referral.needs_application import ReliefDesk
from services.referral.resources import ORGANISATION_EXAMPLE, OrganisationDocument

IMPORT_NAMESPACE = uuid.UUID("8b1e4d2a-6c3f-4a5b-9e7d-1f0a2c4e6b8d")
MAX_IMPORT_BYTES = 5_000_000
CSV_COLUMNS = ("organization_id", "organization_name", "organization_kind", "service_id", "service_name",
               "category", "minimum_age", "maximum_age", "child_categories", "townships", "capacity", "cost",
               "status", "location_township")
CSV_EXAMPLE = (
    ",".join(CSV_COLUMNS) + "\n6f1d2c3b-4a5e-4f60-8b7a-9c0d1e2f3a4b,乐清市阳光助学会,charity,"
    "1b2c3d4e-5f6a-4b7c-8d9e-0f1a2b3c4d5e,留守儿童助学金,tuition_supplies,6,15,left_behind,虹桥镇|淡溪镇,20,free,"
    "active,虹桥镇\n"
)


def get_desk(request: Request) -> ReliefDesk:
    return request.app.state.relief


DeskDep = Annotated[ReliefDesk, Depends(get_desk)]


def organisation_keeper(organisation_id: UUID, desk: DeskDep, principal: PrincipalDep) -> Principal:
    """The lead agency, the platform, or a member of this organisation."""
    if not desk.may_edit(principal, organisation_id):
        raise Forbidden("Only the lead agency or the organisation's own members keep its directory entry.")
    return principal


OrganisationKeeper = Annotated[Principal, Depends(organisation_keeper)]


class OrganisationSaved(BaseModel):
    id: UUID
    created: bool
    changed: bool
    version: int


class ImportReport(BaseModel):
    organisations: int
    created: int
    changed: int
    unchanged: int


class DirectoryPublic(BaseModel):
    organizations: list[dict[str, Any]] = Field(description="HSDS `organization` documents with their services.")


router = APIRouter(prefix="/v1", tags=["relief directory"])


def _shown(document: dict[str, Any], principal: Principal) -> dict[str, Any]:
    return document if may_match_relief(principal).allowed else {k: v for k, v in document.items() if k != "members"}


@router.get("/organisations", response_model=DirectoryPublic, responses=PROBLEM_RESPONSES,
            summary="The resource directory (HSDS organizations with services, locations, contacts)")
def list_organisations(desk: DeskDep, principal: PrincipalDep) -> DirectoryPublic:
    return DirectoryPublic(organizations=[_shown(o.document, principal) for o in desk.directory()])


@router.get("/organisations/{organisation_id}", responses={**problem_doc(404, "Not found")},
            summary="One organisation of the directory")
def get_organisation(organisation_id: UUID, desk: DeskDep, principal: PrincipalDep) -> dict[str, Any]:
    return _shown(desk.organisation(organisation_id).document, principal)


@router.put(
    "/organisations/{organisation_id}", response_model=OrganisationSaved,
    responses={**PROBLEM_RESPONSES, **FORBIDDEN_DOC}, summary="Register or update an organisation (an event each)",
)
def put_organisation(
    organisation_id: UUID, document: OrganisationDocument, desk: DeskDep, principal: OrganisationKeeper,
    response: Response,
) -> OrganisationSaved:
    if document.id != organisation_id:
        raise Unprocessable("The document's id is not the path's.",
                            errors=[FieldError(field="id", reason="must equal the path's organisation_id")])
    created, changed = desk.save_organisation(document, principal)
    response.status_code = 201 if created else 200
    return OrganisationSaved(id=organisation_id, created=created, changed=changed,
                             version=desk.organisation(organisation_id).version)


@router.post(
    "/organisation-imports", response_model=ImportReport, responses={**PROBLEM_RESPONSES, **FORBIDDEN_DOC},
    summary="Import the directory from a file (HSDS JSON or CSV of services)",
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"type": "object", "examples": [{"organizations": [ORGANISATION_EXAMPLE]}]}},
        "text/csv": {"schema": {"type": "string", "example": CSV_EXAMPLE}},
    }}},
)
async def import_organisations(request: Request, desk: DeskDep, principal: ReliefLead) -> ImportReport:
    """Idempotent: an organisation whose document did not change records nothing. All rows are validated before
    anything is saved; a bad row answers 422 naming it."""
    raw = await request.body()
    if len(raw) > MAX_IMPORT_BYTES:
        raise Unprocessable("The file is too large.", errors=[FieldError(field="body", reason="over 5 MB")])
    kind = request.headers.get("content-type", "").split(";")[0].strip()
    documents = _from_csv(raw) if kind == "text/csv" else _from_json(raw)
    created = changed = 0
    for document in documents:
        was_created, was_changed = desk.save_organisation(document, principal)
        created += was_created
        changed += was_changed and not was_created
    return ImportReport(organisations=len(documents), created=created, changed=changed,
                        unchanged=len(documents) - created - changed)


def _validated(raw_documents: list[Any], where: str) -> list[OrganisationDocument]:
    out = []
    for i, raw in enumerate(raw_documents):
        try:
            out.append(OrganisationDocument.model_validate(raw))
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"])
            raise Unprocessable(f"{where} {i + 1} is not a valid HSDS organization.",
                                errors=[FieldError(field=f"{where}[{i}].{field}", reason=first["msg"])]) from None
    return out


def _from_json(raw: bytes) -> list[OrganisationDocument]:
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise Unprocessable("The body is not JSON.", errors=[FieldError(field="body", reason="invalid JSON")]) from None
    organisations = body.get("organizations") if isinstance(body, dict) else None
    if not isinstance(organisations, list):
        raise Unprocessable("An HSDS import holds a list `organizations`.",
                            errors=[FieldError(field="organizations", reason="a list is required")])
    return _validated(organisations, "organizations")


def _from_csv(raw: bytes) -> list[OrganisationDocument]:
    """One service per row; rows of one organisation (``organization_id``) make one document."""
    try:
        rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    except (UnicodeDecodeError, csv.Error):
        raise Unprocessable("The body is not UTF-8 CSV.", errors=[FieldError(field="body", reason="invalid CSV")]) \
            from None
    missing = [c for c in CSV_COLUMNS if rows and c not in rows[0]]
    if not rows or missing:
        raise Unprocessable("The CSV lacks columns.", errors=[FieldError(field="header", reason=f"needs {missing}")])
    grouped: dict[str, dict[str, Any]] = {}
    for row in rows:
        org = grouped.setdefault(row["organization_id"], {
            "id": row["organization_id"], "name": row["organization_name"], "kind": row["organization_kind"],
            "locations": [], "services": [],
        })
        location_ids = []
        if row["location_township"]:
            location_id = str(uuid.uuid5(IMPORT_NAMESPACE, f"{row['organization_id']}/{row['location_township']}"))
            if all(loc["id"] != location_id for loc in org["locations"]):
                org["locations"].append({"id": location_id, "name": row["location_township"],
                                         "township": row["location_township"]})
            location_ids = [location_id]
        org["services"].append({
            "id": row["service_id"], "name": row["service_name"], "category": row["category"],
            "status": row["status"] or "active", "cost": row["cost"] or "free",
            "capacity": int(row["capacity"]) if row["capacity"].strip().isdigit() else None,
            "eligibility": {"minimum_age": row["minimum_age"] or 0, "maximum_age": row["maximum_age"] or 17,
                            "child_categories": [c for c in row["child_categories"].split("|") if c]},
            "service_areas": [{"township": t} for t in row["townships"].split("|") if t],
            "location_ids": location_ids,
        })
    return _validated(list(grouped.values()), "rows of organization")

