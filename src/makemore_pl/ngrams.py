"""Sparse n-gram counts: only the (context, next) pairs that occur, as sorted integer keys.

A key is the pair written in base V: `joint_context(context) * V + next`. Sorting the keys groups
each context's pairs together, so every lookup is a `searchsorted`: storage grows with the data,
not with V**(c + 1) (27**7 cells for c = 6 would not fit).
"""

from __future__ import annotations

import torch
from torch import Tensor

from makemore_pl.data import joint_context


def ngram_keys(x: Tensor, y: Tensor, vocab_size: int) -> Tensor:
    """(N, c) contexts and (N, ...) next ids -> keys of the same shape as `y`."""
    context = joint_context(x, vocab_size)
    return context.view(-1, *([1] * (y.dim() - 1))) * vocab_size + y


def find(sorted_keys: Tensor, query: Tensor) -> tuple[Tensor, Tensor]:
    """Position of each `query` key in `sorted_keys` (valid where found) and whether it is there."""
    if len(sorted_keys) == 0:
        return torch.zeros_like(query), torch.zeros_like(query, dtype=torch.bool)
    index = torch.searchsorted(sorted_keys, query).clamp_max_(len(sorted_keys) - 1)
    return index, sorted_keys[index] == query


def lookup(sorted_keys: Tensor, values: Tensor, query: Tensor) -> Tensor:
    """values[i] where sorted_keys[i] == query, 0 where the key is absent."""
    index, found = find(sorted_keys, query)
    if len(values) == 0:
        return torch.zeros(query.shape, dtype=values.dtype, device=query.device)
    return torch.where(found, values[index], torch.zeros((), dtype=values.dtype))


class NgramCounts:
    """How often each (context, next) pair occurs: sorted distinct `keys` (U,) and `counts` (U,).

    Counts are int64 (a weighted example adds its weight, a whole number), so weighted data and
    the same examples repeated give identical tables.
    """

    def __init__(self, vocab_size: int, context_size: int, keys: Tensor, counts: Tensor) -> None:
        self.vocab_size, self.context_size = vocab_size, context_size
        self.keys, self.counts = keys, counts
        self._contexts: tuple[Tensor, Tensor] | None = None

    @classmethod
    def from_examples(
        cls, x: Tensor, y: Tensor, vocab_size: int, weights: Tensor | None = None
    ) -> NgramCounts:
        """Count X (N, c), Y (N,), each example counting `weights[i]` times (1 without weights)."""
        keys = ngram_keys(x, y, vocab_size)
        if weights is None:
            distinct, counts = torch.unique(keys, return_counts=True)
            return cls(vocab_size, x.shape[1], distinct, counts)
        check_weights(weights, len(y))
        distinct, inverse = torch.unique(keys, return_inverse=True)
        counts = torch.zeros_like(distinct).index_add_(0, inverse, weights.to(distinct.device))
        return cls(vocab_size, x.shape[1], distinct, counts)

    @classmethod
    def from_dense(cls, dense: Tensor, context_size: int) -> NgramCounts:
        """From a (V**c, V) table of counts."""
        flat = dense.reshape(-1)
        keys = flat.nonzero().squeeze(1)
        return cls(dense.shape[1], context_size, keys, flat[keys].long())

    def dense(self) -> Tensor:
        """The (V**c, V) int64 table of counts."""
        v, c = self.vocab_size, self.context_size
        flat = torch.zeros(v ** (c + 1), dtype=torch.long, device=self.keys.device)
        return flat.index_put_((self.keys,), self.counts).view(-1, v)

    def contexts(self) -> tuple[Tensor, Tensor]:
        """The distinct contexts that occur (sorted joint ids) and how often each does."""
        if self._contexts is None:
            contexts, inverse = torch.unique_consecutive(
                self.keys // self.vocab_size, return_inverse=True
            )
            totals = torch.zeros_like(contexts).index_add_(0, inverse, self.counts)
            self._contexts = contexts, totals
        return self._contexts

    def to(self, device: torch.device) -> NgramCounts:
        if self.keys.device == torch.device(device):
            return self
        return NgramCounts(
            self.vocab_size, self.context_size, self.keys.to(device), self.counts.to(device)
        )


def check_weights(weights: Tensor, num_examples: int) -> None:
    if weights.shape != (num_examples,):
        raise ValueError(f"weights must have shape ({num_examples},), got {tuple(weights.shape)}")
    if weights.is_floating_point() or weights.dtype == torch.bool:
        raise ValueError(f"weights are whole numbers (int64 name counts), got {weights.dtype}")
    if len(weights) and weights.min() < 1:
        raise ValueError("weights must be positive: each example counts at least once")
