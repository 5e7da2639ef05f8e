"""How ``surge serve`` sets up its garbage collector once started (``backend.app._freeze_heap``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Run in a process of its own: the collector's settings are the whole interpreter's.
PROBE = """
import gc, json
from backend.app import _freeze_heap
_freeze_heap()
frozen = gc.get_freeze_count()
gc.collect()
kept = [[] for _ in range(5000)]  # 5,000 containers that live on, as a burst of turns starting makes
print(json.dumps({"frozen": frozen, "young": gc.get_count()[0]}))
"""


def test_the_startup_heap_is_frozen_and_a_burst_of_allocations_triggers_no_collection() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
    )
    seen = json.loads(done.stdout.splitlines()[-1])
    assert seen["frozen"] > 10_000  # the modules, mappers and routes built at import
    # With Python's default threshold (700) the young generation would have been collected (and its
    # count reset) seven times over.
    assert seen["young"] >= 5000, seen
