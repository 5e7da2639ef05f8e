"""The SDK against a real Surge started by the tests (uvicorn on a free port; SQLite, and PostgreSQL
when it is reachable), sync and async, through every resource whose routes exist in this tree.

The turn resources (client.messages, client.models, client.realtime()) have their live tests in
test_live_turns.py.

client.devices, client.me.usage and client.admin (with its 403) have live tests below. Still covered only
against httpx.MockTransport (test_resources.py, test_auth.py, test_errors.py):
  - client.auth.log_in_with_firebase() (a live test needs a fake of Google's certificate endpoint:
    tests/push covers the server side of POST /v1/auth/firebase against one)
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from surge import (
    AsyncSurge,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    Conversation,
    ConversationDetail,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitError,
    Session,
    SharedConversation,
    Surge,
    User,
)
from surge._retry import MAX_RETRY_AFTER

from backend.conversations.tree import MessageTree
from backend.db import models as m
from backend.db.engine import create_engine, session_factory
from backend.settings import Settings
from tests.sdk.conftest import LiveSurge

PASSWORD = "correct horse battery"


async def add_message(
    settings: Settings, conversation_id: str, *, parent: str | None, role: str, content: str
) -> str:
    """Put a finished message in a conversation's tree, as a turn will once the turn routes exist."""
    engine = create_engine(settings)
    try:
        async with session_factory(engine)() as session:
            conversation = await session.get(m.Conversation, uuid.UUID(conversation_id))
            assert conversation is not None
            tree = MessageTree(session)
            message = tree.new_message(
                conversation,
                parent_id=uuid.UUID(parent) if parent else None,
                role=role,
                content=content,
                status="complete",
            )
            await tree.grow(conversation, [message])
            await session.commit()
            return str(message.id)
    finally:
        await engine.dispose()


def signed_up(live: LiveSurge, email: str = "ada@example.com", **options) -> Surge:
    client = Surge(base_url=live.url, **options)
    client.auth.sign_up(email, PASSWORD, display_name="Ada")
    return client


# --- sync ---------------------------------------------------------------------------------------


def test_sign_up_log_in_refresh_and_log_out(live_surge):
    with Surge(base_url=live_surge.url) as client:
        session = client.auth.sign_up("Ada@Example.com", PASSWORD, display_name="Ada")
        assert isinstance(session, Session) and session.token_type == "bearer" and session.expires_in == 900
        assert session.user.email == "ada@example.com" and session.user.tier == "free"
        assert client.me.get() == session.user

        refreshed = client.auth.refresh()
        assert refreshed.refresh_token != session.refresh_token
        assert client.me.get().id == session.user.id

        client.auth.log_out()
        assert client.tokens.credentials is None
        with pytest.raises(AuthenticationError) as raised:
            client.me.get()
        assert raised.value.code == "unauthorized" and raised.value.request_id

        again = client.auth.log_in("ada@example.com", PASSWORD)
        assert again.user.id == session.user.id and client.me.get().display_name == "Ada"


def test_an_expired_access_token_is_refreshed_without_the_caller_noticing(live_surge):
    with signed_up(live_surge) as first:
        credentials = first.tokens.credentials
        assert credentials is not None and credentials.refresh_token is not None
        # A client holding an access token the server refuses, and the refresh token of that login.
        with Surge(
            base_url=live_surge.url, access_token="expired.jwt.token", refresh_token=credentials.refresh_token
        ) as app:
            assert app.me.get().email == "ada@example.com"
            assert app.tokens.access_token != "expired.jwt.token"
        # The refresh spent the first client's refresh token: presenting it again revokes the login.
        with pytest.raises(AuthenticationError):
            first.auth.refresh()
        assert first.tokens.credentials is None


def test_account_errors_map_to_their_exceptions(live_surge):
    with signed_up(live_surge) as client:
        with pytest.raises(ConflictError) as conflict:
            client.auth.sign_up("ADA@example.com", PASSWORD)
        assert conflict.value.status_code == 409 and conflict.value.code == "conflict"
        with pytest.raises(BadRequestError) as invalid:
            client.auth.sign_up("someone@example.com", "short")
        assert invalid.value.code == "validation_error" and "password" in str(invalid.value.fields)
        with Surge(base_url=live_surge.url) as stranger, pytest.raises(AuthenticationError):
            stranger.auth.log_in("ada@example.com", "wrong password")


def test_too_many_logins_are_a_rate_limit_error_with_retry_after(live_surge, sleeps):
    with signed_up(live_surge) as client:
        limit = live_surge.settings.auth.login_per_email_ip_per_10min  # the limit one client meets first
        for _ in range(limit):
            with pytest.raises(AuthenticationError):
                client.auth.log_in("ada@example.com", "wrong password")
        with pytest.raises(RateLimitError) as raised:
            client.auth.log_in("ada@example.com", PASSWORD)
    error = raised.value
    assert error.status_code == 429 and error.code == "rate_limited"
    # The window is 10 minutes from the first failed login: longer than the SDK waits out in a call.
    assert error.retry_after is not None and MAX_RETRY_AFTER < error.retry_after <= 600
    assert sleeps.seconds == [], "a Retry-After beyond the cap goes to the caller at once"


def test_me_update_export_and_erasure(live_surge):
    with signed_up(live_surge) as client:
        assert client.me.update(display_name="Ada Lovelace").display_name == "Ada Lovelace"
        assert client.me.update().display_name == "Ada Lovelace", "nothing given, nothing changed"
        assert client.me.update(display_name=None).display_name is None
        conversation = client.conversations.create(title="Notes")
        export = client.me.export()
        assert export["user"]["email"] == "ada@example.com"
        assert [item["id"] for item in export["conversations"]] == [conversation.id]
        client.me.delete()
        assert client.tokens.credentials is None
        with pytest.raises(AuthenticationError):
            client.auth.log_in("ada@example.com", PASSWORD)


def test_conversations_create_get_update_list_and_delete(live_surge):
    with signed_up(live_surge) as client:
        created = [client.conversations.create(title=f"Chat {number}") for number in range(7)]
        assert all(isinstance(item, Conversation) and item.model == "deepseek-v3.1" for item in created)
        pinned = client.conversations.update(created[2].id, pinned=True)
        assert pinned.pinned is True
        client.conversations.update(created[5].id, archived=True, title="Old chat")

        page = client.conversations.list(limit=3)
        assert len(page.data) == 3 and page.has_next_page()
        listed = [item.id for item in page]
        expected = [created[2].id] + [
            item.id for item in reversed(created) if item.id not in (created[2].id, created[5].id)
        ]
        assert listed == expected, "pinned first, then newest; the archive apart; every page fetched"
        assert [item.title for item in client.conversations.list(archived=True)] == ["Old chat"]
        assert [item.id for item in client.conversations.list(q="chat 4")] == [created[4].id]

        detail = client.conversations.get(created[0].id)
        assert (
            isinstance(detail, ConversationDetail)
            and detail.conversation.title == "Chat 0"
            and detail.messages == []
        )
        client.conversations.delete(created[0].id)
        with pytest.raises(NotFoundError):
            client.conversations.get(created[0].id)
        with pytest.raises(BadRequestError) as invalid:
            client.conversations.create(model="gpt-17")
        assert "model" in (invalid.value.fields or {})


def test_another_accounts_conversation_is_not_found(live_surge):
    with signed_up(live_surge) as ada, signed_up(live_surge, "bob@example.com") as bob:
        secret = ada.conversations.create(title="Secret")
        for call in (
            lambda: bob.conversations.get(secret.id),
            lambda: bob.conversations.update(secret.id, title="mine"),
            lambda: bob.conversations.delete(secret.id),
            lambda: bob.conversations.shares.create(secret.id),
        ):
            with pytest.raises(NotFoundError):
                call()


def test_the_message_tree_pages_and_branches(live_surge):
    with signed_up(live_surge) as client:
        conversation = client.conversations.create(title="Tree")

        def add(parent: str | None, role: str, content: str) -> str:
            return asyncio.run(
                add_message(live_surge.settings, conversation.id, parent=parent, role=role, content=content)
            )

        question = add(None, "user", "Why is the sky blue?")
        first = add(question, "assistant", "Rayleigh scattering.")
        second = add(question, "assistant", "Short wavelengths scatter more.")

        tree = list(client.conversations.messages(conversation.id, limit=2))
        assert [item.id for item in tree] == [question, first, second]
        assert [item.parent_id for item in tree] == [None, question, question]
        assert client.conversations.get(conversation.id).messages[-1].id == second

        client.conversations.update(conversation.id, current_leaf_id=first)
        branch = client.conversations.get(conversation.id).messages
        assert [item.content for item in branch] == ["Why is the sky blue?", "Rayleigh scattering."]


def test_shares_are_public_until_deleted(live_surge):
    with signed_up(live_surge) as client:
        conversation = client.conversations.create(title="Worth sharing")
        share = client.conversations.shares.create(conversation.id)
        assert share.url.endswith(f"/s/{share.id}")  # the web app's page for it
        with Surge(base_url=live_surge.url) as stranger:
            shared = stranger.conversations.shares.get(share.id)
            assert isinstance(shared, SharedConversation) and shared.title == "Worth sharing"
            client.conversations.shares.delete(share.id)
            with pytest.raises(NotFoundError):
                stranger.conversations.shares.get(share.id)
            with pytest.raises(AuthenticationError):
                stranger.conversations.shares.delete(share.id)


def test_a_body_over_the_limit_is_payload_too_large(live_surge):
    with signed_up(live_surge) as client, pytest.raises(PayloadTooLargeError) as raised:
        client.conversations.create(title="x" * (live_surge.settings.server.max_body_bytes + 1))
    assert raised.value.status_code == 413 and raised.value.code == "payload_too_large"


# --- async --------------------------------------------------------------------------------------


async def test_async_accounts_from_sign_up_to_erasure(live_surge):
    async with AsyncSurge(base_url=live_surge.url) as client:
        session = await client.auth.sign_up("grace@example.com", PASSWORD)
        assert isinstance(session.user, User) and session.user.display_name is None
        assert (await client.auth.refresh()).user.id == session.user.id
        await client.auth.log_out()
        with pytest.raises(AuthenticationError):
            await client.me.get()
        await client.auth.log_in("grace@example.com", PASSWORD)
        assert (await client.me.update(display_name="Grace")).display_name == "Grace"
        with pytest.raises(ConflictError):
            await client.auth.sign_up("grace@example.com", PASSWORD)
        assert (await client.me.export())["user"]["display_name"] == "Grace"
        await client.me.delete()
        with pytest.raises(AuthenticationError):
            await client.auth.log_in("grace@example.com", PASSWORD)


async def test_async_operations_routes(live_surge):
    async with AsyncSurge(base_url=live_surge.url) as client:
        assert (await client.health.alive()).status == "ok"
        assert (await client.health.ready()).ready
        assert "# TYPE" in await client.health.metrics()
        assert (await client.health.openapi())["openapi"].startswith("3.1")


async def test_async_expired_access_token_is_refreshed(live_surge):
    async with AsyncSurge(base_url=live_surge.url) as first:
        await first.auth.sign_up("grace@example.com", PASSWORD)
        refresh_token = first.tokens.credentials.refresh_token
    async with AsyncSurge(
        base_url=live_surge.url, access_token="stale", refresh_token=refresh_token
    ) as client:
        users = await asyncio.gather(client.me.get(), client.me.get(), client.me.get())
        assert {user.email for user in users} == {"grace@example.com"}


async def test_async_conversations_tree_and_shares(live_surge):
    async with AsyncSurge(base_url=live_surge.url) as client:
        await client.auth.sign_up("grace@example.com", PASSWORD)
        created = [await client.conversations.create(title=f"Chat {number}") for number in range(5)]
        page = await client.conversations.list(limit=2)
        assert [item.id for item in page.data] == [created[4].id, created[3].id]
        assert [item.id async for item in client.conversations.list(limit=2)] == [
            item.id for item in reversed(created)
        ]
        updated = await client.conversations.update(created[1].id, title="Renamed", pinned=True)
        assert updated.title == "Renamed" and updated.pinned
        assert (await client.conversations.list(limit=1)).data[0].id == created[1].id

        question = await add_message(
            live_surge.settings, created[1].id, parent=None, role="user", content="Hi"
        )
        answer = await add_message(
            live_surge.settings, created[1].id, parent=question, role="assistant", content="Hello!"
        )
        assert [item.id async for item in client.conversations.messages(created[1].id, limit=1)] == [
            question,
            answer,
        ]
        detail = await client.conversations.get(created[1].id)
        assert [item.role for item in detail.messages] == ["user", "assistant"]

        share = await client.conversations.shares.create(created[1].id)
        async with AsyncSurge(base_url=live_surge.url) as stranger:
            shared = await stranger.conversations.shares.get(share.id)
            assert [item.content for item in shared.messages] == ["Hi", "Hello!"]
            await client.conversations.shares.delete(share.id)
            with pytest.raises(NotFoundError):
                await stranger.conversations.shares.get(share.id)

        await client.conversations.delete(created[0].id)
        with pytest.raises(NotFoundError):
            await client.conversations.get(created[0].id)


def test_devices_register_list_move_and_delete(live_surge):
    ada = signed_up(live_surge, "ada-devices@example.com")
    bob = signed_up(live_surge, "bob-devices@example.com")
    device = ada.devices.register("ios", "push-token-1", app_version="1.2.3", locale="en-GB")
    assert device.platform == "ios" and device.app_version == "1.2.3"
    assert [d.id for d in ada.devices.list()] == [device.id]
    # The same token registered by another account moves to it.
    moved = bob.devices.register("ios", "push-token-1")
    assert moved.id == device.id
    assert ada.devices.list() == [] and [d.id for d in bob.devices.list()] == [device.id]
    with pytest.raises(NotFoundError):
        ada.devices.delete(device.id)
    bob.devices.delete(device.id)
    assert bob.devices.list() == []


def test_admin_routes_refuse_other_tiers_and_show_the_fleet_to_admins(live_surge):
    from surge import PermissionDeniedError, SignupsPausedError

    ada = signed_up(live_surge, "ada-admin@example.com")
    with pytest.raises(PermissionDeniedError) as denied:
        ada.admin.fleet()
    assert denied.value.status_code == 403 and denied.value.code == "forbidden"
    asyncio.run(_make_admin(live_surge, ada.me.get().id))
    fleet = ada.admin.fleet()
    assert fleet["policy"] == "ttft"
    assert {worker["model"] for worker in fleet["workers"]} == {"deepseek-v3.1"}
    assert fleet["admission"]["degrade_level"] == 0
    closed = ada.admin.override_overload(level=3)
    assert closed["degrade_level"] == 3 and closed["signups_open"] is False
    with pytest.raises(SignupsPausedError) as paused:
        Surge(base_url=live_surge.url, max_retries=0).auth.sign_up("late@example.com", "correct horse")
    assert paused.value.code == "signups_paused" and paused.value.retry_after and paused.value.retry_after > 0
    assert ada.admin.override_overload(level=None)["degrade_level"] == 0


def test_usage_shows_the_tier_its_limits_and_what_was_used(live_surge):
    ada = signed_up(live_surge, "ada-usage@example.com")
    usage = ada.me.usage()
    assert usage.tier == "free"
    assert usage.limits["concurrent_turns"] == 2 and usage.limits["messages"] > 0
    assert usage.used == {"messages": 0, "tokens": 0, "concurrent_turns": 0}
    assert usage.resets_at is not None


async def _make_admin(live: LiveSurge, user_id: str) -> None:
    from sqlalchemy import update

    engine = create_engine(live.settings)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                update(m.User).where(m.User.id == uuid.UUID(user_id)).values(tier="admin")
            )
    finally:
        await engine.dispose()
