"""Referral lifecycle properties: random sequences of commands by random agencies (the owner, the requester, a
bystander, the supervising agencies) against one referral in memory. Whatever is tried, the status follows the
lifecycle table, only the owner (or, to cancel, the requester) moves it, a refused command changes nothing, the
stored events replay to the live state, and closing statuses carry their codes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from contracts.agencies import Agency
from contracts.lifecycle import OWNER_ACTIONS, REQUESTER_ACTIONS, TRANSITIONS
from contracts.vocabulary import FailureReason, Outcome, ReferralStatus, RejectionReason
from huhang.problems import DomainError
from huhang.settings import Settings
from services.referral.application import ReferralApplication
from services.referral.domain import Referral
from services.referral.main import build
from tests.unit.test_referral import an_open_referral

S = ReferralStatus
REQUESTER, BYSTANDER = Agency.education, Agency.health
ROLES = ("owner", "owner", "owner", "owner", "requester", "bystander", "civil_affairs", "wcwc")
REASON_CODES = (*(r.value for r in RejectionReason), *(r.value for r in FailureReason), "not_a_code")
FITTING = "fitting"  # a reason code valid for the status asked for, chosen when the command runs
FITTING_CODES = {S.rejected: RejectionReason.other.value, S.failed: FailureReason.other.value}
TRANSFER_TARGETS = (Agency.police, Agency.education, Agency.health, Agency.civil_affairs, Agency.wcwc, Agency.hrss)


# --- commands -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChangeStatus:
    to: ReferralStatus | int  # an int: the int-th status the lifecycle allows next (so sequences get far)
    role: str
    reason_code: str | None = None
    outcome: Outcome | None = None


@dataclass(frozen=True)
class ProposeTransfer:
    to: Agency
    role: str


@dataclass(frozen=True)
class AnswerTransfer:
    role: str  # "proposed": the agency the transfer is proposed to
    accept: bool


@dataclass(frozen=True)
class Reassign:
    officer_id: str
    role: str


@dataclass(frozen=True)
class SupervisorEscalation:
    role: str


Command = ChangeStatus | ProposeTransfer | AnswerTransfer | Reassign | SupervisorEscalation

roles = st.sampled_from(ROLES)
status_changes = st.builds(
    ChangeStatus,
    to=st.integers(0, 2) | st.sampled_from(list(S)),
    role=roles,
    reason_code=st.just(FITTING) | st.none() | st.sampled_from(REASON_CODES),
    outcome=st.sampled_from(list(Outcome)) | st.none(),
)
other_commands = st.one_of(
    st.builds(ProposeTransfer, to=st.sampled_from(TRANSFER_TARGETS), role=roles),
    st.builds(AnswerTransfer, role=st.sampled_from(("proposed", "proposed", *ROLES)), accept=st.booleans()),
    st.builds(Reassign, officer_id=st.sampled_from(("PS-0371", "MZ-0042", "JY-1203")), role=roles),
    st.builds(SupervisorEscalation, role=roles),
)
# Two commands in three move the status, so that sequences get past the first few statuses.
commands = st.sampled_from((True, True, False)).flatmap(lambda moves: status_changes if moves else other_commands)
sequences = st.lists(commands, min_size=4, max_size=20)


# --- running a sequence -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class State:
    status: str
    owner: str
    assignee: str | None
    pending_owner: str | None
    escalation_level: int
    version: int


def state_of(referral: Referral) -> State:
    return State(
        referral.status,
        referral.owner_agency,
        referral.assignee,
        referral.pending_owner,
        referral.escalation_level,
        referral.version,
    )


@dataclass(frozen=True)
class Step:
    command: Command
    actor: str
    before: State
    after: State
    refused: DomainError | None


@dataclass(frozen=True)
class Trace:
    referral_id: uuid.UUID
    steps: list[Step]
    live: list[State]  # the state of the live aggregate after each command that succeeded


def actor_of(role: str, referral: Referral) -> str:
    if role == "owner":
        return referral.owner_agency
    if role == "proposed":
        return referral.pending_owner or BYSTANDER.value
    return {"requester": REQUESTER.value, "bystander": BYSTANDER.value}.get(role, role)


def resolved(command: Command, referral: Referral) -> Command:
    """The command with its run-time choices made: the next status, a fitting reason code."""
    if not isinstance(command, ChangeStatus):
        return command
    to = command.to
    if isinstance(to, int):
        allowed = [s for s in S if s in TRANSITIONS[S(referral.status)]] or list(S)  # forward steps first
        to = allowed[to % len(allowed)]
    reason_code = FITTING_CODES.get(to) if command.reason_code == FITTING else command.reason_code
    return replace(command, to=to, reason_code=reason_code)


def perform(app: ReferralApplication, referral_id: uuid.UUID, command: Command, actor: str, now: datetime) -> State:
    """Run one command; the state of the live aggregate it produced."""
    if isinstance(command, ChangeStatus):
        assert isinstance(command.to, ReferralStatus)
        referral = app.change_status(
            referral_id, command.to, actor, "（测试）", reason_code=command.reason_code, outcome=command.outcome
        )
    elif isinstance(command, ProposeTransfer):
        referral = app.propose_transfer(referral_id, command.to.value, actor, None, None)
    elif isinstance(command, AnswerTransfer):
        referral = app.answer_transfer(referral_id, actor, command.accept, None, None)
    elif isinstance(command, Reassign):
        referral = app.reassign(referral_id, command.officer_id, actor, None)
    else:  # an escalation answers no aggregate: its live state is the state before, at the level it reports
        before = state_of(app.get(referral_id))
        escalation = app.escalate_by_supervisor(referral_id, actor, now)
        return replace(before, escalation_level=escalation.level, version=before.version + 1)
    return state_of(referral)


def run(app: ReferralApplication, sequence: list[Command]) -> Trace:
    command_to_open = an_open_referral(owner_agency=Agency.police, requester_agency=REQUESTER)
    app.open_referrals([command_to_open])
    referral_id = command_to_open.referral_id
    now = datetime.now(UTC) + timedelta(hours=1)
    steps: list[Step] = []
    live: list[State] = []
    for generated in sequence:
        referral = app.get(referral_id)
        command = resolved(generated, referral)
        before, actor = state_of(referral), actor_of(command.role, referral)
        refused: DomainError | None = None
        try:
            live.append(perform(app, referral_id, command, actor, now))
        except DomainError as error:
            refused = error
        steps.append(Step(command, actor, before, state_of(app.get(referral_id)), refused))
    return Trace(referral_id, steps, live)


@pytest.fixture(scope="module")
def referrals() -> Iterator[ReferralApplication]:
    service = build(Settings(storage="memory"))
    yield service.application
    service.application.close()
    service.positions.engine.dispose()


# No example database: like the pytest cache, nothing is written into the working tree.
properties = settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def succeeded(trace: Trace, kind: type) -> list[Step]:
    return [s for s in trace.steps if isinstance(s.command, kind) and s.refused is None]


# --- the properties -----------------------------------------------------------------------------------------------


@properties
@given(sequence=sequences)
def test_a_status_change_only_follows_the_lifecycle_table(referrals, sequence):
    trace = run(referrals, sequence)

    for step in succeeded(trace, ChangeStatus):
        assert S(step.after.status) in TRANSITIONS[S(step.before.status)], step


@properties
@given(sequence=sequences)
def test_reassigning_escalating_proposing_or_declining_a_transfer_never_moves_the_status(referrals, sequence):
    trace = run(referrals, sequence)

    for step in trace.steps:
        if isinstance(step.command, Reassign | SupervisorEscalation | ProposeTransfer) or (
            isinstance(step.command, AnswerTransfer) and not step.command.accept
        ):
            assert step.after.status == step.before.status, step


@properties
@given(sequence=sequences)
@example(
    sequence=[
        ChangeStatus(S.accepted, "owner"),
        ChangeStatus(S.in_progress, "owner"),
        ProposeTransfer(Agency.hrss, "owner"),
        AnswerTransfer("proposed", accept=True),
    ]
)
@example(
    sequence=[
        ProposeTransfer(Agency.hrss, "owner"),
        ChangeStatus(S.rejected, "owner", reason_code="out_of_area"),
        AnswerTransfer("proposed", accept=True),
    ]
)
def test_accepting_a_transfer_only_follows_the_lifecycle_table(referrals, sequence):
    trace = run(referrals, sequence)

    for step in succeeded(trace, AnswerTransfer):
        before, after = S(step.before.status), S(step.after.status)
        assert after == before or after in TRANSITIONS[before], step


@properties
@given(sequence=sequences)
def test_only_the_owner_or_for_cancelling_the_requester_changes_the_status(referrals, sequence):
    trace = run(referrals, sequence)

    for step in succeeded(trace, ChangeStatus):
        assert isinstance(step.command, ChangeStatus)
        to = step.command.to
        by_owner = step.actor == step.before.owner and to in OWNER_ACTIONS
        by_requester = step.actor == REQUESTER.value and to in REQUESTER_ACTIONS
        assert by_owner or by_requester, step


@properties
@given(sequence=sequences)
def test_a_refused_command_changes_nothing(referrals, sequence):
    trace = run(referrals, sequence)

    for step in trace.steps:
        if step.refused is not None:
            assert step.after == step.before, step


@properties
@given(sequence=sequences)
def test_replaying_the_stored_events_gives_the_live_state_at_every_version(referrals, sequence):
    trace = run(referrals, sequence)

    replayed = [state_of(referrals.repository.get(trace.referral_id, version=s.version)) for s in trace.live]
    assert replayed == trace.live


@properties
@given(sequence=sequences)
def test_replaying_all_stored_events_gives_the_last_live_state(referrals, sequence):
    trace = run(referrals, sequence)

    assert state_of(referrals.repository.get(trace.referral_id)) == (trace.live or [trace.steps[0].before])[-1]


@properties
@given(sequence=sequences)
def test_rejected_and_failed_carry_a_valid_reason_code_and_completed_an_outcome(referrals, sequence):
    trace = run(referrals, sequence)

    for entry in referrals.history(trace.referral_id):
        if entry["step"] != "StatusChanged":
            continue
        if entry["status"] == S.rejected:
            assert entry["reason_code"] in {r.value for r in RejectionReason}, entry
        elif entry["status"] == S.failed:
            assert entry["reason_code"] in {r.value for r in FailureReason}, entry
        elif entry["status"] == S.completed:
            assert entry["outcome"] in {o.value for o in Outcome}, entry


@properties
@given(sequence=sequences)
def test_every_rejection_or_failure_is_returned_to_the_router_once(referrals, sequence):
    trace = run(referrals, sequence)

    history = referrals.history(trace.referral_id)
    closed = [h["version"] for h in history if h["step"] == "StatusChanged" and h["status"] in (S.rejected, S.failed)]
    returned = [h["version"] for h in history if h["step"] == "Returned"]
    assert returned == [v + 1 for v in closed]
