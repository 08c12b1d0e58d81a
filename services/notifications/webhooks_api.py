"""The webhook API: an agency's own subscriptions (create, list, get, update or disable, rotate the secret,
delete), their dead letters, and replays. Only the agency itself (its writing roles) and the platform manage them
(``AgencyIntegration``); an area-bound caller (a township or village system) subscribes to its own area only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Body, Depends, Query, Request, Response

from contracts.agencies import Agency
from huhang.access.guards import FORBIDDEN_DOC, AgencyIntegration, Forbidden
from huhang.access.policy import AREA_AGENCIES
from huhang.auth.principal import Principal
from huhang.problems import PROBLEM_RESPONSES, FieldError, NotFound, Unprocessable
from services.notifications.webhooks_model import EndpointRefused, check_endpoint
from services.notifications.webhooks_schemas import (
    WEBHOOK_EXAMPLE,
    DeliveriesPublic,
    DeliveryPublic,
    ReplayQueued,
    SecretRotated,
    WebhookCreate,
    WebhookCreated,
    WebhookPublic,
    WebhooksPublic,
    WebhookUpdate,
)
from services.notifications.webhooks_store import DEAD, WebhookStore


@dataclass(frozen=True)
class WebhookApi:
    """What the routes need: the store and two settings."""

    store: WebhookStore
    development: bool
    secret_overlap_s: float


def get_webhooks(request: Request) -> WebhookApi:
    return request.app.state.webhooks


WebhooksDep = Annotated[WebhookApi, Depends(get_webhooks)]

router = APIRouter(prefix="/v1/agencies/{agency}/webhooks", tags=["webhooks"])
RESPONSES: dict[int | str, dict[str, Any]] = {**PROBLEM_RESPONSES, **FORBIDDEN_DOC}


def _now() -> datetime:
    return datetime.now(UTC)


def _subscription(api: WebhookApi, agency: Agency, webhook_id: UUID) -> dict[str, Any]:
    row = api.store.get(agency, str(webhook_id))
    if row is None:
        raise NotFound("No such webhook subscription for this agency.")
    return row


def _checked_url(api: WebhookApi, url: str) -> str:
    try:
        return check_endpoint(url, development=api.development)
    except EndpointRefused as refused:
        raise Unprocessable("The endpoint is not acceptable.", errors=[FieldError(field="url", reason=str(refused))])\
            from None


def _checked_area(principal: Principal, agency: Agency, township: str | None, village: str | None) -> None:
    """A village needs its township; an area-bound caller keeps to its own area; an area agency needs an area."""
    if village is not None and township is None:
        raise Unprocessable("A village needs its township.",
                            errors=[FieldError(field="township", reason="required with `village`")])
    if agency in AREA_AGENCIES and township is None:
        raise Unprocessable("A township or village system subscribes to an area.",
                            errors=[FieldError(field="township", reason="required for an area agency")])
    if principal.township is not None and township != principal.township:
        raise Forbidden(f"{principal.agency.value} may subscribe only to its own area.",
                        errors=[FieldError(field="township", reason="must be the caller's own township")])
    if principal.village is not None and village != principal.village:
        raise Forbidden(f"{principal.agency.value} may subscribe only to its own area.",
                        errors=[FieldError(field="village", reason="must be the caller's own village")])


@router.post("", status_code=201, response_model=WebhookCreated, responses=RESPONSES,
             summary="Subscribe an endpoint to the agency's events")
def create_webhook(
    agency: Agency, api: WebhooksDep, principal: AgencyIntegration,
    body: Annotated[WebhookCreate, Body(openapi_examples={"school": {"value": WEBHOOK_EXAMPLE}})],
) -> WebhookCreated:
    """Events are signed per Standard Webhooks with the returned secret (shown only now); `webhook-id` is the
    event id, for deduplication. The agency receives only events it may know of."""
    url = _checked_url(api, body.url)
    _checked_area(principal, agency, body.township, body.village)
    row, secret = api.store.create(agency, url, body.event_types, body.township, body.village, _now())
    return WebhookCreated.model_validate({**WebhookPublic.of(row).model_dump(), "secret": secret})


@router.get("", response_model=WebhooksPublic, responses=RESPONSES, summary="The agency's webhook subscriptions")
def list_webhooks(agency: Agency, api: WebhooksDep, _: AgencyIntegration) -> WebhooksPublic:
    return WebhooksPublic(agency=agency, items=[WebhookPublic.of(r) for r in api.store.of_agency(agency)])


@router.get("/{webhook_id}", response_model=WebhookPublic, responses=RESPONSES, summary="One subscription")
def get_webhook(agency: Agency, webhook_id: UUID, api: WebhooksDep, _: AgencyIntegration) -> WebhookPublic:
    return WebhookPublic.of(_subscription(api, agency, webhook_id))


@router.patch("/{webhook_id}", response_model=WebhookPublic, responses=RESPONSES,
              summary="Change, disable or re-enable a subscription")
def update_webhook(
    agency: Agency, webhook_id: UUID, api: WebhooksDep, principal: AgencyIntegration, body: WebhookUpdate
) -> WebhookPublic:
    row = _subscription(api, agency, webhook_id)
    changes = body.model_dump(exclude_unset=True)
    if changes.get("url") is not None:
        changes["url"] = _checked_url(api, changes["url"])
    if {"township", "village"} & set(changes):
        _checked_area(principal, agency, changes.get("township", row["township"]),
                      changes.get("village", row["village"]))
    for required in ("url", "event_types", "enabled"):
        if required in changes and changes[required] is None:
            raise Unprocessable("A value is required.", errors=[FieldError(field=required, reason="must not be null")])
    updated = api.store.update(agency, str(webhook_id), changes, _now())
    if updated is None:
        raise NotFound("No such webhook subscription for this agency.")
    return WebhookPublic.of(updated)


@router.delete("/{webhook_id}", status_code=204, responses=RESPONSES, summary="Delete a subscription")
def delete_webhook(agency: Agency, webhook_id: UUID, api: WebhooksDep, _: AgencyIntegration) -> Response:
    """Its queued deliveries and dead letters go with it."""
    if not api.store.delete(agency, str(webhook_id)):
        raise NotFound("No such webhook subscription for this agency.")
    return Response(status_code=204)


@router.post("/{webhook_id}/secret/rotate", response_model=SecretRotated, responses=RESPONSES,
             summary="Rotate the signing secret (two valid at once during the overlap)")
def rotate_secret(agency: Agency, webhook_id: UUID, api: WebhooksDep, _: AgencyIntegration) -> SecretRotated:
    """Requests are signed with both the new and the previous secret until `previous_secret_until`
    (`HUHANG_WEBHOOK_SECRET_OVERLAP_S`): switch the receiver over in that time."""
    now = _now()
    secret = api.store.rotate(agency, str(webhook_id), api.secret_overlap_s, now)
    if secret is None:
        raise NotFound("No such webhook subscription for this agency.")
    row = _subscription(api, agency, webhook_id)
    return SecretRotated(secret=secret, previous_secret_until=WebhookPublic.of(row).previous_secret_until or now)


@router.get("/{webhook_id}/dead-letters", response_model=DeliveriesPublic, responses=RESPONSES,
            summary="Deliveries given up on")
def dead_letters(
    agency: Agency, webhook_id: UUID, api: WebhooksDep, _: AgencyIntegration,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> DeliveriesPublic:
    _subscription(api, agency, webhook_id)
    rows = api.store.deliveries(str(webhook_id), DEAD, limit)
    return DeliveriesPublic(items=[DeliveryPublic.of(r) for r in rows])


@router.post("/{webhook_id}/dead-letters/{delivery_id}/replay", response_model=ReplayQueued, responses=RESPONSES,
             summary="Send a dead letter again")
def replay_dead_letter(
    agency: Agency, webhook_id: UUID, delivery_id: UUID, api: WebhooksDep, _: AgencyIntegration
) -> ReplayQueued:
    _subscription(api, agency, webhook_id)
    if not api.store.replay(str(webhook_id), str(delivery_id), _now()):
        raise NotFound("No such dead letter for this subscription.")
    return ReplayQueued(queued=1)


@router.post("/{webhook_id}/replay", response_model=ReplayQueued, responses=RESPONSES,
             summary="Send again every event since a time")
def replay_since(
    agency: Agency, webhook_id: UUID, api: WebhooksDep, _: AgencyIntegration,
    since: Annotated[datetime, Query(description="RFC 3339; events at or after it (event time), delivered or not.")],
) -> ReplayQueued:
    """Each goes with its own `webhook-id` again, so a receiver that kept it recognises it."""
    _subscription(api, agency, webhook_id)
    if since.tzinfo is None:
        raise Unprocessable("A time zone is required.", errors=[FieldError(field="since", reason="needs an offset")])
    return ReplayQueued(queued=api.store.replay_since(str(webhook_id), since.astimezone(UTC), _now()))
