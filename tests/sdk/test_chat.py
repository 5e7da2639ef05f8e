"""``surge-chat``: signing in (or up), listing conversations, and streaming an answer with its reasoning
dimmed, through a dropped connection."""

from __future__ import annotations

import io
from collections.abc import Callable

import httpx
from surge import Surge
from surge.chat import main

from tests.sdk.fakes import CONTENT, CONVERSATION_ID, NOW, REASONING, USER, FakeTurns

DIM = "\x1b[2m"


def scripted(*lines: str) -> Callable[[str], str]:
    """Answers prompts with ``lines`` in order, then Ctrl-D."""
    remaining = list(lines)

    def read(prompt: str) -> str:
        if not remaining:
            raise EOFError
        return remaining.pop(0)

    return read


CONVERSATION = {
    "id": CONVERSATION_ID,
    "title": "Greetings",
    "model": "deepseek-r1",
    "pinned": False,
    "archived": False,
    "created_at": NOW,
    "updated_at": NOW,
    "last_message_at": None,
}


def chat_server(fake: FakeTurns) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/v1/me":
            return httpx.Response(200, json=USER)
        if path == f"/v1/conversations/{CONVERSATION_ID}" and request.method == "GET":
            return httpx.Response(200, json={"conversation": CONVERSATION, "messages": []})
        if path == "/v1/conversations" and request.method == "GET":
            return httpx.Response(200, json={"data": [CONVERSATION], "next_cursor": None})
        return fake.handler(request)

    return handler


def test_an_answer_streams_with_its_reasoning_dimmed_through_a_dropped_connection(sleeps):
    fake = FakeTurns(cuts=[900])
    client = Surge(
        base_url="http://surge.test",
        access_token="t",
        http_client=httpx.Client(transport=httpx.MockTransport(chat_server(fake))),
    )
    out = io.StringIO()
    code = main(["--color"], client=client, out=out, read_line=scripted("1", "Hi!", "/quit"))
    text = out.getvalue()
    assert code == 0
    assert "1. Greetings" in text and "— Greetings —" in text
    assert f"{DIM}thinking: " + "".join(REASONING) in text
    assert text.count("".join(CONTENT)) == 1, "every delta exactly once, although the stream was cut"
    assert "[waiting: position 2" in text and len(fake.connections) == 2


def test_without_a_terminal_there_are_no_escape_codes(sleeps):
    fake = FakeTurns()
    client = Surge(
        base_url="http://surge.test",
        access_token="t",
        http_client=httpx.Client(transport=httpx.MockTransport(chat_server(fake))),
    )
    out = io.StringIO()
    main(["--conversation", CONVERSATION_ID], client=client, out=out, read_line=scripted("Hi!"))
    assert "\x1b[" not in out.getvalue()
    assert "surge> " + "".join(CONTENT) in out.getvalue()


def test_signing_up_from_the_chat_and_listing_conversations(live_surge, tmp_path):
    session_file = tmp_path / "session.json"
    out = io.StringIO()
    code = main(
        ["--base-url", live_surge.url, "--session-file", str(session_file), "--email", "ada@example.com"],
        out=out,
        read_line=scripted("y", "/list", "/new", "/help", "/nonsense", "/quit"),
        read_password=lambda prompt: "correct horse battery",
    )
    text = out.getvalue()
    assert code == 0, text
    assert "Account created for ada@example.com" in text
    assert "No conversations yet" in text and "Unknown command" in text and "/retry" in text
    assert session_file.exists(), "the session is kept for the next run"

    with Surge(base_url=live_surge.url) as client:
        client.auth.log_in("ada@example.com", "correct horse battery")
        client.conversations.create(title="From the SDK")

    out = io.StringIO()
    code = main(
        ["--base-url", live_surge.url, "--session-file", str(session_file)],
        out=out,
        read_line=scripted("1", "/logout"),
        read_password=lambda prompt: "never asked",
    )
    text = out.getvalue()
    assert code == 0 and "Signed in as ada@example.com" in text and "1. From the SDK" in text
    assert "— From the SDK —" in text and "Signed out." in text
    assert not session_file.exists()


def test_a_wrong_password_without_signing_up_fails_cleanly(live_surge, tmp_path):
    out = io.StringIO()
    code = main(
        [
            "--base-url",
            live_surge.url,
            "--session-file",
            str(tmp_path / "s.json"),
            "--email",
            "nobody@example.com",
        ],
        out=out,
        read_line=scripted("n"),
        read_password=lambda prompt: "wrong password",
    )
    assert code == 1 and "unauthorized" in out.getvalue()
