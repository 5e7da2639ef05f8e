"""The OpenAI-compatible API's Litestar providers."""

from __future__ import annotations

from litestar.di import NamedDependency, Provide

from backend.deps import singleton
from backend.openai_api.service import CompletionService


def openai_providers(*, completions: CompletionService) -> dict[str, Provide]:
    return {"completions": singleton(completions)}


Completions = NamedDependency[CompletionService]
