"""Who may sign in: OAuth2 clients (agency systems) and people's accounts, each bound to an agency, an area and roles.

The accounts live in a store of their own (``read_model_engine(settings, "auth")``: the ``<prefix>auth`` schema on
PostgreSQL, ``auth.read.sqlite`` in the data folder). Secrets and passwords are stored only as Argon2id hashes
(argon2-cffi): a secret is generated here (``hh_`` and 43 random URL-safe characters), shown once to whoever
created it, and never kept in clear nor logged. Logs name client and account ids only: a login name may be a
person's name.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Boolean, Column, DateTime, Engine, MetaData, String, Table, select, update
from sqlalchemy.exc import IntegrityError

from contracts.agencies import Agency
from huhang.auth.principal import Principal, Role
from huhang.problems import Conflict, FieldError, NotFound, Unprocessable
from huhang.sql import create_tables, reading

SECRET_PREFIX = "hh_"  # noqa: S105 - the marker of our secrets, not a secret
CLIENT_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{2,63}$")
LOGIN_NAME = re.compile(r"^[\w.@-]{3,64}$")

metadata = MetaData()
clients_table = Table(
    "auth_clients",
    metadata,
    Column("client_id", String(64), primary_key=True),
    Column("secret_hash", String(255), nullable=False),
    Column("agency", String(40), nullable=False),
    Column("roles", String(255), nullable=False),  # comma-separated Role values
    Column("township", String(64), nullable=True),
    Column("village", String(64), nullable=True),
    Column("enabled", Boolean, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
people_table = Table(
    "auth_people",
    metadata,
    Column("account_id", String(64), primary_key=True),
    Column("login_name", String(64), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("agency", String(40), nullable=False),
    Column("roles", String(255), nullable=False),
    Column("township", String(64), nullable=True),
    Column("village", String(64), nullable=True),
    Column("enabled", Boolean, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Account:
    """A client or a person as listed: everything but the hash (and a person's login name is kept apart)."""

    id: str  # client id or account id
    kind: Literal["client", "person"]
    agency: Agency
    roles: frozenset[Role]
    township: str | None
    village: str | None
    enabled: bool
    login_name: str | None = None  # people only

    def principal(self) -> Principal:
        return Principal(self.id, self.kind, self.agency, self.roles, self.township, self.village)


@dataclass(frozen=True)
class Created:
    """A new client or person with the secret (or password) to hand over: shown once, never stored in clear."""

    account: Account
    secret: str


class AccountStore:
    """Creates, disables and authenticates clients and people. Authentication answers ``None`` for an unknown
    id, a wrong secret and a disabled account alike, in about the same time, so callers cannot tell them apart."""

    def __init__(self, engine: Engine, hasher: PasswordHasher | None = None) -> None:
        self.engine = engine
        self.hasher = hasher or PasswordHasher()
        self._dummy_hash: str | None = None
        create_tables(metadata, engine)

    # --- creation and management -------------------------------------------------------------------------------

    def create_client(
        self, agency: Agency, roles: Iterable[Role], *, client_id: str | None = None, township: str | None = None,
        village: str | None = None, secret: str | None = None,
    ) -> Created:
        client_id = client_id or f"{agency.value.replace('_', '-')}-{secrets.token_hex(4)}"
        if not CLIENT_ID.match(client_id):
            raise Unprocessable("The client id is not valid.", errors=[FieldError(
                field="client_id", reason="3-64 characters: lower-case letters, digits, '.', '_' or '-'")])
        role_set = _roles(roles)
        _check_area(role_set, township, village)
        secret = secret or new_secret()
        row = {
            "client_id": client_id, "secret_hash": self.hasher.hash(secret), "agency": agency.value,
            "roles": _roles_text(role_set), "township": township, "village": village, "enabled": True,
            "created_at": datetime.now(UTC),
        }
        self._insert(clients_table, row, "client_id")
        return Created(self._client(client_id), secret)

    def create_person(
        self, login_name: str, agency: Agency, roles: Iterable[Role], *, township: str | None = None,
        village: str | None = None, password: str | None = None,
    ) -> Created:
        if not LOGIN_NAME.match(login_name):
            raise Unprocessable("The login name is not valid.", errors=[FieldError(
                field="login_name", reason="3-64 characters: letters, digits, '.', '_', '@' or '-'")])
        role_set = _roles(roles)
        if Role.system in role_set:
            raise Unprocessable("People cannot hold the system role.",
                                errors=[FieldError(field="roles", reason="system is for the platform's own workers")])
        _check_area(role_set, township, village)
        password = password or new_secret()
        account_id = f"p-{secrets.token_hex(8)}"
        row = {
            "account_id": account_id, "login_name": login_name, "password_hash": self.hasher.hash(password),
            "agency": agency.value, "roles": _roles_text(role_set), "township": township, "village": village,
            "enabled": True, "created_at": datetime.now(UTC),
        }
        self._insert(people_table, row, "login_name")
        return Created(self._person(people_table.c.account_id == account_id), password)

    def set_enabled(self, id_or_login: str, enabled: bool) -> Account:
        table, key = self._find(id_or_login)
        with self.engine.begin() as conn:
            conn.execute(update(table).where(key == id_or_login).values(enabled=enabled))
        return self._find_account(id_or_login)

    def rotate_secret(self, id_or_login: str) -> Created:
        """A new secret (client) or password (person); the old one stops working at once."""
        table, key = self._find(id_or_login)
        secret = new_secret()
        column = "secret_hash" if table is clients_table else "password_hash"
        with self.engine.begin() as conn:
            conn.execute(update(table).where(key == id_or_login).values({column: self.hasher.hash(secret)}))
        return Created(self._find_account(id_or_login), secret)

    def accounts(self) -> list[Account]:
        with reading(self.engine) as conn:
            clients = [_client_of(r._mapping) for r in conn.execute(select(clients_table).order_by("client_id"))]
            people = [_person_of(r._mapping) for r in conn.execute(select(people_table).order_by("login_name"))]
        return clients + people

    def find(self, id_or_login: str) -> Account | None:
        try:
            return self._find_account(id_or_login)
        except NotFound:
            return None

    # --- authentication ----------------------------------------------------------------------------------------

    def authenticate_client(self, client_id: str, secret: str) -> Principal | None:
        with reading(self.engine) as conn:
            row = conn.execute(select(clients_table).where(clients_table.c.client_id == client_id)).first()
        if row is None:
            self._burn(secret)
            return None
        if not self._verify(row.secret_hash, secret) or not row.enabled:
            return None
        return _client_of(row._mapping).principal()

    def authenticate_person(self, login_name: str, password: str) -> Principal | None:
        with reading(self.engine) as conn:
            row = conn.execute(select(people_table).where(people_table.c.login_name == login_name)).first()
        if row is None:
            self._burn(password)
            return None
        if not self._verify(row.password_hash, password) or not row.enabled:
            return None
        return _person_of(row._mapping).principal()

    def _verify(self, stored: str, given: str) -> bool:
        try:
            return self.hasher.verify(stored, given)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def _burn(self, given: str) -> None:
        """An unknown id costs what a known one costs: no timing oracle for which ids exist."""
        if self._dummy_hash is None:
            self._dummy_hash = self.hasher.hash(new_secret())
        self._verify(self._dummy_hash, given)

    # --- rows --------------------------------------------------------------------------------------------------

    def _insert(self, table: Table, row: Mapping[str, object], field: str) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(table.insert().values(row))
        except IntegrityError:
            raise Conflict(f"That {field.replace('_', ' ')} is taken.",
                           errors=[FieldError(field=field, reason="already exists")]) from None

    def _find(self, id_or_login: str) -> tuple[Table, Column[str]]:
        with reading(self.engine) as conn:
            if conn.execute(select(clients_table.c.client_id).where(clients_table.c.client_id == id_or_login)).first():
                return clients_table, clients_table.c.client_id
            for column in (people_table.c.account_id, people_table.c.login_name):
                if conn.execute(select(column).where(column == id_or_login)).first():
                    return people_table, column
        raise NotFound("No client or person by that id.", errors=[FieldError(field="id", reason="unknown")])

    def _find_account(self, id_or_login: str) -> Account:
        table, key = self._find(id_or_login)
        if table is clients_table:
            return self._client(id_or_login)
        return self._person(key == id_or_login)

    def _client(self, client_id: str) -> Account:
        with reading(self.engine) as conn:
            row = conn.execute(select(clients_table).where(clients_table.c.client_id == client_id)).one()
        return _client_of(row._mapping)

    def _person(self, where: object) -> Account:
        with reading(self.engine) as conn:
            row = conn.execute(select(people_table).where(where)).one()  # type: ignore[arg-type]
        return _person_of(row._mapping)


def _roles(roles: Iterable[Role]) -> frozenset[Role]:
    role_set = frozenset(roles)
    if not role_set:
        raise Unprocessable("At least one role is needed.", errors=[FieldError(field="roles", reason="empty")])
    return role_set


def _check_area(roles: frozenset[Role], township: str | None, village: str | None) -> None:
    if village is not None and township is None:
        raise Unprocessable("A village is named within its township.",
                            errors=[FieldError(field="township", reason="required with a village")])
    if Role.child_director in roles and village is None:
        raise Unprocessable("A child director works in a village.",
                            errors=[FieldError(field="village", reason="required for a child director")])


def _roles_text(roles: frozenset[Role]) -> str:
    return ",".join(sorted(r.value for r in roles))


def _parse_roles(text: str) -> frozenset[Role]:
    return frozenset(Role(r) for r in text.split(",") if r)


def _client_of(row: object) -> Account:
    r = dict(row)  # type: ignore[call-overload]
    return Account(r["client_id"], "client", Agency(r["agency"]), _parse_roles(r["roles"]), r["township"],
                   r["village"], bool(r["enabled"]))


def _person_of(row: object) -> Account:
    r = dict(row)  # type: ignore[call-overload]
    return Account(r["account_id"], "person", Agency(r["agency"]), _parse_roles(r["roles"]), r["township"],
                   r["village"], bool(r["enabled"]), login_name=r["login_name"])
