"""``client.api_keys`` against a live Surge, sync and async: a key made through the SDK works with OpenAI's
own client, is listed without its secret, and stops working once deleted."""

from __future__ import annotations

import openai
import pytest
from surge import ApiKey, AsyncSurge, CreatedApiKey, NotFoundError, Surge

from tests.conftest import MODEL_ID

PASSWORD = "correct horse battery"


def test_sync_create_list_use_and_delete(live_surge):
    with Surge(base_url=live_surge.url) as client:
        client.auth.sign_up("keys@example.com", PASSWORD)
        created = client.api_keys.create("ci")
        assert isinstance(created, CreatedApiKey) and created.secret.startswith(created.prefix)
        assert created.secret.startswith("sk-surge-") and created.name == "ci"

        api = openai.OpenAI(base_url=f"{live_surge.url}/openai/v1", api_key=created.secret, max_retries=0)
        assert [model.id for model in api.models.list()] == [MODEL_ID]

        listed = client.api_keys.list()
        assert [(key.id, key.name, key.prefix) for key in listed] == [(created.id, "ci", created.prefix)]
        assert isinstance(listed[0], ApiKey) and listed[0].last_used_at is not None
        assert not hasattr(listed[0], "secret")

        client.api_keys.delete(created.id)
        assert client.api_keys.list() == []
        with pytest.raises(NotFoundError):
            client.api_keys.delete(created.id)
        with pytest.raises(openai.AuthenticationError):
            api.models.list()


async def test_async_create_list_and_delete(live_surge):
    async with AsyncSurge(base_url=live_surge.url) as client:
        await client.auth.sign_up("async-keys@example.com", PASSWORD)
        first = await client.api_keys.create("one")
        second = await client.api_keys.create("two")
        assert first.secret != second.secret
        assert [key.name for key in await client.api_keys.list()] == ["one", "two"]
        await client.api_keys.delete(first.id)
        remaining = await client.api_keys.list()
        assert [key.id for key in remaining] == [second.id] and remaining[0].last_used_at is None
