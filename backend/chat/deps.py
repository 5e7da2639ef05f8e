"""The chat domain's Litestar providers: the turn service, and the streams readers follow."""

from __future__ import annotations

from litestar.di import NamedDependency, Provide

from backend.chat.service import TurnService
from backend.chat.stream import TurnStreams
from backend.deps import singleton


def chat_providers(*, turns: TurnService, streams: TurnStreams) -> dict[str, Provide]:
    return {"turns": singleton(turns), "streams": singleton(streams)}


Turns = NamedDependency[TurnService]
Streams = NamedDependency[TurnStreams]
