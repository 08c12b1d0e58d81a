"""Relief matching's integration events: a recorded need, as ids and codes (contracts/events.py NeedRecorded).

The rest of the context (the directory, matches, consent, outcomes) stays inside the referral service; a match
that passes both gates is visible outside as the ordinary ReferralRequested of its charity referral.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from contracts.envelope import CloudEvent
from contracts.events import NeedRecorded, NeedRecordedData
from huhang.eventstore import integration_event_id
from services.referral.needs import Need

SOURCE = "/huhang/referral"


def to_need_events(e: Any) -> Sequence[CloudEvent]:
    if not isinstance(e, Need.Recorded):  # type: ignore[attr-defined]
        return []
    return [NeedRecorded(
        id=integration_event_id(e), source=SOURCE, subject=str(e.case_id), time=e.timestamp,
        correlationid=e.originator_id, actoragency=e.found_by, dataschema=NeedRecorded.schema_uri(),
        data=NeedRecordedData(
            need_id=e.originator_id, case_id=e.case_id, child_id=e.child_id, category=e.category,
            found_by=e.found_by, township=e.township, village=e.village,
        ),
    )]
