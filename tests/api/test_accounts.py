"""/v1/auth and /v1/me, as API.md describes them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest

from tests.conftest import Account, error_of, sign_up


async def test_signup_returns_a_session_with_a_normalised_email(client):
    response = await client.post(
        "/v1/auth/signup",
        json={"email": "  Ada@Example.COM ", "password": "correct horse", "display_name": "Ada"},
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"user", "access_token", "refresh_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer" and body["expires_in"] == 900
    assert body["user"]["email"] == "ada@example.com"
    assert body["user"]["display_name"] == "Ada"
    assert body["user"]["tier"] == "free"
    assert body["user"]["created_at"].endswith("Z")


async def test_signup_with_a_taken_email_in_another_case_is_a_conflict(client, alice):
    response = await client.post(
        "/v1/auth/signup", json={"email": "ALICE@example.com", "password": "another pw"}
    )
    assert response.status_code == 409
    assert error_of(response)["code"] == "conflict"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-email", "password": "correct horse"}, "email"),
        ({"email": "a@example.com", "password": "short"}, "password"),
        ({"email": "a@example.com", "password": "x" * 257}, "password"),
        ({"email": "a@example.com"}, "password"),
        ({"email": 42, "password": "correct horse"}, "email"),
    ],
)
async def test_signup_rejects_invalid_fields_naming_them(client, body, field):
    response = await client.post("/v1/auth/signup", json=body)
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "validation_error"
    assert field in " ".join(
        [*error.get("fields", {}).keys(), *error.get("fields", {}).values(), error["message"]]
    )


async def test_malformed_json_is_a_validation_error(client):
    response = await client.post(
        "/v1/auth/signup", content=b'{"email": ', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert error_of(response)["code"] == "validation_error"


async def test_login_returns_a_new_session(client, alice):
    response = await client.post(
        "/v1/auth/login", json={"email": "Alice@Example.com", "password": alice.password}
    )
    assert response.status_code == 200
    assert response.json()["user"]["id"] == alice.id
    assert response.json()["refresh_token"] != alice.refresh_token


async def test_login_answers_unknown_email_and_wrong_password_the_same(client, alice):
    wrong_password = await client.post(
        "/v1/auth/login", json={"email": alice.email, "password": "wrong password"}
    )
    unknown_email = await client.post(
        "/v1/auth/login", json={"email": "nobody@example.com", "password": "whatever1"}
    )
    assert wrong_password.status_code == unknown_email.status_code == 401
    first, second = error_of(wrong_password), error_of(unknown_email)
    assert (first["code"], first["message"]) == (second["code"], second["message"])


async def test_refresh_rotates_the_refresh_token(client, alice):
    response = await client.post("/v1/auth/refresh", json={"refresh_token": alice.refresh_token})
    assert response.status_code == 200
    body = response.json()
    assert body["refresh_token"] != alice.refresh_token
    me = await client.get("/v1/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200


async def test_reusing_a_spent_refresh_token_revokes_the_whole_login(client, alice):
    rotated = (await client.post("/v1/auth/refresh", json={"refresh_token": alice.refresh_token})).json()
    reuse = await client.post("/v1/auth/refresh", json={"refresh_token": alice.refresh_token})
    assert reuse.status_code == 401
    assert error_of(reuse)["code"] == "unauthorized"
    # The token the legitimate client got from the rotation is dead too: the family is revoked.
    after = await client.post("/v1/auth/refresh", json={"refresh_token": rotated["refresh_token"]})
    assert after.status_code == 401


async def test_reuse_revokes_only_that_login(client, alice):
    other_login = (
        await client.post("/v1/auth/login", json={"email": alice.email, "password": alice.password})
    ).json()
    await client.post("/v1/auth/refresh", json={"refresh_token": alice.refresh_token})
    await client.post("/v1/auth/refresh", json={"refresh_token": alice.refresh_token})
    still_fine = await client.post("/v1/auth/refresh", json={"refresh_token": other_login["refresh_token"]})
    assert still_fine.status_code == 200


async def test_unknown_refresh_token_is_unauthorized(client):
    response = await client.post("/v1/auth/refresh", json={"refresh_token": "made-up"})
    assert response.status_code == 401
    assert error_of(response)["code"] == "unauthorized"


async def test_logout_revokes_the_family(client, alice):
    response = await client.post(
        "/v1/auth/logout", json={"refresh_token": alice.refresh_token}, headers=alice.headers
    )
    assert response.status_code == 204
    refresh = await client.post("/v1/auth/refresh", json={"refresh_token": alice.refresh_token})
    assert refresh.status_code == 401


async def test_logout_cannot_revoke_another_users_login(client, alice, bob):
    response = await client.post(
        "/v1/auth/logout", json={"refresh_token": bob.refresh_token}, headers=alice.headers
    )
    assert response.status_code == 204
    assert (
        await client.post("/v1/auth/refresh", json={"refresh_token": bob.refresh_token})
    ).status_code == 200


async def test_me_requires_a_bearer_token(client):
    response = await client.get("/v1/me")
    assert response.status_code == 401
    assert error_of(response)["code"] == "unauthorized"


async def test_an_expired_access_token_is_refused(client, settings, alice):
    past = datetime.now(UTC) - timedelta(hours=1)
    expired = jwt.encode(
        {"sub": alice.id, "iss": "surge", "iat": int(past.timestamp()), "exp": int(past.timestamp()) + 60},
        settings.auth.jwt_secret,
        algorithm="HS256",
    )
    response = await client.get("/v1/me", headers={"Authorization": f"Bearer {expired}"})
    assert response.status_code == 401


async def test_a_token_signed_with_another_secret_is_refused(client, alice):
    forged = jwt.encode({"sub": alice.id, "iss": "surge", "exp": 4_000_000_000}, "x" * 40, algorithm="HS256")
    response = await client.get("/v1/me", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401


async def test_patch_me_changes_the_display_name(client, alice):
    response = await client.patch("/v1/me", json={"display_name": "Alice L."}, headers=alice.headers)
    assert response.status_code == 200
    assert response.json()["display_name"] == "Alice L."
    assert (await client.get("/v1/me", headers=alice.headers)).json()["display_name"] == "Alice L."


async def test_patch_me_cannot_change_the_tier(client, alice):
    response = await client.patch(
        "/v1/me", json={"tier": "admin", "display_name": "A"}, headers=alice.headers
    )
    assert response.status_code in (200, 400)
    assert (await client.get("/v1/me", headers=alice.headers)).json()["tier"] == "free"


async def test_delete_me_erases_the_account_and_its_tokens_stop_at_once(client, alice, bob):
    conversation = (
        await client.post("/v1/conversations", json={"title": "mine"}, headers=alice.headers)
    ).json()
    response = await client.delete("/v1/me", headers=alice.headers)
    assert response.status_code == 204
    assert (await client.get("/v1/me", headers=alice.headers)).status_code == 401
    assert (
        await client.post("/v1/auth/refresh", json={"refresh_token": alice.refresh_token})
    ).status_code == 401
    login = await client.post("/v1/auth/login", json={"email": alice.email, "password": alice.password})
    assert login.status_code == 401
    # The email is free again, and nothing of the old account comes back with it.
    again = await sign_up(client, alice.email)
    assert again.id != alice.id
    assert (
        await client.get(f"/v1/conversations/{conversation['id']}", headers=again.headers)
    ).status_code == 404
    assert (await client.get("/v1/me", headers=bob.headers)).status_code == 200


async def test_export_contains_everything_the_account_owns(client, alice, bob):
    conversation = (
        await client.post("/v1/conversations", json={"title": "Trip plans"}, headers=alice.headers)
    ).json()
    await client.post("/v1/conversations", json={"title": "bob's"}, headers=bob.headers)
    await client.post(f"/v1/conversations/{conversation['id']}/shares", headers=alice.headers)
    response = await client.get("/v1/me/export", headers=alice.headers)
    assert response.status_code == 200
    document = response.json()
    assert document["user"]["id"] == alice.id
    assert [item["title"] for item in document["conversations"]] == ["Trip plans"]
    assert len(document["shares"]) == 1
    assert len(document["logins"]) == 1
    assert "password_hash" not in response.text and alice.refresh_token not in response.text


async def test_signup_is_rate_limited_per_ip_with_retry_after(database_url, tmp_path):
    from backend.app import create_app
    from tests.conftest import make_settings, serve

    app = create_app(make_settings(database_url, tmp_path, SURGE_SIGNUP_PER_IP_PER_HOUR="2"))
    async with serve(app) as client:
        for index in range(2):
            await sign_up(client, f"limit{index}@example.com")
        response = await client.post(
            "/v1/auth/signup", json={"email": "limit9@example.com", "password": "correct horse"}
        )
    assert response.status_code == 429
    error = error_of(response)
    assert error["code"] == "rate_limited"
    assert int(response.headers["Retry-After"]) == error["retry_after_s"] > 0


async def test_login_is_rate_limited_per_email(database_url, tmp_path):
    from backend.app import create_app
    from tests.conftest import make_settings, serve

    app = create_app(make_settings(database_url, tmp_path, SURGE_LOGIN_PER_EMAIL_PER_10MIN="3"))
    async with serve(app) as client:
        account: Account = await sign_up(client, "target@example.com")
        statuses = [
            (
                await client.post("/v1/auth/login", json={"email": account.email, "password": "guess1234"})
            ).status_code
            for _ in range(4)
        ]
        other = await client.post(
            "/v1/auth/login", json={"email": "other@example.com", "password": "guess1234"}
        )
    assert statuses == [401, 401, 401, 429]
    assert other.status_code == 401
