"""Cursor pages (``{"data": [...], "next_cursor": ...}``) that fetch the next page as you iterate."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from typing import Any, Generic, TypeVar

import msgspec

from surge._exceptions import SurgeError

T = TypeVar("T")

__all__ = ["AsyncCursorPage", "AsyncPaginator", "SyncCursorPage"]


class WirePage(msgspec.Struct, Generic[T]):
    data: list[T]
    next_cursor: str | None = None


class WireList(msgspec.Struct, Generic[T]):
    data: list[T]


class SyncCursorPage(Generic[T]):
    """One page of results. Iterating it yields every item of this page and the pages after it, fetching
    each next page when the previous one runs out; ``data`` is this page alone.

    ```py
    for conversation in client.conversations.list(limit=50):
        print(conversation.title)
    ```
    """

    def __init__(
        self, *, data: list[T], next_cursor: str | None, fetch: Callable[[str], SyncCursorPage[T]]
    ) -> None:
        self.data = data
        self.next_cursor = next_cursor
        self._fetch = fetch

    def has_next_page(self) -> bool:
        return self.next_cursor is not None

    def get_next_page(self) -> SyncCursorPage[T]:
        if self.next_cursor is None:
            raise SurgeError("This is the last page: check has_next_page() first.")
        return self._fetch(self.next_cursor)

    def iter_pages(self) -> Iterator[SyncCursorPage[T]]:
        page = self
        yield page
        while page.has_next_page():
            page = page.get_next_page()
            yield page

    def __iter__(self) -> Iterator[T]:
        for page in self.iter_pages():
            yield from page.data

    def __repr__(self) -> str:
        return f"SyncCursorPage(data={self.data!r}, next_cursor={self.next_cursor!r})"


class AsyncCursorPage(Generic[T]):
    """One page of results; ``async for`` yields every item of this page and the pages after it."""

    def __init__(
        self, *, data: list[T], next_cursor: str | None, fetch: Callable[[str], Awaitable[AsyncCursorPage[T]]]
    ) -> None:
        self.data = data
        self.next_cursor = next_cursor
        self._fetch = fetch

    def has_next_page(self) -> bool:
        return self.next_cursor is not None

    async def get_next_page(self) -> AsyncCursorPage[T]:
        if self.next_cursor is None:
            raise SurgeError("This is the last page: check has_next_page() first.")
        return await self._fetch(self.next_cursor)

    async def iter_pages(self) -> AsyncIterator[AsyncCursorPage[T]]:
        page = self
        yield page
        while page.has_next_page():
            page = await page.get_next_page()
            yield page

    async def __aiter__(self) -> AsyncIterator[T]:
        async for page in self.iter_pages():
            for item in page.data:
                yield item

    def __repr__(self) -> str:
        return f"AsyncCursorPage(data={self.data!r}, next_cursor={self.next_cursor!r})"


class AsyncPaginator(Generic[T]):
    """What the async ``list()`` methods return: ``await`` it for the first page, or ``async for`` over it
    for every item of every page.

    ```py
    page = await client.conversations.list()          # one page
    async for conversation in client.conversations.list():  # all of them
        ...
    ```
    """

    def __init__(self, first_page: Callable[[], Awaitable[AsyncCursorPage[T]]]) -> None:
        self._first_page = first_page

    def __await__(self) -> Generator[Any, None, AsyncCursorPage[T]]:
        return self._first_page().__await__()

    async def __aiter__(self) -> AsyncIterator[T]:
        page = await self._first_page()
        async for item in page:
            yield item
