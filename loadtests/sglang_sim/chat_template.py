"""DeepSeek-R1, DeepSeek-V3.1 and Qwen3 chat templates, rendered straight to token ids."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from loadtests.sglang_sim.textgen import Completion
from loadtests.sglang_sim.tokenizer import (
    ASSISTANT,
    BOS,
    END_THINK,
    EOS,
    IM_END,
    IM_START,
    THINK,
    USER,
    Tokenizer,
    get_tokenizer,
)

TEMPLATE_NAMES: Final = ("deepseek-r1", "deepseek-v3.1", "qwen3")


def message_text(content: Any) -> str:
    """OpenAI message content (a string, None, or a list of parts) as plain text."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(p.get("text", "")) if isinstance(p, Mapping) else str(p)
            for p in content
            if not isinstance(p, Mapping) or p.get("type", "text") == "text"
        )
    return str(content)


def _drop_reasoning(content: str) -> str:
    # The templates keep only what follows the last `</think>` of an earlier assistant turn.
    return content.split(END_THINK)[-1] if END_THINK in content else content


@dataclass(frozen=True)
class OutputLayout:
    """A model's full output for one request, before max_tokens, stop strings and ignore_eos apply.

    `tokens[reasoning_end:content_start]` are the markers between reasoning and answer; `tokens[-1]` is
    the end-of-turn token.
    """

    tokens: list[int]
    reasoning_start: int
    reasoning_end: int
    content_start: int
    eos_id: int


class ChatTemplate:
    """One model family's prompt format and output layout; subclasses differ only in the strings."""

    name: str = ""
    eos_id: int = 0

    def __init__(self, tokenizer: Tokenizer | None = None) -> None:
        self.tok = tokenizer or get_tokenizer()
        self._nl = self.tok.piece_id("\n")
        self._nl2 = self.tok.piece_id("\n\n")

    def thinking_enabled(self, chat_template_kwargs: Mapping[str, Any] | None) -> bool:
        """Whether a chat request with these template switches makes the model think."""
        raise NotImplementedError

    def render(self, messages: Sequence[Mapping[str, Any]], thinking: bool) -> list[int]:
        """Prompt token ids for OpenAI-style messages, ending with the generation prompt."""
        raise NotImplementedError

    def prompt_thinks(self, prompt_ids: Sequence[int]) -> bool:
        """Whether a raw prompt (native /generate) leaves the model in thinking mode."""
        raise NotImplementedError

    def layout(self, completion: Completion, thinking: bool) -> OutputLayout:
        """Token layout of a completion as this family emits it."""
        raise NotImplementedError

    def _markers_layout(self, lead: list[int], completion: Completion, thinking: bool) -> OutputLayout:
        if not thinking:
            return OutputLayout([*completion.answer_ids, self.eos_id], 0, 0, 0, self.eos_id)
        r_start = len(lead)
        r_end = r_start + len(completion.reasoning_ids)
        markers = [self._nl, self.tok.piece_id(END_THINK), self._nl2]
        tokens = [*lead, *completion.reasoning_ids, *markers, *completion.answer_ids, self.eos_id]
        return OutputLayout(tokens, r_start, r_end, r_end + len(markers), self.eos_id)


class DeepSeekR1Template(ChatTemplate):
    """DeepSeek-R1 (0528): always thinks; the generation prompt opens `<think>` itself."""

    name = "deepseek-r1"
    eos_id = get_tokenizer().piece_id(EOS)

    def thinking_enabled(self, chat_template_kwargs: Mapping[str, Any] | None) -> bool:
        return True

    def render(self, messages: Sequence[Mapping[str, Any]], thinking: bool) -> list[int]:
        enc, sid = self.tok.encode, self.tok.piece_id
        systems = [
            message_text(m.get("content")) for m in messages if m.get("role") in ("system", "developer")
        ]
        ids = [sid(BOS), *enc("\n\n".join(systems))]
        for m in messages:
            role, text = m.get("role"), message_text(m.get("content"))
            if role in ("user", "tool"):
                ids += [sid(USER), *enc(text)]
            elif role == "assistant":
                ids += [sid(ASSISTANT), *enc(_drop_reasoning(text)), sid(EOS)]
        return [*ids, sid(ASSISTANT), sid(THINK), self._nl]

    def prompt_thinks(self, prompt_ids: Sequence[int]) -> bool:
        think = self.tok.piece_id(THINK)
        return bool(prompt_ids) and (
            prompt_ids[-1] == think or (len(prompt_ids) > 1 and prompt_ids[-2:] == [think, self._nl])
        )

    def layout(self, completion: Completion, thinking: bool) -> OutputLayout:
        return self._markers_layout([], completion, thinking)


class DeepSeekV31Template(DeepSeekR1Template):
    """DeepSeek-V3.1: thinks only with `chat_template_kwargs: {"thinking": true}`."""

    name = "deepseek-v3.1"

    def thinking_enabled(self, chat_template_kwargs: Mapping[str, Any] | None) -> bool:
        return bool(chat_template_kwargs and chat_template_kwargs.get("thinking") is True)

    def render(self, messages: Sequence[Mapping[str, Any]], thinking: bool) -> list[int]:
        enc, sid = self.tok.encode, self.tok.piece_id
        systems = [
            message_text(m.get("content")) for m in messages if m.get("role") in ("system", "developer")
        ]
        ids = [sid(BOS), *enc("\n\n".join(systems))]
        last_user = False
        for m in messages:
            role, text = m.get("role"), message_text(m.get("content"))
            if role in ("user", "tool"):
                ids += [sid(USER), *enc(text)]
                last_user = True
            elif role == "assistant":
                if last_user:  # earlier turns were answered without thinking, as far as the prompt shows
                    ids += [sid(ASSISTANT), sid(END_THINK)]
                ids += [*enc(_drop_reasoning(text)), sid(EOS)]
                last_user = False
        return [*ids, sid(ASSISTANT), sid(THINK if thinking else END_THINK)]


class Qwen3Template(ChatTemplate):
    """Qwen3: thinks unless `chat_template_kwargs: {"enable_thinking": false}`; emits `<think>` itself."""

    name = "qwen3"
    eos_id = get_tokenizer().piece_id(IM_END)

    def thinking_enabled(self, chat_template_kwargs: Mapping[str, Any] | None) -> bool:
        return not (chat_template_kwargs and chat_template_kwargs.get("enable_thinking") is False)

    def render(self, messages: Sequence[Mapping[str, Any]], thinking: bool) -> list[int]:
        enc, sid = self.tok.encode, self.tok.piece_id
        ids: list[int] = []
        for m in messages:
            role, text = str(m.get("role")), message_text(m.get("content"))
            if role == "developer":
                role = "system"
            if role == "assistant":
                text = _drop_reasoning(text).lstrip("\n")
            ids += [sid(IM_START), *enc(f"{role}\n{text}"), sid(IM_END), self._nl]
        ids += [sid(IM_START), *enc("assistant\n")]
        if not thinking:
            ids += [sid(THINK), self._nl2, sid(END_THINK), self._nl2]
        return ids

    def prompt_thinks(self, prompt_ids: Sequence[int]) -> bool:
        return not (len(prompt_ids) >= 2 and prompt_ids[-2] == self.tok.piece_id(END_THINK))

    def layout(self, completion: Completion, thinking: bool) -> OutputLayout:
        return self._markers_layout([self.tok.piece_id(THINK), self._nl], completion, thinking)


_TEMPLATES: Final[dict[str, type[ChatTemplate]]] = {
    "deepseek-r1": DeepSeekR1Template,
    "deepseek-v3.1": DeepSeekV31Template,
    "qwen3": Qwen3Template,
}


def get_chat_template(name: str) -> ChatTemplate:
    """The template called `name` (one of TEMPLATE_NAMES)."""
    try:
        return _TEMPLATES[name]()
    except KeyError:
        raise ValueError(
            f"unknown chat template {name!r}; choose one of {', '.join(TEMPLATE_NAMES)}"
        ) from None


def template_for_model(model_path: str) -> str:
    """The template a model path implies, as SGLang would pick it from the model's tokenizer config."""
    lowered = model_path.lower()
    if "qwen3" in lowered:
        return "qwen3"
    if "v3.1" in lowered or "v3.2" in lowered or "v3_1" in lowered:
        return "deepseek-v3.1"
    return "deepseek-r1"


def render_prompt(
    messages: Sequence[Mapping[str, Any]],
    template: str = "deepseek-r1",
    chat_template_kwargs: Mapping[str, Any] | None = None,
) -> list[int]:
    """Prompt ids exactly as the simulator builds them for /v1/chat/completions (for benchmark oracles)."""
    tpl = get_chat_template(template)
    return tpl.render(messages, tpl.thinking_enabled(chat_template_kwargs))
