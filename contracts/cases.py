"""Case ids that are not opened by a report.

Every child's file has one standing **care case** (关爱服务案卷): the routine care the plan prescribes for every
covered child (visits, parent contact, entrusted care, the child director's follow-up) is tracked under it, apart
from the protection cases that mandatory reports open. Its id is derived from the child id, so every service
computes the same one without asking intake, and it is the ``subject`` (Kafka key) of child-level events.
"""

from __future__ import annotations

import uuid

CARE_CASE_NAMESPACE = uuid.UUID("8b4f2d6e-1a3c-4e5f-9b7d-0c2e4f6a8b1d")


def care_case_id(child_id: uuid.UUID) -> uuid.UUID:
    """The child's standing care case."""
    return uuid.uuid5(CARE_CASE_NAMESPACE, str(child_id))
