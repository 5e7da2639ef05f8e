"""What every route shares: the error envelope, X-Request-ID, health, metrics, docs and OpenAPI."""

from __future__ import annotations

import asyncio
import time

from tests.conftest import error_of, make_settings, serve
from tests.metric_samples import Scrape, scrape
from tests.polling import until


async def test_every_response_carries_a_request_id(client, alice):
    for response in (
        await client.get("/healthz"),
        await client.get("/v1/me", headers=alice.headers),
        await client.get("/v1/me"),
        await client.get("/no/such/route"),
    ):
        assert len(response.headers["X-Request-ID"]) >= 16


async def test_a_sane_client_request_id_is_echoed_and_a_hostile_one_replaced(client):
    echoed = await client.get("/v1/me", headers={"X-Request-ID": "app-1234.abcd"})
    assert echoed.headers["X-Request-ID"] == "app-1234.abcd"
    assert error_of(echoed)["request_id"] == "app-1234.abcd"
    hostile = "<script>alert(1)</script> with spaces"
    replaced = await client.get("/healthz", headers={"X-Request-ID": hostile})
    assert replaced.headers["X-Request-ID"] != hostile


async def test_an_unknown_route_is_a_not_found_envelope(client):
    response = await client.get("/v1/nothing-here")
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


async def test_a_wrong_method_is_a_method_not_allowed_envelope(client):
    response = await client.put("/healthz")
    assert response.status_code == 405
    assert error_of(response)["code"] == "method_not_allowed"


async def test_an_oversized_body_is_payload_too_large(database_url, tmp_path):
    from backend.app import create_app

    app = create_app(make_settings(database_url, tmp_path, SURGE_MAX_BODY_BYTES="1024"))
    async with serve(app) as client:
        response = await client.post(
            "/v1/auth/signup", json={"email": "big@example.com", "password": "x" * 2000}
        )
    assert response.status_code == 413
    assert error_of(response)["code"] == "payload_too_large"


async def test_healthz_and_readyz(client):
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["database"] == "ok"


async def test_readyz_is_503_naming_the_failed_check_when_the_database_is_gone(tmp_path):
    from backend.app import create_app

    # Nothing listens on port 1: the database is unreachable.
    app = create_app(make_settings("postgresql+asyncpg://surge@127.0.0.1:1/surge", tmp_path))
    async with serve(app) as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["database"].startswith("failed")
    assert int(response.headers["Retry-After"]) >= 1


ME = {"app_name": "surge", "method": "GET", "path": "/v1/me"}


async def test_metrics_are_prometheus_text_and_count_requests_by_route(client, alice):
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    before = await scrape(client)
    await client.get("/v1/me", headers=alice.headers)
    after = await scrape(client)
    assert after.added(before, "surge_http_requests_total", **ME, status_code="200") == 1
    assert after.added(before, "surge_http_request_duration_seconds_count", **ME, status_code="200") == 1


async def test_metrics_count_a_refused_request_under_its_status(client):
    before = await scrape(client)
    assert (await client.get("/v1/me")).status_code == 401
    after = await scrape(client)
    assert after.added(before, "surge_http_requests_total", **ME, status_code="200") == 0
    assert after.added(before, "surge_http_requests_total", **ME, status_code="401") == 1


async def test_metrics_show_how_late_the_event_loop_runs(client):
    """A replica whose core is busy runs everything late: the lag histogram sees a stalled loop."""
    before = await scrape(client)
    # The loop stalls for longer than the monitor's interval (0.25 s) plus the 0.25 s bucket: whenever in
    # its sleep the stall begins, the monitor wakes more than 0.25 s late.
    time.sleep(0.6)  # noqa: ASYNC251
    await asyncio.sleep(0.6)  # the monitor wakes (late), then again on time
    after = await scrape(client)

    def late(scrape: Scrape) -> float:  # observations above 250 ms
        return scrape.value(f"{LAG}_count") - scrape.value(f"{LAG}_bucket", le="0.25")

    assert late(after) - late(before) >= 1
    assert after.added(before, f"{LAG}_count") >= 2


LAG = "surge_event_loop_lag_seconds"


async def test_docs_and_openapi_are_public(client):
    docs = await client.get("/docs")
    assert docs.status_code == 200 and "text/html" in docs.headers["content-type"]
    schema = (await client.get("/schema/openapi.json")).json()
    assert schema["openapi"].startswith("3.1")
    assert "/v1/conversations/{conversation_id}" in schema["paths"]
    assert "BearerToken" in schema["components"]["securitySchemes"]


async def test_the_openapi_document_covers_every_route_with_its_schemas(client):
    schema = (await client.get("/schema/openapi.json")).json()
    expected = {
        ("post", "/v1/auth/signup"),
        ("post", "/v1/auth/login"),
        ("post", "/v1/auth/refresh"),
        ("post", "/v1/auth/logout"),
        ("get", "/v1/me"),
        ("patch", "/v1/me"),
        ("delete", "/v1/me"),
        ("get", "/v1/me/export"),
        ("post", "/v1/conversations"),
        ("get", "/v1/conversations"),
        ("get", "/v1/conversations/{conversation_id}"),
        ("patch", "/v1/conversations/{conversation_id}"),
        ("delete", "/v1/conversations/{conversation_id}"),
        ("get", "/v1/conversations/{conversation_id}/messages"),
        ("post", "/v1/conversations/{conversation_id}/shares"),
        ("get", "/v1/shares/{share_id}"),
        ("delete", "/v1/shares/{share_id}"),
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/metrics"),
        ("post", "/v1/auth/firebase"),
        ("post", "/v1/devices"),
        ("get", "/v1/devices"),
        ("delete", "/v1/devices/{device_id}"),
    }
    present = {(method, path) for path, item in schema["paths"].items() for method in item}
    assert expected <= present
    names = set(schema["components"]["schemas"])
    assert {"User", "Conversation", "Message"} <= names, names
    assert any(name.endswith("Session") for name in names), names


PUBLIC = {
    ("post", "/v1/auth/signup"),
    ("post", "/v1/auth/login"),
    ("post", "/v1/auth/refresh"),
    ("post", "/v1/auth/firebase"),
    ("get", "/v1/shares/{share_id}"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
}


async def test_the_openapi_document_says_which_routes_need_a_token(client):
    schema = (await client.get("/schema/openapi.json")).json()
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if (method, path) in PUBLIC:
                assert "security" not in operation, (method, path)
            elif path.startswith("/openai/v1/"):
                # The OpenAI-compatible API takes API keys, and only there (tests/openai).
                assert operation["security"] == [{"ApiKey": []}], (method, path)
            else:
                assert operation["security"] == [{"BearerToken": []}], (method, path)


async def test_logs_never_contain_passwords_tokens_or_message_text(client, caplog):
    import logging

    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="surge")
    password, secret_title = "a very secret passphrase", "my secret diagnosis"
    session = (
        await client.post("/v1/auth/signup", json={"email": "logs@example.com", "password": password})
    ).json()
    headers = {"Authorization": f"Bearer {session['access_token']}"}
    await client.post("/v1/conversations", json={"title": secret_title}, headers=headers)
    await client.get(f"/v1/conversations?q={secret_title}", headers=headers)
    await client.post("/v1/auth/refresh", json={"refresh_token": session["refresh_token"]})
    await client.post("/v1/auth/login", json={"email": "logs@example.com", "password": "wrong " + password})
    logged = "\n".join(f"{record.getMessage()} {record.__dict__}" for record in caplog.records)
    assert logged, "expected request logs"
    for secret in (password, session["access_token"], session["refresh_token"], secret_title, "diagnosis"):
        assert secret not in logged


async def test_a_client_hanging_up_mid_body_is_not_a_server_error(client, alice, caplog):
    """A phone losing signal while it uploads: logged quietly, never as an unhandled server error."""
    import asyncio
    import logging

    caplog.set_level(logging.INFO, logger="surge.errors")
    _reader, writer = await asyncio.open_connection(client.base_url.host, client.base_url.port)
    writer.write(
        b"POST /v1/conversations HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {alice.access_token}\r\n".encode()
        + b'Content-Length: 1000\r\n\r\n{"title": "cut o'
    )
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    # The server has dealt with the hang-up once it says so; anything it logged for it is logged by then.
    await until(
        lambda: any("disconnected" in r.getMessage() for r in caplog.records), what="the hang-up logged"
    )
    assert (await client.get("/healthz")).status_code == 200
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [
        r.getMessage() for r in caplog.records
    ]
