"""The OpenAPI description of an answer's event stream, event by event (API.md, "The event stream").

Litestar can only say that a ``text/event-stream`` body is a string. Each event is documented here the
way OpenAPI 3.1 describes a stream without ``itemSchema``: the response schema describes *one* event
(``event``, ``id``, ``data``), and ``data`` is JSON whose own schema is the event's payload
(``contentMediaType``/``contentSchema``). One variant per event name, so that a client generator, a
reader, or a contract test (schemathesis) knows exactly what each event carries.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar.openapi.spec import OpenAPIType, Reference, Schema
from litestar.plugins import OpenAPISchemaPlugin
from litestar.typing import FieldDefinition

from backend.chat.schemas import TurnCreated
from backend.conversations.schemas import Message


class TurnEventStream:
    """Marker type: ``ResponseSpec(data_container=TurnEventStream)`` documents an answer's event stream."""


class QueuedData(msgspec.Struct):
    position: int
    estimated_wait_s: float


class StartedData(msgspec.Struct):
    model: str


class DeltaData(msgspec.Struct):
    delta: str


class DegradedData(msgspec.Struct):
    reason: str
    level: int
    changes: dict[str, Any]


class DoneData(msgspec.Struct):
    message: Message


class ErrorData(msgspec.Struct):
    code: str
    message: str
    retry_after_s: float | None = None


# Every event a stream may carry, and its payload. `turn` opens a `stream: true` POST only and has no id.
EVENT_PAYLOADS: dict[str, type[msgspec.Struct]] = {
    "turn": TurnCreated,
    "queued": QueuedData,
    "started": StartedData,
    "reasoning": DeltaData,
    "content": DeltaData,
    "degraded": DegradedData,
    "done": DoneData,
    "error": ErrorData,
}
SEQ = Schema(type=OpenAPIType.STRING, pattern=r"^[0-9]+$", description="The event's seq (1, 2, 3, ...)")


class TurnEventStreamPlugin(OpenAPISchemaPlugin):
    """Writes the schema of :class:`TurnEventStream` (payload schemas become shared components)."""

    @staticmethod
    def is_plugin_supported_type(value: Any) -> bool:
        return value is TurnEventStream

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: Any) -> Schema:
        variants: list[Schema | Reference] = []
        for name, payload in EVENT_PAYLOADS.items():
            data = schema_creator.for_field_definition(FieldDefinition.from_annotation(payload))
            properties: dict[str, Schema | Reference] = {
                "event": Schema(const=name),
                "data": Schema(
                    type=OpenAPIType.STRING, content_media_type="application/json", content_schema=data
                ),
            }
            if name != "turn":
                properties["id"] = SEQ
            variants.append(
                Schema(
                    type=OpenAPIType.OBJECT,
                    properties=properties,
                    required=["event", "data"] if name == "turn" else ["event", "id", "data"],
                )
            )
        return Schema(
            one_of=variants,
            description="One Server-Sent Event: `id:` is the seq, `event:` the name, `data:` its JSON payload"
            " (API.md, The event stream). `: ping` comments come at least every 15 s.",
        )
