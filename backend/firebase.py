"""The process's firebase-admin App, and the only code that reaches into firebase-admin's private parts.

Two things need them, which is why firebase-admin is pinned (pyproject.toml):

- :func:`configure_messaging` gives the messaging service an HTTP client that tries once, so that the push
  outbox, not the SDK, decides when to retry (the SDK would retry 500/503 four times in line, ignoring
  ``Retry-After``, while the whole batch waits);
- :func:`use_local_endpoints` points the SDK at stand-ins of Google's endpoints (tests; and FCM's, with
  ``SURGE_FCM_SEND_URL``, in staging and ``make chaos``).

``tests/push/test_firebase_internals.py`` fails with a clear message if a new firebase-admin moves them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from typing import Any

import firebase_admin
import google.auth.credentials
from firebase_admin import _http_client, _retry, auth, credentials, messaging

from backend.settings import FIREBASE_AUTH_EMULATOR_HOST, Settings

logger = logging.getLogger("surge.firebase")

# Every attribute named here is private to firebase-admin; checked by tests/push/test_firebase_internals.py.
TESTED_FIREBASE_ADMIN = "7.7.0"


class AnonymousCredential(credentials.Base):  # type: ignore[misc]
    """For checking ID tokens alone (Google's public keys): never asks Google for an access token."""

    def get_credential(self) -> google.auth.credentials.Credentials:
        return google.auth.credentials.AnonymousCredentials()  # type: ignore[no-untyped-call]


def build_firebase_app(settings: Settings) -> Any:
    """A firebase-admin App of its own (never the global default), or None without any Firebase setting.

    With ``SURGE_FCM_CREDENTIALS_FILE`` it can send pushes; with ``SURGE_FIREBASE_PROJECT_ID`` alone it can
    only check ID tokens, which needs no credentials.
    """
    project_id = settings.firebase.project_id
    credentials_file = settings.fcm.credentials_file
    if not project_id and not credentials_file:
        return None
    if os.environ.get(FIREBASE_AUTH_EMULATOR_HOST):
        logger.warning(
            "%s is set: Firebase ID tokens are accepted WITHOUT checking their signature",
            FIREBASE_AUTH_EMULATOR_HOST,
        )
    credential = credentials.Certificate(credentials_file) if credentials_file else AnonymousCredential()
    options: dict[str, Any] = {"httpTimeout": settings.fcm.timeout_s}
    if project_id:
        options["projectId"] = project_id
    return firebase_admin.initialize_app(credential, options, name=f"surge-{uuid.uuid4().hex}")


async def close_firebase_app(app: Any) -> None:
    # delete_app() closes the messaging service with asyncio.run(), which cannot run inside a running
    # event loop; in a thread it gets a loop of its own (the client it closes is already closed).
    await asyncio.to_thread(firebase_admin.delete_app, app)


def _moved(what: str) -> RuntimeError:
    return RuntimeError(
        f"firebase-admin {firebase_admin.__version__} no longer has {what}; Surge reaches into it and is "
        f"tested with firebase-admin {TESTED_FIREBASE_ADMIN} (see backend/firebase.py)"
    )


def _messaging_service(app: Any) -> Any:
    get_service = getattr(messaging, "_get_messaging_service", None)
    if get_service is None:
        raise _moved("messaging._get_messaging_service()")
    service = get_service(app)
    for attribute in ("_async_client", "_fcm_url"):
        if not hasattr(service, attribute):
            raise _moved(f"the messaging service's {attribute}")
    return service


def configure_messaging(app: Any) -> Any:
    """Give the app's messaging service an HTTP client that sends each message once; return that client.

    ``messaging.send_each_async`` then reports a 503 or a 429 at once, with its ``Retry-After``, and the
    push outbox schedules the retry. The caller closes the client (``await client.aclose()``).
    """
    service = _messaging_service(app)
    if not hasattr(_http_client, "HttpxAsyncClient") or not hasattr(_retry, "HttpxRetry"):
        raise _moved("_http_client.HttpxAsyncClient or _retry.HttpxRetry")
    client = _http_client.HttpxAsyncClient(
        credential=app.credential.get_credential(),
        timeout=app.options.get("httpTimeout", _http_client.DEFAULT_TIMEOUT_SECONDS),
        retry_config=_retry.HttpxRetry(max_retries=0, status_forcelist=[]),
    )
    service._async_client = client
    return client


def use_local_endpoints(
    app: Any, *, fcm_send_url: str | None = None, id_token_certs_url: str | None = None
) -> None:
    """Send pushes to ``fcm_send_url`` and fetch ID token certificates from ``id_token_certs_url``.

    For tests against local fakes of Google; production always talks to Google.
    """
    if fcm_send_url is not None:
        _messaging_service(app)._fcm_url = fcm_send_url
    if id_token_certs_url is not None:
        where = "auth._get_client(app)._token_verifier.id_token_verifier.cert_url"
        get_client = getattr(auth, "_get_client", None)
        if get_client is None:
            raise _moved(where)
        verifier = getattr(getattr(get_client(app), "_token_verifier", None), "id_token_verifier", None)
        if verifier is None or not hasattr(verifier, "cert_url"):
            raise _moved(where)
        verifier.cert_url = id_token_certs_url
