"""Seeded, deterministic model output: reasoning and answer token sequences with realistic lengths."""

from __future__ import annotations

import array
import functools
import hashlib
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from loadtests.sglang_sim.tokenizer import get_tokenizer
from loadtests.sglang_sim.vocabulary import STARTERS, WORDS

# Lengths from WORKLOAD.md: reasoning lognormal (median 1,200, p90 6,000, cap 32,000 — DeepSeek's API cap on
# chain-of-thought); answer lognormal (median 300, p95 1,500).
REASONING_MEDIAN: Final = 1200.0
REASONING_P90: Final = 6000.0
REASONING_CAP: Final = 32000
ANSWER_MEDIAN: Final = 300.0
ANSWER_P95: Final = 1500.0
ANSWER_CAP: Final = 32000
_Z90: Final = 1.2815515655446004
_Z95: Final = 1.6448536269514722
REASONING_SIGMA: Final = math.log(REASONING_P90 / REASONING_MEDIAN) / _Z90
ANSWER_SIGMA: Final = math.log(ANSWER_P95 / ANSWER_MEDIAN) / _Z95

_CORPUS_TOKENS: Final = 1 << 18
_CORPUS_SEED: Final = 20250120  # DeepSeek-R1's release date; any constant would do.


@dataclass(frozen=True)
class _Corpus:
    ids: array.array[int]
    sentence_starts: array.array[int]  # positions whose token is a capitalised " Word" or "Word"
    unspaced: dict[int, int]  # id of " Word" -> id of "Word", to start an output without a space
    paragraph_id: int
    filler_id: int  # stands in for a paragraph break at the very end of a window


@functools.cache
def _corpus() -> _Corpus:
    # Built once per process (~0.2 s): one long seeded text; outputs are windows into it, so producing a
    # 32,000-token reasoning costs a slice, not 32,000 random draws.
    tok = get_tokenizer()
    rng = random.Random(_CORPUS_SEED)
    words = [" " + w for w in WORDS]
    # Zipf-like weights: a few words are very common, as in real text.
    cum: list[float] = []
    total = 0.0
    for rank in range(len(words)):
        total += 1.0 / (rank + 3)
        cum.append(total)
    word_ids = [tok.piece_id(w) for w in words]
    spaced_starters = [tok.piece_id(" " + w) for w in STARTERS]
    comma, period, question, para = (tok.piece_id(p) for p in (",", ".", "?", "\n\n"))
    ids = array.array("q")
    starts = array.array("q")
    unspaced = {tok.piece_id(" " + w): tok.piece_id(w) for w in STARTERS}
    sentences_left = 0
    while len(ids) < _CORPUS_TOKENS:
        starter = rng.choice(spaced_starters)
        if sentences_left == 0:
            if ids:
                ids.append(para)
                starter = unspaced[starter]  # a whitespace run would swallow the word's space
            sentences_left = rng.randint(2, 6)
        sentences_left -= 1
        starts.append(len(ids))
        ids.append(starter)
        body = rng.choices(word_ids, cum_weights=cum, k=rng.randint(4, 22))
        for i, w in enumerate(body):
            ids.append(w)
            if 1 < i < len(body) - 2 and rng.random() < 0.08:
                ids.append(comma)
        ids.append(question if rng.random() < 0.1 else period)
    return _Corpus(ids, starts, unspaced, para, tok.piece_id(" The"))


def _window(start: int, n: int) -> list[int]:
    """`n` corpus tokens from a sentence start, cycling; the first token loses its leading space."""
    corpus = _corpus()
    ids = corpus.ids
    out: list[int] = []
    pos = start
    while len(out) < n:
        take = min(n - len(out), len(ids) - pos)
        out.extend(ids[pos : pos + take])
        pos = 0
    if out:
        out[0] = corpus.unspaced.get(out[0], out[0])
        if out[-1] == corpus.paragraph_id:  # a trailing break would merge with the whitespace after it
            out[-1] = corpus.filler_id
    return out


def _rng(seed: int, prompt_ids: Sequence[int], salt: bytes) -> random.Random:
    h = hashlib.blake2b(digest_size=16, key=seed.to_bytes(8, "big", signed=True), person=salt[:16])
    h.update(array.array("q", prompt_ids).tobytes())
    return random.Random(int.from_bytes(h.digest(), "big"))


def _lognormal_length(rng: random.Random, median: float, sigma: float, cap: int) -> int:
    return max(1, min(cap, round(rng.lognormvariate(math.log(median), sigma))))


@dataclass(frozen=True)
class Completion:
    """What the model would say to a prompt: reasoning (empty when not thinking) then the answer.

    Neither includes the template's markers (`</think>`, end of sentence); the chat template adds them.
    """

    reasoning_ids: list[int]
    answer_ids: list[int]


def completion_lengths(seed: int, prompt_ids: Sequence[int], thinking: bool) -> tuple[int, int]:
    """(reasoning tokens, answer tokens) the model produces for this prompt, before any max_tokens cap."""
    rng = _rng(seed, prompt_ids, b"lengths")
    reasoning = _lognormal_length(rng, REASONING_MEDIAN, REASONING_SIGMA, REASONING_CAP)
    answer = _lognormal_length(rng, ANSWER_MEDIAN, ANSWER_SIGMA, ANSWER_CAP)
    return (reasoning if thinking else 0), answer


def generate_completion(
    seed: int, prompt_ids: Sequence[int], thinking: bool, limit: int | None = None
) -> Completion:
    """The deterministic completion of `prompt_ids` under server seed `seed`.

    Same inputs give the same tokens in every process; different prompts give different text. `limit`
    caps how many tokens are materialised in total (reasoning first), which is all a max_tokens-capped
    request needs.
    """
    r_len, a_len = completion_lengths(seed, prompt_ids, thinking)
    if limit is not None:
        r_len = min(r_len, limit)
        a_len = min(a_len, max(0, limit - r_len))
    rng = _rng(seed, prompt_ids, b"offsets")
    starts = _corpus().sentence_starts
    r_start = starts[rng.randrange(len(starts))]
    a_start = starts[rng.randrange(len(starts))]
    return Completion(_window(r_start, r_len) if r_len else [], _window(a_start, a_len))


def continuation(seed: int, prompt_ids: Sequence[int], n: int) -> list[int]:
    """`n` more tokens of text, for requests that ignore EOS and run to max_tokens."""
    rng = _rng(seed, prompt_ids, b"continuation")
    starts = _corpus().sentence_starts
    tokens = _window(starts[rng.randrange(len(starts))], n)
    if tokens:  # it follows other text, so it keeps its leading space
        tokens[0] = _respaced().get(tokens[0], tokens[0])
    return tokens


@functools.cache
def _respaced() -> dict[int, int]:
    return {v: k for k, v in _corpus().unspaced.items()}


def sample_text(seed: int, n_tokens: int) -> str:
    """A text of exactly `n_tokens` tokens (as the simulator's tokenizer counts), for workload prompts."""
    rng = random.Random(seed)
    starts = _corpus().sentence_starts
    return get_tokenizer().decode(_window(starts[rng.randrange(len(starts))], n_tokens))
