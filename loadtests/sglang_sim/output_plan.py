"""What one request will output: tokens, finish reason, and which tokens are reasoning or answer."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from loadtests.sglang_sim.chat_template import ChatTemplate
from loadtests.sglang_sim.textgen import Completion, continuation, generate_completion
from loadtests.sglang_sim.tokenizer import Tokenizer

FinishReason = dict[str, Any]


@dataclass
class OutputPlan:
    """The tokens a request emits, decided at arrival (the simulated model is deterministic).

    `tokens[reasoning_start:reasoning_end]` is reasoning and `tokens[content_start:]` the answer (both
    empty spans when not thinking). A stop string cuts the visible text inside token `visible_end`;
    `tail_text` is that token's text before the stop string.
    """

    tokens: list[int]
    finish_reason: FinishReason
    reasoning_start: int = 0
    reasoning_end: int = 0
    content_start: int = 0
    visible_end: int = -1
    tail_text: str = ""

    def __post_init__(self) -> None:
        if self.visible_end < 0:
            self.visible_end = len(self.tokens)

    @property
    def reasoning_tokens(self) -> int:
        """Tokens of reasoning actually emitted."""
        return max(0, min(self.reasoning_end, len(self.tokens)) - self.reasoning_start)

    def text(self, tok: Tokenizer, start: int, end: int) -> str:
        """Visible text of tokens [start, end), as a server without a reasoning parser streams it."""
        text = tok.decode(self.tokens[start : min(end, self.visible_end)]) if start < self.visible_end else ""
        # The part of the stop-string token before the stop string shows with the last token.
        if end >= len(self.tokens) and start <= self.visible_end < len(self.tokens):
            text += self.tail_text
        return text

    def split_text(self, tok: Tokenizer, start: int, end: int) -> tuple[str, str]:
        """(reasoning, answer) text of tokens [start, end), as a reasoning parser separates them."""
        r_lo, r_hi = max(start, self.reasoning_start), min(end, self.reasoning_end)
        c_lo = max(start, self.content_start)
        reasoning = self.text(tok, r_lo, r_hi) if r_lo < r_hi else ""
        content = self.text(tok, c_lo, end) if c_lo < end else ""
        return reasoning, content


def plan_output(
    *,
    template: ChatTemplate,
    seed: int,
    prompt_ids: Sequence[int],
    thinking: bool,
    max_new_tokens: int | None,
    stop: Sequence[str] = (),
    ignore_eos: bool = False,
    answer_text: str | None = None,
) -> OutputPlan:
    """Apply SGLang's finish rules to the model's deterministic output.

    As in SGLang's `Req.check_finished`, reaching `max_new_tokens` wins over EOS or a stop string found on
    the same token; `ignore_eos` runs on (with more generated text) until `max_new_tokens`. `answer_text`
    replaces the generated answer (the `answer_text` fault).
    """
    completion = generate_completion(seed, prompt_ids, thinking, limit=max_new_tokens)
    if answer_text is not None:
        completion = Completion(completion.reasoning_ids, template.tok.encode(answer_text))
    layout = template.layout(completion, thinking)
    tokens = layout.tokens
    finish: FinishReason = {"type": "stop", "matched": layout.eos_id}
    if ignore_eos:
        tokens = tokens[:-1]
        if max_new_tokens is not None and len(tokens) < max_new_tokens:
            tokens += continuation(seed, prompt_ids, max_new_tokens - len(tokens))
    plan = OutputPlan(tokens, finish, layout.reasoning_start, layout.reasoning_end, layout.content_start)
    if stop:
        _apply_stop_strings(plan, template.tok, stop)
    if max_new_tokens is not None and len(plan.tokens) >= max_new_tokens:
        plan.tokens = plan.tokens[:max_new_tokens]
        plan.finish_reason = {"type": "length", "length": max_new_tokens}
        if plan.visible_end >= max_new_tokens:
            plan.visible_end, plan.tail_text = len(plan.tokens), ""
    return plan


def _apply_stop_strings(plan: OutputPlan, tok: Tokenizer, stop: Sequence[str]) -> None:
    pieces = [
        ("" if tok.is_skipped(t) else p)
        for t, p in zip(plan.tokens, tok.token_text(plan.tokens), strict=True)
    ]
    text = "".join(pieces)
    best: tuple[int, str] | None = None
    for s in stop:
        if s and (pos := text.find(s)) >= 0 and (best is None or pos + len(s) < best[0] + len(best[1])):
            best = (pos, s)
    if best is None:
        return
    pos, s = best
    ends = list(itertools.accumulate(len(p) for p in pieces))
    last = next(i for i, e in enumerate(ends) if e >= pos + len(s))  # token completing the match
    first = next(i for i, e in enumerate(ends) if e > pos)  # token where the stop string starts
    plan.tokens = plan.tokens[: last + 1]
    plan.finish_reason = {"type": "stop", "matched": s}
    plan.visible_end = first
    plan.tail_text = pieces[first][: pos - (ends[first] - len(pieces[first]))]
