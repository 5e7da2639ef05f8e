"""The examples of sdk_python/README.md run as written, against a live Surge, in the order they appear
(one namespace, like a reader pasting them into one session).

A block preceded by ``<!-- needs ... -->`` uses routes that are not merged yet (the turn routes, the
WebSocket, Firebase sign-in): it is skipped here and reported, until those routes land and the live
server of these tests runs simulated workers.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from surge import Surge

README = Path(__file__).parents[2] / "sdk_python" / "README.md"
BLOCK = re.compile(r"(?:<!-- (?P<needs>needs [^>]*?) -->\n)?```python\n(?P<code>.*?)```", re.DOTALL)


def blocks() -> list[tuple[str | None, str]]:
    return [(match["needs"], match["code"]) for match in BLOCK.finditer(README.read_text())]


def test_the_readme_has_runnable_examples_for_both_clients():
    runnable = [code for needs, code in blocks() if needs is None]
    assert any("Surge()" in code for code in runnable) and any("AsyncSurge()" in code for code in runnable)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_readme_examples_run_as_written(live_surge, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("SURGE_BASE_URL", live_surge.url)
    monkeypatch.chdir(tmp_path)  # where the token store example writes its file
    namespace: dict[str, object] = {"__name__": "__readme__"}
    skipped = []
    for number, (needs, code) in enumerate(blocks(), start=1):
        if needs is not None:
            skipped.append(f"block {number} ({needs})")
            continue
        exec(compile(code, f"README.md block {number}", "exec"), namespace)  # noqa: S102
    for value in namespace.values():
        if isinstance(value, Surge):
            value.close()
    printed = capsys.readouterr().out
    assert "signed in as ada@example.com" in printed
    assert "Compilers" in printed and "grace@example.com" in printed
    assert "404 not_found" in printed
    assert (tmp_path / "surge-session.json").exists()
    print("skipped until their routes are merged:", "; ".join(skipped))
