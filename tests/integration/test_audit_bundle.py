"""The audit bundle of a case, on real stores (SQLite files and the machine's PostgreSQL): built from intake's and
referral's logs while another case's events are interleaved, it verifies offline with the published key alone;
altering a stored event, dropping a chain link, forging a checkpoint or adding a history event makes the verifier
fail and name it. The verifier copied into the bundle runs on its own (``python -I bundle_verify.py``).
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from faker import Faker

from contracts.vocabulary import ReferralStatus
from huhang import bundle_verify
from huhang.bootstrap import subscription_consumers
from huhang.bundle import BundleError, build_bundle
from huhang.bundle_verify import verify_bundle
from huhang.chain import build_chainer
from huhang.checkpoints import Signer, load_signer, public_key_b64
from huhang.cli import main
from huhang.settings import Settings
from huhang.streams import drain
from services.guardianship.main import build as build_guardianship
from services.intake.main import build as build_intake
from services.referral.main import build as build_referral
from tests.conftest import sqlite_or_postgres_settings
from tests.unit.test_intake import a_child, a_report
from tests.unit.test_referral import OWNER, an_open_referral

pytestmark = [pytest.mark.integration]


@pytest.fixture(params=["sqlite", "postgres"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    return sqlite_or_postgres_settings(request, tmp_path)


@pytest.fixture
def services(settings: Settings) -> Iterator[dict[str, Any]]:
    built: dict[str, Any] = {"intake": build_intake(settings), "referral": build_referral(settings),
             "guardianship": build_guardianship(settings)}
    yield built
    for service in built.values():
        service.application.close()
        service.positions.engine.dispose()


def feed_timeline(settings: Settings, services: dict[str, Any]) -> None:
    """The timeline fed by intake's real consumers, following the logs in-process."""
    for consumer in subscription_consumers(settings, services["intake"], services):
        drain(consumer, limit_s=60)


@pytest.fixture
def case(settings: Settings, services: dict[str, Any]) -> dict[str, Any]:
    """Two cases; ours: a report, three referrals (one received), filed between the other case's events, with a
    checkpoint signed half way."""
    fake = Faker("zh_CN")
    fake.seed_instance(5)
    intake, referrals = services["intake"].application, services["referral"].application
    ours = intake.file_report(a_report(a_child(fake)))
    other = intake.file_report(a_report(a_child(fake)))
    mine = [an_open_referral(case_id=ours.case_id, child_id=ours.child_id) for _ in range(3)]
    theirs = [an_open_referral(case_id=other.case_id, child_id=other.child_id) for _ in range(4)]
    referrals.open_referrals([theirs[0], mine[0], theirs[1]])
    build_chainer(settings, services["referral"]).catch_up()
    assert build_chainer(settings, services["referral"]).checkpoint() is not None
    referrals.open_referrals([theirs[2], mine[1], mine[2], theirs[3]])
    referrals.change_status(mine[0].referral_id, ReferralStatus.received, OWNER.value)
    referrals.change_status(theirs[0].referral_id, ReferralStatus.received, OWNER.value)
    feed_timeline(settings, services)
    return {"case_id": ours.case_id, "other_case_id": other.case_id, "referrals": [c.referral_id for c in mine]}


def public_key(settings: Settings) -> str:
    signer = load_signer(settings, create=False)
    assert signer is not None
    return public_key_b64(signer.public_key)


def read(bundle: Path, name: str) -> Any:
    return json.loads((bundle / name).read_text(encoding="utf-8"))


def write(bundle: Path, name: str, content: Any) -> None:
    (bundle / name).write_text(json.dumps(content), encoding="utf-8")


def found(bundle: Path, key: str) -> list[tuple[str, str, int | None]]:
    return [(f.service, f.what, f.position) for f in verify_bundle(bundle, [key]).findings]


@pytest.fixture
def bundle(settings: Settings, services: dict[str, Any], case: dict[str, Any], tmp_path: Path) -> Path:
    out = tmp_path / "bundle"
    summary = build_bundle(settings, services, case["case_id"], out)
    assert summary.complete
    assert summary.records["referral"] == 4  # three opened, one received
    assert summary.records["intake"] >= 1
    return out


def test_a_case_bundle_verifies_with_the_published_key_and_holds_only_the_cases_events(
    settings: Settings, case: dict[str, Any], bundle: Path,
) -> None:
    report = verify_bundle(bundle, [public_key(settings)])
    assert report.ok, report.render()
    referral = next(s for s in report.services if s.service == "referral")
    assert referral.records_verified == 4
    assert len(referral.checkpoints) == 2

    part = read(bundle, "services/referral.json")
    ours = {str(r) for r in case["referrals"]}
    assert {str(uuid.UUID(r["originator_id"])) for r in part["records"]} == ours
    rows = [row for proof in part["proofs"] for row in proof["chain"]]
    assert any(uuid.UUID(hex=row["originator_id"]) not in case["referrals"] for row in rows)  # others' hashes...
    assert all(set(row) == {"position", "originator_id", "originator_version", "topic", "state_sha256",
                            "prev_hash", "hash"} for row in rows)  # ...never their state
    history = read(bundle, "history.json")
    assert history["case"]["case_id"] == str(case["case_id"])
    assert {r["referral_id"] for r in history["case"]["referrals"]} == ours
    assert str(case["other_case_id"]) not in json.dumps(part)


def test_an_altered_stored_event_is_named(settings: Settings, bundle: Path) -> None:
    part = read(bundle, "services/referral.json")
    record = part["records"][1]
    stored = base64.b64decode(record["state_b64"])
    state = stored[:-1] + bytes([stored[-1] ^ 1])  # one bit of the stored bytes, whatever their encoding
    record["state_b64"] = base64.b64encode(state).decode()
    write(bundle, "services/referral.json", part)
    assert found(bundle, public_key(settings)) == [("referral", "RECORD_ALTERED", record["position"])]
    assert "its state is not what was chained" in verify_bundle(bundle, [public_key(settings)]).render()


def test_a_dropped_chain_link_is_named_and_the_records_behind_it_are_unproven(
    settings: Settings, bundle: Path,
) -> None:
    part = read(bundle, "services/referral.json")
    proof = next(p for p in part["proofs"] if len(p["chain"]) >= 3)
    dropped = proof["chain"].pop(1)
    write(bundle, "services/referral.json", part)
    findings = found(bundle, public_key(settings))
    assert ("referral", "LINK_BROKEN", proof["chain"][1]["position"]) in findings
    covered = {r["position"] for r in part["records"]} & {row["position"] for row in proof["chain"]}
    assert {("referral", "RECORD_UNPROVEN", p) for p in covered} <= set(findings)
    if dropped["position"] in {r["position"] for r in part["records"]}:
        assert ("referral", "RECORD_UNLINKED", dropped["position"]) in findings


@pytest.mark.parametrize("forgery", ["head", "position", "other_key"])
def test_a_forged_checkpoint_is_named(settings: Settings, bundle: Path, forgery: str) -> None:
    part = read(bundle, "services/referral.json")
    checkpoint = part["proofs"][-1]["checkpoint"]
    if forgery == "head":
        checkpoint["head"] = bytes(32).hex()
    elif forgery == "position":
        checkpoint["position"] += 1
    else:  # a well-formed checkpoint signed with a key the inspector does not trust
        forged = Signer.generate().sign(checkpoint["log"], checkpoint["service"], checkpoint["position"],
                                        bytes.fromhex(checkpoint["head"]))
        checkpoint.update(json.loads(forged.to_json()))
    write(bundle, "services/referral.json", part)
    findings = found(bundle, public_key(settings))
    assert ("referral", "BAD_CHECKPOINT", checkpoint["position"]) in findings
    assert any(what == "RECORD_UNPROVEN" for _, what, _ in findings)


def test_a_history_event_no_record_produced_is_named(settings: Settings, bundle: Path) -> None:
    history = read(bundle, "history.json")
    history["events"].append({**history["events"][-1], "event_id": str(uuid.uuid4())})
    write(bundle, "history.json", history)
    assert [what for _, what, _ in found(bundle, public_key(settings))] == ["HISTORY_UNBACKED"]


def test_the_cli_writes_a_zip_that_its_own_verifier_checks_with_nothing_but_the_key(
    settings: Settings, services: dict[str, Any], case: dict[str, Any], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("HUHANG_STORAGE", settings.storage)
    monkeypatch.setenv("HUHANG_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("HUHANG_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("HUHANG_SCHEMA_PREFIX", settings.schema_prefix)
    out = tmp_path / "case.zip"
    assert main(["audit", "bundle", "--case", str(case["case_id"]), "--out", str(out)]) == 0
    assert "referral: 4 stored events" in capsys.readouterr().out
    inspector = tmp_path / "inspector"
    with zipfile.ZipFile(out) as archive:
        archive.extractall(inspector)
    assert (inspector / "bundle_verify.py").read_text() == Path(bundle_verify.__file__).read_text()
    key_file = tmp_path / "published.key"
    key_file.write_text(public_key(settings) + "\n")
    isolated = [sys.executable, "-I", "bundle_verify.py"]
    ok = subprocess.run([*isolated, ".", "--public-key", str(key_file)], cwd=inspector, capture_output=True,
                        text=True, timeout=60, check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "VERIFIED" in ok.stdout
    zipped = subprocess.run([*isolated, str(out), "--public-key", public_key(settings)], cwd=inspector,
                            capture_output=True, text=True, timeout=60, check=False)
    assert zipped.returncode == 0, zipped.stdout + zipped.stderr
    wrong = subprocess.run([*isolated, ".", "--public-key", public_key_b64(Signer.generate().public_key)],
                           cwd=inspector, capture_output=True, text=True, timeout=60, check=False)
    assert wrong.returncode == 1
    assert "BAD_CHECKPOINT" in wrong.stdout

    late = [str(case["case_id"]), "--until", "2000-01-01T00:00:00Z", "--out", str(tmp_path / "none")]
    assert main(["audit", "bundle", "--case", *late]) == 2


def test_a_case_without_events_has_no_bundle(settings: Settings, services: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(BundleError):
        build_bundle(settings, services, uuid.uuid4(), tmp_path / "none")
