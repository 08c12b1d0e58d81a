"""Settings from the environment (prefix ``HUHANG_``). Built once, in a composition root, never at import."""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_IDENTITY_KEY = "development-only-identity-key"


class Settings(BaseSettings):
    # Errors never echo the input: it may hold a secret (the identity or the audit signing key).
    model_config = SettingsConfigDict(env_prefix="HUHANG_", extra="ignore", hide_input_in_errors=True)

    environment: Literal["development", "production"] = "development"

    # Storage: "sqlite" files in data_dir (embedded default), "postgres" at database_url, "memory" for tests.
    storage: Literal["sqlite", "postgres", "memory"] = "sqlite"
    data_dir: Path = Path("data")
    database_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    schema_prefix: str = "huhang_"
    # While the database cannot be reached (restarting, failing over), requests answer 503 with this Retry-After
    # (seconds) instead of failing; the pools reconnect by themselves when it is back (huhang/problems.py).
    unavailable_retry_after_s: int = Field(default=5, ge=1, le=3600)

    # Transport between services: "inprocess" follows the notification logs directly (embedded);
    # "kafka" publishes through the outbox relays and consumes with consumer groups (distributed).
    transport: Literal["inprocess", "kafka"] = "inprocess"
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    # Prepended to every topic and consumer group name: several platforms (or test runs) on one cluster.
    kafka_namespace: str = ""
    kafka_max_poll_interval_ms: int = 300_000
    kafka_session_timeout_ms: int = 10_000

    # Where the router finds the referral service in distributed mode (embedded mode calls it in-process).
    referral_url: str = "http://127.0.0.1:8002"
    # Where guardianship files a report from a visit finding in distributed mode (intake's API), and where the
    # router's care checks reach guardianship (embedded mode calls both in-process).
    intake_url: str = "http://127.0.0.1:8001"
    guardianship_url: str = "http://127.0.0.1:8003"

    identity_key: SecretStr = SecretStr(DEV_IDENTITY_KEY)
    max_body_bytes: int = 64 * 1024
    # Routes that take a file upload (the survey import, POST /v1/survey-imports) accept bodies up to this size.
    max_upload_bytes: int = 50 * 1024 * 1024
    follow_interval_s: float = 0.05
    # A follower that keeps up reads its log at most once per window, so that events saved together are handled
    # as one batch: under load, far less work per event for a little latency per hop.
    follow_window_s: float = 0.25
    sweep_interval_s: float = 60.0  # how often overdue referrals are escalated
    care_check_interval_s: float = 3600.0  # how often overdue visits, parent contacts and agreements are checked
    # How often the indicators service re-evaluates colours after new events (services/indicators/colours.py).
    indicators_colour_check_interval_s: float = Field(default=60.0, ge=0)
    # The visit regime (calendar months): contact every child monthly, visit the home every 3 months, and monthly
    # where the plan asks for more frequent visits (a disability, psychological abnormality, medium or high risk).
    visit_contact_every_months: int = Field(default=1, ge=1, le=12)
    visit_home_every_months: int = Field(default=3, ge=1, le=12)
    visit_frequent_home_every_months: int = Field(default=1, ge=1, le=12)
    # A routing rules file of your own (default: contracts/routing_rules.yaml); changes apply without a restart.
    routing_rules_path: Path | None = None
    batch_size: int = 500
    router_batch_size: int = 100
    log_level: str = "INFO"
    # Fault injection for the crash tests only: "<consumer name>:before-commit" kills the process there.
    failpoint: str | None = None
    # Poison messages (huhang/parking.py): a batch failing this many times in a row (faults of the database, the
    # broker or a peer excepted: those are retried for ever) is split to park the events that fail alone.
    poison_max_attempts: int = Field(default=5, ge=1, le=100)
    # The background processes' CPU priority (``huhang worker``, ``huhang router``): a niceness added at start, so
    # that on a shared machine the request-serving APIs run first and the followers catch up in the gaps (their lag
    # is reported: /v1/ops/streams). 0 leaves the priority alone; containers use CPU shares (compose.yaml) instead.
    background_nice: int = Field(default=0, ge=0, le=19)
    # PostgreSQL connections each process keeps open per pool (the event store's, the read models'), and how many
    # more it may open for a burst (opened and closed again: a new backend each time). Processes x pools x
    # (size + overflow) must fit the server's max_connections.
    postgres_pool_size: int = Field(default=2, ge=1, le=100)
    postgres_max_overflow: int = Field(default=10, ge=0, le=100)
    # Check every pooled connection with a round trip before each use. Off: a connection broken by a PostgreSQL
    # restart fails its first use instead (the request answers 503 with Retry-After, the event store retries it),
    # and the failure invalidates the rest of the pool so that each connection is replaced once, not once per use.
    postgres_pre_ping: bool = False
    # How old an agency's counts by status on its inbox page may be (s): counted again at most this often per
    # process (services/referral/inbox.py). 0: counted on every read.
    inbox_counts_max_age_s: float = Field(default=1.0, ge=0, le=60)
    # How old an agency's first inbox pages may be (s), as the API answers them: kept per process and key (the
    # agency, the page size and the filters) at most this long, forgotten when the process projects referral events
    # itself. Every desk of an agency opens the same first page; 0: built on every read.
    inbox_page_max_age_s: float = Field(default=1.0, ge=0, le=60)
    # Threads an API runs its blocking work on (route handlers and dependencies that query the database); anyio's
    # default is 40. Many more runnable threads than cores contend for the GIL, each hand-over costing CPU (the
    # county's mixed workload on 2 cores, distributed: 200 requests/s missed with 40 threads, p99 802 ms, and held
    # with 8, p99 349 ms; 4 missed again, p99 1.3 s: too few to keep the database and the group commit busy).
    api_threads: int = Field(default=8, ge=1, le=400)
    # FastAPI's native OpenTelemetry spans and metrics for every request (when an OpenTelemetry SDK is configured
    # in the process). Off: no per-request lookup of the OpenTelemetry providers.
    telemetry: bool = False

    # Tamper evidence (huhang/chain.py, huhang/checkpoints.py): every service's log is hash-chained, and its head is
    # signed every interval (and at shutdown) and published to files in audit_publish_dir (default data_dir/audit).
    audit_checkpoint_interval_s: float = Field(default=60.0, gt=0)
    audit_publish_dir: Path | None = None
    # The base64 of a 32-byte Ed25519 private key. Unset in development: one is generated into
    # data_dir/audit-signing.key; production refuses to start without it.
    audit_signing_key: SecretStr | None = None
    # Public keys (base64, comma-separated) whose checkpoints also verify: those of retired signing keys.
    audit_trusted_keys: str = ""

    # Authentication (huhang/auth/): access tokens are JWTs signed with Ed25519 (EdDSA). The base64 of a 32-byte
    # private key; unset in development: one is generated into data_dir/auth-signing.key (memory storage: one per
    # process); production refuses to start without it. Make one with `huhang auth new-key`.
    auth_signing_key: SecretStr | None = None
    # Public keys (base64, comma-separated) of retired signing keys: their tokens still verify until they expire.
    # Keep a retired key here for at least the longest token lifetime after a rotation, then remove it.
    auth_trusted_keys: str = ""
    # Token lifetimes. Tokens are not revocable: disabling a client or a person stops new tokens at once, and the
    # ones already issued lapse within these lifetimes. Agency systems fetch a new token unattended (15 min);
    # people sign in by hand, so theirs lasts one working hour (no refresh tokens).
    auth_client_token_lifetime_s: int = Field(default=15 * 60, ge=60, le=24 * 3600)
    auth_person_token_lifetime_s: int = Field(default=60 * 60, ge=60, le=24 * 3600)
    auth_issuer: str = "huhang"

    # Rate limits (huhang/ratelimit.py), token buckets kept per API process: requests a second and burst per
    # authenticated client (its token's subject; requests without a valid token: per IP address, at the same rate),
    # and per IP address for the token endpoint (Argon2id: slow on purpose, and where secrets would be guessed).
    # Generous defaults: the benchmarks file 50 reports/s and more from one client.
    rate_limit_enabled: bool = True
    rate_limit_per_client_per_s: float = Field(default=1000.0, gt=0)
    rate_limit_per_client_burst: int = Field(default=2000, ge=1)
    rate_limit_token_endpoint_per_s: float = Field(default=20.0, gt=0)
    rate_limit_token_endpoint_burst: int = Field(default=200, ge=1)

    # Authorization (huhang/access/): how long a break-the-glass grant lasts, and how often the access log's
    # buffered entries are written (an entry queued when the process dies is lost: at most this window).
    break_glass_duration_s: float = Field(default=4 * 3600, gt=0, le=24 * 3600)
    access_log_flush_interval_s: float = Field(default=0.5, gt=0, le=60)

    # Outbound webhooks (services/notifications/webhooks_*.py). Retries: exponential backoff with full jitter, the
    # delay after the n-th failed attempt uniform in [0, min(cap, base * factor^(n-1))]; the defaults spread 8
    # attempts over about a day, then the delivery is dead-lettered. Each endpoint has at most `per_endpoint`
    # requests in flight, from a pool of `senders` threads, so one slow endpoint never holds up the others.
    webhook_max_attempts: int = Field(default=8, ge=1, le=50)
    webhook_backoff_base_s: float = Field(default=30.0, gt=0)
    webhook_backoff_factor: float = Field(default=4.0, ge=1)
    webhook_backoff_cap_s: float = Field(default=12 * 3600.0, gt=0)
    webhook_timeout_s: float = Field(default=10.0, gt=0, le=60)
    webhook_per_endpoint: int = Field(default=4, ge=1, le=32)  # a failing endpoint: one at a time
    webhook_senders: int = Field(default=16, ge=1, le=256)
    # A delivery claimed by a process that died is claimed again after this lease (longer than any request).
    webhook_lease_s: float = Field(default=60.0, gt=0)
    webhook_poll_interval_s: float = Field(default=0.2, gt=0)
    # After a secret rotation the previous secret stays valid (and signs too) this long.
    webhook_secret_overlap_s: float = Field(default=24 * 3600.0, ge=0)

    # Inbound facts (huhang/idempotency.py): how long a request holds its Idempotency-Key while in flight (a crashed
    # request frees it after this), and how long a stored answer is replayed for the same key.
    idempotency_lease_s: float = Field(default=30.0, gt=0, le=3600)
    idempotency_retention_s: float = Field(default=24 * 3600, gt=0)
    # The notifications stream (Server-Sent Events): a heartbeat comment this often, and the stream ends after
    # max_s (the client reconnects with Last-Event-ID; proxies never hold a stream forever).
    notifications_stream_heartbeat_s: float = Field(default=15.0, gt=0)
    notifications_stream_poll_s: float = Field(default=0.5, gt=0)
    notifications_stream_max_s: float = Field(default=300.0, gt=0)

    # Personal data at rest (huhang/personal.py): each child's events are sealed with a key of the child's own, kept
    # wrapped with this data key (base64 of 32 bytes). Unset in development: generated into data_dir/personal-data.key;
    # production refuses to start without it.
    data_key: SecretStr | None = None

    @model_validator(mode="after")
    def _data_key_is_32_bytes(self) -> Settings:
        if self.data_key is None:
            if self.environment == "production":
                raise ValueError("HUHANG_DATA_KEY must be set in production (base64 of 32 random bytes)")
        else:
            _check_key_b64(self.data_key.get_secret_value(), "HUHANG_DATA_KEY")
        return self

    @model_validator(mode="after")
    def _no_placeholder_secrets_in_production(self) -> Settings:
        if self.environment == "production" and self.identity_key.get_secret_value() == DEV_IDENTITY_KEY:
            raise ValueError("HUHANG_IDENTITY_KEY must be set to a real secret in production")
        return self

    @model_validator(mode="after")
    def _audit_keys_are_ed25519(self) -> Settings:
        if self.audit_signing_key is None:
            if self.environment == "production":
                raise ValueError("HUHANG_AUDIT_SIGNING_KEY must be set in production (base64 of an Ed25519 key)")
        else:
            _check_key_b64(self.audit_signing_key.get_secret_value(), "HUHANG_AUDIT_SIGNING_KEY")
        for i, key in enumerate(k for k in self.audit_trusted_keys.split(",") if k.strip()):
            _check_key_b64(key, f"HUHANG_AUDIT_TRUSTED_KEYS[{i}]")
        return self

    @model_validator(mode="after")
    def _auth_keys_are_ed25519(self) -> Settings:
        """Malformed keys are refused here; a missing key in production is refused when the API or a worker
        starts (huhang/auth/keys.py), so that commands that sign nothing run without one."""
        if self.auth_signing_key is not None:
            _check_key_b64(self.auth_signing_key.get_secret_value(), "HUHANG_AUTH_SIGNING_KEY")
        for i, key in enumerate(k for k in self.auth_trusted_keys.split(",") if k.strip()):
            _check_key_b64(key, f"HUHANG_AUTH_TRUSTED_KEYS[{i}]")
        return self


def _check_key_b64(text: str, name: str) -> None:
    """A 32-byte key in base64; the message names the setting, never the value."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{name} is not valid base64") from None
    if len(raw) != 32:
        raise ValueError(f"{name} must be the base64 of 32 bytes, not {len(raw)} bytes")
