"""create_app runs a push dispatcher in every process, and says when pushes are only logged."""

from __future__ import annotations

import logging
from pathlib import Path
from uuid import UUID

import firebase_admin
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from backend.app import create_app
from backend.firebase import use_local_endpoints
from tests.conftest import make_settings, sign_up
from tests.fake_google import FakeGoogle
from tests.polling import until
from tests.push.conftest import Seed

LOGGED_ONLY = "push notifications are logged, not sent"


@pytest.fixture
def sending_app(database_url: str, tmp_path: Path, fake_google: FakeGoogle) -> Litestar:
    app = create_app(
        make_settings(
            database_url,
            tmp_path,
            SURGE_FCM_CREDENTIALS_FILE=str(fake_google.service_account(tmp_path)),
            SURGE_PUSH_DISPATCHER_ENABLED="true",
            SURGE_PUSH_POLL_INTERVAL_S="0.05",
        )
    )
    use_local_endpoints(app.state.components.firebase_app, fcm_send_url=fake_google.fcm_send_url)
    return app


@pytest.fixture
def logging_app(database_url: str, tmp_path: Path) -> Litestar:
    return create_app(
        make_settings(
            database_url, tmp_path, SURGE_PUSH_DISPATCHER_ENABLED="true", SURGE_PUSH_POLL_INTERVAL_S="0.02"
        )
    )


async def test_the_app_runs_a_dispatcher_that_sends_what_the_outbox_holds(
    sending_app: Litestar, fake_google: FakeGoogle, seed: Seed
):
    firebase_app_name = sending_app.state.components.firebase_app.name
    async with AsyncTestClient(app=sending_app) as client:
        account = await sign_up(client)
        device = {"platform": "android", "push_token": "token-from-the-app"}
        assert (await client.post("/v1/devices", json=device, headers=account.headers)).status_code == 201
        await seed.finished(UUID(account.id))
        await until(lambda: fake_google.sends_to("token-from-the-app"), what="the push sent")
    assert len(fake_google.sends_to("token-from-the-app")) == 1
    # Shutting down closed firebase-admin's app too.
    with pytest.raises(ValueError, match="does not exist"):
        firebase_admin.get_app(firebase_app_name)


async def test_without_fcm_credentials_the_app_says_once_at_start_up_that_pushes_are_only_logged(
    logging_app: Litestar, caplog
):
    caplog.set_level(logging.INFO, logger="surge.push")
    dispatcher = logging_app.state.components.dispatcher
    passes = 0
    run_once = dispatcher.run_once

    async def counted_pass() -> int:
        nonlocal passes
        passes += 1
        return await run_once()

    dispatcher.run_once = counted_pass
    async with AsyncTestClient(app=logging_app) as client:
        await client.get("/healthz")
        # Once, not once per pass: let the dispatcher make a few.
        await until(lambda: passes >= 3, what="three dispatcher passes")
    warnings = [record for record in caplog.records if record.getMessage().startswith(LOGGED_ONLY)]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
