"""The token signing keys: one active Ed25519 key signs, retired public keys still verify until dropped.

``HUHANG_AUTH_SIGNING_KEY`` is the base64 of the active 32-byte private key; ``HUHANG_AUTH_TRUSTED_KEYS`` lists
the base64 public keys of retired keys (comma-separated). Rotation: make a key with ``huhang auth new-key``, move
the old key's public key (``huhang auth public-key``) into the trusted list, set the new private key everywhere,
and drop the old public key once the longest token lifetime has passed. Each key is named in the token's ``kid``
header by its key id (the first 16 hex of the SHA-256 of its public key, as the audit checkpoints do).

In development an unset key is generated once into ``<data_dir>/auth-signing.key`` (mode 0600), shared by every
process on that folder; with memory storage one key is generated per process and never written. Production
refuses to start without a configured key.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from huhang.checkpoints import decode_key_bytes, key_id_of
from huhang.keyfiles import read_or_create
from huhang.settings import Settings

logger = logging.getLogger(__name__)

KEY_FILE_NAME = "auth-signing.key"

_memory_key: Ed25519PrivateKey | None = None
_memory_key_lock = threading.Lock()


class MissingSigningKey(RuntimeError):
    """Production without HUHANG_AUTH_SIGNING_KEY: the process must not start."""


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def public_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def private_b64(key: Ed25519PrivateKey) -> str:
    return base64.b64encode(key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())).decode()


def public_b64(key: Ed25519PublicKey) -> str:
    return base64.b64encode(public_bytes(key)).decode()


@dataclass(frozen=True)
class KeyRing:
    """The active signing key and every public key that verifies, by key id."""

    signing_key: Ed25519PrivateKey
    verifying: Mapping[str, Ed25519PublicKey]

    @property
    def active_kid(self) -> str:
        return key_id_of(self.signing_key.public_key())

    @classmethod
    def of(cls, signing_key: Ed25519PrivateKey, retired: tuple[Ed25519PublicKey, ...] = ()) -> KeyRing:
        keys = {key_id_of(k): k for k in retired}
        keys[key_id_of(signing_key.public_key())] = signing_key.public_key()
        return cls(signing_key, keys)

    def jwks(self) -> dict[str, Any]:
        """The public keys as a JSON Web Key Set (RFC 7517, OKP keys per RFC 8037)."""
        return {"keys": [
            {"kty": "OKP", "crv": "Ed25519", "x": _b64url(public_bytes(key)), "kid": kid, "alg": "EdDSA",
             "use": "sig"}
            for kid, key in sorted(self.verifying.items())
        ]}


def load_key_ring(settings: Settings) -> KeyRing:
    """The key ring the settings name (development: the generated key). ``MissingSigningKey`` in production
    without a key."""
    retired = tuple(
        Ed25519PublicKey.from_public_bytes(decode_key_bytes(text, f"HUHANG_AUTH_TRUSTED_KEYS[{i}]"))
        for i, text in enumerate(t for t in settings.auth_trusted_keys.split(",") if t.strip())
    )
    return KeyRing.of(_signing_key(settings), retired)


def _signing_key(settings: Settings) -> Ed25519PrivateKey:
    if settings.auth_signing_key is not None:
        raw = decode_key_bytes(settings.auth_signing_key.get_secret_value(), "HUHANG_AUTH_SIGNING_KEY")
        return Ed25519PrivateKey.from_private_bytes(raw)
    if settings.environment == "production":
        raise MissingSigningKey("HUHANG_AUTH_SIGNING_KEY must be set in production (make one: huhang auth new-key)")
    if settings.storage == "memory":
        return _process_key()
    path = settings.data_dir / KEY_FILE_NAME
    text, created = read_or_create(path, lambda: private_b64(Ed25519PrivateKey.generate()))
    key = Ed25519PrivateKey.from_private_bytes(decode_key_bytes(text, str(path)))
    if created:
        logger.warning("generated a development token signing key (key id %s) in %s", key_id_of(key.public_key()), path)
    return key


def _process_key() -> Ed25519PrivateKey:
    """Memory storage: one key for every app of this process (tests mint tokens the apps accept)."""
    global _memory_key
    with _memory_key_lock:
        if _memory_key is None:
            _memory_key = Ed25519PrivateKey.generate()
        return _memory_key


