"""Prompt rendering: a fixed system prompt, the current branch without reasoning, old turns dropped in
blocks so that the prompt's start stays the same for several turns."""

from __future__ import annotations

import uuid

from backend.chat.prompt import estimate_tokens, render_prompt
from backend.db import models as m

SYSTEM = "You are helpful."


def branch(*pairs: tuple[str, str | None], reasoning: str | None = "secret thoughts") -> list[m.Message]:
    messages = []
    for question, answer in pairs:
        messages.append(m.Message(id=uuid.uuid4(), role="user", content=question, status="complete"))
        if answer is not None:
            messages.append(
                m.Message(
                    id=uuid.uuid4(), role="assistant", content=answer, reasoning=reasoning, status="complete"
                )
            )
    return messages


def test_the_system_prompt_comes_first_and_reasoning_is_dropped():
    prompt = render_prompt(
        SYSTEM, branch(("hi", "hello"), ("how are you?", None)), budget_tokens=10_000, drop_block_turns=4
    )
    assert prompt.messages == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "how are you?"},
    ]
    assert "secret" not in str(prompt.messages)


def test_an_answer_without_text_is_left_out():
    messages = branch(("q1", ""), ("q2", None))
    prompt = render_prompt(SYSTEM, messages, budget_tokens=10_000, drop_block_turns=4)
    assert [entry["role"] for entry in prompt.messages] == ["system", "user", "user"]


def test_the_system_prompt_is_identical_across_users_and_turns():
    first = render_prompt(SYSTEM, branch(("a", None)), budget_tokens=10_000, drop_block_turns=4)
    second = render_prompt(SYSTEM, branch(("b", "c"), ("d", None)), budget_tokens=10_000, drop_block_turns=4)
    assert first.messages[0] == second.messages[0]


def test_old_turns_are_dropped_in_blocks_and_the_prefix_holds_for_several_turns():
    text = "x" * 300  # about 100 tokens plus overhead per message
    per_turn = 2 * estimate_tokens(text)
    budget = 10 * per_turn
    prefixes = []
    for turns in range(8, 20):
        pairs = [(f"{i}{text}", f"{i}{text}") for i in range(turns - 1)] + [(f"{turns}{text}", None)]
        prompt = render_prompt(SYSTEM, branch(*pairs), budget_tokens=budget, drop_block_turns=4)
        assert prompt.estimated_tokens <= budget
        assert prompt.dropped_turns % 4 == 0
        prefixes.append(prompt.messages[1]["content"])
    # The first kept message changes only when a whole block is dropped, so between two drops the
    # prompt's start is the same for a whole block of turns (turns 11-14 and 15-18 here).
    runs = [prefixes.count(prefix) for prefix in dict.fromkeys(prefixes)]
    assert runs == [3, 4, 4, 1]


def test_the_turn_being_answered_is_always_kept():
    huge = "y" * 100_000
    prompt = render_prompt(
        SYSTEM, branch(("old", "answer"), (huge, None)), budget_tokens=100, drop_block_turns=4
    )
    assert prompt.messages[-1]["content"] == huge
