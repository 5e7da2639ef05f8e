"""The examples of sdk_python/README.md run as written, against a live Surge, in the order they appear
(one namespace, like a reader pasting them into one session).

A block after ``<!-- needs: turns -->`` uses the turn routes and the WebSocket (issue 4), which are in
the tree now: it runs like the others. A block after ``<!-- not run: ... -->`` is an illustration that
needs something a test does not have (a Firebase ID token from a device).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from surge import Surge

README = Path(__file__).parents[2] / "sdk_python" / "README.md"
BLOCK = re.compile(r"(?:<!-- (?P<marker>[^>]*?) -->\n)?```python\n(?P<code>.*?)```", re.DOTALL)


def blocks() -> list[tuple[str | None, str]]:
    return [(match["marker"], match["code"]) for match in BLOCK.finditer(README.read_text())]


def runnable(marker: str | None) -> bool:
    if marker is None or marker == "needs: turns":
        return True
    assert marker.startswith("not run:"), f"unknown README marker {marker!r}"
    return False


def test_the_readme_has_runnable_examples_for_both_clients():
    always = [code for marker, code in blocks() if marker is None]
    assert any("Surge()" in code for code in always) and any("AsyncSurge()" in code for code in always)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_readme_examples_run_as_written(live_surge, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("SURGE_BASE_URL", live_surge.url)
    monkeypatch.chdir(tmp_path)  # where the token store example writes its file
    namespace: dict[str, object] = {"__name__": "__readme__"}
    for number, (marker, code) in enumerate(blocks(), start=1):
        if runnable(marker):
            exec(compile(code, f"README.md block {number}", "exec"), namespace)  # noqa: S102
    for value in namespace.values():
        if isinstance(value, Surge):
            value.close()
    printed = capsys.readouterr().out
    assert "signed in as ada@example.com" in printed
    assert "Compilers" in printed and "grace@example.com" in printed
    assert "404 not_found" in printed
    assert (tmp_path / "surge-session.json").exists()
    assert "complete" in printed, "the streamed answer finished"
    assert "raw stream ended with done at seq" in printed, "surge.iter_sse read the raw events"
