"""The referral lifecycle (FHIR Task): which status may follow which. One table, used by the referral service
and published in the API documentation."""

from __future__ import annotations

from contracts.vocabulary import ReferralStatus as S

TRANSITIONS: dict[S, frozenset[S]] = {
    S.requested: frozenset({S.received, S.accepted, S.rejected, S.cancelled, S.entered_in_error}),
    S.received: frozenset({S.accepted, S.rejected, S.cancelled, S.entered_in_error}),
    S.accepted: frozenset({S.in_progress, S.cancelled, S.entered_in_error}),
    S.in_progress: frozenset({S.on_hold, S.completed, S.failed, S.cancelled, S.entered_in_error}),
    S.on_hold: frozenset({S.in_progress, S.failed, S.cancelled, S.entered_in_error}),
    S.rejected: frozenset(),
    S.completed: frozenset(),
    S.failed: frozenset(),
    S.cancelled: frozenset(),
    S.entered_in_error: frozenset(),
}

TERMINAL: frozenset[S] = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)
OPEN: frozenset[S] = frozenset(TRANSITIONS) - TERMINAL
# Who may move a referral into a status: the owner agency does the work; the requester may cancel.
OWNER_ACTIONS: frozenset[S] = frozenset(
    {S.received, S.accepted, S.rejected, S.in_progress, S.on_hold, S.completed, S.failed, S.entered_in_error}
)
REQUESTER_ACTIONS: frozenset[S] = frozenset({S.cancelled, S.entered_in_error})
