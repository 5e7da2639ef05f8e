"""Caps on what one user holds open at once in this process: event streams, WebSockets.

Each open stream or socket holds memory, a task and a file descriptor for as long as the client likes;
one account (or a leaked token) opening thousands would starve everyone else on the replica. The count is
per process, deliberately: what it protects is the process's own resources, and a crashed replica's
counts vanish with it instead of lingering in a shared store.
"""

from __future__ import annotations

import weakref
from collections import Counter
from uuid import UUID

from backend.errors import RateLimited

# How long a refused client should wait: streams and sockets end when their turn ends or their client
# leaves, typically within a minute.
RETRY_AFTER_S = 10.0


class Slot:
    """One held place; released exactly once, however many times ``release`` is called."""

    def __init__(self, slots: UserSlots, user_id: UUID) -> None:
        self._slots = slots
        self._user_id = user_id
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._slots._release(self._user_id)

    def release_with(self, owner: object) -> None:
        """Also release when ``owner`` is garbage-collected (a response never sent: its generator's
        ``finally`` never runs)."""
        weakref.finalize(owner, self.release)


class UserSlots:
    """At most ``limit`` open per user; one more is ``429 rate_limited`` with Retry-After."""

    def __init__(self, what: str, limit: int) -> None:
        self.what = what
        self.limit = limit
        self._open: Counter[UUID] = Counter()

    def take(self, user_id: UUID) -> Slot:
        if self._open[user_id] >= self.limit:
            raise RateLimited(
                f"Too many open {self.what} for this account (at most {self.limit}); close one first.",
                retry_after_s=RETRY_AFTER_S,
            )
        self._open[user_id] += 1
        return Slot(self, user_id)

    def open_for(self, user_id: UUID) -> int:
        return self._open[user_id]

    def _release(self, user_id: UUID) -> None:
        self._open[user_id] -= 1
        if self._open[user_id] <= 0:
            del self._open[user_id]  # forget users with nothing open: the counter stays small
