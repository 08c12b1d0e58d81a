"""Signed checkpoints of each chain's head (Ed25519), stored and published where the database cannot rewrite them.

A checkpoint says "the log ``log`` of service ``service`` had chained up to ``position`` with head hash ``head``
at ``time``", signed by the key ``key_id`` (the first 16 hex of the SHA-256 of its public key). The chainer stores
each one in ``chain_checkpoints`` beside its chain and appends it as one JSON line to
``<audit_publish_dir>/<log>.checkpoints.jsonl`` (and, with the Kafka transport, publishes it to
``<namespace>huhang.audit.checkpoints.v1``, key = service). A checkpoint in a file or on a topic survives a rewrite
of the whole database: ``huhang audit verify`` then finds the chain disagreeing with it.

Keys: ``HUHANG_AUDIT_SIGNING_KEY`` is the base64 of the 32-byte private key; ``HUHANG_AUDIT_TRUSTED_KEYS`` adds the
base64 public keys of retired keys, so older checkpoints still verify after a rotation. In development an unset key
is generated once into ``<data_dir>/audit-signing.key`` (mode 0600); production refuses to start without one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import BigInteger, Column, Engine, LargeBinary, MetaData, String, Table, Text, select

from huhang.bundle_verify import CHECKPOINT_TAG as CHECKPOINT_TAG
from huhang.bundle_verify import checkpoint_message
from huhang.keyfiles import read_or_create
from huhang.settings import Settings
from huhang.sql import create_tables, insert_ignoring_duplicates, reading
from huhang.storage import schema_name

logger = logging.getLogger(__name__)

CHECKPOINT_TOPIC = "huhang.audit.checkpoints.v1"
KEY_FILE_NAME = "audit-signing.key"
FORMAT_VERSION = 1


# --- keys ----------------------------------------------------------------------------------------------------------


def _public_bytes(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id_of(public_key: Ed25519PublicKey) -> str:
    return hashlib.sha256(_public_bytes(public_key)).hexdigest()[:16]


def decode_key_bytes(text: str, what: str) -> bytes:
    """32 raw key bytes from base64; ``ValueError`` naming ``what`` otherwise."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{what} is not valid base64") from None
    if len(raw) != 32:
        raise ValueError(f"{what} must be the base64 of 32 bytes (an Ed25519 key), not {len(raw)} bytes")
    return raw


def public_key_b64(public_key: Ed25519PublicKey) -> str:
    return base64.b64encode(_public_bytes(public_key)).decode()


class Signer:
    """An Ed25519 private key and its key id."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._private_key = private_key
        self.public_key = private_key.public_key()
        self.key_id = key_id_of(self.public_key)

    @classmethod
    def from_b64(cls, text: str) -> Signer:
        return cls(Ed25519PrivateKey.from_private_bytes(decode_key_bytes(text, "HUHANG_AUDIT_SIGNING_KEY")))

    @classmethod
    def generate(cls) -> Signer:
        return cls(Ed25519PrivateKey.generate())

    def private_b64(self) -> str:
        from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

        raw = self._private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        return base64.b64encode(raw).decode()

    def sign(self, log: str, service: str, position: int, head: bytes, at: datetime | None = None) -> Checkpoint:
        time_text = (at or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="milliseconds")
        unsigned = Checkpoint(log, service, position, head, time_text, self.key_id, b"")
        return unsigned.with_signature(self._private_key.sign(unsigned.message()))


def dev_key_path(settings: Settings) -> Path:
    return settings.data_dir / KEY_FILE_NAME


def load_signer(settings: Settings, *, create: bool = True) -> Signer | None:
    """The signing key the settings name; in development, the generated key file (made when ``create``)."""
    if settings.audit_signing_key is not None:
        return Signer.from_b64(settings.audit_signing_key.get_secret_value())
    if settings.environment == "production":  # the settings validator refuses this already; never generate here
        raise ValueError("HUHANG_AUDIT_SIGNING_KEY must be set in production")
    path = dev_key_path(settings)
    if not create and not path.exists():
        return None
    text, created = read_or_create(path, lambda: Signer.generate().private_b64())
    signer = Signer.from_b64(text)
    if created:
        logger.warning("generated a development audit signing key (key id %s) in %s", signer.key_id, path)
    return signer


class TrustedKeys:
    """The public keys whose checkpoints the verifier accepts, by key id."""

    def __init__(self, public_keys: Sequence[Ed25519PublicKey] = ()) -> None:
        self.keys = {key_id_of(k): k for k in public_keys}

    def check(self, checkpoint: Checkpoint) -> str | None:
        """None when the checkpoint's signature verifies with a trusted key; otherwise why not."""
        key = self.keys.get(checkpoint.key_id)
        if key is None:
            return f"signed by key {checkpoint.key_id}, which is not trusted"
        try:
            key.verify(checkpoint.signature, checkpoint.message())
        except InvalidSignature:
            return f"the signature does not verify with key {checkpoint.key_id}"
        return None


def trusted_keys(settings: Settings) -> TrustedKeys:
    """The signing key's public key (or the development key file's, if present) and HUHANG_AUDIT_TRUSTED_KEYS."""
    keys: list[Ed25519PublicKey] = []
    signer = load_signer(settings, create=False)
    if signer is not None:
        keys.append(signer.public_key)
    for i, text in enumerate(t for t in settings.audit_trusted_keys.split(",") if t.strip()):
        keys.append(Ed25519PublicKey.from_public_bytes(decode_key_bytes(text, f"HUHANG_AUDIT_TRUSTED_KEYS[{i}]")))
    return TrustedKeys(keys)


# --- checkpoints ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    log: str  # the log's name in its deployment: the service's schema name, e.g. "huhang_intake"
    service: str
    position: int
    head: bytes
    time: str  # ISO 8601, UTC
    key_id: str
    signature: bytes

    def message(self) -> bytes:
        """What is signed: a canonical, length-prefixed encoding of every field but the signature (defined once, in
        the offline bundle verifier)."""
        return checkpoint_message(self.log, self.service, self.position, self.head, self.time, self.key_id)

    def with_signature(self, signature: bytes) -> Checkpoint:
        return Checkpoint(self.log, self.service, self.position, self.head, self.time, self.key_id, signature)

    def to_json(self) -> str:
        return json.dumps(
            {
                "v": FORMAT_VERSION, "log": self.log, "service": self.service, "position": self.position,
                "head": self.head.hex(), "time": self.time, "key_id": self.key_id,
                "signature": base64.b64encode(self.signature).decode(),
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> Checkpoint:
        """Parse one published line; ``ValueError`` when it is not a checkpoint."""
        try:
            d = json.loads(text)
            checkpoint = cls(
                str(d["log"]), str(d["service"]), int(d["position"]), bytes.fromhex(d["head"]), str(d["time"]),
                str(d["key_id"]), base64.b64decode(d["signature"], validate=True),
            )
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise ValueError(f"not a checkpoint ({type(exc).__name__})") from None
        if d.get("v") != FORMAT_VERSION:
            raise ValueError(f"unknown checkpoint format {d.get('v')!r}")
        return checkpoint


@dataclass(frozen=True)
class SourcedCheckpoint:
    """A checkpoint and where it was read (a file and line, the table, a topic), or why it could not be read."""

    source: str
    checkpoint: Checkpoint | None
    error: str | None = None


metadata = MetaData()
checkpoints_table = Table(
    "chain_checkpoints",
    metadata,
    Column("position", BigInteger, primary_key=True, autoincrement=False),
    Column("key_id", String(16), primary_key=True),
    Column("log", Text, nullable=False),
    Column("service", Text, nullable=False),
    Column("head", LargeBinary(32), nullable=False),
    Column("time", String(40), nullable=False),
    Column("signature", LargeBinary(64), nullable=False),
)


class CheckpointStore:
    """``chain_checkpoints``: the signed heads, beside the chain (a copy; the published ones are what count)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        create_tables(metadata, engine, [checkpoints_table])

    def add(self, checkpoint: Checkpoint) -> None:
        c = checkpoint
        with self.engine.begin() as conn:
            insert_ignoring_duplicates(conn, checkpoints_table, [{
                "position": c.position, "key_id": c.key_id, "log": c.log, "service": c.service, "head": c.head,
                "time": c.time, "signature": c.signature,
            }])

    def last_position(self) -> int:
        with reading(self.engine) as conn:
            value = conn.execute(
                select(checkpoints_table.c.position).order_by(checkpoints_table.c.position.desc()).limit(1)
            ).scalar_one_or_none()
        return int(value or 0)

    def read(self, batch_size: int = 1000) -> Iterator[SourcedCheckpoint]:
        t = checkpoints_table.c
        after = None
        while True:
            query = select(t.position, t.key_id, t.log, t.service, t.head, t.time, t.signature).order_by(
                t.position, t.key_id
            ).limit(batch_size)
            if after is not None:
                query = query.where((t.position > after[0]) | ((t.position == after[0]) & (t.key_id > after[1])))
            with reading(self.engine) as conn:
                rows = conn.execute(query).all()
            for position, key_id, log, service, head, time_text, signature in rows:
                yield SourcedCheckpoint(
                    f"table chain_checkpoints (position {position}, key {key_id})",
                    Checkpoint(log, service, int(position), bytes(head), time_text, key_id, bytes(signature)),
                )
            if len(rows) < batch_size:
                return
            after = (rows[-1][0], rows[-1][1])


# --- publication ---------------------------------------------------------------------------------------------------


class Publisher(Protocol):
    def publish(self, checkpoint: Checkpoint) -> None: ...


def publish_dir(settings: Settings) -> Path:
    return settings.audit_publish_dir or settings.data_dir / "audit"


def published_file(directory: Path, log: str) -> Path:
    return directory / f"{log}.checkpoints.jsonl"


class FilePublisher:
    """Appends each checkpoint as one JSON line to the log's file (flushed and synced before returning)."""

    def __init__(self, directory: Path, log: str) -> None:
        self.path = published_file(directory, log)

    def publish(self, checkpoint: Checkpoint) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # O_APPEND: lines from several processes never interleave (each is one short write).
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, (checkpoint.to_json() + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)


class KafkaCheckpointPublisher:
    """Publishes each checkpoint to the audit topic (key = service), waiting for the brokers' acknowledgement."""

    def __init__(self, bootstrap_servers: str, topic: str, *, timeout_s: float = 30.0) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.timeout_s = timeout_s
        self._producer: Any = None

    def publish(self, checkpoint: Checkpoint) -> None:
        from kafka import KafkaProducer

        if self._producer is None:
            from huhang.kafka import ensure_topics

            ensure_topics(self.bootstrap_servers, [self.topic], partitions=1)
            timeout_ms = int(self.timeout_s * 1000)
            self._producer = KafkaProducer(
                bootstrap_servers=self.bootstrap_servers, client_id="huhang-audit-checkpoints", acks="all",
                request_timeout_ms=timeout_ms, max_block_ms=timeout_ms,
            )
        future = self._producer.send(
            self.topic, key=checkpoint.service.encode(), value=checkpoint.to_json().encode()
        )
        future.get(timeout=self.timeout_s)

    def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            producer.close(timeout=5)


def read_published(directory: Path, log: str | None = None) -> Iterator[SourcedCheckpoint]:
    """The checkpoints in every ``*.checkpoints.jsonl`` file of a directory (of one log, when named)."""
    if not directory.is_dir():
        return
    for path in sorted(directory.glob("*.checkpoints.jsonl")):
        with path.open(encoding="utf-8", errors="replace") as f:
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                source = f"{path}:{number}"
                try:
                    checkpoint = Checkpoint.from_json(line)
                except ValueError as exc:
                    yield SourcedCheckpoint(source, None, str(exc))
                    continue
                if log is None or checkpoint.log == log:
                    yield SourcedCheckpoint(source, checkpoint)


# --- signing the head ----------------------------------------------------------------------------------------------


class Checkpointer:
    """Signs a chain's head, stores the checkpoint and publishes it; a publication that fails is logged and the
    next checkpoint is published as usual (the table keeps every one)."""

    def __init__(
        self, signer: Signer, log: str, service: str, store: CheckpointStore, publishers: Sequence[Publisher] = ()
    ) -> None:
        self.signer = signer
        self.log = log
        self.service = service
        self.store = store
        self.publishers = list(publishers)
        self._last: int | None = None

    def checkpoint_if_moved(self, position: int, head: bytes) -> Checkpoint | None:
        if self._last is None:
            self._last = self.store.last_position()
        if position <= self._last:
            return None
        return self.checkpoint(position, head)

    def checkpoint(self, position: int, head: bytes) -> Checkpoint:
        checkpoint = self.signer.sign(self.log, self.service, position, head)
        self.store.add(checkpoint)
        for publisher in self.publishers:
            try:
                publisher.publish(checkpoint)
            except Exception as exc:
                logger.warning(
                    "checkpoint %s@%d not published by %s (%s)", self.log, position, type(publisher).__name__,
                    type(exc).__name__,
                )
        self._last = position
        return checkpoint


def log_name(settings: Settings, service: str) -> str:
    """The name of a service's log in its deployment (its schema name: prefix + service)."""
    return schema_name(settings, service)


def build_checkpointer(settings: Settings, service: str, engine: Engine) -> Checkpointer:
    signer = load_signer(settings)
    assert signer is not None  # load_signer creates one when none is configured
    log = log_name(settings, service)
    publishers: list[Publisher] = [FilePublisher(publish_dir(settings), log)]
    if settings.transport == "kafka":
        publishers.append(
            KafkaCheckpointPublisher(settings.kafka_bootstrap_servers, f"{settings.kafka_namespace}{CHECKPOINT_TOPIC}")
        )
    logger.info("chain checkpoints of %s signed with key %s", log, signer.key_id)
    return Checkpointer(signer, log, service, CheckpointStore(engine), publishers)
