"""Authentication: tokens, keys and rotation, the accounts store, the token endpoint, every route behind a token,
the workers' system tokens, the demo accounts and the ``huhang auth`` commands. Real parts throughout."""

from __future__ import annotations

import base64
import json
import re
import stat
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from faker import Faker
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import select

from contracts.agencies import Agency
from huhang.auth.accounts import AccountStore, clients_table, people_table
from huhang.auth.client import ClientCredentialsAuth, MintedTokenAuth, system_auth, system_principal
from huhang.auth.keys import KEY_FILE_NAME, KeyRing, MissingSigningKey, load_key_ring, private_b64, public_b64
from huhang.auth.principal import Principal, Role
from huhang.auth.tokens import InvalidToken, TokenService
from huhang.bootstrap import build_services, embedded_api
from huhang.checkpoints import key_id_of
from huhang.cli import main
from huhang.demo import CREDENTIALS_FILE, DEMO_PEOPLE, create_demo_accounts, demo_client_id
from huhang.settings import Settings
from huhang.storage import read_model_engine
from tests.support.auth import bearer, client_for

TOKEN_URL = "/v1/oauth/token"
OPEN_PATHS = {"/healthz", "/readyz", "/.well-known/jwks.json", TOKEN_URL, "/openapi.json", "/docs",
              "/docs/oauth2-redirect", "/redoc"}
OFFICER = Principal("p-0001", "person", Agency.police, frozenset({Role.agency_officer}), "虹桥镇", None)


def ring() -> KeyRing:
    return KeyRing.of(Ed25519PrivateKey.generate())


@pytest.fixture(scope="module")
def platform() -> Iterator[tuple[FastAPI, dict[str, Any]]]:
    settings = Settings(storage="memory")
    services = build_services(settings)
    yield embedded_api(settings, services), services
    for service in services.values():
        service.application.close()


@pytest.fixture(scope="module")
def app(platform: tuple[FastAPI, dict[str, Any]]) -> FastAPI:
    return platform[0]


@pytest.fixture(scope="module")
def anonymous(app: FastAPI) -> TestClient:
    return TestClient(app)


@pytest.fixture(scope="module")
def accounts(app: FastAPI) -> AccountStore:
    return app.state.accounts


@pytest.fixture(scope="module")
def police_client(accounts: AccountStore) -> tuple[str, str]:
    created = accounts.create_client(Agency.police, [Role.agency_officer], client_id="police-records")
    return created.account.id, created.secret


@pytest.fixture(scope="module")
def fake() -> Faker:
    faker = Faker("zh_CN")
    faker.seed_instance(5)
    return faker


# --- tokens ------------------------------------------------------------------------------------------------------


def test_an_issued_token_verifies_to_the_same_principal_with_every_claim() -> None:
    tokens = TokenService(ring())
    issued = tokens.issue(OFFICER)

    assert tokens.verify(issued.access_token) == OFFICER
    assert issued.expires_in == 3600  # a person's default lifetime
    header = jwt.get_unverified_header(issued.access_token)
    claims = jwt.decode(issued.access_token, options={"verify_signature": False})
    assert header["alg"] == "EdDSA"
    assert header["kid"] == tokens.keys.active_kid
    assert {"iss", "sub", "aud", "exp", "iat", "jti", "kind", "agency", "roles", "township", "village"} <= set(claims)
    assert claims["aud"] == "huhang"
    assert claims["exp"] - claims["iat"] == 3600
    assert tokens.issue(system_principal()).expires_in == 900  # a client's default lifetime


def test_an_expired_token_is_refused() -> None:
    tokens = TokenService(ring())
    old = tokens.issue(OFFICER, 60, now=time.time() - 3600).access_token

    with pytest.raises(InvalidToken, match="expired"):
        tokens.verify(old)


def _signed(keys: KeyRing, **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": "huhang", "sub": "x", "aud": "huhang", "iat": now, "exp": now + 60, "jti": "j", "kind": "client",
            "agency": "police", "roles": ["agency_officer"], **claims}
    return jwt.encode(body, keys.signing_key, algorithm="EdDSA", headers={"kid": keys.active_kid})


def test_a_token_for_another_audience_or_issuer_is_refused() -> None:
    keys = ring()
    tokens = TokenService(keys)
    assert tokens.verify(_signed(keys)).agency == Agency.police  # the hand-made token is otherwise good

    with pytest.raises(InvalidToken, match="audience"):
        tokens.verify(_signed(keys, aud="another-platform"))
    with pytest.raises(InvalidToken, match="issuer"):
        tokens.verify(_signed(keys, iss="someone-else"))
    with pytest.raises(InvalidToken, match="claims"):
        tokens.verify(_signed(keys, roles=["emperor"]))


def test_a_token_signed_by_an_unknown_key_is_refused() -> None:
    stranger = TokenService(ring()).issue(OFFICER).access_token

    with pytest.raises(InvalidToken, match="not trusted"):
        TokenService(ring()).verify(stranger)


def test_a_tampered_token_is_refused() -> None:
    tokens = TokenService(ring())
    head, payload, signature = tokens.issue(OFFICER).access_token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["agency"] = "civil_affairs"  # a police officer promoting themselves to the lead agency
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]

    with pytest.raises(InvalidToken, match="signature"):
        tokens.verify(f"{head}.{forged}.{signature}")
    with pytest.raises(InvalidToken):
        tokens.verify(f"{head}.{payload}.{flipped}")


def test_unsigned_and_symmetric_tokens_are_refused() -> None:
    keys = ring()
    tokens = TokenService(keys)
    claims = jwt.decode(tokens.issue(OFFICER).access_token, options={"verify_signature": False})
    unsigned = jwt.encode(claims, "", algorithm="none", headers={"kid": keys.active_kid})
    public = public_b64(keys.signing_key.public_key())
    hmac = jwt.encode(claims, public, algorithm="HS256", headers={"kid": keys.active_kid})

    for token in (unsigned, hmac, "not-a-token", ""):
        with pytest.raises(InvalidToken):
            tokens.verify(token)


def test_after_a_rotation_the_retired_key_verifies_until_it_is_dropped(tmp_path: Path) -> None:
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    before = TokenService.from_settings(Settings(data_dir=tmp_path, auth_signing_key=private_b64(old)))
    token = before.issue(OFFICER).access_token
    rotated = TokenService.from_settings(Settings(
        data_dir=tmp_path, auth_signing_key=private_b64(new), auth_trusted_keys=public_b64(old.public_key()),
    ))
    dropped = TokenService.from_settings(Settings(data_dir=tmp_path, auth_signing_key=private_b64(new)))

    assert rotated.verify(token) == OFFICER
    assert jwt.get_unverified_header(rotated.issue(OFFICER).access_token)["kid"] == key_id_of(new.public_key())
    with pytest.raises(InvalidToken, match="not trusted"):
        dropped.verify(token)


def test_development_generates_one_private_key_file_and_production_refuses_to_start_without_a_key(
    tmp_path: Path,
) -> None:
    settings = Settings(storage="sqlite", data_dir=tmp_path / "data")
    first = load_key_ring(settings)
    path = tmp_path / "data" / KEY_FILE_NAME

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_key_ring(settings).active_kid == first.active_kid  # reused, not made again
    # copied, not validated: production's other required keys (audit, data) are not what this test is about
    production = Settings(data_dir=tmp_path / "prod").model_copy(update={"environment": "production"})
    with pytest.raises(MissingSigningKey, match="HUHANG_AUTH_SIGNING_KEY"):
        embedded_api(production, {})
    assert not (tmp_path / "prod" / KEY_FILE_NAME).exists()


def test_malformed_keys_are_refused_by_the_settings_without_echoing_them() -> None:
    with pytest.raises(ValueError, match="HUHANG_AUTH_SIGNING_KEY must be the base64 of 32 bytes") as raised:
        Settings(auth_signing_key=base64.b64encode(b"short").decode())
    assert "c2hvcnQ" not in str(raised.value)
    with pytest.raises(ValueError, match=r"HUHANG_AUTH_TRUSTED_KEYS\[1\]"):
        Settings(auth_trusted_keys=f"{public_b64(Ed25519PrivateKey.generate().public_key())},AAAA")


# --- accounts ----------------------------------------------------------------------------------------------------


def test_clients_and_people_authenticate_on_every_store_and_secrets_are_only_argon2_hashes(
    any_storage_settings: Settings, fake: Faker,
) -> None:
    engine = read_model_engine(any_storage_settings, "auth")
    store = AccountStore(engine)
    client = store.create_client(Agency.education, [Role.agency_officer], township="虹桥镇")
    login = fake.user_name()
    person = store.create_person(login, Agency.village, [Role.child_director], township="虹桥镇", village="溪西村")

    assert client.secret.startswith("hh_")
    assert store.authenticate_client(client.account.id, client.secret) == Principal(
        client.account.id, "client", Agency.education, frozenset({Role.agency_officer}), "虹桥镇", None)
    principal = store.authenticate_person(login, person.secret)
    assert principal is not None
    assert principal.subject == person.account.id != login  # tokens name the account id, never the login
    assert principal.village == "溪西村"
    assert store.authenticate_client(client.account.id, client.secret + "x") is None
    assert store.authenticate_person(login, client.secret) is None
    assert store.authenticate_client("nobody-here", client.secret) is None

    with engine.connect() as conn:
        rows = [dict(r._mapping) for t in (clients_table, people_table) for r in conn.execute(select(t))]
    raw = json.dumps(rows, default=str)
    assert client.secret not in raw
    assert person.secret not in raw
    assert all(r.get("secret_hash", r.get("password_hash", "")).startswith("$argon2id$") for r in rows)
    engine.dispose()


def test_a_disabled_client_or_person_cannot_authenticate_and_a_rotated_secret_replaces_the_old(
    memory_settings: Settings,
) -> None:
    store = AccountStore(read_model_engine(memory_settings, "auth"))
    client = store.create_client(Agency.health, [Role.agency_officer], client_id="clinic-system")
    person = store.create_person("li.na", Agency.health, [Role.supervisor])

    store.set_enabled("clinic-system", False)
    store.set_enabled("li.na", False)
    assert store.authenticate_client("clinic-system", client.secret) is None
    assert store.authenticate_person("li.na", person.secret) is None

    store.set_enabled("clinic-system", True)
    rotated = store.rotate_secret("clinic-system")
    assert store.authenticate_client("clinic-system", client.secret) is None
    assert store.authenticate_client("clinic-system", rotated.secret) is not None


def test_the_store_refuses_duplicates_and_accounts_without_their_area(memory_settings: Settings) -> None:
    from huhang.problems import Conflict, Unprocessable

    store = AccountStore(read_model_engine(memory_settings, "auth"))
    store.create_client(Agency.court, [Role.agency_officer], client_id="court-system")

    with pytest.raises(Conflict):
        store.create_client(Agency.court, [Role.agency_officer], client_id="court-system")
    with pytest.raises(Unprocessable, match="village"):
        store.create_person("wang.fang", Agency.village, [Role.child_director], township="虹桥镇")
    with pytest.raises(Unprocessable, match="system"):
        store.create_person("wang.fang", Agency.civil_affairs, [Role.system])
    with pytest.raises(Unprocessable, match="role"):
        store.create_client(Agency.court, [])


# --- the token endpoint ------------------------------------------------------------------------------------------


def _token(anonymous: TestClient, **form: str) -> Any:
    return anonymous.post(TOKEN_URL, data=form)


def test_client_credentials_in_the_form_or_in_basic_give_a_token_that_opens_the_api(
    anonymous: TestClient, police_client: tuple[str, str],
) -> None:
    client_id, secret = police_client
    in_form = _token(anonymous, grant_type="client_credentials", client_id=client_id, client_secret=secret)
    in_basic = anonymous.post(TOKEN_URL, data={"grant_type": "client_credentials"}, auth=(client_id, secret))

    for answer in (in_form, in_basic):
        assert answer.status_code == 200, answer.text
        assert answer.headers["cache-control"] == "no-store"
        body = answer.json()
        assert body["token_type"] == "Bearer"
        assert body["expires_in"] == 900
        inbox = anonymous.get("/v1/agencies/police/referrals",
                              headers={"Authorization": f"Bearer {body['access_token']}"})
        assert inbox.status_code == 200


def test_wrong_client_credentials_answer_invalid_client_401_with_a_basic_challenge(
    anonymous: TestClient, police_client: tuple[str, str],
) -> None:
    client_id, secret = police_client
    for form in (
        {"client_id": client_id, "client_secret": secret + "x"},
        {"client_id": "no-such-client", "client_secret": secret},
        {"client_id": client_id},
    ):
        answer = _token(anonymous, grant_type="client_credentials", **form)
        assert answer.status_code == 401
        assert answer.json()["error"] == "invalid_client"
        assert answer.headers["www-authenticate"].startswith("Basic")


def test_a_disabled_client_gets_no_new_token(anonymous: TestClient, accounts: AccountStore) -> None:
    created = accounts.create_client(Agency.hrss, [Role.agency_officer], client_id="hrss-jobs")
    accounts.set_enabled("hrss-jobs", False)

    answer = _token(anonymous, grant_type="client_credentials", client_id="hrss-jobs", client_secret=created.secret)

    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_client"


def test_people_sign_in_with_the_password_grant(anonymous: TestClient, accounts: AccountStore, fake: Faker) -> None:
    login = fake.user_name() + "1"
    created = accounts.create_person(login, Agency.civil_affairs, [Role.supervisor])

    answer = _token(anonymous, grant_type="password", username=login, password=created.secret)
    wrong = _token(anonymous, grant_type="password", username=login, password="hh_wrong")

    assert answer.status_code == 200
    assert answer.json()["expires_in"] == 3600
    claims = jwt.decode(answer.json()["access_token"], options={"verify_signature": False})
    assert claims["sub"] == created.account.id
    assert claims["kind"] == "person"
    assert claims["roles"] == ["supervisor"]
    assert login not in answer.json()["access_token"]
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_grant"


def test_malformed_token_requests_answer_rfc_6749_errors(anonymous: TestClient) -> None:
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"data": {"grant_type": "authorization_code", "code": "x"}}, 400, "unsupported_grant_type"),
        ({"data": {"client_id": "x"}}, 400, "invalid_request"),
        ({"json": {"grant_type": "client_credentials"}}, 400, "invalid_request"),
        ({"content": "grant_type=password&grant_type=password", "headers": {
            "content-type": "application/x-www-form-urlencoded"}}, 400, "invalid_request"),
        ({"data": {"grant_type": "password", "username": "x"}}, 400, "invalid_request"),
    ]
    for kwargs, status, error in cases:
        answer = anonymous.post(TOKEN_URL, **kwargs)
        assert (answer.status_code, answer.json()["error"]) == (status, error), kwargs
        assert answer.json()["error_description"]


def test_the_key_set_publishes_the_public_key_that_verifies_the_tokens(app: FastAPI, anonymous: TestClient) -> None:
    token = bearer(app)["Authorization"].removeprefix("Bearer ")
    keys = anonymous.get("/.well-known/jwks.json").json()["keys"]

    key = next(k for k in keys if k["kid"] == jwt.get_unverified_header(token)["kid"])
    assert key["kty"] == "OKP"
    assert key["crv"] == "Ed25519"
    assert "d" not in key  # never the private part
    verified = jwt.decode(token, jwt.PyJWK(key).key, algorithms=["EdDSA"], audience="huhang")
    assert verified["sub"] == "test-system"


# --- every route behind a token ----------------------------------------------------------------------------------


def _api_routes(routes: list[Any]) -> Iterator[APIRoute]:
    """Every APIRoute, also inside included routers (FastAPI keeps them as included-router entries)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "original_router"):
            yield from _api_routes(route.original_router.routes)


def _protected_routes(app: FastAPI) -> list[tuple[str, str]]:
    routes: list[tuple[str, str]] = []
    for route in _api_routes(app.routes):
        if route.path not in OPEN_PATHS:
            path = re.sub(r"\{agency\}", "police", route.path)
            path = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)
            routes.extend((method, path) for method in sorted(route.methods or ()))
    documented = {p for p in app.openapi()["paths"] if p not in OPEN_PATHS}
    assert documented <= {r.path for r in _api_routes(app.routes)}  # the walk found every documented route
    return routes


def test_every_route_answers_401_problem_json_without_a_valid_token(app: FastAPI, anonymous: TestClient) -> None:
    routes = _protected_routes(app)
    assert len(routes) > 20  # the whole embedded API, not a sample
    expired = TokenService(app.state.auth_tokens.keys).issue(OFFICER, 60, now=time.time() - 3600).access_token
    for method, path in routes:
        missing = anonymous.request(method, path)
        assert missing.status_code == 401, (method, path, missing.text)
        assert missing.headers["content-type"] == "application/problem+json"
        assert missing.headers["www-authenticate"] == 'Bearer realm="huhang"'
        for bad in (expired, "garbage", TokenService(ring()).issue(OFFICER).access_token):
            answer = anonymous.request(method, path, headers={"Authorization": f"Bearer {bad}"})
            assert answer.status_code == 401, (method, path, answer.text)
            assert 'error="invalid_token"' in answer.headers["www-authenticate"]


def test_a_401_is_a_problem_naming_the_authorization_header_and_the_reason(app: FastAPI, anonymous: TestClient) -> None:
    expired = TokenService(app.state.auth_tokens.keys).issue(OFFICER, 60, now=time.time() - 3600).access_token

    answer = anonymous.get("/v1/agencies/police/referrals", headers={"Authorization": f"Bearer {expired}"})
    basic = anonymous.get("/v1/agencies/police/referrals", headers={"Authorization": "Basic eDp5"})

    problem = answer.json()
    assert problem["type"] == "urn:huhang:problem:unauthenticated"
    assert problem["status"] == 401
    assert problem["instance"] == "/v1/agencies/police/referrals"
    assert problem["errors"] == [{"field": "Authorization", "reason": "the token has expired"}]
    assert expired not in answer.text
    assert basic.status_code == 401
    assert 'error="invalid_request"' in basic.headers["www-authenticate"]


def test_health_documentation_and_key_set_stay_open(anonymous: TestClient) -> None:
    for path in ("/healthz", "/docs", "/openapi.json", "/.well-known/jwks.json"):
        assert anonymous.get(path).status_code == 200, path


def test_the_documentation_offers_both_oauth2_flows_on_every_protected_operation(anonymous: TestClient) -> None:
    openapi = anonymous.get("/openapi.json").json()
    flows = openapi["components"]["securitySchemes"]["huhang"]["flows"]

    assert flows["clientCredentials"]["tokenUrl"] == TOKEN_URL
    assert flows["password"]["tokenUrl"] == TOKEN_URL
    for path, operations in openapi["paths"].items():
        for operation in operations.values():
            secured = {"huhang": []} in operation.get("security", [])
            assert secured == (path not in OPEN_PATHS), path


def test_a_valid_token_sets_the_principal_the_routes_act_for(app: FastAPI) -> None:
    from fastapi import APIRouter, Depends

    from huhang.auth.principal import current_principal
    from huhang.web import create_api

    probe = APIRouter()

    @probe.get("/probe")
    def who(principal: Principal = Depends(current_principal)) -> dict[str, Any]:
        return {"subject": principal.subject, "agency": principal.agency, "township": principal.township}

    api = create_api("probe", Settings(storage="memory"), [probe])
    assert client_for(api, OFFICER).get("/probe").json() == {"subject": "p-0001", "agency": "police",
                                                             "township": "虹桥镇"}


# --- the platform's own callers, the demo and the CLI ------------------------------------------------------------


def test_the_workers_system_token_and_an_agency_systems_client_credentials_open_the_api(
    app: FastAPI, anonymous: TestClient, police_client: tuple[str, str],
) -> None:
    settings = Settings(storage="memory")
    worker = system_auth(settings, "huhang-router")
    agency = ClientCredentialsAuth(f"http://testserver{TOKEN_URL}", *police_client)

    assert anonymous.get("/v1/agencies/police/referrals", auth=worker).status_code == 200
    assert anonymous.get("/v1/agencies/police/referrals", auth=agency).status_code == 200
    assert worker.tokens.verify(worker.token()).has(Role.system)


def test_a_worker_mints_a_new_token_when_a_service_refuses_the_one_it_holds(anonymous: TestClient) -> None:
    auth = system_auth(Settings(storage="memory"))
    auth._cached.keep(TokenService(ring()).issue(system_principal()).access_token, 900)  # a key nobody trusts

    assert anonymous.get("/v1/agencies/police/referrals", auth=auth).status_code == 200


def test_the_demo_makes_a_client_per_agency_and_the_demo_people_with_a_private_credentials_file(
    tmp_path: Path, anonymous: TestClient, accounts: AccountStore,
) -> None:
    credentials, path = create_demo_accounts(accounts, tmp_path)
    again, _ = create_demo_accounts(accounts, tmp_path)  # a restart: new secrets, the old ones stop

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.name == CREDENTIALS_FILE
    saved = json.loads(path.read_text())
    assert set(saved["clients"]) == {demo_client_id(a.value) for a in Agency}
    assert set(saved["people"]) == {login for login, *_ in DEMO_PEOPLE}
    for agency, secret in again.clients.items():
        ok = _token(anonymous, grant_type="client_credentials", client_id=demo_client_id(agency), client_secret=secret)
        assert ok.status_code == 200, agency
    stale = _token(anonymous, grant_type="client_credentials", client_id="demo-police",
                   client_secret=credentials.clients["police"])
    assert stale.status_code == 401
    for login, password in again.people.items():
        assert _token(anonymous, grant_type="password", username=login, password=password).status_code == 200
    assert "client_secret=" in again.curl("http://127.0.0.1:8000")


def test_the_auth_commands_manage_accounts_and_show_a_secret_only_when_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("HUHANG_STORAGE", "sqlite")
    monkeypatch.setenv("HUHANG_DATA_DIR", str(tmp_path / "data"))

    assert main(["auth", "create-client", "--agency", "education", "--role", "agency_officer",
                 "--client-id", "school-system", "--township", "柳市镇"]) == 0
    secret = re.search(r"client_secret: (hh_\S+)", capsys.readouterr().out)
    assert secret is not None
    assert main(["auth", "create-person", "--login", "chen.jie", "--agency", "village", "--role", "child_director",
                 "--township", "柳市镇", "--village", "长虹村"]) == 0
    password = re.search(r"password: (hh_\S+)", capsys.readouterr().out)
    assert password is not None
    assert main(["auth", "create-person", "--login", "chen.jie2", "--agency", "village",
                 "--role", "child_director"]) == 1
    assert "village" in capsys.readouterr().err
    assert main(["auth", "disable", "school-system"]) == 0
    assert main(["auth", "list", "--json"]) == 0
    listing = capsys.readouterr().out
    rows = json.loads(listing[listing.index("["):])
    assert {(r["id"], r["enabled"]) for r in rows if r["kind"] == "client"} == {("school-system", False)}
    assert secret.group(1) not in listing
    assert password.group(1) not in listing
    assert main(["auth", "rotate-secret", "chen.jie"]) == 0
    new_password = re.search(r"password: (hh_\S+)", capsys.readouterr().out)
    assert main(["auth", "new-key"]) == 0
    assert len(base64.b64decode(capsys.readouterr().out.strip())) == 32

    store = AccountStore(read_model_engine(Settings(storage="sqlite", data_dir=tmp_path / "data"), "auth"))
    assert store.authenticate_client("school-system", secret.group(1)) is None  # disabled
    assert store.authenticate_person("chen.jie", password.group(1)) is None  # rotated
    assert new_password is not None
    assert store.authenticate_person("chen.jie", new_password.group(1)) is not None


def test_minted_auth_reuses_its_token_until_near_expiry() -> None:
    auth = MintedTokenAuth(TokenService(ring()), system_principal())
    first = auth.token()
    assert auth.token() == first
    renewed = auth.token(renew=True)
    assert renewed != first  # a new jti
    assert auth.token() == renewed


def test_compose_gives_every_huhang_process_the_token_signing_key() -> None:
    import yaml

    compose = yaml.safe_load((Path(__file__).resolve().parents[2] / "compose.yaml").read_text())
    processes = {n: s for n, s in compose["services"].items() if s.get("command", [None])[0] == "huhang"}

    assert processes
    for name, service in processes.items():
        assert "HUHANG_AUTH_SIGNING_KEY" in service["environment"], name
        assert service["environment"]["HUHANG_ENVIRONMENT"] == "production", name


def test_distributed_intake_issues_tokens_and_the_other_services_only_verify_them() -> None:
    from huhang.bootstrap import service_api

    settings = Settings(storage="memory")
    services = build_services(settings, ["intake", "referral"])
    intake, referral = (TestClient(service_api(settings, services[name])) for name in ("intake", "referral"))
    created = intake.app.state.accounts.create_client(Agency.education, [Role.agency_officer])  # type: ignore[attr-defined]

    answer = intake.post(TOKEN_URL, data={"grant_type": "client_credentials"},
                         auth=(created.account.id, created.secret))
    assert answer.status_code == 200
    assert referral.post(TOKEN_URL, data={"grant_type": "client_credentials"}).status_code == 404
    assert referral.get("/.well-known/jwks.json").json() == intake.get("/.well-known/jwks.json").json()
    inbox = referral.get("/v1/agencies/education/referrals",
                         headers={"Authorization": f"Bearer {answer.json()['access_token']}"})
    assert inbox.status_code == 200
    for service in services.values():
        service.application.close()
