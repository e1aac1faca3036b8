"""Interpolated modified Kneser-Ney smoothing (Chen & Goodman, 1998), vectorised and sparse:

    p_k(w | h) = (a(hw) - D_k(a(hw))) / A(h) + gamma(h) * p_{k-1}(w | h'),     A(h) = sum_w a(hw),
    gamma(h)   = (D_k1 N1(h.) + D_k2 N2(h.) + D_k3 N3+(h.)) / A(h),    p_{-1}(w) = 1/V,

h' the context h without its first character. The adjusted count a is the raw count at the
highest order or after a boundary (KenLM's <s>), else the number of distinct characters seen
before hw; a context starting with two boundaries is dropped (the shorter one says the same).
D_kj = j - (j + 1) Y t_{j+1} / t_j, Y = t1 / (t1 + 2 t2), t_j the order's counts of counts.
"""

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from makemore_pl.core.contexts import suffix
from makemore_pl.core.ngrams import NgramCounts, find, group_sums, lookup

DENSE_KEYS = 1 << 20  # orders with at most this many possible keys are scored from arrays


@dataclass
class Order:
    """One order's share of the interpolation, for the contexts of length k that occur."""

    contexts: Tensor  # (H,) sorted joint ids of the contexts
    gamma: Tensor  # (H,) float64 weight of the next lower order
    keys: Tensor  # (U,) sorted (context, next) keys
    alpha: Tensor  # (U,) float64 discounted probability (a - D(a)) / A(context)
    _dense: tuple | None = None  # the arrays of `dense`, once built

    def dense(self, num_contexts: int, vocab_size: int) -> tuple[np.ndarray, ...]:
        """alpha of every possible key, gamma and seen of every possible context, as arrays."""
        if self._dense is None:
            alpha = np.zeros(num_contexts * vocab_size)
            alpha[self.keys.numpy()] = self.alpha.numpy()
            gamma, seen = np.zeros(num_contexts), np.zeros(num_contexts, dtype=bool)
            gamma[self.contexts.numpy()], seen[self.contexts.numpy()] = self.gamma.numpy(), True
            self._dense = alpha, gamma, seen
        return self._dense


class KneserNey:
    """The model of every order 0..c from the counts of the highest; rows sum to 1 exactly."""

    def __init__(self, counts: NgramCounts, discount_scale: float = 1.0) -> None:
        """`discount_scale`: a factor on every estimated discount (each kept within [0, j])."""
        self.vocab_size, self.context_size = counts.vocab_size, counts.context_size
        self.adjusted = adjusted_counts(counts)
        self.estimated = torch.stack([estimate_discounts(a) for _, a in self.adjusted])
        self._interpolate(discount_scale)

    def with_discount_scale(self, discount_scale: float) -> "KneserNey":
        """The same counts under scaled discounts (no recounting)."""
        other = copy.copy(self)
        other._interpolate(discount_scale)
        return other

    def _interpolate(self, discount_scale: float) -> None:  # CountingBaseline checked it
        limits = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
        self.discount_scale = discount_scale
        self.discounts = (self.estimated * discount_scale).minimum(limits)  # (c + 1, 3)
        self.orders = [
            interpolation_table(keys, adjusted, d, self.vocab_size)
            for (keys, adjusted), d in zip(self.adjusted, self.discounts, strict=True)
        ]

    def row_probs(self, rows: Tensor, next_ids: Tensor, base: float | None = None) -> Tensor:
        """(B,) context rows, (B, K) next ids -> (B, K) float64 probabilities; `base` is where
        the recursion starts: 1/V (rows sum to 1), or KenLM's 1/(V + 1) (an unknown-word token)."""
        v = self.vocab_size
        base = 1 / v if base is None else base
        p = torch.full(next_ids.shape, base, dtype=torch.float64, device=rows.device)
        for k, order in enumerate(self.orders):
            context = suffix(rows, k, v)  # the last k characters; k = 0: all 0
            row, seen = find(order.contexts.to(rows.device), context)
            keys = context[:, None] * v + next_ids
            alpha = lookup(order.keys.to(rows.device), order.alpha.to(rows.device), keys)
            gamma = order.gamma.to(rows.device)[row] if len(order.gamma) else p.new_zeros(len(row))
            p = torch.where(seen[:, None], alpha + gamma[:, None] * p, p)
        return p

    def key_probs(self, keys: Tensor, base: float | None = None) -> Tensor:
        """(B,) n-gram keys (context row * V + next) -> (B,) float64: `row_probs`, faster on CPU."""
        v = self.vocab_size
        p = np.full(len(keys), 1 / v if base is None else base)
        for k, order in enumerate(self.orders):
            query = keys.numpy() % v ** (k + 1)  # the last k characters and the next one
            if v ** (k + 1) <= DENSE_KEYS:  # a low order: look up by index, no search
                alpha, gamma, seen = order.dense(v**k, v)
                context = query // v
                p = np.where(seen[context], alpha[query] + gamma[context] * p, p)
                continue
            perm = np.argsort(query)
            query = query[perm]
            row, seen = search(order.contexts.numpy(), query // v)
            at, found = search(order.keys.numpy(), query)
            lower = p[perm]
            if seen.any():
                alpha = np.where(found, order.alpha.numpy()[at], 0.0)
                lower = np.where(seen, alpha + order.gamma.numpy()[row] * lower, lower)
            p[perm] = lower
        return torch.from_numpy(p)


def search(sorted_keys: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Position of each (sorted) query in `sorted_keys`, valid where found, and whether it is."""
    if len(sorted_keys) == 0:
        return np.zeros(len(query), dtype=np.int64), np.zeros(len(query), dtype=bool)
    index = np.searchsorted(sorted_keys, query).clip(max=len(sorted_keys) - 1)
    return index, sorted_keys[index] == query


def adjusted_counts(counts: NgramCounts) -> list[tuple[Tensor, Tensor]]:
    """For each order k = 0..c: the sorted distinct (k + 1)-gram keys and their adjusted counts."""
    v, c = counts.vocab_size, counts.context_size
    keys, raw = counts.keys, counts.counts
    orders = [(keys, raw)]
    for k in range(c - 1, -1, -1):
        # each distinct (k + 2)-gram u h w adds 1 to the continuation count of its suffix h w
        lower, raw, continuations = group_sums(keys % v ** (k + 1), raw)
        starts_word = lower < v**k if k > 0 else torch.zeros_like(lower, dtype=torch.bool)
        orders.append((lower, torch.where(starts_word, raw, continuations)))
        keys = lower
    orders.reverse()
    return [drop_padded(keys, adjusted, k, v) for k, (keys, adjusted) in enumerate(orders)]


def drop_padded(keys: Tensor, adjusted: Tensor, k: int, v: int) -> tuple[Tensor, Tensor]:
    """Drops the (k + 1)-grams whose context starts with two boundaries (keys below V**(k-1))."""
    if k < 2:
        return keys, adjusted
    keep = keys >= v ** (k - 1)
    return keys[keep], adjusted[keep]


def estimate_discounts(adjusted: Tensor) -> Tensor:
    """(3,) float64 D1, D2, D3+ (Chen & Goodman, eq. 26); where undefined or out of (0, j]
    (tiny data), Y, the single absolute discount of Ney et al., or 0.5 without Y."""
    t = [int((adjusted == j).sum()) for j in range(5)]
    y = t[1] / (t[1] + 2 * t[2]) if t[1] > 0 else 0.0
    fallback = y if y > 0 else 0.5
    discounts = []
    for j in (1, 2, 3):
        d = j - (j + 1) * y * t[j + 1] / t[j] if t[j] > 0 and y > 0 else float("nan")
        discounts.append(d if 0 < d <= j else fallback)
    return torch.tensor(discounts, dtype=torch.float64)


def interpolation_table(keys: Tensor, adjusted: Tensor, discounts: Tensor, v: int) -> Order:
    """alpha of every (context, next) key and gamma of every context of one order."""
    contexts, context_of = torch.unique_consecutive(keys // v, return_inverse=True)
    adjusted = adjusted.double()
    total = adjusted.new_zeros(len(contexts)).index_add_(0, context_of, adjusted)
    discount = discounts.to(adjusted.device)[adjusted.clamp(max=3).long() - 1]
    alpha = (adjusted - discount) / total[context_of]
    gamma = torch.zeros_like(total).index_add_(0, context_of, discount) / total
    return Order(contexts, gamma, keys, alpha)
