"""The top frames of a py-spy profile (``--format raw``: one line per stack, frames joined by ``;`` and the
sample count last), for a benchmark's report: where the profiled process spent its time."""

from __future__ import annotations

import collections
from pathlib import Path


def summarise_profile(path: Path, top: int = 15) -> list[str]:
    """The ``top`` frames by samples spent in the frame itself, then by samples under it (inclusive)."""
    own: collections.Counter[str] = collections.Counter()
    under: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples, frames = int(count), stack.split(";")
        total += samples
        own[frames[-1]] += samples
        for frame in set(frames):
            under[frame] += samples
    if not total:
        return []
    lines = [f"self {100 * n / total:5.1f}%  {frame}" for frame, n in own.most_common(top)]
    # Inclusive, without the frames every sample shares (the event loop, the server's entry point).
    shared = {frame for frame, n in under.items() if n == total}
    lines += [
        f"incl {100 * n / total:5.1f}%  {frame}"
        for frame, n in [(f, n) for f, n in under.most_common() if f not in shared][:top]
    ]
    return lines
