"""The committed AsyncAPI document is what the code generates (the CI check), is AsyncAPI 3.0 shaped, every $ref
resolves, and it describes what the publisher actually writes (binary mode headers, the data as the value)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml

from contracts.asyncapi import DOCUMENT, TOPIC_EVENTS, asyncapi_document, render
from contracts.events import CONTRACT_EVENTS, JobAssistanceRequested
from contracts.kafka_binding import ATTRIBUTES, from_record, to_binary
from contracts.topics import ALL_TOPICS
from tests.unit.test_contract_schemas import SAMPLE_DATA

REGENERATE = "run `python -m contracts.asyncapi` and commit contracts/asyncapi.yaml"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(DOCUMENT.read_text(encoding="utf-8"))
    return loaded


def resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        assert part in node, f"unresolved $ref {ref}"
        node = node[part]
    return node


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return ([node["$ref"]] if "$ref" in node else []) + [r for v in node.values() for r in refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    return []


def test_the_committed_document_is_what_the_code_generates():
    assert DOCUMENT.read_text(encoding="utf-8") == render(asyncapi_document()), REGENERATE


def test_the_document_is_asyncapi_3_shaped(document):
    assert document["asyncapi"] == "3.0.0"
    assert {"title", "version"} <= set(document["info"])
    for server in document["servers"].values():
        assert {"host", "protocol"} <= set(server)
    for channel in document["channels"].values():
        assert isinstance(channel["address"], str)
        assert channel["messages"]
    for operation in document["operations"].values():
        assert operation["action"] in {"send", "receive"}
        channel_ref = operation["channel"]["$ref"]
        channel = resolve(document, channel_ref)
        for message in operation["messages"]:  # an operation's messages must be its channel's
            assert message["$ref"].startswith(channel_ref + "/messages/")
            assert message["$ref"].rsplit("/", 1)[1] in channel["messages"]
    for message in document["components"]["messages"].values():
        assert {"payload", "headers", "contentType", "name"} <= set(message)
        assert message["bindings"]["kafka"]["key"]["format"] == "uuid"


def test_every_ref_resolves(document):
    for ref in refs(document):
        resolve(document, ref)


def test_channels_are_the_topics_and_every_published_event_is_a_message(document):
    assert {c["address"] for c in document["channels"].values()} == set(ALL_TOPICS)
    assert set(document["components"]["messages"]) == {cls.__name__ for cls in CONTRACT_EVENTS}
    published = [cls for events in TOPIC_EVENTS.values() for cls in events]
    assert len(published) == len(set(published))  # one producer per event type
    unplaced = set(CONTRACT_EVENTS) - set(published) - {JobAssistanceRequested}  # declared, not published yet
    assert not unplaced, f"place {sorted(c.__name__ for c in unplaced)} in contracts.asyncapi.TOPIC_EVENTS"
    assert set(published) <= set(CONTRACT_EVENTS)


@pytest.mark.parametrize("cls", CONTRACT_EVENTS, ids=lambda c: c.__name__)
def test_each_message_describes_the_record_the_publisher_writes(document, cls):
    event_id = uuid.uuid4()
    event = cls.model_validate({
        "id": event_id, "source": "/huhang/test", "subject": str(uuid.uuid4()), "time": datetime.now(UTC),
        "dataschema": cls.schema_uri(), "correlationid": event_id, "actoragency": "education",
        "data": SAMPLE_DATA[cls],
    })
    key, value, headers = to_binary(event)
    message = document["components"]["messages"][cls.__name__]
    header_schema = message["headers"]
    names = {name for name, _ in headers}

    assert names <= set(header_schema["properties"])
    assert set(header_schema["required"]) <= names
    assert dict(headers)["ce_type"].decode() == header_schema["properties"]["ce_type"]["const"]
    assert set(header_schema["properties"]) == {"content-type", *(f"ce_{a}" for a in ATTRIBUTES)}
    payload = resolve(document, message["payload"]["$ref"])
    assert set(json.loads(value)) <= set(payload["properties"])
    assert set(payload.get("required", ())) <= set(json.loads(value))
    assert key == event.subject.encode()
    assert from_record(value, headers) == event
