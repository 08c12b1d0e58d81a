"""Personal data at rest: every stored event about a child is encrypted with that child's own key.

Names, identity-card numbers, addresses, parents' workplaces, notes: the events of a child's aggregates (the
child's file, cases, reports, referrals, guardianship and care files) hold them, so the whole stored state of each
such event is sealed with AES-256-GCM under a key of the child's own. The stored state then reads::

    b"HHP1" | child id (16 bytes) | nonce (12 bytes) | ciphertext and tag

The child id in front is not personal (a keyed, random-looking id) and says which key opens the record; the
record's position, originator and version are bound in as associated data, so a sealed state copied onto another
record does not open. Events of aggregates that are about no child (the child-director roster, notices about
nobody) stay as they were.

**Keys.** A service keeps its children's keys in its own read-model database (``child_keys``), each wrapped with
the service's data key (``HUHANG_DATA_KEY``, 32 bytes in base64; in development a generated key file). A copy of
the database alone opens nothing.

**Erasure (crypto-shredding).** Destroying a child's key (``ChildKeys.erase``) leaves every sealed record where it
was, byte for byte, so the hash chain and its signed checkpoints still verify, while the personal data in them can
no longer be read by anyone: reading such a record raises ``PersonalDataErased``. The non-personal audit trail (the
integration events of the case timeline: ids, codes, agencies, times) stays readable. A process keeps a key it has
opened for at most ``KEY_CACHE_TTL_S``, so another process's erasure takes effect there within that time.

**Which child.** An event's subject is its ``child_id`` attribute when it has one (every child-linked aggregate's
first event has); later events of the same aggregate inherit it, learned when the first event was written or read
in this process, or else read from the stored first event.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.persistence import Mapper, MapperDeserialisationError, StoredEvent, Transcoder
from sqlalchemy import Column, DateTime, Engine, LargeBinary, MetaData, String, Table, select, update

from huhang.keyfiles import read_or_create
from huhang.problems import Gone
from huhang.settings import Settings
from huhang.sql import create_tables, dialect_insert, insert_ignoring_duplicates, reading

logger = logging.getLogger(__name__)

MAGIC = b"HHP1"
_HEADER = len(MAGIC) + 16 + 12
KEY_FILE_NAME = "personal-data.key"
KEY_CACHE_TTL_S = 60.0
KEY_CACHE_SIZE = 100_000
SUBJECT_CACHE_SIZE = 100_000
_ERASED = object()

metadata = MetaData()
child_keys_table = Table(
    "child_keys",
    metadata,
    Column("child_id", String(36), primary_key=True),
    Column("wrapped_key", LargeBinary, nullable=True),  # nonce + AES-GCM of the key under the data key; NULL: erased
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("erased_at", DateTime(timezone=True), nullable=True),
)


class PersonalDataErased(MapperDeserialisationError, Gone):
    """The record is about a child whose key was destroyed: its personal data can no longer be read (an API
    answers 410 Gone)."""

    def __init__(self, child_id: UUID) -> None:
        super().__init__(f"The personal data of child {child_id} was erased.")
        self.detail = str(self)
        self.errors = []
        self.child_id = child_id


class ChildKeys:
    """The children's keys of one service: created in bulk, opened through a small time-bounded cache."""

    def __init__(self, engine: Engine, data_key: bytes, *, clock: Callable[[], float] = time.monotonic) -> None:
        if len(data_key) != 32:
            raise ValueError("the data key must be 32 bytes")
        self.engine = engine
        self._wrap = AESGCM(data_key)
        self._blind_root = hmac.new(data_key, b"huhang.personal.blind.v1", hashlib.sha256).digest()
        self._clock = clock
        self._lock = threading.Lock()
        # child -> (loaded at, the key's bytes | _ERASED); bytes, not cipher objects: a cipher object holds far more
        # memory than its 32 bytes, and making one for each use costs about a microsecond.
        self._cache: OrderedDict[UUID, tuple[float, Any]] = OrderedDict()
        create_tables(metadata, engine, [child_keys_table])

    def ensure(self, child_ids: Iterable[UUID]) -> None:
        """Give every child named a key, unless it has one: one insert for all that are missing (race-free: a key
        written by another process at the same moment wins, and is the one read back)."""
        missing = [c for c in set(child_ids) if self._cached(c) is None]
        if not missing:
            return
        now = datetime.now(UTC)
        made = {c: AESGCM.generate_key(bit_length=256) for c in missing}
        rows = [
            {"child_id": str(c), "wrapped_key": self._wrapped(c, key), "created_at": now, "erased_at": None}
            for c, key in made.items()
        ]
        t = child_keys_table
        with self.engine.begin() as conn:
            stored = {UUID(child_id) for child_id in conn.execute(
                dialect_insert(conn, t).on_conflict_do_nothing().returning(t.c.child_id), rows
            ).scalars()}
        loaded = self._clock()
        with self._lock:  # the keys written here are known: no need to read them back
            for child_id in stored:
                self._cache[child_id] = (loaded, made[child_id])
                self._cache.move_to_end(child_id)
            while len(self._cache) > KEY_CACHE_SIZE:
                self._cache.popitem(last=False)
        self._load([c for c in missing if c not in stored])  # written by another process meanwhile: theirs wins

    def cipher(self, child_id: UUID) -> AESGCM:
        """The child's key, to seal or open; ``PersonalDataErased`` when it was destroyed (or never existed)."""
        found = self._cached(child_id)
        if found is None:
            self._load([child_id])
            found = self._cached(child_id)
        if found is None or found is _ERASED:
            raise PersonalDataErased(child_id)
        return AESGCM(found)

    def preload(self, child_ids: Iterable[UUID]) -> None:
        """Read the keys of these children not in the cache, in one query per thousand (before opening many)."""
        missing = [c for c in set(child_ids) if self._cached(c) is None]
        if missing:
            self._load(missing)

    def erase(self, child_id: UUID) -> bool:
        """Destroy the child's key (idempotent). Whether a key was destroyed now."""
        with self.engine.begin() as conn:
            done = conn.execute(
                update(child_keys_table)
                .where(child_keys_table.c.child_id == str(child_id), child_keys_table.c.wrapped_key.is_not(None))
                .values(wrapped_key=None, erased_at=datetime.now(UTC))
            ).rowcount
            if not done:  # no key yet: record the erasure, so that none is made later
                insert_ignoring_duplicates(conn, child_keys_table, [{
                    "child_id": str(child_id), "wrapped_key": None, "created_at": datetime.now(UTC),
                    "erased_at": datetime.now(UTC),
                }])
        with self._lock:
            self._cache[child_id] = (self._clock(), _ERASED)
        return bool(done)

    def seal(self, child_id: UUID, plaintext: bytes, bound: bytes = b"") -> bytes:
        """``plaintext`` sealed under the child's key (nonce + ciphertext and tag), bound to ``bound``."""
        nonce = os.urandom(12)
        return nonce + self.cipher(child_id).encrypt(nonce, plaintext, bound)

    def open(self, child_id: UUID, sealed: bytes, bound: bytes = b"") -> bytes:
        """What ``seal`` sealed; ``PersonalDataErased`` once the key is destroyed, ``InvalidTag`` if altered."""
        return self.cipher(child_id).decrypt(sealed[:12], sealed[12:], bound)

    def blinder(self, purpose: str) -> Callable[[str], str]:
        """A keyed hash for equality lookups on personal values (an index's keys): equal values give equal
        hashes, and without the data key the hashes say nothing. One key per purpose, derived from the data key."""
        key = hmac.new(self._blind_root, purpose.encode(), hashlib.sha256).digest()

        def blind(value: str) -> str:
            return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:48]

        return blind

    def is_erased(self, child_id: UUID) -> bool:
        try:
            self.cipher(child_id)
        except PersonalDataErased:
            return True
        return False

    def _wrapped(self, child_id: UUID, key: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._wrap.encrypt(nonce, key, child_id.bytes)

    def _cached(self, child_id: UUID) -> Any:
        with self._lock:
            entry = self._cache.get(child_id)
            if entry is None:
                return None
            if self._clock() - entry[0] > KEY_CACHE_TTL_S:
                del self._cache[child_id]
                return None
            self._cache.move_to_end(child_id)
            return entry[1]

    def _load(self, child_ids: list[UUID]) -> None:
        if not child_ids:
            return
        t = child_keys_table
        found: dict[UUID, Any] = {}
        with reading(self.engine) as conn:
            for start in range(0, len(child_ids), 1000):
                chunk = [str(c) for c in child_ids[start:start + 1000]]
                for row in conn.execute(select(t.c.child_id, t.c.wrapped_key).where(t.c.child_id.in_(chunk))):
                    child_id = UUID(row.child_id)
                    wrapped = row.wrapped_key
                    found[child_id] = _ERASED if wrapped is None else self._unwrap(child_id, wrapped)
        now = self._clock()
        with self._lock:
            for child_id, value in found.items():
                self._cache[child_id] = (now, value)
                self._cache.move_to_end(child_id)
            while len(self._cache) > KEY_CACHE_SIZE:
                self._cache.popitem(last=False)

    def _unwrap(self, child_id: UUID, wrapped: bytes) -> bytes:
        try:
            return self._wrap.decrypt(wrapped[:12], wrapped[12:], child_id.bytes)
        except InvalidTag:
            raise ValueError(f"the key of child {child_id} does not open with this data key") from None


class ChildDataMapper(Mapper[UUID]):
    """eventsourcing's mapper, sealing the stored state of every event about a child under the child's key."""

    def __init__(self, transcoder: Transcoder, keys: ChildKeys) -> None:
        super().__init__(transcoder)
        self.keys = keys
        self.first_event: Callable[[UUID], StoredEvent | None] = lambda _: None  # set by the application
        self._subjects: OrderedDict[UUID, UUID | None] = OrderedDict()
        self._lock = threading.Lock()

    def subject_of(self, domain_event: Any) -> UUID | None:
        child_id = getattr(domain_event, "child_id", None)
        originator_id: UUID = domain_event.originator_id
        if isinstance(child_id, UUID):
            self._learn(originator_id, child_id)
            return child_id
        with self._lock:
            if originator_id in self._subjects:
                return self._subjects[originator_id]
        first = self.first_event(originator_id)
        subject = _sealed_for(first.state) if first is not None else None
        self._learn(originator_id, subject)
        return subject

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        stored = super().to_stored_event(domain_event)
        subject = self.subject_of(domain_event)
        if subject is None:
            return stored
        nonce = os.urandom(12)
        sealed = self.keys.cipher(subject).encrypt(nonce, stored.state, _bound(stored, subject))
        return StoredEvent(
            originator_id=stored.originator_id, originator_version=stored.originator_version, topic=stored.topic,
            state=MAGIC + subject.bytes + nonce + sealed,
        )

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        subject = _sealed_for(stored_event.state)
        if subject is None:
            return super().to_domain_event(stored_event)
        self._learn(_as_uuid(stored_event.originator_id), subject)
        state = stored_event.state
        try:
            plain = self.keys.cipher(subject).decrypt(state[len(MAGIC) + 16:_HEADER], state[_HEADER:],
                                                      _bound(stored_event, subject))
        except InvalidTag:
            raise MapperDeserialisationError(
                f"stored event {stored_event.originator_id}/{stored_event.originator_version} does not open: "
                "altered, or sealed for another record"
            ) from None
        return super().to_domain_event(StoredEvent(
            originator_id=stored_event.originator_id, originator_version=stored_event.originator_version,
            topic=stored_event.topic, state=plain,
        ))

    def preload(self, stored_events: Iterable[StoredEvent]) -> None:
        """Read the keys of the children these stored events are sealed for, in bulk (before opening a batch)."""
        self.keys.preload(s for e in stored_events if (s := _sealed_for(e.state)) is not None)

    def subjects_of(self, domain_events: Iterable[Any]) -> set[UUID]:
        return {s for e in domain_events if (s := self.subject_of(e)) is not None}

    def _learn(self, originator_id: UUID, subject: UUID | None) -> None:
        with self._lock:
            self._subjects[originator_id] = subject
            self._subjects.move_to_end(originator_id)
            if len(self._subjects) > SUBJECT_CACHE_SIZE:
                self._subjects.popitem(last=False)


def _sealed_for(state: bytes) -> UUID | None:
    """The child whose key seals this stored state; None for a state that is not sealed."""
    if len(state) >= _HEADER and state[:len(MAGIC)] == MAGIC:
        return UUID(bytes=bytes(state[len(MAGIC):len(MAGIC) + 16]))
    return None


def _bound(stored: StoredEvent, subject: UUID) -> bytes:
    """What the seal is bound to besides the key: the record's place (a sealed state moved elsewhere fails)."""
    return b"|".join((MAGIC, subject.bytes, str(stored.originator_id).encode(),
                      str(stored.originator_version).encode(), stored.topic.encode()))


def _as_uuid(value: Any) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))


# --- the data key ----------------------------------------------------------------------------------------------------


def data_key(settings: Settings) -> bytes:
    """The service's data key: the setting, else in development a key file generated once in the data folder (an
    in-memory key for the memory storage of tests)."""
    if settings.data_key is not None:
        return base64.b64decode(settings.data_key.get_secret_value().strip())
    if settings.environment == "production":  # the settings validator refuses this already
        raise ValueError("HUHANG_DATA_KEY must be set in production")
    if settings.storage == "memory":
        return secrets.token_bytes(32)
    text, created = read_or_create(settings.data_dir / KEY_FILE_NAME, new_data_key)
    if created:
        logger.warning("generated a development data key in %s", settings.data_dir / KEY_FILE_NAME)
    return base64.b64decode(text)


def new_data_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def child_keys(settings: Settings, engine: Engine) -> ChildKeys:
    return ChildKeys(engine, data_key(settings))


class ErasureFollower:
    """A service's part in a child's erasure: on ``ChildDataErased`` (from intake), destroy the service's own key
    for the child and purge what the service derived from the child's personal data. Idempotent."""

    def __init__(self, keys: ChildKeys | None, purges: Sequence[Callable[[list[UUID]], None]] = ()) -> None:
        self.keys = keys
        self.purges = list(purges)

    def handle(self, events: Sequence[Any]) -> None:
        erased = [e.data.child_id for e in events if e.type == "cn.huhang.child.data-erased.v1"]
        if not erased:
            return
        for child_id in erased:
            if self.keys is not None:
                self.keys.erase(child_id)
        for purge in self.purges:
            purge(erased)
        logger.info("erased the personal data of %d child(ren) here", len(erased))


def keys_of(application: Any) -> ChildKeys | None:
    """The child keys an application seals with (None for one built without)."""
    mapper = getattr(application, "mapper", None)
    return mapper.keys if isinstance(mapper, ChildDataMapper) else None
