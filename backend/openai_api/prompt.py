"""A Chat Completions request checked and turned into what goes upstream: the model, the messages as
plain text, thinking on or off, the answer budget."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from backend.errors import ValidationFailed
from backend.openai_api.errors import ModelNotFound
from backend.openai_api.schemas import ChatCompletionRequest, InputMessage
from backend.settings import InferenceSettings, ModelSpec

# As the conversation prompt estimates it (backend.chat.prompt): conservative, so a prompt refused here
# would not have fitted the model's context.
CHARS_PER_TOKEN = 3.0
MESSAGE_OVERHEAD_TOKENS = 8


@dataclass(frozen=True, slots=True)
class Prepared:
    body: ChatCompletionRequest
    model: ModelSpec
    messages: list[dict[str, str]]
    thinking: bool
    max_tokens: int

    @property
    def stop(self) -> list[str] | None:
        stop = self.body.stop
        return [stop] if isinstance(stop, str) else stop

    def template_kwargs(self) -> dict[str, Any]:
        if self.model.thinking == "optional" and self.model.thinking_switch:
            return {self.model.thinking_switch: self.thinking}
        return {}


def _text(message: InputMessage) -> dict[str, str]:
    content = (
        message.content if isinstance(message.content, str) else "".join(p.text for p in message.content)
    )
    # "developer" is OpenAI's newer name for the system role; chat templates know only "system".
    role = "system" if message.role == "developer" else message.role
    return {"role": role, "content": content}


def requested_thinking(model: ModelSpec, kwargs: dict[str, Any] | None) -> bool | None:
    """``chat_template_kwargs.thinking``, or the model's own switch name (``enable_thinking``...)."""
    for name in ("thinking", model.thinking_switch):
        if kwargs and name and name in kwargs:
            value = kwargs[name]
            if not isinstance(value, bool):
                raise ValidationFailed(
                    f"chat_template_kwargs.{name} must be a boolean.", fields={"chat_template_kwargs": "bool"}
                )
            return value
    return None


def prepare(body: ChatCompletionRequest, inference: InferenceSettings) -> Prepared:
    if body.n is not None and body.n != 1:
        raise ValidationFailed("Only n=1 is supported.", fields={"n": "must be 1"})
    model = inference.model(body.model)
    if model is None:
        raise ModelNotFound(f"The model `{body.model}` does not exist.", fields={"model": body.model})
    messages = [_text(message) for message in body.messages]
    if not any(message["role"] == "user" for message in messages):
        raise ValidationFailed(
            "The messages hold no user message.", fields={"messages": "need a user message"}
        )
    asked = body.max_completion_tokens or body.max_tokens or model.max_output_tokens
    max_tokens = min(asked, model.max_output_tokens)
    estimated = sum(len(m["content"]) / CHARS_PER_TOKEN + MESSAGE_OVERHEAD_TOKENS for m in messages)
    if estimated + max_tokens > model.context_tokens:
        raise ValidationFailed(
            f"The messages and answer budget exceed the model's context ({model.context_tokens} tokens).",
            fields={"messages": "too long"},
        )
    thinking = model.thinking_for(requested_thinking(model, body.chat_template_kwargs))
    return Prepared(body=body, model=model, messages=messages, thinking=thinking, max_tokens=max_tokens)
