"""A deterministic word-level tokenizer standing in for DeepSeek's BPE tokenizer."""
# ruff: noqa: RUF001 - DeepSeek's special tokens are spelled with fullwidth bars

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from typing import Final

from loadtests.sglang_sim.vocabulary import vocabulary_pieces

# Special tokens of the DeepSeek (V3/R1) and Qwen3 vocabularies. DeepSeek's real ids are kept for BOS/EOS
# because clients see EOS's id as `matched_stop`.
BOS: Final = "<｜begin▁of▁sentence｜>"
EOS: Final = "<｜end▁of▁sentence｜>"
USER: Final = "<｜User｜>"
ASSISTANT: Final = "<｜Assistant｜>"
THINK: Final = "<think>"
END_THINK: Final = "</think>"
IM_START: Final = "<|im_start|>"
IM_END: Final = "<|im_end|>"
ENDOFTEXT: Final = "<|endoftext|>"

# token -> (id, skipped when decoding with skip_special_tokens). `<think>` and `</think>` are ordinary added
# tokens in DeepSeek's tokenizer, so they survive detokenization, as the role markers do.
SPECIAL_TOKENS: Final[dict[str, tuple[int, bool]]] = {
    BOS: (0, True),
    EOS: (1, True),
    USER: (2, False),
    ASSISTANT: (3, False),
    THINK: (4, False),
    END_THINK: (5, False),
    IM_START: (6, True),
    IM_END: (7, True),
    ENDOFTEXT: (8, True),
}
BOS_ID: Final = SPECIAL_TOKENS[BOS][0]
EOS_ID: Final = SPECIAL_TOKENS[EOS][0]
THINK_ID: Final = SPECIAL_TOKENS[THINK][0]
END_THINK_ID: Final = SPECIAL_TOKENS[END_THINK][0]
IM_END_ID: Final = SPECIAL_TOKENS[IM_END][0]

# Ids below this belong to the fixed vocabulary (specials + the text generator's words); pieces outside it
# get a 40-bit hash above it, so any text has ids without a stored vocabulary file.
HASHED_BASE: Final = 1 << 20

# Close to GPT-2's pre-tokenizer: a word with its leading space, a run of punctuation with its leading
# space, or a run of whitespace. Unlike GPT-2, a whitespace run never gives its last character to the next
# word, so a paragraph break stays one token wherever a text is cut. Splitting on special tokens first keeps
# encoding context-free at message boundaries.
_PIECE_RE: Final = re.compile(r" ?\w+| ?[^\w\s]+|\s+")
_SPECIAL_RE: Final = re.compile(
    "(" + "|".join(re.escape(t) for t in sorted(SPECIAL_TOKENS, key=len, reverse=True)) + ")"
)


class Tokenizer:
    """Maps text to token ids and back; pure and deterministic across processes and runs.

    `decode(encode(text)) == text` for any text without special-token look-alikes split oddly, and
    always for text the simulator generates. Encoding a concatenation split at special tokens equals the
    concatenation of the encodings, which is what chat templates rely on.
    """

    def __init__(self) -> None:
        self._piece_to_id: dict[str, int] = {t: i for t, (i, _) in SPECIAL_TOKENS.items()}
        self._id_to_piece: dict[int, str] = {i: t for t, (i, _) in SPECIAL_TOKENS.items()}
        self._skipped: frozenset[int] = frozenset(i for i, skip in SPECIAL_TOKENS.values() if skip)
        next_id = 1000
        for piece in vocabulary_pieces():
            if piece not in self._piece_to_id:
                self._piece_to_id[piece] = next_id
                self._id_to_piece[next_id] = piece
                next_id += 1
        assert next_id < HASHED_BASE
        self._vocab_size = len(self._piece_to_id)

    @property
    def vocab_size(self) -> int:
        """Number of fixed (non-hashed) tokens."""
        return self._vocab_size

    def piece_id(self, piece: str) -> int:
        """The id of one pre-tokenized piece (a special token, a word with its space, punctuation...)."""
        token_id = self._piece_to_id.get(piece)
        if token_id is None:
            digest = hashlib.blake2b(piece.encode(), digest_size=5).digest()
            token_id = HASHED_BASE + int.from_bytes(digest, "big")
            # Bounded memo: decode() can name hashed pieces it has seen; prompts dominate this table.
            if len(self._piece_to_id) > 2_000_000:
                self._forget_hashed()
            self._piece_to_id[piece] = token_id
            self._id_to_piece[token_id] = piece
        return token_id

    def _forget_hashed(self) -> None:
        for piece, token_id in list(self._piece_to_id.items()):
            if token_id >= HASHED_BASE:
                del self._piece_to_id[piece]
                del self._id_to_piece[token_id]

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`; special-token strings become their special ids."""
        ids: list[int] = []
        piece_id = self.piece_id
        for i, segment in enumerate(_SPECIAL_RE.split(text)):
            if not segment:
                continue
            if i % 2:  # odd positions of re.split with one group are the separators: special tokens
                ids.append(self._piece_to_id[segment])
            else:
                ids.extend(piece_id(p) for p in _PIECE_RE.findall(segment))
        return ids

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
        """Text of `ids`; ids never produced by this tokenizer's encode decode to nothing."""
        pieces = self._id_to_piece
        if skip_special_tokens:
            skipped = self._skipped
            return "".join(pieces.get(i, "") for i in ids if i not in skipped)
        return "".join(pieces.get(i, "") for i in ids)

    def token_text(self, ids: Sequence[int]) -> list[str]:
        """The text of each id (special tokens included), for offset arithmetic."""
        pieces = self._id_to_piece
        return [pieces.get(i, "") for i in ids]

    def is_skipped(self, token_id: int) -> bool:
        """Whether decoding with skip_special_tokens drops this id."""
        return token_id in self._skipped


_default: Tokenizer | None = None


def get_tokenizer() -> Tokenizer:
    """The process-wide tokenizer (construction builds the vocabulary once)."""
    global _default
    if _default is None:
        _default = Tokenizer()
    return _default


def encode(text: str) -> list[int]:
    """Shorthand for `get_tokenizer().encode(text)`."""
    return get_tokenizer().encode(text)


def decode(ids: Iterable[int], skip_special_tokens: bool = True) -> str:
    """Shorthand for `get_tokenizer().decode(ids)`."""
    return get_tokenizer().decode(ids, skip_special_tokens)


def count_tokens(text: str) -> int:
    """Number of tokens in `text`, as the simulator counts them."""
    return len(get_tokenizer().encode(text))
