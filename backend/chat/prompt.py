"""What is sent to the model: a fixed system prompt, then the current branch without earlier reasoning.

Prefix caching (RadixAttention) pays off only if turn N+1's prompt starts with exactly turn N's. So the
system prompt is byte-identical for every user and turn, earlier reasoning is dropped (as DeepSeek's
chat template does anyway), and when a conversation outgrows the context, old turns are dropped in
blocks: the prompt's start then stays the same for several turns instead of shifting on every turn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from backend.db import models as m

# A deliberately conservative estimate (real tokenizers average 3.5-4 characters per English token,
# fewer for CJK): the budget must not overflow the context, and being early costs little.
CHARS_PER_TOKEN = 3.0
# Template tokens per message (role markers, separators).
MESSAGE_OVERHEAD_TOKENS = 8


def estimate_tokens(text: str) -> int:
    return int(len(text) / CHARS_PER_TOKEN) + MESSAGE_OVERHEAD_TOKENS


@dataclass(frozen=True, slots=True)
class Prompt:
    messages: list[dict[str, str]]
    estimated_tokens: int
    dropped_turns: int

    @property
    def chars(self) -> int:
        return sum(len(message["content"]) for message in self.messages)


def _turns(branch: Sequence[m.Message]) -> list[list[dict[str, str]]]:
    """The branch as turns: each starts at a user message and holds the answers that follow it."""
    turns: list[list[dict[str, str]]] = []
    for message in branch:
        if message.role == "assistant":
            # Earlier reasoning never goes back to the model; an answer with no text (failed before its
            # first token) is left out rather than sent as an empty assistant turn.
            if not message.content:
                continue
            entry = {"role": "assistant", "content": message.content}
        else:
            entry = {"role": "user", "content": message.content}
        if entry["role"] == "user" or not turns:
            turns.append([entry])
        else:
            turns[-1].append(entry)
    return turns


def render_prompt(
    system_prompt: str, branch: Sequence[m.Message], *, budget_tokens: int, drop_block_turns: int
) -> Prompt:
    """``branch`` runs root first and ends with the user message being answered."""
    system = [{"role": "system", "content": system_prompt}] if system_prompt else []
    turns = _turns(branch)
    sizes = [sum(estimate_tokens(entry["content"]) for entry in turn) for turn in turns]
    fixed = sum(estimate_tokens(entry["content"]) for entry in system)
    dropped = 0
    # Drop whole blocks of old turns until the rest fits; always keep the turn being answered.
    while fixed + sum(sizes[dropped:]) > budget_tokens and dropped + 1 < len(turns):
        dropped = min(dropped + drop_block_turns, len(turns) - 1)
    messages = system + [entry for turn in turns[dropped:] for entry in turn]
    return Prompt(messages=messages, estimated_tokens=fixed + sum(sizes[dropped:]), dropped_turns=dropped)
