"""``huhang auth ...``: signing keys, clients and people's accounts, from the shell of whoever runs the platform.

Secrets and passwords are printed once, when made (``create-client``, ``create-person``, ``rotate-secret``), to
stdout only; ``list`` never shows them, and nothing here logs them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from contracts.agencies import Agency
from huhang.auth.accounts import Account, AccountStore, Created
from huhang.auth.principal import Role
from huhang.problems import DomainError
from huhang.settings import Settings

Command = Callable[[argparse.Namespace, Settings], int]


def _store(settings: Settings) -> AccountStore:
    from huhang.storage import read_model_engine

    return AccountStore(read_model_engine(settings, "auth"))


def _managed(action: Callable[[AccountStore, argparse.Namespace], int]) -> Command:
    """Run ``action`` on the settings' accounts store; a refused request prints its reason and exits 1."""

    def run(args: argparse.Namespace, settings: Settings) -> int:
        store = _store(settings)
        try:
            return action(store, args)
        except DomainError as exc:
            reasons = "; ".join(f"{e.field}: {e.reason}" for e in exc.errors)
            print(f"huhang auth: {exc.detail}{f' ({reasons})' if reasons else ''}", file=sys.stderr)
            return 1
        finally:
            store.engine.dispose()

    return run


def _show_created(created: Created, what: str) -> int:
    account = created.account
    lines = {"kind": account.kind, "id": account.id}
    if account.login_name is not None:
        lines["login_name"] = account.login_name
    lines[what] = created.secret
    for key, value in lines.items():
        print(f"{key}: {value}")
    print(f"(the {what.replace('_', ' ')} is shown only now: hand it over securely)", file=sys.stderr, flush=True)
    return 0


def _create_client(store: AccountStore, args: argparse.Namespace) -> int:
    created = store.create_client(
        Agency(args.agency), [Role(r) for r in args.role], client_id=args.client_id, township=args.township,
        village=args.village,
    )
    return _show_created(created, "client_secret")


def _create_person(store: AccountStore, args: argparse.Namespace) -> int:
    created = store.create_person(
        args.login, Agency(args.agency), [Role(r) for r in args.role], township=args.township, village=args.village,
    )
    return _show_created(created, "password")


def _set_enabled(enabled: bool) -> Callable[[AccountStore, argparse.Namespace], int]:
    def run(store: AccountStore, args: argparse.Namespace) -> int:
        account = store.set_enabled(args.id, enabled)
        state = "enabled" if enabled else "disabled (tokens already issued lapse within their lifetime)"
        print(f"{account.kind} {account.id} {state}")
        return 0

    return run


def _rotate_secret(store: AccountStore, args: argparse.Namespace) -> int:
    created = store.rotate_secret(args.id)
    return _show_created(created, "client_secret" if created.account.kind == "client" else "password")


def _row(account: Account) -> dict[str, object]:
    return {
        "kind": account.kind, "id": account.id, "login_name": account.login_name, "agency": account.agency.value,
        "roles": sorted(r.value for r in account.roles), "township": account.township, "village": account.village,
        "enabled": account.enabled,
    }


def _list(store: AccountStore, args: argparse.Namespace) -> int:
    rows = [_row(a) for a in store.accounts()]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    for r in rows:
        area = "/".join(str(x) for x in (r["township"], r["village"]) if x) or "-"
        login = f" ({r['login_name']})" if r["login_name"] else ""
        state = "" if r["enabled"] else "  DISABLED"
        print(f"{r['kind']:<7} {r['id']}{login}  {r['agency']}  {','.join(r['roles'])}  {area}{state}")  # type: ignore[arg-type]
    return 0


def _new_key(args: argparse.Namespace, settings: Settings) -> int:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from huhang.auth.keys import private_b64, public_b64
    from huhang.checkpoints import key_id_of

    key = Ed25519PrivateKey.generate()
    print(private_b64(key), flush=True)
    print(f"public key {public_b64(key.public_key())} (key id {key_id_of(key.public_key())})", file=sys.stderr)
    return 0


def _public_key(args: argparse.Namespace, settings: Settings) -> int:
    from huhang.auth.keys import load_key_ring, public_b64

    ring = load_key_ring(settings)
    print(public_b64(ring.signing_key.public_key()), flush=True)
    print(f"key id {ring.active_kid}", file=sys.stderr)
    return 0


def add_auth_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    auth = sub.add_parser("auth", help="authentication: token signing keys, agency clients, people's accounts")
    commands = auth.add_subparsers(dest="auth_command", required=True)
    agencies = [a.value for a in Agency]
    roles = [r.value for r in Role]

    def area(p: argparse.ArgumentParser) -> None:
        p.add_argument("--agency", required=True, choices=agencies)
        p.add_argument("--role", action="append", required=True, choices=roles, help="repeat for several roles")
        p.add_argument("--township", help="the township the account works in (its area)")
        p.add_argument("--village", help="the village, within --township (required for a child director)")

    client = commands.add_parser("create-client", help="register an agency system (OAuth2 client credentials)")
    client.add_argument("--client-id", help="default: <agency>-<random>")
    area(client)
    client.set_defaults(func=_managed(_create_client))

    person = commands.add_parser("create-person", help="make a person's account (a generated password)")
    person.add_argument("--login", required=True, help="the login name (not logged)")
    area(person)
    person.set_defaults(func=_managed(_create_person))

    for name, enabled, text in (("disable", False, "refuse new tokens to"), ("enable", True, "allow again")):
        p = commands.add_parser(name, help=f"{text} a client or a person (by client id, account id or login)")
        p.add_argument("id")
        p.set_defaults(func=_managed(_set_enabled(enabled)))

    rotate = commands.add_parser("rotate-secret", help="a new client secret or password (the old one stops at once)")
    rotate.add_argument("id", help="client id, account id or login name")
    rotate.set_defaults(func=_managed(_rotate_secret))

    listing = commands.add_parser("list", help="every client and person (never a secret)")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=_managed(_list))

    commands.add_parser("new-key", help="print a new token signing key (base64) for HUHANG_AUTH_SIGNING_KEY") \
        .set_defaults(func=_new_key)
    commands.add_parser("public-key", help="print the signing key's public key, for HUHANG_AUTH_TRUSTED_KEYS") \
        .set_defaults(func=_public_key)
