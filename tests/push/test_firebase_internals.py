"""The private parts of firebase-admin that backend/firebase.py reaches into are still where it expects.

If one of these fails after upgrading firebase-admin, do not just bump the pin: read the new
messaging.py, _http_client.py, _retry.py and _token_gen.py, then fix backend/firebase.py.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import firebase_admin
import pytest
from firebase_admin import _http_client, _retry, _token_gen, auth, messaging

from backend.firebase import (
    TESTED_FIREBASE_ADMIN,
    AnonymousCredential,
    close_firebase_app,
    configure_messaging,
    use_local_endpoints,
)

UPGRADE_HELP = (
    "firebase-admin's private API moved: backend/firebase.py reaches into it to send each FCM message once "
    "(the outbox retries) and to point tests at local fakes. Re-read firebase-admin's source and fix it."
)


def moved(what: str) -> None:
    pytest.fail(f"{what}\n{UPGRADE_HELP}", pytrace=False)


@pytest.fixture
def app() -> Iterator[Any]:
    app = firebase_admin.initialize_app(
        AnonymousCredential(), {"projectId": "surge-internals"}, name="surge-internals-test"
    )
    try:
        yield app
    finally:
        firebase_admin.delete_app(app)


def test_firebase_admin_is_the_version_surge_was_tested_with():
    if firebase_admin.__version__ != TESTED_FIREBASE_ADMIN:
        moved(
            f"firebase-admin {firebase_admin.__version__} is installed; backend/firebase.py was written "
            f"against {TESTED_FIREBASE_ADMIN} (TESTED_FIREBASE_ADMIN)."
        )


def test_the_messaging_service_still_has_the_client_and_url_surge_replaces(app):
    get_service = getattr(messaging, "_get_messaging_service", None)
    if get_service is None:
        moved("messaging._get_messaging_service(app) is gone.")
    service = get_service(app)
    client = getattr(service, "_async_client", None)
    if not isinstance(client, _http_client.HttpxAsyncClient):
        moved(f"the messaging service's _async_client is {client!r}, not an _http_client.HttpxAsyncClient.")
    url = getattr(service, "_fcm_url", None)
    if url != "https://fcm.googleapis.com/v1/projects/surge-internals/messages:send":
        moved(f"the messaging service's _fcm_url is {url!r}.")
    # send_each_async must still go through _async_client.request(...) to _fcm_url.
    source = inspect.getsource(type(service).send_each_async)
    if "self._async_client.request" not in source or "url=self._fcm_url" not in source:
        moved(
            "_MessagingService.send_each_async no longer posts through self._async_client to self._fcm_url."
        )


def test_the_http_client_still_takes_a_retry_configuration():
    if "retry_config" not in inspect.signature(_http_client.HttpxAsyncClient).parameters:
        moved("_http_client.HttpxAsyncClient() no longer takes retry_config.")
    parameters = inspect.signature(_retry.HttpxRetry).parameters
    if not {"max_retries", "status_forcelist"} <= set(parameters):
        moved("_retry.HttpxRetry() no longer takes max_retries and status_forcelist.")


async def test_configure_messaging_leaves_one_attempt_per_message(app):
    client = configure_messaging(app)
    try:
        service = messaging._get_messaging_service(app)
        assert service._async_client is client
        retry = client._retry_config
        assert (retry.retries_left, retry.status_forcelist) == (0, [])
    finally:
        await client.aclose()


def test_the_id_token_verifier_still_reads_its_certificates_url(app):
    get_client = getattr(auth, "_get_client", None)
    if get_client is None:
        moved("auth._get_client(app) is gone.")
    verifier = getattr(getattr(get_client(app), "_token_verifier", None), "id_token_verifier", None)
    if verifier is None:
        moved("auth.Client no longer has _token_verifier.id_token_verifier.")
    if getattr(verifier, "cert_url", None) != _token_gen.ID_TOKEN_CERT_URI:
        moved(f"the ID token verifier's cert_url is {getattr(verifier, 'cert_url', None)!r}.")
    if "certs_url=self.cert_url" not in inspect.getsource(type(verifier).verify):
        moved("_JWTVerifier.verify no longer fetches certificates from self.cert_url.")

    use_local_endpoints(app, id_token_certs_url="http://127.0.0.1:9/certs")
    assert verifier.cert_url == "http://127.0.0.1:9/certs"


async def test_a_firebase_app_closes_inside_a_running_event_loop():
    app = firebase_admin.initialize_app(
        AnonymousCredential(), {"projectId": "surge-close"}, name="surge-close"
    )
    client = configure_messaging(app)
    await client.aclose()
    await close_firebase_app(app)
    with pytest.raises(ValueError, match="does not exist"):
        firebase_admin.get_app("surge-close")
