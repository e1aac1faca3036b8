"""Every suffix of a context as one row of a table: keys, lengths, parents, lookups and the
tree transforms. A suffix of length k has the key offset(k) + its base-V id, offset(k) = V**0 +
... + V**(k-1): keys of all lengths never collide, and sorted they group by length. A suffix
starting with two boundaries says no more than one boundary shorter, so it has no row (as in
Kneser-Ney)."""

import torch
from torch import Tensor

from makemore_pl.core.ngrams import find


def length_offsets(vocab_size: int, context_size: int, device=None) -> Tensor:
    """(c + 2,) offset(k) for k = 0..c + 1: keys of length k are offset(k) .. offset(k + 1) - 1."""
    powers = vocab_size ** torch.arange(context_size + 1, device=device)
    return torch.cat([powers.new_zeros(1), powers.cumsum(0)])


def suffix_keys(x: Tensor, vocab_size: int, shortest: int = 0) -> Tensor:
    """(B, c) contexts -> (B, c + 1) key of each suffix length 0..c; -1 where it has no row
    (below `shortest`; two boundaries first, unless one shorter is below `shortest`)."""
    c = x.shape[1]
    offsets = length_offsets(vocab_size, c, x.device)
    ids, keys = torch.zeros_like(x[:, 0]), []
    for k in range(c + 1):
        if k > 0:  # the last k characters in base V: one more digit in front of the last k - 1
            ids = ids + x[:, c - k] * vocab_size ** (k - 1)
        absent = torch.full_like(ids, k < shortest, dtype=torch.bool)
        if k >= 2 and k - 1 >= shortest:
            absent |= (x[:, c - k] == 0) & (x[:, c - k + 1] == 0)
        keys.append(torch.where(absent, -1, offsets[k] + ids))
    return torch.stack(keys, 1)


def key_lengths(keys: Tensor, vocab_size: int, context_size: int) -> Tensor:
    """(R,) suffix length of each key."""
    offsets = length_offsets(vocab_size, context_size, keys.device)
    return torch.searchsorted(offsets, keys, right=True) - 1


def parent_rows(keys: Tensor, vocab_size: int, context_size: int) -> Tensor:
    """(R,) row of each key's suffix one character shorter; -1 where that has no row."""
    offsets = length_offsets(vocab_size, context_size, keys.device)
    k = key_lengths(keys, vocab_size, context_size)
    shorter = (k - 1).clamp_min(0)
    parent = offsets[shorter] + (keys - offsets[k]) % vocab_size**shorter
    row, found = find(keys, parent)
    return torch.where(found & (k > 0), row, -1)


def deepest_rows(keys: Tensor, x: Tensor, vocab_size: int, shortest: int = 0) -> Tensor:
    """(B, c) contexts -> (B,) row of the longest suffix with a row; -1 for none. The rows are
    lengths shortest..m: the suffixes of a suffix seen in training were seen too."""
    rows = suffix_rows(keys, x, vocab_size, shortest)  # (B, c + 1)
    deepest = (rows >= 0).sum(1, keepdim=True) - 1 + shortest
    return rows.gather(1, deepest.clamp_min(0))[:, 0].where(deepest[:, 0] >= shortest, -1)


def suffix_rows(keys: Tensor, x: Tensor, vocab_size: int, shortest: int = 0) -> Tensor:
    """(B, c) contexts -> (B, c + 1) row of each suffix length 0..c; -1 where it has none."""
    query = suffix_keys(x, vocab_size, shortest)
    row, found = find(keys, query)
    return torch.where(found & (query >= 0), row, -1)


# per suffix length with parents: its rows' slice, its parents' slice, each row's parent in it
Links = list[tuple[tuple[int, int], tuple[int, int], Tensor]]


def suffix_links(lengths: Tensor, parents: Tensor, context_size: int) -> Links:
    """The tree of suffixes, one suffix length at a time (keys sorted by length)."""
    ends = torch.searchsorted(lengths, torch.arange(context_size + 2, device=lengths.device))
    levels = [(int(ends[k]), int(ends[k + 1])) for k in range(context_size + 1)]
    links = []
    for k in range(1, context_size + 1):
        (start, end), (p0, p1) = levels[k], levels[k - 1]
        parent = parents[start:end]
        if end == start or bool((parent < 0).all()):
            continue  # no rows, or the shortest length kept (`shortest`): roots
        links.append(((start, end), (p0, p1), parent - p0))
    return links


def w_to_theta_(a: Tensor, links: Links) -> Tensor:
    """T: theta_r = W_r + theta_parent(r), shallow lengths first."""
    for (start, end), (p0, p1), parent in links:
        a[start:end] += a[p0:p1][parent]
    return a


def theta_to_w_(a: Tensor, links: Links) -> Tensor:
    """T^-1: W_r = theta_r - theta_parent(r), deepest lengths first (parents still theta)."""
    for (start, end), (p0, p1), parent in reversed(links):
        a[start:end] -= a[p0:p1][parent]
    return a


def subtree_sums_(a: Tensor, links: Links) -> Tensor:
    """T^T: a_r <- the sum over r's subtree (a gradient in theta -> in W), deepest first."""
    for (start, end), (p0, p1), parent in reversed(links):
        a[p0:p1].index_add_(0, parent, a[start:end])
    return a


def subtree_diffs_(a: Tensor, links: Links) -> Tensor:
    """T^-T: a_r <- a_r - the sum over r's children (a gradient in W -> in theta), shallow first
    (the children still hold their subtree sums)."""
    for (start, end), (p0, p1), parent in links:  # -(-a_p + sum): index_add_'s alpha is slow
        a[p0:p1].neg_().index_add_(0, parent, a[start:end]).neg_()
    return a


COUNT_CLASSES = 4  # an entry (suffix, next character) seen 0, 1, 2, or 3+ times in training


def count_classes(deepest_counts: Tensor, links: Links) -> Tensor:
    """(R, V) uint8 classes 0, 1, 2, 3+ of each (suffix, next), from deepest counts (used up)."""
    return subtree_sums_(deepest_counts, links).clamp_(max=COUNT_CLASSES - 1).to(torch.uint8)
