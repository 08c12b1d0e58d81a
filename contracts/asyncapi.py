"""The AsyncAPI 3.0 document of the platform's Kafka topics (``contracts/asyncapi.yaml``), made from ``contracts/``.

For partners who produce to or consume from Kafka directly: channels are the topics (``contracts.topics``; a
deployment may prefix them with ``HUHANG_KAFKA_NAMESPACE``), messages are the contract events with the JSON Schema
of their ``data``, in the CloudEvents Kafka binding's binary mode exactly as ``huhang.kafka`` publishes them
(``contracts.kafka_binding``: ``ce_`` headers, the data as the value, the case id as the key). Generated, never
edited by hand: ``python -m contracts.asyncapi`` rewrites it, and a test fails when the committed file drifts from
the code (the CI check).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic.json_schema import models_json_schema

from contracts.agencies import Agency
from contracts.envelope import CloudEvent
from contracts.events import (
    CONTRACT_EVENTS,
    BreakGlassAccessOpened,
    BreakGlassAccessReviewed,
    ChildDataErased,
    ChildDirectorAssigned,
    ChildDirectorLeft,
    ChildDirectorTrained,
    ChildFileUpdated,
    ChildrenMerged,
    CourtProtectionOrderIssued,
    EmergencyTreatmentReported,
    EntrustedCareAgreementSigned,
    EntrustedCareFlagged,
    GuardianshipRiskAssessed,
    IndicatorColourChanged,
    InterventionRecorded,
    JobAssistanceGiven,
    NeedRecorded,
    ParentContactMissed,
    ParentContactRecorded,
    ReferralEscalated,
    ReferralOwnerChanged,
    ReferralRequested,
    ReferralReturned,
    ReferralStatusChanged,
    ReportFiled,
    SchoolDropoutReported,
    SchoolReturnReported,
    SpotCheckFollowUpRequired,
    VisitOverdue,
    VisitRecorded,
)
from contracts.kafka_binding import DATA_CONTENT_TYPE, HEADER_PREFIX, REQUIRED_ATTRIBUTES
from contracts.topics import GUARDIANSHIP_TOPIC, INDICATORS_TOPIC, INTAKE_TOPIC, REFERRAL_TOPIC

DOCUMENT = Path(__file__).parent / "asyncapi.yaml"
KAFKA_BINDING_VERSION = "0.5.0"
SCHEMA_REF = "#/components/schemas/{model}"

# Which service publishes which events, by topic (one producer per topic). A contract event listed nowhere is
# declared but not published yet: it stays in components/messages only (tests/unit/test_asyncapi.py names them, so a
# new event must be placed here).
TOPIC_EVENTS: dict[str, tuple[type[CloudEvent], ...]] = {
    INTAKE_TOPIC: (
        ReportFiled, ChildFileUpdated, ChildrenMerged, ChildDataErased, BreakGlassAccessOpened,
        BreakGlassAccessReviewed, SchoolDropoutReported, SchoolReturnReported, JobAssistanceGiven,
        EmergencyTreatmentReported,
    ),
    GUARDIANSHIP_TOPIC: (
        GuardianshipRiskAssessed, CourtProtectionOrderIssued, InterventionRecorded, VisitRecorded, VisitOverdue,
        ParentContactMissed, EntrustedCareFlagged, ParentContactRecorded, EntrustedCareAgreementSigned,
        ChildDirectorAssigned, ChildDirectorLeft, ChildDirectorTrained,
    ),
    REFERRAL_TOPIC: (
        ReferralRequested, ReferralStatusChanged, ReferralReturned, ReferralEscalated, ReferralOwnerChanged,
        NeedRecorded,
    ),
    INDICATORS_TOPIC: (SpotCheckFollowUpRequired, IndicatorColourChanged),
}
CHANNEL_IDS = {INTAKE_TOPIC: "intakeCaseEvents", GUARDIANSHIP_TOPIC: "guardianshipCaseEvents",
               REFERRAL_TOPIC: "referralCaseEvents", INDICATORS_TOPIC: "indicatorsEvents"}
PRODUCERS = {INTAKE_TOPIC: "intake", GUARDIANSHIP_TOPIC: "guardianship", REFERRAL_TOPIC: "referral",
             INDICATORS_TOPIC: "indicators"}

DESCRIPTION = """\
The integration events of Huhang (护航), the inter-agency referral platform for the protection of left-behind
children, as they travel on Kafka.

Every message is a CloudEvents 1.0 event in the Kafka protocol binding's **binary content mode**: the record value
is the event's `data` (JSON, `content-type: application/json`), every other attribute is a `ce_` header
(`ce_id`, `ce_type`, `ce_subject`...), and the record key is the subject, the case id, so that one case's events
keep their order on one partition. Consumers deduplicate on `ce_id` (delivery is at least once). Messages carry
ids and codes only, never a child's name, identity number or free text. Records written before binary mode are in
structured mode (`content-type: application/cloudevents+json`, the whole envelope as the value).

Topic names may carry the deployment's prefix (`HUHANG_KAFKA_NAMESPACE`). Contracts change additively; a breaking
change is a new `.vN` event type. Generated from `contracts/` by `python -m contracts.asyncapi`.
"""


def _message_id(cls: type[CloudEvent]) -> str:
    return cls.__name__


def _data_class(cls: type[CloudEvent]) -> Any:
    return cls.model_fields["data"].annotation


def _headers(cls: type[CloudEvent]) -> dict[str, Any]:
    """The record headers of one event type: the binding's ``ce_`` attributes, with this type's constants."""
    uuid = {"type": "string", "format": "uuid"}
    attributes: dict[str, dict[str, Any]] = {
        "specversion": {"type": "string", "const": "1.0"},
        "id": {**uuid, "description": "Unique per event; consumers deduplicate on it."},
        "source": {"type": "string", "description": "The producing service, e.g. /huhang/intake."},
        "type": {"type": "string", "const": cls.event_type},
        "subject": {**uuid, "description": "The case id; also the record key."},
        "time": {"type": "string", "format": "date-time"},
        "dataschema": {"type": "string", "const": cls.schema_uri()},
        "correlationid": {**uuid, "description": "The first event of the chain (usually the report)."},
        "causationid": {**uuid, "description": "The event that caused this one, when there is one."},
        "actoragency": {"type": "string", "enum": [a.value for a in Agency],
                        "description": "The agency on whose behalf the event was produced."},
    }
    properties = {"content-type": {"type": "string", "const": DATA_CONTENT_TYPE}}
    properties.update({HEADER_PREFIX + name: schema for name, schema in attributes.items()})
    required = ["content-type", *(HEADER_PREFIX + name for name in (*REQUIRED_ATTRIBUTES, "subject", "time",
                                                                        "dataschema", "correlationid",
                                                                        "actoragency"))]
    return {"type": "object", "properties": properties, "required": required}


def _message(cls: type[CloudEvent]) -> dict[str, Any]:
    data = _data_class(cls)
    summary = (data.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ") or cls.event_type
    return {
        "name": cls.event_type,
        "title": _message_id(cls),
        "summary": summary,
        "contentType": DATA_CONTENT_TYPE,
        "headers": _headers(cls),
        "payload": {"$ref": SCHEMA_REF.format(model=data.__name__)},
        "correlationId": {"description": "The chain of events a report started.",
                          "location": "$message.header#/ce_correlationid"},
        "bindings": {"kafka": {
            "key": {"type": "string", "format": "uuid", "description": "The case id (ce_subject)."},
            "bindingVersion": KAFKA_BINDING_VERSION,
        }},
        "description": f"The whole event (structured mode) is `{cls.schema_uri()}`: "
                       f"contracts/schemas/{cls.schema_name}.json.",
    }


def _schemas() -> dict[str, Any]:
    """Every event's data schema and what it refers to, under components/schemas (refs pointed there)."""
    _, top = models_json_schema(
        [(_data_class(cls), "validation") for cls in CONTRACT_EVENTS], ref_template=SCHEMA_REF,
    )
    defs: dict[str, Any] = top.get("$defs", {})
    return dict(sorted(defs.items()))


def asyncapi_document() -> dict[str, Any]:
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for topic, events in TOPIC_EVENTS.items():
        channel_id = CHANNEL_IDS[topic]
        channels[channel_id] = {
            "address": topic,
            "title": topic,
            "description": f"The case events {PRODUCERS[topic]} publishes, keyed by case id.",
            "messages": {_message_id(c): {"$ref": f"#/components/messages/{_message_id(c)}"} for c in events},
            "bindings": {"kafka": {"topic": topic, "bindingVersion": KAFKA_BINDING_VERSION}},
        }
        operations[f"publish{channel_id[0].upper()}{channel_id[1:]}"] = {
            "action": "send",
            "title": f"{PRODUCERS[topic]} publishes its case events",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/{_message_id(c)}"} for c in events],
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Huhang (护航) case events",
            "version": "1.0.0",
            "description": DESCRIPTION,
            "license": {"name": "Proprietary"},
        },
        "defaultContentType": DATA_CONTENT_TYPE,
        "servers": {
            "kafka": {
                "host": "{bootstrap}",
                "protocol": "kafka",
                "description": "The deployment's Kafka cluster (HUHANG_KAFKA_BOOTSTRAP_SERVERS).",
                "variables": {"bootstrap": {"default": "localhost:9092"}},
            },
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": {_message_id(c): _message(c) for c in CONTRACT_EVENTS},
            "schemas": _schemas(),
        },
    }


class _Dumper(yaml.SafeDumper):
    """Multi-line texts as literal blocks (``|``), so that the descriptions read as written."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(str, _text)


def render(document: dict[str, Any]) -> str:
    """The exact text of the committed file (stable order, UTF-8)."""
    return "# Generated by `python -m contracts.asyncapi` from contracts/: do not edit.\n" + yaml.dump(
        document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120, default_flow_style=False,
    )


def write(path: Path = DOCUMENT) -> Path:
    path.write_text(render(asyncapi_document()), encoding="utf-8")
    return path


if __name__ == "__main__":
    print(write())
