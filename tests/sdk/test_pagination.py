"""Cursor pages: ``data`` is one page; iterating goes on through the next pages, fetched as needed."""

from __future__ import annotations

import httpx
import pytest
from surge import AsyncCursorPage, AsyncSurge, Surge, SurgeError, SyncCursorPage

from tests.sdk.fakes import message


def conversation(number: int) -> dict:
    return {
        "id": f"c{number}",
        "title": f"Conversation {number}",
        "model": "deepseek-v3.1",
        "pinned": False,
        "archived": False,
        "created_at": "2025-01-27T09:00:00Z",
        "updated_at": "2025-01-27T09:00:00Z",
        "last_message_at": None,
    }


class PagedServer:
    """Serves ``total`` items ``limit`` at a time; cursors are the index of the next item."""

    def __init__(self, total: int, make=conversation) -> None:
        self.total = total
        self.make = make
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        limit = int(request.url.params.get("limit", "20"))
        start = int(request.url.params.get("cursor", "0"))
        end = min(start + limit, self.total)
        next_cursor = str(end) if end < self.total else None
        return httpx.Response(
            200, json={"data": [self.make(i) for i in range(start, end)], "next_cursor": next_cursor}
        )


def sync_client(server: PagedServer) -> Surge:
    return Surge(
        base_url="http://surge.test",
        access_token="t",
        http_client=httpx.Client(transport=httpx.MockTransport(server)),
    )


def async_client(server: PagedServer) -> AsyncSurge:
    return AsyncSurge(
        base_url="http://surge.test",
        access_token="t",
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(server)),
    )


def test_iterating_a_page_fetches_the_next_pages_as_it_goes():
    server = PagedServer(7)
    with sync_client(server) as client:
        page = client.conversations.list(limit=3, q="sky")
        assert isinstance(page, SyncCursorPage)
        assert [item.id for item in page.data] == ["c0", "c1", "c2"] and page.has_next_page()
        assert len(server.requests) == 1, "only the first page is fetched up front"
        iterator = iter(page)
        assert [next(iterator).id for _ in range(4)] == ["c0", "c1", "c2", "c3"]
        assert len(server.requests) == 2
        assert [item.id for item in iterator] == ["c4", "c5", "c6"]
    assert [request.url.params.get("cursor") for request in server.requests] == [None, "3", "6"]
    assert all(
        request.url.params["q"] == "sky" and request.url.params["limit"] == "3" for request in server.requests
    )


def test_pages_can_be_walked_one_at_a_time():
    server = PagedServer(5)
    with sync_client(server) as client:
        page = client.conversations.list(limit=2)
        second = page.get_next_page()
        assert [item.id for item in second.data] == ["c2", "c3"]
        assert [len(p.data) for p in page.iter_pages()] == [2, 2, 1]
        last = second.get_next_page()
        assert not last.has_next_page() and last.next_cursor is None
        with pytest.raises(SurgeError):
            last.get_next_page()


def test_an_empty_listing_is_one_empty_page():
    with sync_client(PagedServer(0)) as client:
        page = client.conversations.list()
        assert page.data == [] and list(page) == [] and not page.has_next_page()


def test_a_conversations_message_tree_is_paginated_too():
    server = PagedServer(5, make=lambda i: message(f"m{i}", parent_id=f"m{i - 1}" if i else None))
    with sync_client(server) as client:
        ids = [item.id for item in client.conversations.messages("c1", limit=2)]
    assert ids == ["m0", "m1", "m2", "m3", "m4"]
    assert server.requests[0].url.path == "/v1/conversations/c1/messages"


async def test_async_list_is_a_page_when_awaited_and_every_item_when_iterated():
    server = PagedServer(5)
    async with async_client(server) as client:
        page = await client.conversations.list(limit=2)
        assert isinstance(page, AsyncCursorPage) and [item.id for item in page.data] == ["c0", "c1"]
        assert [item.id async for item in page] == ["c0", "c1", "c2", "c3", "c4"]
        assert [item.id async for item in client.conversations.list(limit=2)] == [f"c{i}" for i in range(5)]
        assert [len(p.data) async for p in page.iter_pages()] == [2, 2, 1]
        last = await (await page.get_next_page()).get_next_page()
        assert not last.has_next_page()
        with pytest.raises(SurgeError):
            await last.get_next_page()
    async with async_client(PagedServer(5, make=lambda i: message(f"m{i}"))) as client:
        tree = [item.id async for item in client.conversations.messages("c1", limit=3)]
    assert tree == [f"m{i}" for i in range(5)]
