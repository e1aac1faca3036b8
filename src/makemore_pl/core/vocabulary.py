"""The vocabulary (token 0 the word boundary) and the framing of words into examples."""

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from makemore_pl.core.errors import DataError
from makemore_pl.core.ngrams import example_ends

BOUNDARY = "."  # how index 0, the start/end-of-word token, is shown


class Vocabulary:
    """Token 0 is the word boundary (shown as '.', though a '.' in the data is a character of
    its own); the data's characters, sorted, are 1..V-1."""

    def __init__(self, chars: Sequence[str]) -> None:
        if len(set(chars)) != len(chars) or any(len(ch) != 1 or ch == "\n" for ch in chars):
            raise DataError(
                f"a vocabulary is a list of distinct single characters (no line end), got {chars!r}"
            )
        self.chars = list(chars)
        self.itos = [BOUNDARY, *self.chars]
        self.stoi = {ch: i for i, ch in enumerate(self.chars, start=1)}
        # code point -> id, for encoding many words at once; "\n" stands for the boundary
        codes = np.array([ord("\n"), *map(ord, self.chars)], dtype=np.int64)
        order = np.argsort(codes)
        self._codes, self._ids = codes[order], order.astype(np.int64)
        self._ascii_ids = np.full(128, -1, dtype=np.int64)
        ascii_codes = self._codes < 128
        self._ascii_ids[self._codes[ascii_codes]] = self._ids[ascii_codes]

    @classmethod
    def from_words(cls, words: Sequence[str]) -> "Vocabulary":
        return cls(sorted(set("".join(words))))

    def __len__(self) -> int:
        return len(self.itos)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.chars == other.chars

    def __repr__(self) -> str:
        return f"Vocabulary({''.join(self.chars)!r})"

    def encode(self, word: str) -> list[int]:
        try:
            return [self.stoi[ch] for ch in word]
        except KeyError as err:
            raise DataError(
                f"character {err.args[0]!r} in {word!r} is not in the vocabulary "
                f"{''.join(self.chars)!r}"
            ) from None

    def encode_framed(self, words: Sequence[str], gap: int) -> Tensor:
        """The words' ids end to end, `gap` boundaries (0) before, between and after them."""
        separator = "\n" * gap  # no name holds a line end: it stands for the boundary
        text = separator + separator.join(words) + separator
        if text.isascii():
            ids = self._ascii_ids[np.frombuffer(text.encode("ascii"), dtype=np.uint8)]
        else:
            codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
            where = np.searchsorted(self._codes, codes).clip(max=len(self._codes) - 1)
            ids = np.where(self._codes[where] == codes, self._ids[where], -1)
        if (ids < 0).any():  # the message names the word
            for word in words:
                self.encode(word)
        return torch.from_numpy(ids)

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(self.itos[i] for i in ids)

    def to_list(self) -> list[str]:
        """The data's characters in index order (1..): a plain, checkpoint-safe form."""
        return list(self.chars)


def build_ngrams(
    words: Sequence[str], vocab: Vocabulary, context_size: int
) -> tuple[Tensor, Tensor]:
    """Every word framed as `c` boundaries + word + one boundary -> X (N, c), Y (N,), int64,
    N = sum(len(w) + 1), one example per next character, word by word in order."""
    c = context_size
    stream = vocab.encode_framed(words, c)
    valid, _ = example_ends(stream, c)
    windows = stream.unfold(0, c + 1, 1)[valid]  # (N, c + 1)
    return windows[:, :c].contiguous(), windows[:, c].contiguous()
