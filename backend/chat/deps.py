"""The chat domain's Litestar providers: the turn service and the event log its streams read."""

from __future__ import annotations

from litestar.di import NamedDependency, Provide

from backend.chat.event_log import EventLog
from backend.chat.service import TurnService
from backend.deps import singleton


def chat_providers(*, turns: TurnService, event_log: EventLog) -> dict[str, Provide]:
    return {"turns": singleton(turns), "event_log": singleton(event_log)}


Turns = NamedDependency[TurnService]
EventLogDep = NamedDependency[EventLog]
