"""The tokenizer: deterministic, reversible on generated text, context-free at special tokens."""
# ruff: noqa: RUF001 - DeepSeek's special tokens are spelled with fullwidth bars

from __future__ import annotations

from loadtests.sglang_sim import textgen
from loadtests.sglang_sim.tokenizer import (
    EOS_ID,
    THINK,
    Tokenizer,
    count_tokens,
    decode,
    encode,
    get_tokenizer,
)


def test_encoding_is_deterministic_across_instances():
    text = "Hello, world! Ünïcödé and numbers 12345 and\n\nnew paragraphs."
    assert Tokenizer().encode(text) == Tokenizer().encode(text) == encode(text)


def test_decode_inverts_encode():
    for text in ["plain words", "  leading spaces", "tabs\tand\nnewlines\n\n", "émoji 🙂 ok", "a.b,c;d"]:
        assert decode(encode(text)) == text


def test_generated_text_round_trips_to_the_same_ids():
    tok = get_tokenizer()
    for seed in range(20):
        completion = textgen.generate_completion(seed, [seed, 1, 2], thinking=True)
        for ids in (completion.reasoning_ids, completion.answer_ids):
            assert tok.encode(tok.decode(ids)) == ids


def test_special_tokens_encode_to_their_ids_and_split_context_free():
    tok = get_tokenizer()
    a, b = "first part", "second part"
    assert tok.encode(a + THINK + b) == [*tok.encode(a), tok.piece_id(THINK), *tok.encode(b)]
    assert tok.encode("<｜end▁of▁sentence｜>") == [EOS_ID]
    assert tok.decode([EOS_ID]) == ""
    assert tok.decode([EOS_ID], skip_special_tokens=False) == "<｜end▁of▁sentence｜>"


def test_sample_text_has_exactly_the_requested_token_count():
    for n in (1, 2, 40, 400, 8000):
        assert count_tokens(textgen.sample_text(n, n)) == n
