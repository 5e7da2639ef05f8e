"""The request trace (``--sim-trace-file``): one JSON line per finished request, for benchmark oracles that
must replay exactly the prompts a worker was sent.

A line holds the request's id, its arrival and finish as wall-clock (epoch) seconds, its finish reason's
type (``stop``, ``length``, ``abort``), and the prompt and output token ids. Several workers can trace into
one directory (one file each) and the oracle merges them by time: unlike the client's idea of a prompt, the
ids are what the scheduler cached and served, whoever rendered them and whatever routed them here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO


@dataclass(frozen=True, slots=True)
class TracedRequest:
    """One finished request as its worker saw it."""

    rid: str
    arrival: float
    finished: float
    finish: str
    prompt_ids: list[int]
    output_ids: list[int]


class RequestTrace:
    """Appends a line per finished request to ``path``; a line is flushed as it is written, so the trace can
    be read while the worker runs or after it was killed."""

    def __init__(self, path: str | Path) -> None:
        # Open for the worker's lifetime; the scheduler closes it when it stops.
        self._file: TextIO | None = Path(path).open("a", buffering=1, encoding="utf-8")  # noqa: SIM115

    def write(self, request: TracedRequest) -> None:
        """Write one request (a no-op once closed)."""
        if self._file is not None:
            line = {
                "rid": request.rid,
                "arrival": round(request.arrival, 6),
                "finished": round(request.finished, 6),
                "finish": request.finish,
                "prompt_ids": request.prompt_ids,
                "output_ids": request.output_ids,
            }
            self._file.write(json.dumps(line, separators=(",", ":")) + "\n")

    def close(self) -> None:
        """Close the file; later requests are not traced."""
        if self._file is not None:
            self._file.close()
            self._file = None


def read_trace(path: str | Path) -> Iterator[TracedRequest]:
    """The requests of a trace file, in the order they finished; a torn last line (a killed worker) is
    skipped."""
    with Path(path).open(encoding="utf-8") as lines:
        for line in lines:
            if not line.endswith("\n"):
                continue
            entry = json.loads(line)
            yield TracedRequest(
                rid=entry["rid"],
                arrival=entry["arrival"],
                finished=entry["finished"],
                finish=entry["finish"],
                prompt_ids=entry["prompt_ids"],
                output_ids=entry["output_ids"],
            )
