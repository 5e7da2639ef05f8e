"""The spike's database audit: no acknowledged message lost or duplicated, no answer left unfinished.

Inputs are the Locust users' records: every turn the server acknowledged (a 2xx whose `turn` event
named its messages) with its Idempotency-Key, every deliberate replay of a send with the same key, and
the answers of phones that went to sleep and never came back. Checks:

- every acknowledged user message and its answer exist (ids are primary keys: exactly once);
- one Idempotency-Key never gave two different user messages (acks and replays agree);
- no conversation holds two user messages with the same parent and the same text (the workload never
  sends the same text twice, so two are a duplicate however they were made);
- every assistant message ended complete, cancelled or failed (none is left queued or streaming).

It reads the run's database directly, with SQL of its own on the ``message`` table (loadtests/database.py),
not the backend's ORM models: the audit checks the server from outside, and a model it shared with the
code under test could share that code's mistakes.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from loadtests.database import as_datetime, as_uuid, fetch

TERMINAL = ("complete", "cancelled", "failed")

USER_MESSAGES = "SELECT id FROM message WHERE role = 'user'"
ANSWER_STATUSES = "SELECT id, status FROM message WHERE role = 'assistant'"
# The workload never sends the same text twice under one parent: two such user messages are a duplicate.
DUPLICATE_USER_MESSAGES = """
    SELECT conversation_id, parent_id, count(*) FROM message WHERE role = 'user'
    GROUP BY conversation_id, parent_id, content HAVING count(*) > 1
"""
ANSWER_TIMES = """
    SELECT id, created_at, started_at, first_token_at FROM message
    WHERE role = 'assistant' AND first_token_at IS NOT NULL
"""


@dataclass
class Audit:
    acknowledged: int = 0
    missing_user_messages: list[str] = field(default_factory=list)
    missing_answers: list[str] = field(default_factory=list)
    key_conflicts: list[dict[str, Any]] = field(default_factory=list)
    duplicate_user_messages: list[dict[str, Any]] = field(default_factory=list)
    non_terminal_answers: list[str] = field(default_factory=list)
    answer_status: dict[str, int] = field(default_factory=dict)  # every assistant message, by status
    unattended_status: dict[str, int] = field(default_factory=dict)  # answers nobody came back for
    user_messages: int = 0
    unacknowledged_user_messages: int = 0  # stored but never acknowledged (a client stopped mid-send)

    @property
    def lost(self) -> int:
        return len(self.missing_user_messages) + len(self.missing_answers)

    @property
    def duplicated(self) -> int:
        return len(self.key_conflicts) + len(self.duplicate_user_messages)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.non_terminal_answers)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(lost=self.lost, duplicated=self.duplicated, ok=self.ok)
        for name in ("missing_user_messages", "missing_answers", "non_terminal_answers"):
            data[name] = data[name][:50]  # the first few are enough to investigate
        return data


def _id(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


async def in_flight(database_url: str) -> int:
    """Assistant messages still queued or streaming."""
    ((count,),) = await fetch(
        database_url, "SELECT count(*) FROM message WHERE status IN ('queued', 'streaming')"
    )
    return int(count or 0)


async def audit(database_url: str, records: Iterable[dict[str, Any]]) -> Audit:
    acks = []
    replays = []
    unattended: list[uuid.UUID] = []
    for record in records:
        kind = record.get("type")
        if kind == "ack":
            acks.append(record)
        elif kind == "replay":
            replays.append(record)
        elif kind == "turn" and record.get("outcome") == "unattended":
            answer = _id(record.get("assistant_message_id"))
            if answer is not None:
                unattended.append(answer)
    result = Audit(acknowledged=len(acks))

    # One key, one user message: what the server answered to every send and replay with that key.
    by_key: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for ack in acks:
        by_key[(ack.get("email") or "", ack.get("route") or "send", ack["key"])].add(ack["user_message_id"])
    for replay in replays:
        for ack_key in [k for k in by_key if k[2] == replay["key"]]:
            by_key[ack_key].add(replay.get("user_message_id") or "(none)")
    for (email, route, key), ids in sorted(by_key.items()):
        if len(ids) > 1:
            result.key_conflicts.append(
                {"email": email, "route": route, "key": key, "user_messages": sorted(ids)}
            )

    user_ids = {as_uuid(row[0]) for row in await fetch(database_url, USER_MESSAGES)}
    answers = {as_uuid(i): status for i, status in await fetch(database_url, ANSWER_STATUSES)}
    for conversation_id, parent_id, count in await fetch(database_url, DUPLICATE_USER_MESSAGES):
        result.duplicate_user_messages.append(
            {
                "conversation_id": str(as_uuid(conversation_id)),
                "parent_id": str(as_uuid(parent_id)),
                "count": int(count),
            }
        )

    acknowledged_users: set[uuid.UUID] = set()
    for ack in acks:
        user_message, answer = _id(ack.get("user_message_id")), _id(ack.get("assistant_message_id"))
        if user_message is None or user_message not in user_ids:
            result.missing_user_messages.append(str(ack.get("user_message_id")))
        else:
            acknowledged_users.add(user_message)
        if answer is None or answer not in answers:
            result.missing_answers.append(str(ack.get("assistant_message_id")))
    result.user_messages = len(user_ids)
    result.unacknowledged_user_messages = len(user_ids - acknowledged_users)
    result.answer_status = dict(Counter(answers.values()))
    result.non_terminal_answers = sorted(str(i) for i, status in answers.items() if status not in TERMINAL)
    result.unattended_status = dict(Counter(answers.get(i, "missing") for i in unattended))
    return result


async def answer_times(database_url: str) -> dict[str, dict[str, float]]:
    """When each answer was accepted, put on a worker and given its first token (epoch seconds), by
    assistant message id: the server's side of a turn's time to first token."""
    times = {}
    for message_id, created, started, first in await fetch(database_url, ANSWER_TIMES):
        accepted, first_token = as_datetime(created), as_datetime(first)
        if accepted is None or first_token is None:
            continue
        times[str(as_uuid(message_id))] = {
            "accepted": accepted.timestamp(),
            "started": (as_datetime(started) or accepted).timestamp(),
            "first_token": first_token.timestamp(),
        }
    return times
