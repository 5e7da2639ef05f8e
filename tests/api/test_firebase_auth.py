"""POST /v1/auth/firebase: ID tokens signed with a local RSA key, checked by firebase-admin against
certificates it fetches from a local fake of Google."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.app import create_app
from backend.firebase import use_local_endpoints
from backend.settings import load_settings
from tests.conftest import error_of, make_settings, sign_up
from tests.fake_google import FakeGoogle


@pytest.fixture
def fake_google() -> Iterator[FakeGoogle]:
    fake = FakeGoogle().start()
    try:
        yield fake
    finally:
        fake.close()


def firebase_app(database_url: str, tmp_path: Path, fake: FakeGoogle, **environ: str) -> Litestar:
    app = create_app(
        make_settings(database_url, tmp_path, SURGE_FIREBASE_PROJECT_ID=fake.project_id, **environ)
    )
    use_local_endpoints(app.state.components.firebase_app, id_token_certs_url=fake.certs_url)
    return app


@pytest.fixture
def app(database_url: str, tmp_path: Path, fake_google: FakeGoogle) -> Litestar:
    return firebase_app(database_url, tmp_path, fake_google)


async def firebase_sign_in(client, id_token: str):
    return await client.post("/v1/auth/firebase", json={"id_token": id_token})


async def test_a_new_firebase_uid_creates_an_account(client, fake_google):
    token = fake_google.id_token("uid-ada", email="Ada@Gmail.com", name="Ada Lovelace")
    response = await firebase_sign_in(client, token)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"user", "access_token", "refresh_token", "token_type", "expires_in", "created"}
    assert body["created"] is True
    assert body["user"]["email"] == "ada@gmail.com"
    assert body["user"]["display_name"] == "Ada Lovelace"
    me = await client.get("/v1/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.json()["id"] == body["user"]["id"]


async def test_the_same_uid_signs_into_the_same_account(client, fake_google):
    first = (
        await firebase_sign_in(client, fake_google.id_token("uid-grace", email="grace@example.com"))
    ).json()
    again = await firebase_sign_in(client, fake_google.id_token("uid-grace", email="grace@example.com"))
    assert again.status_code == 200
    assert again.json()["created"] is False
    assert again.json()["user"]["id"] == first["user"]["id"]
    assert again.json()["refresh_token"] != first["refresh_token"]


async def test_an_existing_password_account_with_the_same_email_is_never_taken_over(client, fake_google):
    alice = await sign_up(client, "alice@example.com")
    token = fake_google.id_token("uid-mallory", email="alice@example.com", provider="google.com")

    response = await firebase_sign_in(client, token)

    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "conflict"
    assert "password" in error["message"]
    # Alice's account is untouched: her password still works, and that uid is not linked to anything.
    login = await client.post("/v1/auth/login", json={"email": alice.email, "password": alice.password})
    assert login.status_code == 200 and login.json()["user"]["id"] == alice.id
    assert (await firebase_sign_in(client, token)).status_code == 409


async def test_a_second_firebase_identity_with_the_same_email_gets_an_account_without_it(client, fake_google):
    google = (
        await firebase_sign_in(client, fake_google.id_token("uid-google", email="sam@example.com"))
    ).json()
    response = await firebase_sign_in(
        client, fake_google.id_token("uid-apple-sam", email="sam@example.com", provider="apple.com")
    )
    assert response.status_code == 200
    body = response.json()
    assert body["created"] is True
    assert body["user"]["id"] != google["user"]["id"]
    assert body["user"]["email"] is None


async def test_an_email_firebase_did_not_verify_is_not_kept(client, fake_google):
    token = fake_google.id_token("uid-unverified", email="victim@example.com", email_verified=False)
    response = await firebase_sign_in(client, token)
    assert response.status_code == 200
    assert response.json()["user"]["email"] is None
    # So it cannot squat the address: its owner can still sign up with it.
    await sign_up(client, "victim@example.com")


async def test_an_apple_private_relay_address_is_kept_as_given(client, fake_google):
    relay = "x7k2m9q4pd@privaterelay.appleid.com"
    response = await firebase_sign_in(
        client, fake_google.id_token("uid-apple", email=relay, provider="apple.com")
    )
    assert response.status_code == 200
    assert response.json()["user"]["email"] == relay


async def test_phone_sign_in_has_no_email(client, fake_google):
    token = fake_google.id_token("uid-phone", provider="phone", extra={"phone_number": "+15555550100"})
    response = await firebase_sign_in(client, token)
    assert response.status_code == 200
    assert response.json()["created"] is True
    assert response.json()["user"]["email"] is None
    assert "+15555550100" not in response.text


@pytest.mark.parametrize(
    "make_token",
    [
        pytest.param(lambda fake: fake.id_token("uid-x", issued_ago_s=7200, lifetime_s=3600), id="expired"),
        pytest.param(
            lambda fake: fake.id_token("uid-x", audience="someone-elses-project"), id="wrong-audience"
        ),
        pytest.param(
            lambda fake: fake.id_token(
                "uid-x", issuer="https://securetoken.google.com/someone-elses-project"
            ),
            id="wrong-issuer",
        ),
        pytest.param(
            lambda fake: fake.id_token("uid-x", issuer="https://evil.example.com/"), id="foreign-issuer"
        ),
        pytest.param(lambda fake: fake.unsigned_id_token("uid-x"), id="unsigned-alg-none"),
        pytest.param(lambda fake: fake.id_token("uid-x", key="attacker"), id="signed-by-another-key"),
        pytest.param(lambda fake: fake.id_token("uid-x", kid="unknown-key-id"), id="unknown-key-id"),
        pytest.param(lambda fake: fake.id_token("uid-x", issued_ago_s=-300), id="issued-in-the-future"),
        pytest.param(lambda fake: "not.a.jwt", id="garbage"),
    ],
)
async def test_a_token_firebase_admin_rejects_is_unauthorized(client, fake_google, make_token):
    response = await firebase_sign_in(client, make_token(fake_google))
    assert response.status_code == 401
    assert error_of(response)["code"] == "unauthorized"


async def test_a_rejected_token_creates_no_account(client, fake_google):
    await firebase_sign_in(client, fake_google.unsigned_id_token("uid-sneaky"))
    response = await firebase_sign_in(client, fake_google.id_token("uid-sneaky"))
    assert response.json()["created"] is True


async def test_googles_certificates_are_fetched_once_and_cached(client, fake_google):
    for uid in ("uid-1", "uid-2", "uid-3"):
        assert (await firebase_sign_in(client, fake_google.id_token(uid))).status_code == 200
    assert fake_google.state.certificate_fetches == 1


async def test_unreachable_certificates_are_a_503_with_retry_after(database_url, tmp_path, fake_google):
    app = firebase_app(database_url, tmp_path, fake_google)
    # Nothing listens on port 1.
    use_local_endpoints(app.state.components.firebase_app, id_token_certs_url="http://127.0.0.1:1/certs")
    async with AsyncTestClient(app=app) as client:
        response = await firebase_sign_in(client, fake_google.id_token("uid-offline"))
    assert response.status_code == 503
    error = error_of(response)
    assert error["code"] == "upstream_unavailable"
    assert int(response.headers["Retry-After"]) == error["retry_after_s"] >= 1


async def test_deleting_the_account_removes_the_firebase_link(client, fake_google):
    first = (
        await firebase_sign_in(client, fake_google.id_token("uid-leaver", email="leaver@example.com"))
    ).json()
    headers = {"Authorization": f"Bearer {first['access_token']}"}
    await client.post(
        "/v1/devices", json={"platform": "android", "push_token": "leaver-token"}, headers=headers
    )
    assert (await client.delete("/v1/me", headers=headers)).status_code == 204

    again = (
        await firebase_sign_in(client, fake_google.id_token("uid-leaver", email="leaver@example.com"))
    ).json()
    assert again["created"] is True
    assert again["user"]["id"] != first["user"]["id"]
    devices = await client.get("/v1/devices", headers={"Authorization": f"Bearer {again['access_token']}"})
    assert devices.json()["data"] == []


async def test_a_firebase_account_has_no_password_to_log_in_with(client, fake_google):
    await firebase_sign_in(client, fake_google.id_token("uid-nopw", email="nopw@example.com"))
    response = await client.post(
        "/v1/auth/login", json={"email": "nopw@example.com", "password": "anything1"}
    )
    assert response.status_code == 401


async def test_firebase_sign_in_is_rate_limited_per_ip(database_url, tmp_path, fake_google):
    app = firebase_app(database_url, tmp_path, fake_google, SURGE_FIREBASE_SIGNIN_PER_IP_PER_10MIN="2")
    async with AsyncTestClient(app=app) as client:
        statuses = [(await firebase_sign_in(client, "not.a.jwt")).status_code for _ in range(3)]
        response = await firebase_sign_in(client, fake_google.id_token("uid-late"))
    assert statuses == [401, 401, 429]
    assert error_of(response)["code"] == "rate_limited"
    assert int(response.headers["Retry-After"]) > 0


async def test_without_a_firebase_project_the_route_is_not_found(database_url, tmp_path, fake_google):
    async with AsyncTestClient(app=create_app(make_settings(database_url, tmp_path))) as client:
        response = await firebase_sign_in(client, fake_google.id_token("uid-nowhere"))
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


def test_production_refuses_to_start_when_the_auth_emulator_is_configured(monkeypatch):
    production = {
        "SURGE_ENV": "production",
        "SURGE_JWT_SECRET": "pV3x9QmZ-2LtR7wKc_8nYbH4sJfD6gA1eUoTiE5rW0q",
        "SURGE_DATABASE_URL": "postgresql+asyncpg://surge@db/surge",
        "SURGE_PUBLIC_URL": "https://chat.example.com",
    }
    assert load_settings(production).production_problems() == []
    monkeypatch.setenv("FIREBASE_AUTH_EMULATOR_HOST", "127.0.0.1:9099")
    problems = load_settings(production).production_problems()
    assert any("FIREBASE_AUTH_EMULATOR_HOST" in problem for problem in problems)
    with pytest.raises(SystemExit, match="FIREBASE_AUTH_EMULATOR_HOST"):
        create_app(load_settings(production))


async def test_while_sign_ups_are_paused_only_existing_firebase_accounts_sign_in(client, fake_google, app):
    from backend.admission.board import Override

    known = await firebase_sign_in(client, fake_google.id_token("uid-known", email="known@example.com"))
    assert known.status_code == 200
    await app.state.components.admission.set_override(Override(signups_open=False))
    again = await firebase_sign_in(client, fake_google.id_token("uid-known", email="known@example.com"))
    assert again.status_code == 200 and again.json()["created"] is False
    new = await firebase_sign_in(client, fake_google.id_token("uid-new", email="new@example.com"))
    assert new.status_code == 503
    assert error_of(new)["code"] == "signups_paused" and int(new.headers["Retry-After"]) > 0
