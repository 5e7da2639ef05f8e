"""Chat templates: DeepSeek R1/V3.1 and Qwen3 prompts, reasoning dropped from earlier turns."""
# ruff: noqa: RUF001 - DeepSeek's special tokens are spelled with fullwidth bars

from __future__ import annotations

from loadtests.sglang_sim.chat_template import get_chat_template, render_prompt
from loadtests.sglang_sim.tokenizer import decode

HISTORY = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "<think>secret reasoning</think>Hello!"},
    {"role": "user", "content": "Bye"},
]


def text(ids: list[int]) -> str:
    return decode(ids, skip_special_tokens=False)


def test_r1_drops_earlier_reasoning_and_opens_think():
    rendered = text(render_prompt(HISTORY, "deepseek-r1"))
    assert rendered == (
        "<｜begin▁of▁sentence｜>Be brief.<｜User｜>Hi<｜Assistant｜>Hello!<｜end▁of▁sentence｜>"
        "<｜User｜>Bye<｜Assistant｜><think>\n"
    )
    assert "secret" not in rendered


def test_v31_thinks_only_when_asked():
    tpl = get_chat_template("deepseek-v3.1")
    assert not tpl.thinking_enabled(None)
    assert tpl.thinking_enabled({"thinking": True})
    assert text(render_prompt(HISTORY, "deepseek-v3.1")).endswith("<｜Assistant｜></think>")
    assert text(render_prompt(HISTORY, "deepseek-v3.1", {"thinking": True})).endswith(
        "<｜Assistant｜><think>"
    )
    assert "<｜Assistant｜></think>Hello!<｜end▁of▁sentence｜>" in text(
        render_prompt(HISTORY, "deepseek-v3.1")
    )


def test_qwen3_thinks_by_default_and_enable_thinking_false_closes_the_block():
    tpl = get_chat_template("qwen3")
    assert tpl.thinking_enabled(None)
    assert not tpl.thinking_enabled({"enable_thinking": False})
    on = text(render_prompt(HISTORY, "qwen3"))
    off = text(render_prompt(HISTORY, "qwen3", {"enable_thinking": False}))
    assert on.endswith("<|im_start|>assistant\n")
    assert off.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert "secret" not in on


def test_prompt_thinks_detects_the_generation_prompt():
    r1 = get_chat_template("deepseek-r1")
    v31 = get_chat_template("deepseek-v3.1")
    assert r1.prompt_thinks(render_prompt(HISTORY, "deepseek-r1"))
    assert not v31.prompt_thinks(render_prompt(HISTORY, "deepseek-v3.1"))
    assert v31.prompt_thinks(render_prompt(HISTORY, "deepseek-v3.1", {"thinking": True}))
