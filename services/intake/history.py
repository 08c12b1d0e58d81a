"""A case file as it stood at any moment: the pure fold of the case's integration events.

The case timeline (``services.intake.timeline``) holds every integration event of every service about a case. This
module folds them, in event-time order (ties broken by the event id, so the order is total and the same on every
store), into the case file as it stood after the last of them, and lists the events that made it so with who did
what and why (agency, actor, reason code, rules version, correlation and causation ids).

Everything here is plain JSON (dicts, lists, strings, numbers, booleans, None) built deterministically, so a state
saved as a snapshot and loaded again folds on to exactly what folding every event from the start gives
(``services.intake.history_store`` relies on it, and a test holds it to it). No I/O, no clock.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from contracts.events import (
    ChildFileUpdated,
    ChildrenMerged,
    CourtProtectionOrderIssued,
    EmergencyTreatmentReported,
    EntrustedCareFlagged,
    GuardianshipRiskAssessed,
    InterventionRecorded,
    JobAssistanceGiven,
    JobAssistanceRequested,
    ParentContactMissed,
    ReferralEscalated,
    ReferralOwnerChanged,
    ReferralRequested,
    ReferralReturned,
    ReferralStatusChanged,
    ReportFiled,
    SchoolDropoutReported,
    SchoolReturnReported,
    VisitOverdue,
    VisitRecorded,
)

Json = dict[str, Any]
# Fields of an event's data that name who acted, in order of preference (agencies, or officers' ids when present).
ACTOR_FIELDS = ("by", "recorded_by", "assessed_by", "issued_by", "decided_by", "merged_by", "returned_by", "actor")
REASON_FIELDS = ("reason_code", "reason")
RULE_VERSION_FIELDS = ("rules_version", "rule_version")
SOURCE_PREFIX = "/huhang/"


def iso_time(value: datetime) -> str:
    """One text per instant whatever the store gave back (SQLite returns naive UTC datetimes): the sort key and the
    form every time in a history takes."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def history_event(row: Mapping[str, Any]) -> Json:
    """One timeline row (``case_timeline`` columns) as the fold and the history take it."""
    return {
        "event_id": str(row["event_id"]),
        "time": iso_time(row["time"]),
        "type": row["type"],
        "source": row["source"],
        "actor_agency": row["actor_agency"],
        "correlation_id": str(row["correlation_id"]),
        "causation_id": None if row["causation_id"] is None else str(row["causation_id"]),
        "data": row["data"],
    }


def order_key(event: Mapping[str, Any]) -> tuple[str, str]:
    """Event time, then event id: a total order, the same on every store."""
    return event["time"], event["event_id"]


def _first(data: Mapping[str, Any], fields: Iterable[str]) -> Any:
    for name in fields:
        value = data.get(name)
        if value is not None:
            return value
    return None


def entry_of(event: Mapping[str, Any]) -> Json:
    """What the history lists for one event: who did what, when, and why (no case data beyond codes)."""
    data = event["data"]
    source = event["source"]
    return {
        "event_id": event["event_id"],
        "type": event["type"],
        "time": event["time"],
        "service": source.removeprefix(SOURCE_PREFIX) if source.startswith(SOURCE_PREFIX) else source,
        "actor_agency": event["actor_agency"],
        "actor": _first(data, ACTOR_FIELDS),
        "reason": _first(data, REASON_FIELDS),
        "rule_id": data.get("rule_id"),
        "rule_version": _first(data, RULE_VERSION_FIELDS),
        "correlation_id": event["correlation_id"],
        "causation_id": event["causation_id"],
    }


def empty_case(case_id: str) -> Json:
    return {
        "case_id": case_id,
        "opened_at": None,
        "updated_at": None,
        "event_count": 0,
        "child_id": None,
        "merged_child_ids": [],
        "township": None,
        "village": None,
        "child_categories": [],
        "concern_category": None,
        "urgency": None,
        "reports": [],
        "child_file": None,
        "referrals": {},
        "risk": None,
        "assessments": [],
        "court_orders": [],
        "interventions": [],
        "visits": [],
        "next_due": None,
        "care_alerts": [],
        "requests": [],
        "other_events": 0,
    }


def _area(case: Json, data: Mapping[str, Any]) -> None:
    if data.get("child_id") is not None and case["child_id"] is None:
        case["child_id"] = data["child_id"]
    if data.get("township") is not None:
        case["township"] = data["township"]
    if data.get("village") is not None:
        case["village"] = data["village"]


def _report_filed(case: Json, event: Json, data: Json) -> None:
    case["child_id"] = data["child_id"]
    case["child_categories"] = list(data["child_categories"])
    case["concern_category"] = data["concern_category"]  # the latest report's concern and urgency
    case["urgency"] = data["urgency"]
    case["reports"].append({
        "report_id": data["report_id"], "filed_at": event["time"], "reporter_agency": data["reporter_agency"],
        "reporter_role": data["reporter_role"], "concern_category": data["concern_category"],
        "urgency": data["urgency"], "observed_on": data["observed_on"],
    })


def _child_file_updated(case: Json, event: Json, data: Json) -> None:
    case["child_id"] = data["child_id"]
    case["child_categories"] = list(data["categories"])
    case["child_file"] = {
        "categories": list(data["categories"]), "category_reasons": list(data["category_reasons"]),
        "parents_away": data["parents_away"], "parents_away_since": data["parents_away_since"],
        "frequent_visit_reasons": list(data.get("frequent_visit_reasons", ())),
        "has_entrusted_caregiver": data["has_entrusted_caregiver"], "updated_at": event["time"],
    }


def _children_merged(case: Json, event: Json, data: Json) -> None:
    case["child_id"] = data["child_id"]
    if data["merged_child_id"] not in case["merged_child_ids"]:
        case["merged_child_ids"].append(data["merged_child_id"])


def _referral(case: Json, data: Json) -> Json:
    """The referral an event is about; one it names before its opening event (an order the tie-break cannot
    restore) starts with what this event says."""
    referral_id = data["referral_id"]
    referrals: Json = case["referrals"]
    if referral_id not in referrals:
        referrals[referral_id] = {
            "referral_id": referral_id, "owner_agency": data.get("owner_agency"),
            "requester_agency": data.get("requester_agency"), "referral_type": None, "priority": None,
            "status": None, "due_at": None, "complete_by": None, "plan_tasks": [], "rule_id": None,
            "rules_version": None, "reason_code": None, "outcome": None, "escalation_level": 0,
            "opened_at": None, "updated_at": None,
        }
    referral: Json = referrals[referral_id]
    return referral


def _referral_requested(case: Json, event: Json, data: Json) -> None:
    referral = _referral(case, data)
    referral.update({
        "owner_agency": data["owner_agency"], "requester_agency": data["requester_agency"],
        "referral_type": data["referral_type"], "priority": data["priority"], "due_at": data["due_at"],
        "complete_by": data.get("complete_by"), "plan_tasks": list(data["plan_tasks"]), "rule_id": data["rule_id"],
        "rules_version": data["rules_version"], "opened_at": event["time"], "updated_at": event["time"],
    })
    if referral["status"] is None:
        referral["status"] = "requested"


def _referral_status_changed(case: Json, event: Json, data: Json) -> None:
    referral = _referral(case, data)
    referral.update({"owner_agency": data["owner_agency"], "status": data["status"], "updated_at": event["time"]})
    if data.get("reason_code") is not None:
        referral["reason_code"] = data["reason_code"]
    if data.get("outcome") is not None:
        referral["outcome"] = data["outcome"]


def _referral_returned(case: Json, event: Json, data: Json) -> None:
    referral = _referral(case, data)
    referral.update({
        "status": data["status"], "reason_code": data["reason_code"], "returned_by": data["returned_by"],
        "next_agencies": list(data["next_agencies"]), "updated_at": event["time"],
    })


def _referral_escalated(case: Json, event: Json, data: Json) -> None:
    referral = _referral(case, data)
    referral["escalation_level"] = max(int(referral["escalation_level"]), int(data["level"]))
    referral["escalated_to"] = data["supervising_agency"]
    referral["updated_at"] = event["time"]


def _referral_owner_changed(case: Json, event: Json, data: Json) -> None:
    referral = _referral(case, data)
    referral["owner_agency"] = data["to_agency"]
    referral["updated_at"] = event["time"]


def _risk_assessed(case: Json, event: Json, data: Json) -> None:
    assessment = {
        "assessment_id": data["assessment_id"], "assessed_at": event["time"], "risk_level": data["risk_level"],
        "colour": data["colour"], "previous_risk_level": data["previous_risk_level"],
        "factors": list(data["factors"]), "agency": event["actor_agency"],
    }
    case["assessments"].append(assessment)
    case["risk"] = {"risk_level": data["risk_level"], "colour": data["colour"], "assessed_at": event["time"]}


def _court_order(case: Json, event: Json, data: Json) -> None:
    case["court_orders"].append({
        "order_id": data["order_id"], "order_kind": data["order_kind"], "court_case_number": data["court_case_number"],
        "issued_on": data["issued_on"], "expires_on": data["expires_on"], "recorded_at": event["time"],
    })


def _intervention(case: Json, event: Json, data: Json) -> None:
    case["interventions"].append({
        "intervention_id": data["intervention_id"], "kind": data["kind"], "agency": data["agency"],
        "documents": [dict(d) for d in data["documents"]], "recorded_at": event["time"],
    })


def _visit(case: Json, event: Json, data: Json) -> None:
    case["visits"].append({
        "visit_id": data["visit_id"], "kind": data["kind"], "visited_on": data["visited_on"],
        "findings": list(data["findings"]), "recorded_at": event["time"], "agency": event["actor_agency"],
    })
    case["next_due"] = {
        "contact": data["next_contact_due_on"], "home_visit": data["next_home_visit_due_on"],
    }


def _care_alert(case: Json, event: Json, data: Json) -> None:
    alert = {"type": event["type"], "at": event["time"]}
    alert.update({k: v for k, v in data.items() if k not in ("child_id", "case_id", "township", "village")})
    case["care_alerts"].append(alert)


def _request(case: Json, event: Json, data: Json) -> None:
    request = {"type": event["type"], "at": event["time"], "agency": event["actor_agency"]}
    request.update({k: v for k, v in data.items() if k not in ("child_id", "case_id", "township", "village")})
    case["requests"].append(request)


Reducer = Callable[[Json, Json, Json], None]
REDUCERS: dict[str, Reducer] = {
    ReportFiled.event_type: _report_filed,
    ChildFileUpdated.event_type: _child_file_updated,
    ChildrenMerged.event_type: _children_merged,
    ReferralRequested.event_type: _referral_requested,
    ReferralStatusChanged.event_type: _referral_status_changed,
    ReferralReturned.event_type: _referral_returned,
    ReferralEscalated.event_type: _referral_escalated,
    ReferralOwnerChanged.event_type: _referral_owner_changed,
    GuardianshipRiskAssessed.event_type: _risk_assessed,
    CourtProtectionOrderIssued.event_type: _court_order,
    InterventionRecorded.event_type: _intervention,
    VisitRecorded.event_type: _visit,
    VisitOverdue.event_type: _care_alert,
    ParentContactMissed.event_type: _care_alert,
    EntrustedCareFlagged.event_type: _care_alert,
    SchoolDropoutReported.event_type: _request,
    JobAssistanceRequested.event_type: _request,
    SchoolReturnReported.event_type: _request,  # inbound facts (services/intake/inbound.py)
    JobAssistanceGiven.event_type: _request,
    EmergencyTreatmentReported.event_type: _request,
}


def apply(case: Json, event: Json) -> None:
    """Fold one event into the case (in place). An event type this fold does not know still counts and is listed;
    it changes nothing else, so a newer service's events never break an older reader."""
    data = event["data"]
    _area(case, data)
    reducer = REDUCERS.get(event["type"])
    if reducer is None:
        case["other_events"] += 1
    else:
        reducer(case, event, data)
    if case["opened_at"] is None:
        case["opened_at"] = event["time"]
    case["updated_at"] = event["time"]
    case["event_count"] += 1


def fold(case: Json, events: Iterable[Json]) -> Json:
    """The case after ``events`` (already in ``order_key`` order), starting from ``case`` (left unchanged)."""
    return fold_into(copy.deepcopy(case), events)


def fold_into(case: Json, events: Iterable[Json]) -> Json:
    """``fold`` in place, for a state nobody else holds (one just loaded from a snapshot): copying a large case
    costs more than folding a hundred events into it."""
    for event in events:
        apply(case, event)
    return case


def case_file(case: Json) -> Json:
    """The folded state as the history shows it: referrals in the order they were opened, and grouped by agency.
    A new top level over the same (unchanged) parts."""
    shown = dict(case)
    referrals = list(shown.pop("referrals").values())
    shown["referrals"] = referrals
    by_agency: dict[str, dict[str, int]] = {}
    for referral in referrals:
        statuses = by_agency.setdefault(str(referral["owner_agency"]), {})
        status = str(referral["status"])
        statuses[status] = statuses.get(status, 0) + 1
    shown["referrals_by_agency"] = dict(sorted(by_agency.items()))
    return shown


def reconstruct(case_id: str, events: Iterable[Json]) -> tuple[Json, list[Json]]:
    """The case file after every event given (any order: sorted here) and the entries listing them, from nothing:
    the definition the snapshots must agree with."""
    ordered = sorted(events, key=order_key)
    return fold(empty_case(case_id), ordered), [entry_of(e) for e in ordered]
