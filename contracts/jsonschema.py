"""JSON Schema documents of the contracts, generated from the pydantic models and kept in ``contracts/schemas/``.

Partners who do not use Python validate against these files. They are generated, never edited by hand:
``python -m contracts.jsonschema`` rewrites them, and a test fails when the committed files drift from the code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from contracts.commands import OpenReferrals
from contracts.events import CONTRACT_EVENTS
from contracts.province_sync import province_sync_schema
from contracts.routing import RoutingRules

SCHEMAS_DIR = Path(__file__).parent / "schemas"


def contract_schemas() -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema, for every integration event, the open-referrals command and the routing rules."""
    schemas: dict[str, dict[str, Any]] = {
        f"{cls.schema_name}.json": {**cls.model_json_schema(), "$id": cls.schema_uri()} for cls in CONTRACT_EVENTS
    }
    schemas["open-referrals.v1.json"] = OpenReferrals.model_json_schema()
    schemas["routing-rules.json"] = RoutingRules.model_json_schema()
    schemas["province-sync-children.v1.json"] = province_sync_schema()
    return schemas


def render(schema: dict[str, Any]) -> str:
    """The exact text a schema file holds (stable key order, UTF-8, trailing newline)."""
    return json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def write_schemas(directory: Path) -> list[Path]:
    """Write every schema into ``directory``; returns the files written, sorted by name."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in sorted(contract_schemas().items()):
        path = directory / name
        path.write_text(render(schema), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for written_path in write_schemas(SCHEMAS_DIR):
        print(written_path)
