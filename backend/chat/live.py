"""The log of a turn generated in this process, while it streams.

The runner adds each delta as it arrives (``add``: a list append, nothing encoded); every coalescing
window the event log seals what piled up into one event per run of the same kind (``seal``), publishes
those events and then shows them to the readers in this process (``reveal``): a reader never sees an event
that would not survive this process dying. The log is kept as its text plus a
``Layout``, so it costs about the size of the text, and any event can be cut from it again: for a follower
that fell behind, for a republication after Redis lost its copy, for the checkpoint and the final row.
"""

from __future__ import annotations

import asyncio
from array import array
from uuid import UUID

import msgspec

from backend.chat.events import TurnEvent, encode_data
from backend.chat.layout import CONTENT, DELTA_NAMES, KIND_OF, OTHER, REASONING, Layout

# Parts of a text are joined once there are this many (a join per part would copy the text each time).
_JOIN_AT = 32


class _Text:
    """A text that grows by appends and is read by slices."""

    __slots__ = ("length", "parts")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.length = 0

    def append(self, piece: str) -> None:
        self.parts.append(piece)
        self.length += len(piece)
        if len(self.parts) >= _JOIN_AT:
            self.parts = ["".join(self.parts)]

    def value(self) -> str:
        if len(self.parts) > 1:
            self.parts = ["".join(self.parts)]
        return self.parts[0] if self.parts else ""


class LiveTurn:
    """One turn's log in the process that generates it. Single writer; any number of local readers."""

    __slots__ = (
        "_open",
        "_open_kind",
        "_recent",
        "_sealed",
        "_starts",
        "followers",
        "layout",
        "pending",
        "published",
        "pulse",
        "runs",
        "texts",
        "turn_id",
        "visible",
    )

    def __init__(self, turn_id: UUID, after: int = 0) -> None:
        self.turn_id = turn_id
        # Events up to ``after`` were written elsewhere (a turn taken over from a replica that died).
        self.layout = Layout(first_seq=after + 1)
        self.texts = (_Text(), _Text())
        # Where each delta starts in its text (so that any event can be cut again in constant time).
        self._starts = array("l")
        self._open_kind = CONTENT
        self._open: list[str] = []
        # The last event handed to readers, and the last one another replica can read (published).
        self.visible = after
        self.published = after
        # Events closed but not shown to readers yet, and those shown last (for the readers that were up to
        # date: most of them).
        self._sealed: list[TurnEvent] = []
        self._recent: list[TurnEvent] = []
        self.pulse = asyncio.Event()
        self.followers = 0
        # Deltas closed so far (the first goes out without waiting for a window: time to first token).
        self.runs = 0
        # The turn is being generated before its acceptance is committed: its events are sealed as they
        # come but neither published nor shown until it is (``EventLog.confirm``).
        self.pending = False

    def seed(self, events: list[TurnEvent]) -> None:
        """Start from a log another process began (a turn re-run after its replica died): those events
        are already out, so they count as seen and published."""
        for event in events:
            kind = KIND_OF.get(event.event)
            if kind is None:
                self.layout.add_other(event.event, bytes(event.data))
                self._starts.append(0)
            else:
                text = self.texts[kind]
                self._starts.append(text.length)
                piece = event.payload()["delta"]
                text.append(piece)
                self.layout.add_delta(kind, len(piece))
        self.visible = self.published = self.layout.last_seq

    # --- writing (the runner) ---
    def add(self, kind: int, text: str) -> bool:
        """A delta of ``kind`` (CONTENT or REASONING); True if it starts a new batch to seal."""
        if kind != self._open_kind:
            self._close_run()
            self._open_kind = kind
        self._open.append(text)
        return len(self._open) == 1

    def add_other(self, name: str, data: object) -> TurnEvent:
        """An event that is not a delta: it closes the run before it, and is sealed at once."""
        self._close_run()
        raw = encode_data(data)
        self.layout.add_other(name, bytes(raw))
        self._starts.append(0)
        event = TurnEvent(seq=self.layout.last_seq, event=name, data=raw)
        self._sealed.append(event)
        return event

    def _close_run(self) -> None:
        if not self._open:
            return
        piece = "".join(self._open) if len(self._open) > 1 else self._open[0]
        self._open = []
        text = self.texts[self._open_kind]
        self._starts.append(text.length)
        text.append(piece)
        self.runs += 1
        self.layout.add_delta(self._open_kind, len(piece))
        self._sealed.append(
            TurnEvent(
                seq=self.layout.last_seq,
                event=DELTA_NAMES[self._open_kind],
                data=encode_data({"delta": piece}),
            )
        )

    def seal(self) -> bool:
        """Close the open run; True if there are events readers have not been shown yet."""
        self._close_run()
        return self.layout.last_seq > self.visible

    @property
    def sealed(self) -> int:
        """The last event closed (the log's last seq)."""
        return self.layout.last_seq

    def reveal(self) -> None:
        """Show readers every event closed so far (once they are safe: published, where there is Redis)."""
        fresh, self._sealed = self._sealed, []
        if not fresh:
            return
        self.visible = fresh[-1].seq
        self._recent = fresh
        self.wake()

    def wake(self) -> None:
        """Wake the readers waiting for this turn (new events, or time to check their heartbeat)."""
        self.pulse.set()
        self.pulse = asyncio.Event()

    # --- reading ---
    def events_after(self, after: int, upto: int | None = None) -> list[TurnEvent]:
        """The events after ``after`` up to ``upto`` (default: what readers may see)."""
        upto = self.visible if upto is None else upto
        if after >= upto:
            return []
        for cached in (self._sealed, self._recent):
            if cached and cached[0].seq <= after + 1 and cached[-1].seq >= upto:
                return [event for event in cached if after < event.seq <= upto]
        return [self._event(seq) for seq in range(max(after, self.layout.first_seq - 1) + 1, upto + 1)]

    def _event(self, seq: int) -> TurnEvent:
        layout = self.layout
        index = seq - layout.first_seq
        kind = layout.kinds[index]
        if kind == OTHER:
            name, data = layout.others[layout.sizes[index]]
            return TurnEvent(seq=seq, event=name, data=msgspec.Raw(data))
        start = self._starts[index]
        piece = self.texts[kind].value()[start : start + layout.sizes[index]]
        return TurnEvent(seq=seq, event=DELTA_NAMES[kind], data=encode_data({"delta": piece}))

    def text(self) -> tuple[str, str | None]:
        """The answer and the reasoning so far, including the run not sealed yet."""
        content, reasoning = self.texts[CONTENT].value(), self.texts[REASONING].value()
        if self._open:
            tail = "".join(self._open)
            if self._open_kind == CONTENT:
                content += tail
            else:
                reasoning += tail
        return content, reasoning or None

    @property
    def has_text(self) -> bool:
        return bool(self._open) or self.texts[CONTENT].length > 0 or self.texts[REASONING].length > 0

    def piece(self, after: int, upto: int) -> tuple[str, str, Layout]:
        """The text the events ``after+1 .. upto`` added, and their layout (for a checkpoint)."""
        layout = Layout(first_seq=after + 1)
        cuts: list[list[int]] = [[], []]  # per kind: start of its first event here, end of its last
        base = self.layout.first_seq
        for index in range(max(after + 1, base) - base, upto - base + 1):
            kind, size = self.layout.kinds[index], self.layout.sizes[index]
            if kind == OTHER:
                name, data = self.layout.others[size]
                layout.add_other(name, data)
                continue
            layout.add_delta(kind, size)
            start = self._starts[index]
            if not cuts[kind]:
                cuts[kind] = [start, start + size]
            else:
                cuts[kind][1] = start + size
        content, reasoning = (
            self.texts[kind].value()[cut[0] : cut[1]] if cut else "" for kind, cut in enumerate(cuts)
        )
        return content, reasoning, layout

    @property
    def terminal(self) -> bool:
        layout = self.layout
        return bool(layout.kinds) and layout.kinds[-1] == OTHER and layout.others[-1][0] in ("done", "error")
