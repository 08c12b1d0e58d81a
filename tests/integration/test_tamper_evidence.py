"""Tamper evidence on real stores (SQLite files and the machine's PostgreSQL): the referral service's events are
chained and checkpointed, then the raw rows are edited, deleted, inserted and swapped directly in SQL, and the
chain table is rewritten to match; ``huhang audit verify`` must catch each and name the exact record.

The log used by every test (positions are notification ids):
  1..10   ten referrals opened (version 1 each)                          -> chained, checkpoint signed at 10
  11..13  referrals #0, #1, #2 received (version 2 each)
  14..18  five more referrals opened; 16 removed before chaining (a gap)  -> chained, checkpoint signed at 18
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text

from contracts.vocabulary import ReferralStatus
from huhang.audit import LogReport, Problem, verify_service
from huhang.chain import ChainStore, build_chainer, chain_notifications
from huhang.checkpoints import log_name, publish_dir, published_file
from huhang.cli import main
from huhang.settings import Settings
from services.referral.main import ReferralService, build
from tests.conftest import sqlite_or_postgres_settings
from tests.unit.test_referral import OWNER, an_open_referral

pytestmark = [pytest.mark.integration]

GAP = 16
FIRST_CHECKPOINT, SECOND_CHECKPOINT = 10, 18


class RawLog:
    """The referral service's stored events and chain, reached around the application, as an intruder would."""

    def __init__(self, settings: Settings, service: ReferralService) -> None:
        self.settings = settings
        self.chain_engine = service.positions.engine
        if settings.storage == "sqlite":
            self.engine: Engine = create_engine(f"sqlite:///{settings.data_dir / 'referral.events.sqlite'}")
            self.table, self.id = "stored_events", "rowid"
        else:  # the events live in the service's schema, beside its read models
            self.engine, self.table, self.id = service.positions.engine, "referral_events", "notification_id"

    def execute(self, sql: str, **params: Any) -> Any:
        with self.engine.begin() as conn:
            return conn.execute(text(sql.format(t=self.table, id=self.id)), params)

    def row(self, position: int) -> Any:
        return self.execute("SELECT originator_id, originator_version, topic, state FROM {t} WHERE {id} = :p",
                            p=position).one()

    def update_state(self, position: int) -> None:
        """Change one bit of the stored state (sealed per child: the edit of someone without the key)."""
        state = bytearray(self.row(position).state)
        state[-1] ^= 0x01
        self.execute("UPDATE {t} SET state = :s WHERE {id} = :p", s=bytes(state), p=position)

    def update_version(self, position: int, version: int) -> None:
        self.execute("UPDATE {t} SET originator_version = :v WHERE {id} = :p", v=version, p=position)

    def delete(self, position: int) -> None:
        self.execute("DELETE FROM {t} WHERE {id} = :p", p=position)

    def insert_like(self, position: int, model: int) -> uuid.UUID:
        row, originator = self.row(model), uuid.uuid4()
        stored_id: Any = originator.hex if self.settings.storage == "sqlite" else originator
        self.execute("INSERT INTO {t} (originator_id, originator_version, topic, state, {id}) "
                     "VALUES (:o, 1, :topic, :s, :p)", o=stored_id, topic=row.topic, s=bytes(row.state), p=position)
        return originator

    def swap(self, a: int, b: int) -> None:
        for old, new in ((a, -1), (b, a), (-1, b)):
            self.execute("UPDATE {t} SET {id} = :new WHERE {id} = :old", new=new, old=old)

    def rewrite_chain_from(self, position: int, service: ReferralService) -> None:
        """Recompute the chain rows from ``position`` on so that they agree with the (tampered) events."""
        rows = list(ChainStore(self.chain_engine).scan(through=10**9))
        prev = next(r.hash for r in reversed(rows) if r.position < position)
        events = [n for n in service.application.recorder.select_notifications(start=position, limit=1000)]
        with self.chain_engine.begin() as conn:
            for r in chain_notifications("referral", events, prev):
                conn.execute(
                    text("UPDATE event_chain SET originator_id = :o, originator_version = :v, topic = :t, "
                         "state_sha256 = :s, prev_hash = :prev, hash = :h WHERE position = :p"),
                    {"o": r.originator_id, "v": r.originator_version, "t": r.topic, "s": r.state_sha256,
                     "prev": r.prev_hash, "h": r.hash, "p": r.position},
                )


@pytest.fixture(params=["sqlite", "postgres"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    return sqlite_or_postgres_settings(request, tmp_path)


@pytest.fixture
def service(settings: Settings) -> Iterator[ReferralService]:
    built = build(settings)
    yield built
    built.application.close()
    built.positions.engine.dispose()


@pytest.fixture
def raw(settings: Settings, service: ReferralService) -> Iterator[RawLog]:
    log = RawLog(settings, service)
    yield log
    if log.engine is not service.positions.engine:
        log.engine.dispose()


@pytest.fixture
def referral_ids(settings: Settings, service: ReferralService, raw: RawLog) -> list[uuid.UUID]:
    """The log described above, chained and checkpointed twice."""
    referrals = service.application
    first = [an_open_referral() for _ in range(10)]
    referrals.open_referrals(first)
    chainer = build_chainer(settings, service)
    assert chainer.catch_up() == 10
    assert chainer.checkpoint().position == FIRST_CHECKPOINT
    for command in first[:3]:
        referrals.change_status(command.referral_id, ReferralStatus.received, OWNER.value)
    referrals.open_referrals([an_open_referral() for _ in range(5)])
    raw.delete(GAP)
    assert chainer.catch_up() == 7
    assert chainer.checkpoint().position == SECOND_CHECKPOINT
    return [c.referral_id for c in first]


def verified(settings: Settings, service: ReferralService) -> LogReport:
    return verify_service(settings, service)


def located(report: LogReport) -> list[tuple[Problem, int | None, str | None, int | None]]:
    return [(f.problem, f.position, f.originator_id, f.originator_version) for f in report.findings]


def test_an_intact_log_verifies_against_both_checkpoints(settings, service, referral_ids):
    report = verified(settings, service)

    assert report.ok, report.findings
    assert (report.chained_head, report.events_checked, report.not_yet_chained) == (18, 17, 0)
    assert (report.checkpoints_checked, report.checkpoints_verified, report.checkpoint_sources) == (2, 2, 4)


def test_an_edited_event_is_altered_at_its_position_with_its_originator_and_version(
    settings, service, raw, referral_ids
):
    raw.update_state(5)

    report = verified(settings, service)

    assert located(report) == [(Problem.ALTERED, 5, str(referral_ids[4]), 1)]
    assert "state changed" in report.findings[0].detail


def test_an_event_given_another_version_is_altered_naming_what_was_chained(settings, service, raw, referral_ids):
    raw.update_version(12, 7)

    report = verified(settings, service)

    assert located(report) == [(Problem.ALTERED, 12, str(referral_ids[1]), 7)]
    assert f"chained as originator {referral_ids[1]} version 2" in report.findings[0].detail


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)  # PostgreSQL's uuid column refuses a malformed id
def test_an_event_edited_into_something_its_store_cannot_read_is_located(settings, service, raw, referral_ids):
    raw.execute("UPDATE {t} SET originator_id = 'not-a-uuid' WHERE {id} = 5")

    report = verified(settings, service)

    assert located(report) == [(Problem.ALTERED, 5, str(referral_ids[4]), 1)]
    assert "can no longer be read (ValueError)" in report.findings[0].detail
    assert report.events_checked == 17


def test_a_deleted_event_is_located(settings, service, raw, referral_ids):
    raw.delete(12)

    report = verified(settings, service)

    assert located(report) == [(Problem.DELETED, 12, str(referral_ids[1]), 2)]


def test_an_event_inserted_below_the_chained_head_is_located(settings, service, raw, referral_ids):
    originator = raw.insert_like(GAP, model=15)

    report = verified(settings, service)

    assert located(report) == [(Problem.INSERTED, GAP, str(originator), 1)]


def test_two_swapped_events_are_reordered_and_the_originator_s_versions_out_of_order(
    settings, service, raw, referral_ids
):
    raw.swap(1, 11)  # referral #0's version 1 and version 2

    report = verified(settings, service)

    assert located(report) == [
        (Problem.REORDERED, 1, str(referral_ids[0]), 2),
        (Problem.REORDERED, 11, str(referral_ids[0]), 1),
    ]
    assert "chained at position 11, now at position 1" in report.findings[0].detail
    assert all("versions are now out of order" in f.detail for f in report.findings)


def test_events_of_two_originators_swapped_are_reordered(settings, service, raw, referral_ids):
    raw.swap(3, 7)

    report = verified(settings, service)

    assert located(report) == [
        (Problem.REORDERED, 3, str(referral_ids[6]), 1),
        (Problem.REORDERED, 7, str(referral_ids[2]), 1),
    ]


def test_a_chain_rewritten_to_match_an_edited_event_disagrees_with_the_signed_checkpoint(
    settings, service, raw, referral_ids
):
    raw.update_state(14)
    raw.rewrite_chain_from(14, service)
    with raw.chain_engine.begin() as conn:  # and hide the table's copy: the published file is enough
        conn.execute(text("DELETE FROM chain_checkpoints"))

    report = verified(settings, service)

    file = published_file(publish_dir(settings), log_name(settings, "referral"))
    assert located(report) == [(Problem.CHAIN_REWRITTEN, SECOND_CHECKPOINT, None, None)]
    (finding,) = report.findings
    assert (finding.after, finding.source) == (FIRST_CHECKPOINT, f"{file}:2")  # the edit lies in 11..18
    assert report.checkpoints_verified == 1


def test_a_chain_rewritten_from_the_start_is_caught_at_the_first_checkpoint(settings, service, raw, referral_ids):
    raw.update_state(2)
    raw.rewrite_chain_from(2, service)

    report = verified(settings, service)

    file = published_file(publish_dir(settings), log_name(settings, "referral"))
    assert [(f.problem, f.position, f.after) for f in report.findings] == [
        (Problem.CHAIN_REWRITTEN, FIRST_CHECKPOINT, 0), (Problem.CHAIN_REWRITTEN, SECOND_CHECKPOINT, 0)
    ]
    first = report.findings[0].source or ""
    assert "table chain_checkpoints (position 10" in first
    assert f"{file}:1" in first


def test_the_tail_of_the_log_and_of_its_chain_removed_together_is_caught_by_the_signed_head(
    settings, service, raw, referral_ids
):
    for position in (17, 18):
        raw.delete(position)
    with raw.chain_engine.begin() as conn:
        conn.execute(text("DELETE FROM event_chain WHERE position > 15"))

    report = verified(settings, service)

    assert located(report) == [(Problem.CHAIN_REWRITTEN, SECOND_CHECKPOINT, None, None)]
    assert "no row at 18" in report.findings[0].detail


def test_an_event_added_after_the_chained_head_is_not_yet_chained_and_not_an_error(
    settings, service, raw, referral_ids
):
    raw.insert_like(19, model=15)

    report = verified(settings, service)

    assert report.ok
    assert (report.not_yet_chained, report.unchained_from, report.unchained_to) == (1, 19, 19)


def test_several_problems_at_once_are_each_located(settings, service, raw, referral_ids):
    raw.update_state(2)
    raw.delete(9)
    raw.insert_like(GAP, model=15)

    problems = [(f.problem, f.position) for f in verified(settings, service).findings]

    assert problems == [(Problem.ALTERED, 2), (Problem.DELETED, 9), (Problem.INSERTED, GAP)]


# --- the command -----------------------------------------------------------------------------------------------------


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUHANG_STORAGE", settings.storage)
    monkeypatch.setenv("HUHANG_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("HUHANG_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("HUHANG_SCHEMA_PREFIX", settings.schema_prefix)


def test_the_command_exits_0_for_an_intact_log_and_1_with_a_report_naming_the_record(
    settings, service, raw, referral_ids, cli_env, capsys
):
    assert main(["audit", "verify", "--service", "referral"]) == 0
    assert "INTACT" in capsys.readouterr().out

    raw.update_state(5)
    raw.delete(12)

    assert main(["audit", "verify", "--service", "referral"]) == 1
    out = capsys.readouterr().out
    assert f"ALTERED         referral position 5 originator {referral_ids[4]} version 1" in out
    assert f"DELETED         referral position 12 originator {referral_ids[1]} version 2" in out
    assert "NOT INTACT: 2 problems found." in out


def test_the_command_reads_checkpoints_from_another_folder_and_reports_json(
    settings, service, raw, referral_ids, cli_env, capsys, tmp_path
):
    import json
    import shutil

    copy = tmp_path / "inspector"
    shutil.copytree(publish_dir(settings), copy)
    raw.update_state(14)
    raw.rewrite_chain_from(14, service)
    for path in publish_dir(settings).iterdir():  # the intruder also removes the files they can reach
        path.unlink()
    with raw.chain_engine.begin() as conn:
        conn.execute(text("DELETE FROM chain_checkpoints"))

    assert main(["audit", "verify", "--service", "referral"]) == 0  # nothing left to hold the chain against
    capsys.readouterr()
    assert main(["audit", "verify", "--service", "referral", "--checkpoints", str(copy), "--json"]) == 1
    (log,) = json.loads(capsys.readouterr().out)["logs"]
    assert [(f["problem"], f["position"], f["after"]) for f in log["findings"]] == [
        ("CHAIN_REWRITTEN", SECOND_CHECKPOINT, FIRST_CHECKPOINT)
    ]


def test_the_public_key_command_prints_the_key_the_checkpoints_verify_with(
    settings, service, referral_ids, cli_env, capsys
):
    from huhang.checkpoints import Checkpoint, TrustedKeys, decode_key_bytes

    assert main(["audit", "public-key"]) == 0
    printed = capsys.readouterr().out.strip()
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    key = Ed25519PublicKey.from_public_bytes(decode_key_bytes(printed, "public key"))
    file = published_file(publish_dir(settings), log_name(settings, "referral"))
    for line in file.read_text().splitlines():
        assert TrustedKeys([key]).check(Checkpoint.from_json(line)) is None


# --- publication to Kafka --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)  # the store does not matter here
def test_with_the_kafka_transport_checkpoints_are_also_published_to_the_audit_topic(
    settings, service, kafka_bootstrap
):
    import time

    from kafka import KafkaConsumer, TopicPartition

    from huhang.checkpoints import CHECKPOINT_TOPIC, Checkpoint, KafkaCheckpointPublisher, trusted_keys

    namespace = f"{uuid.uuid4().hex[:8]}."
    kafka = settings.model_copy(update={"transport": "kafka", "kafka_bootstrap_servers": kafka_bootstrap,
                                        "kafka_namespace": namespace})
    service.application.open_referrals([an_open_referral() for _ in range(3)])
    chainer = build_chainer(kafka, service)
    chainer.catch_up()
    signed = chainer.checkpoint()

    topic = f"{namespace}{CHECKPOINT_TOPIC}"
    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        consumer.seek_to_beginning(partition)
        records: list[Any] = []
        deadline = time.monotonic() + 30
        while not records and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
    finally:
        consumer.close()
    (record,) = records
    assert record.key == b"referral"
    published = Checkpoint.from_json(record.value.decode())
    assert published == signed
    assert trusted_keys(kafka).check(published) is None
    assert chainer.checkpointer is not None
    for publisher in chainer.checkpointer.publishers:
        if isinstance(publisher, KafkaCheckpointPublisher):
            publisher.close()
