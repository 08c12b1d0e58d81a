"""Verify a Huhang audit bundle offline: ``python bundle_verify.py BUNDLE --public-key KEY``.

An audit bundle (``huhang audit bundle``) holds, for one case and each service, the case's stored events exactly as
the service's event store keeps them, the hash-chain rows linking each of them to a signed checkpoint of the
chain's head (the rows of other cases' events in between carry hashes only, no event content), the checkpoints,
and the case's history. This file checks it with nothing but the Python standard library and ``cryptography``
(for Ed25519), and the published public key of the checkpoint signing key:

1. every checkpoint's Ed25519 signature, with a key given on the command line (``--public-key``, repeatable: the
   current key and retired ones; base64, or a file holding it);
2. every chain row's hash, recomputed from its fields, and every link (each row commits to the one before it) up to
   the checkpoint's position, whose signed head must be the last row's hash;
3. every stored event of the case: its hash recomputed from its own state, topic, originator id and version must
   be the hash its chain row holds;
4. that every event of the case history is one the bundle's verified records produced.

It names each record, row or checkpoint that does not verify. Exit status: 0 verified, 1 not, 2 not a bundle.

This module is also **the one definition of a chained record's hash** (and of the bytes a checkpoint signs):
``huhang.chain`` and ``huhang.checkpoints`` import them from here, so the verifier an inspector runs is the very
code the platform chains with. That is why it imports nothing of the project.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import functools
import hashlib
import json
import struct
import sys
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

BUNDLE_FORMAT = "huhang.audit-bundle.v1"
RECORD_TAG = b"huhang.chain.record.v1"
CHECKPOINT_TAG = b"huhang.chain.checkpoint.v1"

# --- the record hash and the checkpoint message (the single definition) -----------------------------------------

_U32 = struct.Struct(">I").pack
_INT_THEN_LENGTH = struct.Struct(">IqI").pack  # an 8-byte integer (length-prefixed), then the next field's length

RecordHasher = Callable[[int, str, int, str, bytes, bytes], bytes]


@functools.lru_cache(maxsize=64)
def record_hasher(service: str) -> RecordHasher:
    """``record_hash`` for one service's records, its constant prefix encoded once (the verifiers' inner loop)."""
    service_bytes = service.encode()
    prefix = _U32(len(RECORD_TAG)) + RECORD_TAG + _U32(len(service_bytes)) + service_bytes
    sha256, join, u32, int_then_length, length_32 = hashlib.sha256, b"".join, _U32, _INT_THEN_LENGTH, _U32(32)

    def hash_record(
        position: int, originator_id: str, originator_version: int, topic: str, state_sha256: bytes, prev_hash: bytes
    ) -> bytes:
        oid, top = originator_id.encode(), topic.encode()
        return sha256(join((
            prefix, int_then_length(8, position, len(oid)), oid, int_then_length(8, originator_version, len(top)), top,
            length_32 if len(state_sha256) == 32 else u32(len(state_sha256)), state_sha256,
            length_32 if len(prev_hash) == 32 else u32(len(prev_hash)), prev_hash,
        ))).digest()

    return hash_record


def record_hash(
    service: str, position: int, originator_id: str, originator_version: int, topic: str, state_sha256: bytes,
    prev_hash: bytes,
) -> bytes:
    """The hash of one chained record: SHA-256 over a canonical encoding of its fields, each prefixed with its
    length (4 bytes, big-endian); integers as 8 bytes, big-endian, signed. ``originator_id`` is the chain's form of
    it (a UUID as its 32 hex digits, see ``chain_originator_id``); ``state_sha256`` the SHA-256 of the stored
    state's bytes."""
    return record_hasher(service)(position, originator_id, originator_version, topic, state_sha256, prev_hash)


def chain_originator_id(originator_id: str, kind: str = "uuid") -> str:
    """How the chain records an originator id: a UUID as its 32 hex digits, anything else as its text."""
    return UUID(originator_id).hex if kind == "uuid" else originator_id


def checkpoint_message(log: str, service: str, position: int, head: bytes, time: str, key_id: str) -> bytes:
    """What a checkpoint's Ed25519 signature covers: a canonical, length-prefixed encoding of its fields."""
    parts = (
        CHECKPOINT_TAG, log.encode(), service.encode(), position.to_bytes(8, "big", signed=True), head, time.encode(),
        key_id.encode(),
    )
    return b"".join(len(p).to_bytes(4, "big") + p for p in parts)


def key_id_of_raw(public_key: bytes) -> str:
    """A signing key's id: the first 16 hex digits of the SHA-256 of its raw 32 bytes."""
    return hashlib.sha256(public_key).hexdigest()[:16]


# --- reading a bundle ---------------------------------------------------------------------------------------------


class BundleError(Exception):
    """Not a bundle this verifier can read (named file missing, malformed JSON, unknown format)."""


class Bundle:
    """A bundle's JSON files, from a directory or a zip file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if path.is_dir():
            self._read: Callable[[str], bytes] = lambda name: (path / name).read_bytes()
        elif zipfile.is_zipfile(path):
            archive = zipfile.ZipFile(path)
            self._read = archive.read
        else:
            raise BundleError(f"{path} is neither a bundle directory nor a zip file")

    def json(self, name: str) -> Any:
        try:
            return json.loads(self._read(name))
        except (KeyError, FileNotFoundError):
            raise BundleError(f"the bundle has no {name}") from None
        except ValueError as exc:
            raise BundleError(f"{name} is not valid JSON ({exc})") from None


# --- verifying ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """What does not verify, and where. ``what`` is one of: BAD_CHECKPOINT (a signature that does not verify with
    the keys given), CHAIN_ROW_ALTERED (a chain row that does not match its own hash), LINK_BROKEN (a row that does
    not link to the one before it: a link dropped, added or changed), NOT_AT_CHECKPOINT (the rows do not end at the
    signed head), RECORD_ALTERED (a stored event that is not what was chained), RECORD_UNLINKED (a stored event with
    no chain row), RECORD_UNPROVEN (a stored event whose chain row does not link to a valid checkpoint),
    HISTORY_UNBACKED (a history event no record in the bundle made), MALFORMED (a file that cannot be read)."""

    service: str
    what: str
    position: int | None
    detail: str

    def describe(self) -> str:
        where = "" if self.position is None else f" position {self.position}"
        return f"{self.what:<17} {self.service}{where}: {self.detail}"


@dataclass
class ServiceResult:
    service: str
    log: str
    records: int = 0
    records_verified: int = 0
    chain_rows: int = 0
    checkpoints: list[int] = field(default_factory=list)


@dataclass
class BundleReport:
    case_id: str
    services: list[ServiceResult] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def render(self) -> str:
        lines = [f"case {self.case_id}"]
        for s in self.services:
            points = ", ".join(str(p) for p in s.checkpoints) or "none"
            lines.append(f"  {s.service} (log {s.log}): {s.records_verified} of {s.records} stored events verified; "
                         f"{s.chain_rows} chain rows; signed checkpoints at {points}")
        lines.extend(f"  {f.describe()}" for f in self.findings)
        n = len(self.findings)
        lines.append("VERIFIED: every record links to a signed checkpoint." if self.ok else
                     f"NOT VERIFIED: {n} problem{'s' if n != 1 else ''} found.")
        return "\n".join(lines)


def load_public_keys(values: Iterable[str]) -> dict[str, Any]:
    """Ed25519 public keys by key id, each given as base64 or as a file holding the base64."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    keys = {}
    for value in values:
        text = value
        candidate = Path(value)
        if len(value) < 4096 and candidate.is_file():
            text = candidate.read_text().strip()
        try:
            raw = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"public key {value[:12]}… is neither base64 nor a readable file") from None
        if len(raw) != 32:
            raise ValueError(f"a public key must be the base64 of 32 bytes (Ed25519), not {len(raw)} bytes")
        keys[key_id_of_raw(raw)] = Ed25519PublicKey.from_public_bytes(raw)
    return keys


def _hex(text: Any) -> bytes:
    return bytes.fromhex(str(text))


def _check_checkpoint(service: str, log: str, cp: Mapping[str, Any], keys: Mapping[str, Any]) -> str | None:
    """None when the checkpoint is this log's and its signature verifies with a given key; otherwise why not."""
    from cryptography.exceptions import InvalidSignature

    if (cp["log"], cp["service"]) != (log, service):
        return f"it is a checkpoint of log {cp['log']} ({cp['service']}), not {log} ({service})"
    key = keys.get(cp["key_id"])
    if key is None:
        return f"signed by key {cp['key_id']}, which is not one of the public keys given"
    message = checkpoint_message(cp["log"], cp["service"], int(cp["position"]), _hex(cp["head"]), cp["time"],
                                 cp["key_id"])
    try:
        key.verify(base64.b64decode(cp["signature"], validate=True), message)
    except (InvalidSignature, binascii.Error, ValueError):
        return f"the signature does not verify with key {cp['key_id']}: the checkpoint was altered or forged"
    return None


def _verify_proof(
    service: str, log: str, proof: Mapping[str, Any], keys: Mapping[str, Any], report: BundleReport,
    result: ServiceResult,
) -> tuple[dict[int, Mapping[str, Any]], str | None]:
    """The chain rows of one proof by position, and None when they all link up to its valid checkpoint (otherwise
    why not: the records in it are then unproven)."""
    cp = proof["checkpoint"]
    rows: Sequence[Mapping[str, Any]] = proof["chain"]
    by_position = {int(r["position"]): r for r in rows}
    result.chain_rows += len(rows)
    problem = None

    def find(what: str, position: int | None, detail: str) -> None:
        nonlocal problem
        report.findings.append(Finding(service, what, position, detail))
        problem = problem or f"{what.lower().replace('_', ' ')} at position {position}"

    why = _check_checkpoint(service, log, cp, keys)
    position = int(cp["position"])
    if why is not None:
        find("BAD_CHECKPOINT", position, why)
    else:
        result.checkpoints.append(position)
    hash_record = record_hasher(service)
    prev: bytes | None = None
    prev_position: int | None = None
    for row in rows:
        at = int(row["position"])
        stored = _hex(row["hash"])
        computed = hash_record(at, str(row["originator_id"]), int(row["originator_version"]), str(row["topic"]),
                               _hex(row["state_sha256"]), _hex(row["prev_hash"]))
        if computed != stored:
            find("CHAIN_ROW_ALTERED", at, "the chain row does not match its own hash")
        if prev is not None and (_hex(row["prev_hash"]) != prev or prev_position is None or at <= prev_position):
            find("LINK_BROKEN", at, f"the chain row does not link to the row before it (position {prev_position}): "
                 "a link was removed, added or changed")
        prev, prev_position = stored, at
    if not rows or prev_position != position or prev != _hex(cp["head"]):
        find("NOT_AT_CHECKPOINT", position, f"the chain rows end at position {prev_position} with another hash "
             f"than the head the checkpoint at {position} signs")
    return by_position, problem


def verify_service_file(
    data: Mapping[str, Any], keys: Mapping[str, Any], report: BundleReport,
) -> tuple[ServiceResult, set[str], set[str]]:
    """One service's part of the bundle; the result, the integration event ids of its verified records, and those
    of its records that do not verify (already named: the history events they made are not named again)."""
    service, log = str(data["service"]), str(data["log"])
    result = ServiceResult(service, log)
    rows: dict[int, tuple[Mapping[str, Any], str | None]] = {}
    for proof in data.get("proofs", []):
        by_position, problem = _verify_proof(service, log, proof, keys, report, result)
        for position, row in by_position.items():
            if position not in rows or rows[position][1] is not None:
                rows[position] = (row, problem)
    hash_record = record_hasher(service)
    backed: set[str] = set()
    failed: set[str] = set()
    for record in data.get("records", []):
        result.records += 1
        failed.update(str(e) for e in record.get("event_ids", []))
        position = int(record["position"])
        oid = chain_originator_id(str(record["originator_id"]), str(record.get("originator_id_type", "uuid")))
        version, topic = int(record["originator_version"]), str(record["topic"])
        label = f"originator {record['originator_id']} version {version}"
        found = rows.get(position)
        if found is None:
            report.findings.append(Finding(service, "RECORD_UNLINKED", position, f"{label}: no chain row links this "
                                           "stored event to a signed checkpoint"))
            continue
        row, problem = found
        sha = hashlib.sha256(base64.b64decode(record["state_b64"], validate=True)).digest()
        if hash_record(position, oid, version, topic, sha, _hex(row["prev_hash"])) != _hex(row["hash"]):
            changed = [name for name, same in (
                ("state", sha == _hex(row["state_sha256"])), ("topic", topic == row["topic"]),
                ("originator id", oid == row["originator_id"]), ("version", version == int(row["originator_version"])),
            ) if not same]
            report.findings.append(Finding(service, "RECORD_ALTERED", position, f"{label}: its "
                                           f"{' and '.join(changed) or 'content'} is not what was chained"))
            continue
        if problem is not None:
            report.findings.append(Finding(service, "RECORD_UNPROVEN", position, f"{label}: matches its chain row, "
                                           f"but that row's link to the checkpoint does not verify ({problem})"))
            continue
        result.records_verified += 1
        backed.update(str(e) for e in record.get("event_ids", []))
    return result, backed, failed - backed


def verify_bundle(path: Path, public_keys: Iterable[str]) -> BundleReport:
    """Check a bundle (a directory or a zip file) against the given public keys."""
    bundle = Bundle(path)
    manifest = bundle.json("manifest.json")
    if manifest.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"unknown bundle format {manifest.get('format')!r} (this verifier reads {BUNDLE_FORMAT})")
    keys = load_public_keys(public_keys)
    report = BundleReport(str(manifest["case_id"]))
    backed: set[str] = set()
    named: set[str] = set()
    for name in manifest["services"]:
        data = bundle.json(f"services/{name}.json")
        try:
            result, ids, failed = verify_service_file(data, keys, report)
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            report.findings.append(Finding(name, "MALFORMED", None, f"services/{name}.json cannot be read "
                                           f"({type(exc).__name__}: {exc})"))
            continue
        report.services.append(result)
        backed |= ids
        named |= failed
    history = bundle.json("history.json")
    for event in history.get("events", []):
        event_id = str(event["event_id"])
        if event.get("in_window", True) and event_id not in backed and event_id not in named:
            report.findings.append(Finding(
                str(event.get("service")), "HISTORY_UNBACKED", None,
                f"history event {event_id} ({event.get('type')}) was produced by no record in the bundle",
            ))
    return report


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="bundle_verify.py", description="Verify a Huhang audit bundle offline (exit 0 verified, 1 not, 2 not a "
        "readable bundle).",
    )
    p.add_argument("bundle", type=Path, help="the bundle: a directory or a .zip file")
    p.add_argument("--public-key", action="append", required=True,
                   help="the checkpoint signing key's public key (base64, or a file holding it); repeat for retired "
                   "keys")
    p.add_argument("--json", action="store_true", help="the report as JSON")
    args = p.parse_args(argv)
    try:
        report = verify_bundle(args.bundle, args.public_key)
    except (BundleError, ValueError, KeyError, TypeError) as exc:
        print(f"bundle_verify: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"ok": report.ok, "case_id": report.case_id,
                          "services": [vars(s) for s in report.services],
                          "findings": [vars(f) for f in report.findings]}, indent=2))
    else:
        print(report.render())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
