"""The layering README.md draws: lower layers never import higher ones."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

BACKEND = Path(__file__).resolve().parents[1] / "backend"

# A domain -> what it must never import.
FORBIDDEN = {
    "inference": {
        "backend.accounts",
        "backend.chat",
        "backend.admission",
        "backend.conversations",
        "backend.push",
    },
    "admission": {"backend.accounts", "backend.chat", "backend.conversations", "backend.push"},
    "conversations": {"backend.chat", "backend.push", "backend.accounts"},
    "chat": {"backend.push", "backend.accounts.routes"},
    "push": {"backend.chat"},
    "db": {"backend.accounts", "backend.chat", "backend.admission", "backend.inference", "backend.push"},
}


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("domain", sorted(FORBIDDEN))
def test_a_lower_layer_never_imports_a_higher_one(domain: str):
    offending = {
        f"{path.relative_to(BACKEND.parent)}: {name}"
        for path in (BACKEND / domain).rglob("*.py")
        for name in imports_of(path)
        if any(name == banned or name.startswith(banned + ".") for banned in FORBIDDEN[domain])
    }
    assert not offending


def test_no_module_but_the_composition_root_sees_every_domain():
    """Only app.py may import every domain; routes get their objects from providers."""
    domains = {"accounts", "admission", "chat", "conversations", "inference", "push"}
    for path in BACKEND.rglob("*.py"):
        if path.name == "app.py" and path.parent == BACKEND:
            continue
        reached = {name.split(".")[1] for name in imports_of(path) if name.startswith("backend.")}
        assert not domains <= reached, path


def test_the_backend_never_imports_the_load_tests():
    for path in BACKEND.rglob("*.py"):
        assert not any(name.startswith("loadtests") for name in imports_of(path)), path
