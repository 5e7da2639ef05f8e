"""A turn's event log, kept compactly: its text once, and where each event of the log cuts it.

A log is mostly deltas whose concatenation is the answer. Instead of the events themselves (an object, an
id and encoded JSON each: several times the text), a ``Layout`` records per event either which text it
cut and how long the piece was, or — for the few other events (``queued``, ``started``, ``degraded``, the
terminal one) — its name and JSON. With the two texts, a layout gives back every event exactly, with its
``seq``: the turn's owner keeps its live log this way, checkpoints store it, and the final message row
stores it, so that a client resuming ``after=k`` gets the same events from any of them.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator
from typing import Final

import msgspec

from backend.chat.events import TurnEvent, encode_data

CONTENT: Final = 0
REASONING: Final = 1
OTHER: Final = 2
DELTA_NAMES: Final = ("content", "reasoning")
KIND_OF: Final = {"content": CONTENT, "reasoning": REASONING}

_pack = msgspec.msgpack.Encoder().encode
_unpack = msgspec.msgpack.Decoder(tuple[bytes, list[int], list[tuple[str, bytes]]]).decode


class Layout:
    """The events of a log from ``first_seq`` on: a kind per event and, for a delta, its length (for
    another event, its index in ``others``)."""

    __slots__ = ("first_seq", "kinds", "others", "sizes")

    def __init__(self, first_seq: int = 1) -> None:
        self.first_seq = first_seq
        self.kinds = bytearray()
        self.sizes = array("l")
        self.others: list[tuple[str, bytes]] = []

    def __len__(self) -> int:
        return len(self.kinds)

    @property
    def last_seq(self) -> int:
        return self.first_seq + len(self.kinds) - 1

    def add_delta(self, kind: int, size: int) -> None:
        self.kinds.append(kind)
        self.sizes.append(size)

    def add_other(self, name: str, data: bytes) -> None:
        self.kinds.append(OTHER)
        self.sizes.append(len(self.others))
        self.others.append((name, data))

    def add_event(self, event: TurnEvent) -> None:
        kind = KIND_OF.get(event.event)
        if kind is None:
            self.add_other(event.event, bytes(event.data))
        else:
            self.add_delta(kind, len(event.payload()["delta"]))

    def events(self, content: str, reasoning: str, after: int = 0) -> Iterator[TurnEvent]:
        """Every event with ``seq > after``, cut from the two texts this layout was made of."""
        texts = (content, reasoning)
        offsets = [0, 0]
        seq = self.first_seq
        for kind, size in zip(self.kinds, self.sizes, strict=True):
            if kind == OTHER:
                if seq > after:
                    name, data = self.others[size]
                    yield TurnEvent(seq=seq, event=name, data=msgspec.Raw(data))
            else:
                start = offsets[kind]
                offsets[kind] = start + size
                if seq > after:
                    piece = texts[kind][start : start + size]
                    yield TurnEvent(seq=seq, event=DELTA_NAMES[kind], data=encode_data({"delta": piece}))
            seq += 1

    def encode(self) -> bytes:
        """A compact form for the database (msgpack: the kinds, the sizes, the other events)."""
        return _pack((bytes(self.kinds), list(self.sizes), self.others))

    @classmethod
    def decode(cls, raw: bytes, first_seq: int = 1) -> Layout:
        kinds, sizes, others = _unpack(raw)
        layout = cls(first_seq)
        layout.kinds = bytearray(kinds)
        layout.sizes = array("l", sizes)
        layout.others = [(name, bytes(data)) for name, data in others]
        return layout

    def extend(self, other: Layout) -> None:
        """Append ``other``, which continues this layout (its first event follows this one's last)."""
        offset = len(self.others)
        self.others.extend(other.others)
        for kind, size in zip(other.kinds, other.sizes, strict=True):
            self.kinds.append(kind)
            self.sizes.append(size + offset if kind == OTHER else size)

    @classmethod
    def of(cls, events: Iterable[TurnEvent], first_seq: int = 1) -> Layout:
        layout = cls(first_seq)
        for event in events:
            layout.add_event(event)
        return layout
