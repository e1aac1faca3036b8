"""Context keys: a context (x_1 .. x_c) is the base-V number sum(x_i * V**(c - i)), its row of
the V**c table; its last k characters are its k lowest digits, and an n-gram's key is
`row * V + next`."""

import math

import torch
from torch import Tensor

from makemore_pl.core.errors import DataError

INT64_LIMIT = 2**63  # keys are int64: every key stays below this


def context_rows(x: Tensor, vocab_size: int) -> Tensor:
    """(B, c) token ids -> (B,) rows of the V**c table: sum(x[:, i] * V**(c-1-i))."""
    if x.shape[1] == 1:  # a bigram's row is its character: three ops fewer in a small step
        return x[:, 0]
    powers = vocab_size ** torch.arange(x.shape[1] - 1, -1, -1, device=x.device)
    return (x * powers).sum(1)


def row_contexts(rows: Tensor, vocab_size: int, context_size: int) -> Tensor:
    """(B,) rows of the V**c table -> (B, c) token ids; the inverse of `context_rows`."""
    powers = vocab_size ** torch.arange(context_size - 1, -1, -1, device=rows.device)
    return rows[:, None] // powers % vocab_size


def suffix(rows: Tensor, k: int, vocab_size: int) -> Tensor:
    """The rows of the last k characters of each context (k = 0: all 0)."""
    return rows % vocab_size**k


def ngram_keys(x: Tensor, y: Tensor, vocab_size: int) -> Tensor:
    """(N, c) contexts and (N, ...) next ids -> keys of the same shape as `y`."""
    rows = context_rows(x, vocab_size)
    return rows.view(-1, *([1] * (y.dim() - 1))) * vocab_size + y


def sliding_keys(stream: Tensor, vocab_size: int, context_size: int) -> Tensor:
    """(L,) token ids -> (L - c,) keys of every window of c + 1 tokens, computed in place."""
    width = len(stream) - context_size
    keys = stream[:width].clone()
    for j in range(1, context_size + 1):
        keys.mul_(vocab_size).add_(stream[j : width + j])
    return keys


def split_keys(keys: Tensor, vocab_size: int, context_size: int) -> tuple[Tensor, Tensor]:
    """(U,) n-gram keys -> (U, c) contexts and (U,) next ids: the inverse of `ngram_keys`."""
    return row_contexts(keys // vocab_size, vocab_size, context_size), keys % vocab_size


def row_text(row: int, itos: list[str], context_size: int) -> str:
    """Row of the V**c table -> its context as text, e.g. 1 -> '.a', 28 -> 'aa' for V=27, c=2."""
    chars = []
    for _ in range(context_size):
        row, index = divmod(row, len(itos))
        chars.append(itos[index])
    return "".join(reversed(chars))


def largest_context_size(vocab_size: int) -> int:
    """The largest c whose (c + 1)-gram keys, below V**(c + 1), fit in int64 (V >= 2)."""
    c = 0
    while vocab_size ** (c + 2) < INT64_LIMIT:
        c += 1
    return c


def check_keys_fit(vocab_size: int, context_size: int) -> None:
    """A DataError if keys would overflow int64."""
    # past 63 the power overflows anyway (V >= 2), and a huge one takes long to compute
    if context_size + 1 <= 63 and vocab_size ** (context_size + 1) < INT64_LIMIT:
        return
    digits = (context_size + 1) * math.log10(vocab_size)  # the power past the largest float too
    raise DataError(
        f"context_size {context_size} with {vocab_size} tokens needs n-gram keys up to "
        f"{vocab_size}**{context_size + 1} = {10 ** (digits % 1):.3g}e+{int(digits):02d}, which "
        f"overflows int64 keys (limit 2**63 = {float(INT64_LIMIT):.3g}); use a context_size of "
        f"at most {largest_context_size(vocab_size)} for this data, or data with fewer distinct "
        "characters"
    )
