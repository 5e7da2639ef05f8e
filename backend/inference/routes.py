"""``GET /v1/models``: the models users can pick."""

from __future__ import annotations

from typing import Literal

import msgspec
from litestar import get

from backend.deps import SettingsDep
from backend.errors import Unauthorized, error_responses


class Model(msgspec.Struct):
    id: str
    display_name: str
    thinking: Literal["always", "optional", "never"]
    context_tokens: int
    max_output_tokens: int


class ModelList(msgspec.Struct):
    data: list[Model]


@get("/v1/models", tags=["Models"], summary="Models to chat with", responses=error_responses(Unauthorized))
async def list_models(settings: SettingsDep) -> ModelList:
    return ModelList(
        data=[
            Model(
                id=spec.id,
                display_name=spec.display_name,
                thinking=spec.thinking,
                context_tokens=spec.context_tokens,
                max_output_tokens=spec.max_output_tokens,
            )
            for spec in settings.inference.models
        ]
    )
