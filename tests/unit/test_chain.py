"""The hash chain, its chainer and the signed checkpoints, on the memory and SQLite stores: how records are hashed
and linked, that the chainer resumes from its own table and never chains twice, how checkpoints are signed, stored,
published and verified (key rotation, forged and untrusted ones), the keys' settings, and what the verifier says of
an intact log, events not yet chained and an edited chain table. Tampering with the stored events themselves, on
SQLite and PostgreSQL, is in tests/integration/test_tamper_evidence.py."""

from __future__ import annotations

import base64
import itertools
import json
import logging
import stat
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError
from sqlalchemy import text

from contracts.agencies import Agency
from contracts.commands import OpenReferral
from contracts.vocabulary import Priority
from huhang.audit import Problem, verify_log, verify_service
from huhang.bootstrap import Runtime
from huhang.chain import GENESIS, Chainer, ChainStore, build_chainer, chain_notifications, record_hash
from huhang.checkpoints import (
    Checkpoint,
    Checkpointer,
    CheckpointStore,
    FilePublisher,
    Signer,
    TrustedKeys,
    build_checkpointer,
    dev_key_path,
    load_signer,
    log_name,
    public_key_b64,
    publish_dir,
    published_file,
    read_published,
    trusted_keys,
)
from huhang.personal import new_data_key
from huhang.settings import Settings
from services.referral.main import ReferralService, build

FIELDS: dict[str, Any] = {
    "service": "referral", "position": 7, "originator_id": str(uuid.UUID(int=1)), "originator_version": 2,
    "topic": "services.referral.domain:Referral.Opened", "state_sha256": bytes(range(32)), "prev_hash": GENESIS,
}


def an_open_referral() -> OpenReferral:
    return OpenReferral(
        referral_id=uuid.uuid4(), case_id=uuid.uuid4(), child_id=uuid.uuid4(), owner_agency=Agency.police,
        requester_agency=Agency.education, referral_type="guardianship_investigation", priority=Priority.urgent,
        due_at=datetime.now(UTC) + timedelta(days=1), plan_tasks=(4, 6), rule_ids=("guardian-neglect-or-abuse",),
        rules_version="2026-11-29.1", source_event_id=uuid.uuid4(), correlation_id=uuid.uuid4(),
        township="虹桥镇", village="溪西村",
    )


def save_events(service: ReferralService, count: int) -> None:
    service.application.open_referrals([an_open_referral() for _ in range(count)])


@pytest.fixture(params=["memory", "sqlite"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    return Settings(storage=request.param, data_dir=tmp_path / "data")


@pytest.fixture
def service(settings: Settings) -> Iterator[ReferralService]:
    built = build(settings)
    yield built
    built.application.close()
    built.positions.engine.dispose()


def chainer_of(service: ReferralService, batch_size: int = 500, **kwargs: Any) -> Chainer:
    return Chainer("referral", service.application, ChainStore(service.positions.engine), batch_size=batch_size,
                   **kwargs)


def verify(settings: Settings, service: ReferralService, **kwargs: Any) -> Any:
    return verify_service(settings, service, **kwargs)


# --- hashing ---------------------------------------------------------------------------------------------------------


def test_a_record_hash_is_sha256_over_every_field_and_each_field_changes_it():
    base = record_hash(**FIELDS)
    assert len(base) == 32
    assert base == record_hash(**FIELDS)
    changed = {"service": "intake", "position": 8, "originator_id": str(uuid.UUID(int=2)), "originator_version": 3,
               "topic": "x", "state_sha256": bytes(32), "prev_hash": b"\x01" * 32}
    for name, value in changed.items():
        assert record_hash(**{**FIELDS, name: value}) != base, name


def test_the_encoding_is_length_prefixed_so_moving_text_between_fields_changes_the_hash():
    a = record_hash(**{**FIELDS, "originator_id": "ab", "topic": "c"})
    b = record_hash(**{**FIELDS, "originator_id": "a", "topic": "bc"})
    assert a != b


def test_chained_rows_link_each_to_the_one_before(service):
    save_events(service, 5)
    notifications = service.application.recorder.select_notifications(start=None, limit=10)

    rows = chain_notifications("referral", notifications, GENESIS)

    assert [r.position for r in rows] == [n.id for n in notifications]
    assert rows[0].prev_hash == GENESIS
    assert all(later.prev_hash == earlier.hash for earlier, later in itertools.pairwise(rows))
    assert all(r.recomputed_hash("referral") == r.hash for r in rows)


# --- the chainer -----------------------------------------------------------------------------------------------------


def test_the_chainer_chains_every_event_once_and_resumes_from_its_table_after_a_restart(service):
    save_events(service, 30)
    chainer = chainer_of(service, batch_size=7)  # several batches

    assert chainer.catch_up() == 30
    assert chainer.catch_up() == 0
    save_events(service, 4)
    restarted = chainer_of(service, batch_size=7)  # a new process: no memory but the table

    assert restarted.catch_up() == 4
    rows = list(ChainStore(service.positions.engine).scan(through=10**9))
    assert [r.position for r in rows] == list(range(1, 35))
    assert rows == chain_notifications(
        "referral", service.application.recorder.select_notifications(start=None, limit=100), GENESIS
    )


def test_a_second_chainer_racing_on_the_same_log_appends_nothing_twice(service):
    save_events(service, 10)
    first, second = chainer_of(service), chainer_of(service)
    assert second.head == (0, GENESIS)  # read before the first appends: stale from here on

    assert first.catch_up() == 10
    assert second.chain_once() == 0  # lost the race on position 1: re-reads the head
    save_events(service, 3)

    assert second.catch_up() == 3
    store = ChainStore(service.positions.engine)
    assert [r.position for r in store.scan(through=100)] == list(range(1, 14))


def test_the_chainer_started_by_the_runtime_chains_as_events_arrive_and_signs_its_head_at_shutdown(settings, service):
    settings = settings.model_copy(update={"audit_checkpoint_interval_s": 3600.0})
    runtime = Runtime()
    runtime.start_chainers(settings, [service])
    try:
        save_events(service, 12)
        deadline = time.monotonic() + 10
        while ChainStore(service.positions.engine).head()[0] < 12 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert ChainStore(service.positions.engine).head()[0] == 12
        assert CheckpointStore(service.positions.engine).last_position() == 0  # the interval has not passed
    finally:
        runtime.shutdown()

    head = ChainStore(service.positions.engine).head()
    (line,) = published_file(publish_dir(settings), log_name(settings, "referral")).read_text().splitlines()
    checkpoint = Checkpoint.from_json(line)
    assert (checkpoint.position, checkpoint.head, checkpoint.service) == (12, head[1], "referral")
    assert trusted_keys(settings).check(checkpoint) is None
    assert CheckpointStore(service.positions.engine).last_position() == 12


def test_the_chainer_signs_every_interval_only_when_the_head_moved(settings, service):
    now = [0.0]
    chainer = chainer_of(service, checkpointer=build_checkpointer(settings, "referral", service.positions.engine),
                         checkpoint_interval_s=60.0, clock=lambda: now[0], interval_s=0.01, window_s=0.0)
    stop = threading.Event()
    save_events(service, 3)
    thread = threading.Thread(target=chainer.run, args=(stop,))
    thread.start()
    try:
        _wait_for(lambda: chainer.head[0] == 3)
        assert CheckpointStore(service.positions.engine).last_position() == 0  # not yet 60 s
        now[0] = 61.0
        _wait_for(lambda: CheckpointStore(service.positions.engine).last_position() == 3)
        now[0] = 122.0  # another interval, the head still at 3: nothing new to sign
        time.sleep(0.2)
        save_events(service, 2)
        _wait_for(lambda: chainer.head[0] == 5)
        now[0] = 183.0
        _wait_for(lambda: CheckpointStore(service.positions.engine).last_position() == 5)
    finally:
        stop.set()
        thread.join(10)
    lines = published_file(publish_dir(settings), log_name(settings, "referral")).read_text().splitlines()
    assert [Checkpoint.from_json(line).position for line in lines] == [3, 5]  # and none at shutdown: unmoved


def _wait_for(condition: Any, limit_s: float = 10.0) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


# --- keys and checkpoints --------------------------------------------------------------------------------------------


def a_checkpoint(signer: Signer, position: int = 9, head: bytes = b"\x07" * 32) -> Checkpoint:
    return signer.sign("huhang_referral", "referral", position, head, datetime(2026, 11, 29, 8, 0, tzinfo=UTC))


def test_a_checkpoint_verifies_with_its_key_and_not_once_any_signed_field_changed():
    signer = Signer.generate()
    checkpoint = a_checkpoint(signer)
    trusted = TrustedKeys([signer.public_key])
    assert trusted.check(checkpoint) is None
    assert Checkpoint.from_json(checkpoint.to_json()) == checkpoint

    for change in ({"position": 10}, {"head": b"\x08" * 32}, {"time": "2026-11-29T08:00:01.000+00:00"},
                   {"service": "intake"}, {"log": "huhang_intake"}):
        forged = Checkpoint(**{**checkpoint.__dict__, **change})
        assert "does not verify" in (trusted.check(forged) or ""), change


def test_a_checkpoint_signed_by_an_untrusted_key_is_refused_naming_the_key():
    stranger = Signer.generate()
    why = TrustedKeys([Signer.generate().public_key]).check(a_checkpoint(stranger))
    assert why == f"signed by key {stranger.key_id}, which is not trusted"


def test_the_key_id_is_the_first_16_hex_of_the_sha256_of_the_public_key():
    import hashlib

    signer = Signer.generate()
    raw = base64.b64decode(public_key_b64(signer.public_key))
    assert signer.key_id == hashlib.sha256(raw).hexdigest()[:16]


def test_after_a_rotation_checkpoints_of_the_old_and_the_new_key_both_verify(tmp_path):
    old, new = Signer.generate(), Signer.generate()
    settings = Settings(data_dir=tmp_path, audit_signing_key=new.private_b64(),
                        audit_trusted_keys=f" {public_key_b64(old.public_key)} ,")
    trusted = trusted_keys(settings)

    assert trusted.check(a_checkpoint(old)) is None
    assert trusted.check(a_checkpoint(new)) is None
    assert set(trusted.keys) == {old.key_id, new.key_id}


def test_in_development_a_key_is_generated_once_with_mode_0600_and_only_its_id_is_logged(tmp_path, caplog):
    settings = Settings(data_dir=tmp_path / "data")
    with caplog.at_level(logging.INFO):
        signer = load_signer(settings)
    assert signer is not None
    path = dev_key_path(settings)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert signer.key_id in caplog.text
    assert signer.private_b64() not in caplog.text
    again = load_signer(settings)
    assert again is not None
    assert again.key_id == signer.key_id


def test_verification_never_generates_a_key(tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    assert trusted_keys(settings).keys == {}
    assert not dev_key_path(settings).exists()


def test_production_refuses_to_start_without_a_signing_key_and_refuses_malformed_keys():
    with pytest.raises(ValidationError, match="HUHANG_AUDIT_SIGNING_KEY must be set in production"):
        Settings(environment="production", identity_key="a-real-secret", data_key=new_data_key())
    key = Signer.generate().private_b64()
    assert Settings(
        environment="production", identity_key="a-real-secret", audit_signing_key=key, data_key=new_data_key()
    )
    with pytest.raises(ValidationError, match="32 bytes") as raised:
        Settings(audit_signing_key=base64.b64encode(b"short").decode())
    assert "c2hvcnQ" not in str(raised.value)  # the value is never echoed
    with pytest.raises(ValidationError, match="not valid base64"):
        Settings(audit_signing_key="not base64!")
    with pytest.raises(ValidationError, match=r"HUHANG_AUDIT_TRUSTED_KEYS\[1\]"):
        Settings(audit_trusted_keys=f"{public_key_b64(Signer.generate().public_key)},AAAA")


def test_published_files_are_read_line_by_line_naming_the_line_of_what_cannot_be_read(tmp_path):
    signer = Signer.generate()
    FilePublisher(tmp_path, "huhang_referral").publish(a_checkpoint(signer, 3))
    other = signer.sign("huhang_intake", "intake", 4, b"\x01" * 32)
    FilePublisher(tmp_path, "huhang_intake").publish(other)
    path = published_file(tmp_path, "huhang_referral")
    with path.open("a") as f:
        f.write("not json\n")

    read = list(read_published(tmp_path, "huhang_referral"))

    assert [(r.source, r.checkpoint is not None) for r in read] == [(f"{path}:1", True), (f"{path}:2", False)]
    assert len(list(read_published(tmp_path))) == 3


def test_the_checkpointer_stores_every_checkpoint_and_survives_a_publisher_that_fails(tmp_path, service):
    class Broken:
        def publish(self, checkpoint: Checkpoint) -> None:
            raise OSError("disk full")

    store = CheckpointStore(service.positions.engine)
    checkpointer = Checkpointer(Signer.generate(), "huhang_referral", "referral", store,
                                [Broken(), FilePublisher(tmp_path, "huhang_referral")])

    assert checkpointer.checkpoint_if_moved(4, b"\x02" * 32) is not None
    assert checkpointer.checkpoint_if_moved(4, b"\x02" * 32) is None
    assert store.last_position() == 4
    assert len(published_file(tmp_path, "huhang_referral").read_text().splitlines()) == 1


# --- verification ----------------------------------------------------------------------------------------------------


def chained_and_signed(settings: Settings, service: ReferralService, events: int = 20) -> Chainer:
    save_events(service, events)
    chainer = build_chainer(settings, service)
    chainer.catch_up()
    chainer.checkpoint()
    return chainer


def test_an_intact_log_verifies_and_events_after_the_chained_head_are_not_yet_chained(settings, service):
    chained_and_signed(settings, service)
    save_events(service, 3)

    report = verify(settings, service)

    assert report.ok, report.findings
    assert (report.events_checked, report.chained_head) == (20, 20)
    assert (report.not_yet_chained, report.unchained_from, report.unchained_to) == (3, 21, 23)
    assert (report.checkpoints_checked, report.checkpoints_verified) == (1, 1)
    assert report.checkpoint_sources == 2  # the table and the published file


def test_an_unsigned_chain_verifies_with_a_warning(settings, service):
    save_events(service, 4)
    chainer_of(service).catch_up()

    report = verify(settings, service)

    assert report.ok
    assert report.warnings


def test_a_chain_row_edited_in_place_is_located_and_the_events_still_agree_with_the_signed_head(settings, service):
    chained_and_signed(settings, service)
    with service.positions.engine.begin() as conn:
        conn.execute(text("UPDATE event_chain SET hash = :h WHERE position = 7"), {"h": b"\x05" * 32})

    report = verify(settings, service)

    # Row 7 no longer matches its own fields, and row 8 no longer links to it; the events are intact.
    assert [(f.problem, f.position) for f in report.findings] == [(Problem.CHAIN_BROKEN, 7), (Problem.CHAIN_BROKEN, 8)]
    assert report.checkpoints_verified == 1


def test_a_chain_row_whose_hash_was_recomputed_breaks_the_link_to_the_next_row_and_the_signed_head(settings, service):
    chained_and_signed(settings, service)
    with service.positions.engine.begin() as conn:
        conn.execute(text("UPDATE event_chain SET hash = :h WHERE position = 20"), {"h": b"\x05" * 32})
        conn.execute(text("UPDATE event_chain SET hash = :h WHERE position = 7"), {"h": b"\x05" * 32})

    report = verify(settings, service)

    found = {(f.problem, f.position) for f in report.findings}
    assert {(Problem.CHAIN_BROKEN, 7), (Problem.CHAIN_BROKEN, 8), (Problem.CHAIN_REWRITTEN, 20)} <= found
    assert not any(f.problem in (Problem.ALTERED, Problem.DELETED, Problem.INSERTED) for f in report.findings)


def test_a_forged_published_checkpoint_is_a_bad_signature_naming_the_file_and_line(settings, service):
    chained_and_signed(settings, service)
    path = published_file(publish_dir(settings), log_name(settings, "referral"))
    line = json.loads(path.read_text())
    line["head"] = "00" * 32
    with path.open("a") as f:
        f.write(json.dumps(line) + "\n")

    report = verify(settings, service)

    assert [(f.problem, f.position, f.source) for f in report.findings] == [
        (Problem.BAD_SIGNATURE, 20, f"{path}:2")
    ]


def test_checkpoints_of_an_untrusted_key_do_not_count_and_are_reported(settings, service):
    chained_and_signed(settings, service)
    stranger = Signer.generate()

    report = verify_log("referral", service.application.recorder, service.positions.engine,
                        log=log_name(settings, "referral"), trusted=TrustedKeys([stranger.public_key]))

    assert {f.problem for f in report.findings} == {Problem.BAD_SIGNATURE}
    assert "not trusted" in report.findings[0].detail


def test_a_chain_signed_before_and_after_a_key_rotation_verifies_naming_both_keys(settings, service):
    old, new = Signer.generate(), Signer.generate()
    store = CheckpointStore(service.positions.engine)
    publisher = FilePublisher(publish_dir(settings), log_name(settings, "referral"))
    chainer = chainer_of(service)
    save_events(service, 5)
    chainer.catch_up()
    Checkpointer(old, log_name(settings, "referral"), "referral", store, [publisher]).checkpoint(*chainer.head)
    save_events(service, 5)
    chainer.catch_up()
    Checkpointer(new, log_name(settings, "referral"), "referral", store, [publisher]).checkpoint(*chainer.head)
    rotated = settings.model_copy(update={"audit_signing_key": SecretStr(new.private_b64()),
                                          "audit_trusted_keys": public_key_b64(old.public_key)})

    report = verify(rotated, service)

    assert report.ok, report.findings
    assert (report.checkpoints_checked, report.checkpoints_verified) == (2, 2)
    assert report.signing_keys == {old.key_id: 2, new.key_id: 2}  # each from the table and the file
    assert f"signed by key {old.key_id} (2), {new.key_id} (2)" in report.summary()

    without_the_old_key = settings.model_copy(update={"audit_signing_key": SecretStr(new.private_b64())})
    refused = verify(without_the_old_key, service)
    assert [(f.problem, f.position) for f in refused.findings] == [(Problem.BAD_SIGNATURE, 5)] * 2


def test_verifying_while_the_chainer_runs_and_signs_finds_nothing_wrong(tmp_path):
    settings = Settings(storage="sqlite", data_dir=tmp_path / "data", audit_checkpoint_interval_s=0.05)
    service = build(settings)
    runtime = Runtime()
    runtime.start_chainers(settings, [service])
    try:
        reports = []
        for _ in range(6):
            save_events(service, 25)
            time.sleep(0.1)
            reports.append(verify(settings, service))
    finally:
        runtime.shutdown()
    final = verify(settings, service)
    service.application.close()
    service.positions.engine.dispose()

    assert all(r.ok for r in reports), [r.findings for r in reports]
    assert sum(r.checkpoints_checked for r in reports) > 0
    assert final.ok
    assert (final.chained_head, final.not_yet_chained) == (150, 0)
    assert final.checkpoints_verified == final.checkpoints_checked > 0
