"""/v1/conversations and /v1/shares: listing, search, the message tree, branches and shares."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from backend.conversations.tree import MessageTree
from backend.db import models as m
from tests.conftest import error_of


async def create(client, account, **body: Any) -> dict[str, Any]:
    response = await client.post("/v1/conversations", json=body, headers=account.headers)
    assert response.status_code == 201, response.text
    return response.json()


async def add_message(sessions, conversation_id: str, *, parent: str | None, role: str, content: str) -> str:
    """Insert a message through the service layer, as the chat turn will."""
    async with sessions() as session:
        conversation = await session.get(m.Conversation, uuid.UUID(conversation_id))
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


async def test_create_uses_the_default_model_and_returns_the_contract_shape(client, alice):
    body = await create(client, alice, title="Hello")
    assert set(body) == {
        "id",
        "title",
        "model",
        "pinned",
        "archived",
        "created_at",
        "updated_at",
        "last_message_at",
    }
    assert body["model"] == "deepseek-v3.1" and body["title"] == "Hello"
    assert body["pinned"] is False and body["archived"] is False and body["last_message_at"] is None


async def test_create_with_an_unknown_model_is_a_validation_error(client, alice):
    response = await client.post("/v1/conversations", json={"model": "gpt-17"}, headers=alice.headers)
    assert response.status_code == 400
    assert "model" in error_of(response)["fields"]


async def test_list_puts_pinned_first_then_most_recent_activity(client, sessions, alice):
    old = await create(client, alice, title="old")
    pinned = await create(client, alice, title="pinned")
    await create(client, alice, title="recent")
    await client.patch(f"/v1/conversations/{pinned['id']}", json={"pinned": True}, headers=alice.headers)
    await add_message(sessions, old["id"], parent=None, role="user", content="bump")
    listed = (await client.get("/v1/conversations", headers=alice.headers)).json()
    assert [item["title"] for item in listed["data"]] == ["pinned", "old", "recent"]
    assert listed["next_cursor"] is None


async def test_pagination_is_stable_when_conversations_are_created_meanwhile(client, alice):
    for index in range(5):
        await create(client, alice, title=f"c{index}")
    first = (await client.get("/v1/conversations?limit=2", headers=alice.headers)).json()
    await create(client, alice, title="newcomer")
    second = (
        await client.get(f"/v1/conversations?limit=2&cursor={first['next_cursor']}", headers=alice.headers)
    ).json()
    third = (
        await client.get(f"/v1/conversations?limit=2&cursor={second['next_cursor']}", headers=alice.headers)
    ).json()
    titles = [item["title"] for page in (first, second, third) for item in page["data"]]
    assert titles == ["c4", "c3", "c2", "c1", "c0"]
    assert third["next_cursor"] is None


@pytest.mark.parametrize("limit", ["0", "101", "abc"])
async def test_limit_outside_1_to_100_is_a_validation_error(client, alice, limit):
    response = await client.get(f"/v1/conversations?limit={limit}", headers=alice.headers)
    assert response.status_code == 400
    assert error_of(response)["code"] == "validation_error"


async def test_a_tampered_cursor_is_a_validation_error(client, alice):
    response = await client.get("/v1/conversations?cursor=bm90LWEtY3Vyc29y", headers=alice.headers)
    assert response.status_code == 400


async def test_archived_conversations_are_listed_only_when_asked(client, alice):
    kept = await create(client, alice, title="kept")
    filed = await create(client, alice, title="filed")
    await client.patch(f"/v1/conversations/{filed['id']}", json={"archived": True}, headers=alice.headers)
    active = (await client.get("/v1/conversations", headers=alice.headers)).json()["data"]
    archived = (await client.get("/v1/conversations?archived=true", headers=alice.headers)).json()["data"]
    assert [item["id"] for item in active] == [kept["id"]]
    assert [item["id"] for item in archived] == [filed["id"]]


async def test_search_matches_titles_and_message_text_case_insensitively(client, sessions, alice, bob):
    by_title = await create(client, alice, title="Kyoto itinerary")
    by_text = await create(client, alice, title="untitled")
    await create(client, alice, title="unrelated")
    await add_message(
        sessions, by_text["id"], parent=None, role="user", content="What should I pack for KYOTO in May?"
    )
    bobs = await create(client, bob, title="kyoto too")
    found = (await client.get("/v1/conversations?q=kyoto", headers=alice.headers)).json()["data"]
    assert {item["id"] for item in found} == {by_title["id"], by_text["id"]}
    assert bobs["id"] not in {item["id"] for item in found}


async def test_search_takes_like_wildcards_literally(client, alice):
    await create(client, alice, title="100% sure")
    await create(client, alice, title="1000 sure")
    found = (await client.get("/v1/conversations?q=100%25", headers=alice.headers)).json()["data"]
    assert [item["title"] for item in found] == ["100% sure"]


async def test_get_returns_the_current_branch_root_first(client, sessions, alice):
    conversation = await create(client, alice, title="tree")
    question = await add_message(sessions, conversation["id"], parent=None, role="user", content="Q")
    first_answer = await add_message(
        sessions, conversation["id"], parent=question, role="assistant", content="A1"
    )
    second_answer = await add_message(
        sessions, conversation["id"], parent=question, role="assistant", content="A2"
    )
    detail = (await client.get(f"/v1/conversations/{conversation['id']}", headers=alice.headers)).json()
    assert [item["id"] for item in detail["messages"]] == [question, second_answer]
    assert detail["messages"][1]["parent_id"] == question
    assert detail["conversation"]["last_message_at"] is not None
    # Selecting the other answer switches the branch.
    patched = await client.patch(
        f"/v1/conversations/{conversation['id']}",
        json={"current_leaf_id": first_answer},
        headers=alice.headers,
    )
    assert patched.status_code == 200
    detail = (await client.get(f"/v1/conversations/{conversation['id']}", headers=alice.headers)).json()
    assert [item["content"] for item in detail["messages"]] == ["Q", "A1"]


async def test_selecting_an_inner_message_follows_its_latest_descendant(client, sessions, alice):
    conversation = await create(client, alice)
    root = await add_message(sessions, conversation["id"], parent=None, role="user", content="Q1")
    answer = await add_message(sessions, conversation["id"], parent=root, role="assistant", content="A1")
    edited = await add_message(sessions, conversation["id"], parent=None, role="user", content="Q1 edited")
    follow_up = await add_message(sessions, conversation["id"], parent=answer, role="user", content="Q2")
    await add_message(sessions, conversation["id"], parent=edited, role="assistant", content="A1'")
    await client.patch(
        f"/v1/conversations/{conversation['id']}", json={"current_leaf_id": root}, headers=alice.headers
    )
    detail = (await client.get(f"/v1/conversations/{conversation['id']}", headers=alice.headers)).json()
    assert [item["content"] for item in detail["messages"]] == ["Q1", "A1", "Q2"]
    assert detail["messages"][-1]["id"] == follow_up


async def test_a_new_message_supersedes_the_selected_branch(client, sessions, alice):
    conversation = await create(client, alice)
    question = await add_message(sessions, conversation["id"], parent=None, role="user", content="Q")
    first = await add_message(sessions, conversation["id"], parent=question, role="assistant", content="A1")
    await add_message(sessions, conversation["id"], parent=question, role="assistant", content="A2")
    await client.patch(
        f"/v1/conversations/{conversation['id']}", json={"current_leaf_id": first}, headers=alice.headers
    )
    await add_message(sessions, conversation["id"], parent=question, role="assistant", content="A3")
    detail = (await client.get(f"/v1/conversations/{conversation['id']}", headers=alice.headers)).json()
    assert [item["content"] for item in detail["messages"]] == ["Q", "A3"]


async def test_selecting_a_message_of_another_conversation_is_refused(client, sessions, alice):
    first = await create(client, alice)
    second = await create(client, alice)
    foreign = await add_message(sessions, second["id"], parent=None, role="user", content="elsewhere")
    response = await client.patch(
        f"/v1/conversations/{first['id']}", json={"current_leaf_id": foreign}, headers=alice.headers
    )
    assert response.status_code == 400
    assert "current_leaf_id" in error_of(response)["fields"]


async def test_patch_changes_only_the_fields_sent(client, alice):
    conversation = await create(client, alice, title="before")
    response = await client.patch(
        f"/v1/conversations/{conversation['id']}", json={"pinned": True}, headers=alice.headers
    )
    assert response.json()["title"] == "before" and response.json()["pinned"] is True
    cleared = await client.patch(
        f"/v1/conversations/{conversation['id']}", json={"title": None}, headers=alice.headers
    )
    assert cleared.json()["title"] is None and cleared.json()["pinned"] is True


async def test_messages_lists_the_whole_tree_oldest_first_in_pages(client, sessions, alice):
    conversation = await create(client, alice)
    question = await add_message(sessions, conversation["id"], parent=None, role="user", content="Q")
    ids = [question]
    for index in range(4):
        ids.append(
            await add_message(
                sessions, conversation["id"], parent=question, role="assistant", content=f"A{index}"
            )
        )
    first = (
        await client.get(f"/v1/conversations/{conversation['id']}/messages?limit=3", headers=alice.headers)
    ).json()
    second = (
        await client.get(
            f"/v1/conversations/{conversation['id']}/messages?limit=3&cursor={first['next_cursor']}",
            headers=alice.headers,
        )
    ).json()
    assert [item["id"] for item in first["data"] + second["data"]] == ids
    assert second["next_cursor"] is None
    message = first["data"][1]
    assert set(message) == {
        "id",
        "conversation_id",
        "parent_id",
        "role",
        "content",
        "reasoning",
        "status",
        "model",
        "finish_reason",
        "error",
        "usage",
        "feedback",
        "created_at",
        "completed_at",
    }


async def test_delete_removes_the_conversation_its_messages_and_shares(client, sessions, alice):
    conversation = await create(client, alice)
    await add_message(sessions, conversation["id"], parent=None, role="user", content="bye")
    share = (
        await client.post(f"/v1/conversations/{conversation['id']}/shares", headers=alice.headers)
    ).json()
    assert (
        await client.delete(f"/v1/conversations/{conversation['id']}", headers=alice.headers)
    ).status_code == 204
    assert (
        await client.get(f"/v1/conversations/{conversation['id']}", headers=alice.headers)
    ).status_code == 404
    assert (await client.get(f"/v1/shares/{share['id']}")).status_code == 404


async def test_a_share_is_a_public_snapshot_without_reasoning_or_owner_ids(client, sessions, alice):
    conversation = await create(client, alice, title="Shared chat")
    question = await add_message(sessions, conversation["id"], parent=None, role="user", content="Q")
    await add_message(sessions, conversation["id"], parent=question, role="assistant", content="A")
    created = await client.post(f"/v1/conversations/{conversation['id']}/shares", headers=alice.headers)
    assert created.status_code == 201
    share = created.json()
    assert set(share) == {"id", "url", "created_at"} and share["url"].endswith(f"/s/{share['id']}"), (
        "the web app's share page"
    )
    # Later messages do not leak into the snapshot.
    await add_message(sessions, conversation["id"], parent=None, role="user", content="after the share")
    public = await client.get(f"/v1/shares/{share['id']}")
    assert public.status_code == 200
    body = public.json()
    assert set(body) == {"title", "messages", "created_at"}
    assert [(item["role"], item["content"]) for item in body["messages"]] == [
        ("user", "Q"),
        ("assistant", "A"),
    ]
    assert set(body["messages"][0]) == {"role", "content", "created_at"}
    assert alice.id not in public.text and conversation["id"] not in public.text


async def test_only_the_owner_can_delete_a_share(client, alice, bob):
    conversation = await create(client, alice)
    share = (
        await client.post(f"/v1/conversations/{conversation['id']}/shares", headers=alice.headers)
    ).json()
    assert (await client.delete(f"/v1/shares/{share['id']}", headers=bob.headers)).status_code == 404
    assert (await client.get(f"/v1/shares/{share['id']}")).status_code == 200
    assert (await client.delete(f"/v1/shares/{share['id']}", headers=alice.headers)).status_code == 204
    assert (await client.get(f"/v1/shares/{share['id']}")).status_code == 404


async def test_every_conversation_route_hides_other_users_conversations(client, sessions, alice, bob):
    conversation = await create(client, alice, title="private")
    message = await add_message(sessions, conversation["id"], parent=None, role="user", content="secret")
    base = f"/v1/conversations/{conversation['id']}"
    attempts = [
        client.get(base, headers=bob.headers),
        client.patch(base, json={"title": "mine now"}, headers=bob.headers),
        client.patch(base, json={"current_leaf_id": message}, headers=bob.headers),
        client.delete(base, headers=bob.headers),
        client.get(f"{base}/messages", headers=bob.headers),
        client.post(f"{base}/shares", headers=bob.headers),
    ]
    for attempt in attempts:
        response = await attempt
        assert response.status_code == 404, response.request.url
        assert error_of(response)["code"] == "not_found"
    assert (await client.get("/v1/conversations?q=secret", headers=bob.headers)).json()["data"] == []
    assert (await client.get(base, headers=alice.headers)).json()["conversation"]["title"] == "private"


async def test_an_unknown_conversation_is_not_found(client, alice):
    response = await client.get(f"/v1/conversations/{uuid.uuid4()}", headers=alice.headers)
    assert response.status_code == 404
    assert (await client.get("/v1/conversations/not-a-uuid", headers=alice.headers)).status_code == 404
