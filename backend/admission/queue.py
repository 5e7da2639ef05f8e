"""The fair queue of one model on one replica: its slots, the turns holding them, and those waiting.

Order of service (DESIGN.md): tier first (lower priority number first), then the user with the fewest
turns holding slots, then age. The second key changes as turns start and end, so the order is computed
when asked for rather than kept in a heap; the queue is at most a few thousand turns long.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from dataclasses import dataclass, field
from uuid import UUID

# What a turn holds a slot for, before any has finished here to say: a reasoning answer's order.
DEFAULT_HOLD_S = 30.0
HOLD_SMOOTHING = 0.1


@dataclass(eq=False)
class Ticket:
    """A turn asking for a slot."""

    turn_id: UUID
    user_id: UUID
    priority: int
    enqueued_at: float
    # A paying tier's turn may take the slots kept back for paying users.
    paying: bool = False
    granted: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    granted_at: float | None = None


@dataclass(eq=False)
class ModelQueue:
    model_id: str
    holding: dict[UUID, Ticket] = field(default_factory=dict)
    waiting: list[Ticket] = field(default_factory=list)
    holding_by_user: Counter[UUID] = field(default_factory=Counter)
    # Mean time a turn holds its slot (smoothed), for the wait estimates the queue announces.
    mean_hold_s: float = DEFAULT_HOLD_S
    # Turns refused by the overload policy since the last measurement, the counts of recent
    # measurements, and their rate per second: demand the queue no longer shows, but which would be back
    # the moment the level fell.
    shed_since_tick: int = 0
    shed_per_s: float = 0.0
    _shed_history: deque[tuple[float, int]] = field(default_factory=deque)
    _ranks: dict[UUID, int] | None = None

    def key(self, ticket: Ticket) -> tuple[int, int, float]:
        return (ticket.priority, self.holding_by_user[ticket.user_id], ticket.enqueued_at)

    def enqueue(self, ticket: Ticket) -> None:
        self.waiting.append(ticket)
        self._ranks = None

    def withdraw(self, ticket: Ticket) -> None:
        """A waiting turn gives up (cancelled, or waited too long)."""
        if ticket in self.waiting:
            self.waiting.remove(ticket)
            self._ranks = None

    def hold(self, ticket: Ticket, now: float) -> None:
        ticket.granted_at = now
        self.holding[ticket.turn_id] = ticket
        self.holding_by_user[ticket.user_id] += 1
        self._ranks = None
        if not ticket.granted.done():
            ticket.granted.set_result(None)

    def release(self, ticket: Ticket, now: float) -> None:
        if self.holding.pop(ticket.turn_id, None) is None:
            return
        self.holding_by_user[ticket.user_id] -= 1
        if self.holding_by_user[ticket.user_id] <= 0:
            del self.holding_by_user[ticket.user_id]
        if ticket.granted_at is not None:
            held = max(0.0, now - ticket.granted_at)
            self.mean_hold_s += HOLD_SMOOTHING * (held - self.mean_hold_s)
        self._ranks = None

    def has_room(self, *, paying: bool, slots: int, reserved: int) -> bool:
        """A slot is free for a turn: any slot for paying users, all but the reserved ones for free."""
        return len(self.holding) < (slots if paying else slots - reserved)

    def grant(self, slots: int, now: float, reserved: int = 0) -> list[Ticket]:
        """Give free slots to the waiting turns that come first; returns them. Paying tiers sort first, so
        when the first in line is a free turn that may not take a reserved slot, nobody behind it may."""
        granted = []
        while self.waiting:
            best = min(self.waiting, key=self.key)
            if not self.has_room(paying=best.paying, slots=slots, reserved=reserved):
                break
            self.waiting.remove(best)
            self.hold(best, now)
            granted.append(best)
        return granted

    def position(self, ticket: Ticket) -> int:
        """1 for the turn served next; 0 if it is not waiting."""
        if self._ranks is None:
            ordered = sorted(self.waiting, key=self.key)
            self._ranks = {t.turn_id: rank for rank, t in enumerate(ordered, start=1)}
        return self._ranks.get(ticket.turn_id, 0)

    def estimated_wait_s(self, position: int, slots: int) -> float:
        """Slots free up at about ``slots / mean_hold_s`` per second; ``position`` of them are needed."""
        if slots <= 0:
            return 0.0
        return round(position * self.mean_hold_s / slots, 1)

    def measure_shedding(self, now: float, window_s: float, interval_s: float) -> None:
        """The shed rate over the last ``window_s``: as long as a refused client may wait before it
        tries again (its Retry-After), so that a crowd told to come back in 30 s is still counted in
        the seconds it is away — a shorter memory saw it only as it knocked, and let the level fall
        between two knocks."""
        window_s = max(window_s, interval_s)  # at least the measurement just taken
        self._shed_history.append((now, self.shed_since_tick))
        self.shed_since_tick = 0
        while self._shed_history and self._shed_history[0][0] <= now - window_s:
            self._shed_history.popleft()
        # Each entry counts the interval before it: at first the history is shorter than the window.
        span = now - self._shed_history[0][0] + interval_s
        self.shed_per_s = sum(count for _, count in self._shed_history) / min(window_s, span)

    def demand(self) -> float:
        """Turns wanting a slot beyond those holding one: the queue, plus what shedding holds off (each shed
        turn would have held a slot for about the mean hold time)."""
        return len(self.waiting) + self.shed_per_s * self.mean_hold_s

    def oldest_wait_s(self, now: float) -> float:
        return max((now - t.enqueued_at for t in self.waiting), default=0.0)
