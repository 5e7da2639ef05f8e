"""Reading turns the way a client does: SSE frames parsed, messages polled until they finish."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

TERMINAL = {"done", "error"}


@dataclass
class Event:
    name: str
    data: Any
    seq: int | None


def parse_sse(text: str) -> tuple[list[Event], int]:
    """The events of an SSE body, and how many ``: ping`` comments it had."""
    events, pings = [], 0
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            if line.startswith(":"):
                pings += 1
                continue
            name, _, value = line.partition(": ")
            fields[name] = value
        if "event" in fields:
            events.append(
                Event(
                    fields["event"], json.loads(fields["data"]), int(fields["id"]) if "id" in fields else None
                )
            )
    return events, pings


async def read_stream(client, method: str, url: str, **kwargs: Any) -> list[Event]:
    """The whole stream of a turn, to its terminal event."""
    async with client.stream(method, url, **kwargs) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        body = (await response.aread()).decode()
    events, _ = parse_sse(body)
    return events


async def read_until(client, url: str, *, count: int, headers: dict[str, str]) -> list[Event]:
    """The first ``count`` events of a stream, then hang up (a phone going to sleep)."""
    events: list[Event] = []
    buffer = ""
    async with client.stream("GET", url, headers=headers) as response:
        async for chunk in response.aiter_text():
            buffer += chunk
            while "\n\n" in buffer:
                block, buffer = buffer.split("\n\n", 1)
                parsed, _ = parse_sse(block + "\n\n")
                events.extend(parsed)
                if len(events) >= count:
                    return events
    return events


async def wait_finished(
    client, message_id: str, headers: dict[str, str], within_s: float = 30.0
) -> dict[str, Any]:
    """Poll the message until it reaches a terminal status."""
    deadline = asyncio.get_running_loop().time() + within_s
    while True:
        message = (await client.get(f"/v1/messages/{message_id}", headers=headers)).json()
        if message["status"] not in ("queued", "streaming"):
            return message
        assert asyncio.get_running_loop().time() < deadline, f"turn still {message['status']}"
        await asyncio.sleep(0.1)


def concatenated(events: list[Event], kind: str) -> str:
    return "".join(event.data["delta"] for event in events if event.name == kind)


def check_log(events: list[Event]) -> None:
    """API.md's guarantees: seq 1, 2, 3, ...; exactly one terminal event, the last one."""
    numbered = [event for event in events if event.seq is not None]
    assert [event.seq for event in numbered] == list(range(1, len(numbered) + 1))
    assert [event.name for event in numbered].count("done") + [e.name for e in numbered].count("error") == 1
    assert numbered[-1].name in TERMINAL
