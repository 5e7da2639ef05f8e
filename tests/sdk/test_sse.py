"""The event-stream decoder, public as ``surge.iter_sse`` / ``surge.aiter_sse``: the format's rules, and
reading a stream that is not one of Surge's turns (an OpenAI-style ``data:``-only stream, as an SGLang
worker or Surge's ``/openai/v1`` routes send it)."""

from __future__ import annotations

import httpx
import pytest
import surge
from surge import ServerSentEvent, aiter_sse, iter_sse
from surge._sse import LineSplitter, SSEDecoder

from tests.sdk.fakes import CutStream

# Two chunks, a ping between them, CRLF line ends, a last chunk cut off before its blank line.
OPENAI_STREAM = (
    b'data: {"choices": [{"delta": {"role": "assistant"}}]}\r\n\r\n'
    b": ping\r\n\r\n"
    b'data: {"choices": [{"delta": {"content": "Hi"}}]}\r\n\r\n'
    b"data: [DONE]\r\n\r\n"
    b'data: {"never": "finished"}\r\n'
)
EXPECTED = [
    ServerSentEvent("message", '{"choices": [{"delta": {"role": "assistant"}}]}', None),
    ServerSentEvent("message", '{"choices": [{"delta": {"content": "Hi"}}]}', None),
    ServerSentEvent("message", "[DONE]", None),
]


def respond(request: httpx.Request) -> httpx.Response:
    stream = CutStream(OPENAI_STREAM, None, on_close=lambda: None)
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=stream)


def test_the_decoder_is_part_of_the_public_api():
    assert {"ServerSentEvent", "iter_sse", "aiter_sse"} <= set(surge.__all__)


def test_iter_sse_reads_a_data_only_stream_and_never_yields_an_unfinished_event():
    with (
        httpx.Client(transport=httpx.MockTransport(respond)) as http,
        http.stream("POST", "http://worker.test/v1/chat/completions") as response,
    ):
        assert list(iter_sse(response)) == EXPECTED


async def test_aiter_sse_reads_the_same_events():
    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(respond)) as http,
        http.stream("POST", "http://worker.test/v1/chat/completions") as response,
    ):
        assert [event async for event in aiter_sse(response)] == EXPECTED


@pytest.mark.parametrize("chunk", [1, 2, 7])
def test_events_do_not_depend_on_how_the_bytes_are_chunked(chunk):
    splitter, decoder = LineSplitter(), SSEDecoder()
    events = []
    for start in range(0, len(OPENAI_STREAM), chunk):
        for line in splitter.feed(OPENAI_STREAM[start : start + chunk]):
            if (event := decoder.decode(line)) is not None:
                events.append(event)
    assert events == EXPECTED


def test_line_splitter_ends_lines_only_where_the_event_stream_format_says():
    splitter = LineSplitter()
    chunks = [b"data: a\xe2\x80", b"\xa8b\r", b"\nid: 1\rdata: \xf0\x9f", b"\x8c\x8d\n\n", b"tail"]
    lines = [line for chunk in chunks for line in splitter.feed(chunk)]
    # U+2028 inside a JSON string is not a line end; CRLF split across chunks is one line end.
    assert lines == ["data: a\u2028b", "id: 1", "data: 🌍", ""]


def test_sse_decoder_follows_the_event_stream_format():
    decoder = SSEDecoder()
    lines = [
        ": ping",
        "id: 7",
        "event: content",
        "data: line one",
        "data:line two",
        "retry: 1000",
        "",
        "",
        "data: no event name",
        "",
        "id: 8",
        "",
    ]
    events = [event for line in lines if (event := decoder.decode(line)) is not None]
    assert [(event.event, event.data, event.id) for event in events] == [
        ("content", "line one\nline two", "7"),
        ("message", "no event name", None),
    ]
