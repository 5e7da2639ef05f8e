"""Every status and ``code`` of API.md maps to its exception, carrying what the envelope said."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
import surge
from surge import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AsyncSurge,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    NotFoundError,
    OverloadedError,
    PayloadTooLargeError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitError,
    ServiceUnavailableError,
    SignupsPausedError,
    Surge,
    UpstreamUnavailableError,
)

from tests.sdk.fakes import error_body

ERRORS = [
    (400, "validation_error", BadRequestError),
    (401, "unauthorized", AuthenticationError),
    (403, "forbidden", PermissionDeniedError),
    (404, "not_found", NotFoundError),
    (409, "conflict", ConflictError),
    (413, "payload_too_large", PayloadTooLargeError),
    (429, "rate_limited", RateLimitError),
    (429, "quota_exceeded", QuotaExceededError),
    (503, "overloaded", OverloadedError),
    (503, "upstream_unavailable", UpstreamUnavailableError),
    (503, "signups_paused", SignupsPausedError),
    (500, "internal", InternalServerError),
]


def client_answering(response: httpx.Response, **options) -> Surge:
    return Surge(
        base_url="http://surge.test",
        access_token="t",
        max_retries=0,
        http_client=httpx.Client(transport=httpx.MockTransport(lambda request: response)),
        **options,
    )


def envelope_response(status: int, code: str, **extra) -> httpx.Response:
    headers = {"x-request-id": "header-request-id"}
    if status in (429, 503):
        headers["retry-after"] = "7"
        extra.setdefault("retry_after_s", 7)
    return httpx.Response(status, json=error_body(code, "What went wrong.", **extra), headers=headers)


@pytest.mark.parametrize(("status", "code", "error_type"), ERRORS, ids=[code for _, code, _ in ERRORS])
def test_each_code_raises_its_exception_with_the_envelope(status, code, error_type):
    with client_answering(envelope_response(status, code)) as client, pytest.raises(error_type) as raised:
        client.me.get()
    error = raised.value
    assert type(error) is error_type and isinstance(error, APIStatusError)
    assert error.status_code == status and error.code == code
    assert error.message == "What went wrong."
    assert error.request_id == f"req-{code}", "the envelope's request id wins over the header"
    assert error.retry_after == (7.0 if status in (429, 503) else None)
    assert error.response.status_code == status and error.request.url.path == "/v1/me"
    assert f"req-{code}" in str(error) and code in str(error)


@pytest.mark.parametrize(("status", "code", "error_type"), ERRORS, ids=[code for _, code, _ in ERRORS])
async def test_async_each_code_raises_its_exception(status, code, error_type):
    transport = httpx.MockTransport(lambda request: envelope_response(status, code))
    async with AsyncSurge(
        base_url="http://surge.test",
        access_token="t",
        max_retries=0,
        http_client=httpx.AsyncClient(transport=transport),
    ) as client:
        with pytest.raises(error_type) as raised:
            await client.conversations.get("c1")
    assert raised.value.code == code and raised.value.status_code == status


def test_the_hierarchy_lets_callers_catch_by_family():
    assert issubclass(QuotaExceededError, RateLimitError)
    for specific in (OverloadedError, UpstreamUnavailableError, SignupsPausedError):
        assert issubclass(specific, ServiceUnavailableError)
    assert issubclass(APITimeoutError, APIConnectionError)
    for error_type in (*[error for _, _, error in ERRORS], ServiceUnavailableError):
        assert issubclass(error_type, APIStatusError) and issubclass(error_type, surge.APIError)
        assert issubclass(error_type, surge.SurgeError)
    assert "QuotaExceededError" in surge._exceptions.__doc__, "the tree is drawn in one docstring"


def test_quota_exceeded_carries_when_the_quota_resets():
    response = envelope_response(429, "quota_exceeded", resets_at="2025-01-28T00:00:00Z")
    with client_answering(response) as client, pytest.raises(QuotaExceededError) as raised:
        client.me.get()
    assert raised.value.resets_at == datetime(2025, 1, 28, tzinfo=UTC)


def test_validation_errors_name_their_fields():
    response = httpx.Response(
        400, json=error_body("validation_error", fields={"email": "Invalid email address."})
    )
    with client_answering(response) as client, pytest.raises(BadRequestError) as raised:
        client.auth.sign_up("nope", "correct horse")
    assert raised.value.fields == {"email": "Invalid email address."}


def test_retry_after_comes_from_the_header_when_the_body_has_none():
    response = httpx.Response(503, text="upstream connect error", headers={"retry-after": "12"})
    with client_answering(response) as client, pytest.raises(ServiceUnavailableError) as raised:
        client.me.get()
    error = raised.value
    assert error.retry_after == 12 and error.code is None and error.body == "upstream connect error"


@pytest.mark.parametrize(
    ("status", "error_type"),
    [(502, InternalServerError), (504, InternalServerError), (405, APIStatusError), (418, APIStatusError)],
)
def test_statuses_without_a_code_of_their_own_map_by_status(status, error_type):
    response = httpx.Response(status, html="<h1>Bad gateway</h1>", headers={"x-request-id": "from-header"})
    with client_answering(response) as client, pytest.raises(error_type) as raised:
        client.me.get()
    assert type(raised.value) is error_type
    assert raised.value.status_code == status and raised.value.request_id == "from-header"


def test_a_code_the_sdk_does_not_know_falls_back_to_the_status():
    response = httpx.Response(429, json=error_body("too_spicy"))
    with client_answering(response) as client, pytest.raises(RateLimitError) as raised:
        client.me.get()
    assert raised.value.code == "too_spicy"


def test_a_code_arriving_with_another_status_is_classified_by_the_status():
    response = httpx.Response(502, json=error_body("not_found"))
    with client_answering(response) as client, pytest.raises(InternalServerError):
        client.me.get()


def test_no_response_at_all_is_a_connection_error(sleeps):
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with (
        Surge(
            base_url="http://surge.test", http_client=httpx.Client(transport=httpx.MockTransport(refuse))
        ) as client,
        pytest.raises(APIConnectionError) as raised,
    ):
        client.conversations.shares.get("s1")
    assert not isinstance(raised.value, APITimeoutError)
    error = raised.value
    assert error.status_code is error.code is error.request_id is error.retry_after is None
    assert raised.value.request.url.path == "/v1/shares/s1"


def test_no_response_in_time_is_a_timeout_error(sleeps):
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with (
        Surge(
            base_url="http://surge.test", http_client=httpx.Client(transport=httpx.MockTransport(slow))
        ) as client,
        pytest.raises(APITimeoutError),
    ):
        client.conversations.shares.get("s1")


def test_a_success_with_a_body_that_does_not_match_the_contract_is_an_api_error():
    with (
        client_answering(httpx.Response(200, json={"id": 42})) as client,
        pytest.raises(surge.APIError) as raised,
    ):
        client.me.get()
    assert "Unexpected response" in str(raised.value)
