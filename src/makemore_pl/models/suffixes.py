"""Every suffix of a context as one row of a table: keys, lengths, parents and lookups.

A suffix of length k (the last k characters, k = 0..c) has the key `offset(k) + id`, where id is
its base-V number and offset(k) = V**0 + ... + V**(k-1): the keys of all lengths then never
collide, and sorting them groups each length. A suffix whose first two characters are
boundaries says no more than the same suffix one boundary shorter (boundaries only ever pad the
start of a word), so the longer one has no row, as in Kneser-Ney. Also: the checks a saved
table and its settings must pass.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from makemore_pl.core.ngrams import find
from makemore_pl.models.dense import MAX_WEIGHT

STATE = {"U": 2, "scale": 1, "keys": 1, "train_total": 0}  # a model's tensors and their ranks


def length_offsets(vocab_size: int, context_size: int, device=None) -> Tensor:
    """(c + 2,) offset(k) for k = 0..c + 1: keys of length k are offset(k) .. offset(k + 1) - 1."""
    powers = vocab_size ** torch.arange(context_size + 1, device=device)
    return torch.cat([powers.new_zeros(1), powers.cumsum(0)])


def suffix_keys(x: Tensor, vocab_size: int, shortest: int = 0) -> Tensor:
    """(B, c) contexts -> (B, c + 1) key of each suffix length 0..c; -1 where it has no row.

    Lengths below `shortest` have no rows; a suffix starting with two boundaries has none
    either, unless its one-shorter equivalent is below `shortest` (then it stands for it).
    """
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


def table_keys(x: Tensor, vocab_size: int, shortest: int = 0) -> Tensor:
    """(R,) sorted keys of every suffix that occurs in the contexts X (N, c): the table's rows."""
    keys = torch.unique(suffix_keys(x, vocab_size, shortest))
    return keys[keys >= 0]


def key_lengths(keys: Tensor, vocab_size: int, context_size: int) -> Tensor:
    """(R,) suffix length of each key."""
    offsets = length_offsets(vocab_size, context_size, keys.device)
    return torch.searchsorted(offsets, keys, right=True) - 1


def parent_rows(keys: Tensor, vocab_size: int, context_size: int) -> Tensor:
    """(R,) row of each key's suffix one character shorter; -1 where that has no row (length 0,
    or below `shortest`)."""
    offsets = length_offsets(vocab_size, context_size, keys.device)
    k = key_lengths(keys, vocab_size, context_size)
    shorter = (k - 1).clamp_min(0)
    parent = offsets[shorter] + (keys - offsets[k]) % vocab_size**shorter
    row, found = find(keys, parent)
    return torch.where(found & (k > 0), row, -1)


def deepest_rows(keys: Tensor, x: Tensor, vocab_size: int, shortest: int = 0) -> Tensor:
    """(B, c) contexts -> (B,) row of the longest suffix of each that has a row; -1 for none.

    The suffixes of a context that have rows are always lengths shortest..m for some m: the
    suffixes of a suffix seen in training were seen too.
    """
    rows = suffix_rows(keys, x, vocab_size, shortest)  # (B, c + 1)
    deepest = (rows >= 0).sum(1, keepdim=True) - 1 + shortest
    return rows.gather(1, deepest.clamp_min(0))[:, 0].where(deepest[:, 0] >= shortest, -1)


def suffix_rows(keys: Tensor, x: Tensor, vocab_size: int, shortest: int = 0) -> Tensor:
    """(B, c) contexts -> (B, c + 1) row of each suffix length 0..c; -1 where it has none."""
    query = suffix_keys(x, vocab_size, shortest)
    row, found = find(keys, query)
    return torch.where(found & (query >= 0), row, -1)


def default_strengths(context_size: int) -> list[float]:
    return [1.0] + [0.25] * context_size


def settings_problem(v, c, strengths, shortest) -> str | None:
    """What is wrong with these settings, checked in plain integers before any allocation."""
    if not (isinstance(v, int) and isinstance(c, int) and v >= 1 and c >= 1):
        return f"vocab_size and context_size must be positive integers, got {v!r}, {c!r}"
    if v ** (c + 1) >= 2**62:
        return f"context_size {c} overflows the int64 suffix keys (V**(c + 1) = {v}**{c + 1})"
    if not isinstance(strengths, list | tuple) or len(strengths) != c + 1:
        return f"strengths needs {c + 1} values (suffix lengths 0..{c}), got {strengths!r}"
    if not all(isinstance(s, int | float) and 0 <= s < float("inf") for s in strengths):
        return f"strengths must be finite and 0 or more, got {list(strengths)!r}"
    if not (isinstance(shortest, int) and 0 <= shortest <= c):
        return f"shortest must be an integer in 0..{c}, got {shortest!r}"
    return None


COUNT_CLASSES = 4  # l1_by_count, l2_by_count: an entry seen 0, 1, 2, or 3+ times in training


def penalty_problem(c: int, l1, smoothing, l1_by_count=None, l2_by_count=None) -> str | None:
    """What is wrong with the L1 settings (None: no L1 term) and the scales by count, or None."""
    if l1_by_count is not None and l1 is None:
        return "l1_by_count scales the L1 strengths: set l1 too"
    problem = by_count_problem("l1_by_count", l1_by_count)
    problem = problem or by_count_problem("l2_by_count", l2_by_count)
    if problem is not None:
        return problem
    if l1 is not None:
        if not isinstance(l1, list | tuple) or len(l1) != c + 1:
            return f"l1 needs {c + 1} values (suffix lengths 0..{c}), got {l1!r}"
        if not all(isinstance(s, int | float) and 0 <= s < float("inf") for s in l1):
            return f"l1 must be finite and 0 or more, got {list(l1)!r}"
    if not (isinstance(smoothing, int | float) and 0 < smoothing < float("inf")):
        return f"smoothing must be a positive number, got {smoothing!r}"
    return None


def by_count_problem(name: str, by_count) -> str | None:
    """What is wrong with scales by count class (`name`: l1_by_count or l2_by_count), or None."""
    if by_count is None:
        return None
    if not isinstance(by_count, list | tuple) or len(by_count) != COUNT_CLASSES:
        return f"{name} needs 4 values (entries seen 0, 1, 2, 3+ times), got {by_count!r}"
    if not all(isinstance(s, int | float) and 0 <= s < float("inf") for s in by_count):
        return f"{name} must be finite and 0 or more, got {list(by_count)!r}"
    return None


def tensors_problem(state: dict, v: int, c: int) -> str | None:
    """What is wrong with a state dict's suffix table and weights, or None."""
    if not isinstance(state, dict) or set(state) != set(STATE):
        found = sorted(state) if isinstance(state, dict) else type(state).__name__
        return f"expected the tensors {sorted(STATE)}, found {found}"
    if not all(isinstance(state[k], Tensor) and state[k].dim() == d for k, d in STATE.items()):
        return "U must be 2-D, scale and keys 1-D and train_total a scalar"
    rows = len(state["keys"])
    if state["U"].shape != (rows, v) or state["scale"].shape != (rows,):
        shapes = [tuple(state[k].shape) for k in ("U", "scale", "keys")]
        return f"U, scale and keys of shapes {shapes} do not fit {rows} rows of V = {v}"
    keys, limit = state["keys"], (v ** (c + 1) - 1) // (v - 1) if v > 1 else c + 1
    if keys.dtype != torch.long or (rows and (keys.min() < 0 or keys.max() >= limit)):
        return f"keys must be int64 suffix keys of context_size {c} below {limit}"
    if rows > 1 and not bool((keys[1:] > keys[:-1]).all()):
        return "keys must be sorted and distinct"
    if not (state["U"].is_floating_point() and bool(state["U"].isfinite().all())):
        return "U holds non-finite or non-float weights"
    if rows and state["U"].abs().max().item() > MAX_WEIGHT:
        return f"U holds weights beyond {MAX_WEIGHT:g} (a corrupted file or a diverged run)"
    if not (state["scale"].is_floating_point() and bool((state["scale"] > 0).all())):
        return "scale must be positive"
    return None


# the settings a saved suffix model holds, and their defaults (SuffixLitModule's own:
# tests/test_registry.py keeps them in step with its signature)
SUFFIX_SETTINGS = {
    "vocab_size": 27,
    "context_size": 1,
    "strengths": None,
    "shortest": 0,
    "l1": None,
    "smoothing": 1e-4,
    "l1_by_count": None,
    "l2_by_count": None,
    "max_iter": 100,
    "history_size": 2,
    "tolerance": 1e-7,
    "chars": None,
}


def deepest_logits(theta: Tensor, rows: Tensor) -> Tensor:
    """(R, V) logits per row, (B,) deepest rows (-1: none) -> (B, V); 0 (uniform) without a row.
    F.embedding: a deterministic backward, unlike theta[rows]."""
    return F.embedding(rows.clamp_min(0), theta) * (rows >= 0)[:, None]


def suffix_checkpoint_problem(hparams: dict, state_dict: dict) -> str | None:
    """Why saved settings and tensors cannot be a suffix model, or None."""
    unknown = sorted(set(map(str, hparams)) - set(SUFFIX_SETTINGS))
    # LightningCLI adds how it built the model: its function, and the class in subclass mode
    unknown = [name for name in unknown if name not in ("_instantiator", "_class_path")]
    if unknown:
        return f"unknown model settings: {', '.join(unknown)}"
    v, c = hparams.get("vocab_size"), hparams.get("context_size")
    c = 1 if c is None else c
    strengths = hparams.get("strengths") or default_strengths(c if isinstance(c, int) else 0)
    problem = settings_problem(v, c, strengths, hparams.get("shortest", 0))
    if problem is None and isinstance(c, int):
        scales = hparams.get("l1_by_count"), hparams.get("l2_by_count")
        problem = penalty_problem(c, hparams.get("l1"), hparams.get("smoothing", 1e-4), *scales)
    return problem or tensors_problem(state_dict, v, c)


# -- the tree transforms, in place, one suffix length at a time ---------------------------------
# `links` (suffix_links): for each suffix length k whose rows have parents, the rows' slice, their
# parents' slice (length k - 1) and each row's parent as an index into that slice. The four
# transforms are linear O(R V) passes that allocate at most one length's rows.
Links = list[tuple[tuple[int, int], tuple[int, int], Tensor]]


def suffix_links(lengths: Tensor, parents: Tensor, context_size: int) -> Links:
    """Each linked suffix length's (rows, parents' rows, parent index) (keys sorted by length)."""
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


def count_classes(deepest_counts: Tensor, links: Links) -> Tensor:
    """(R, V) uint8 count classes (0, 1, 2, 3 = 3 and more) of every (suffix, next) pair, from
    the counts at each example's deepest row; the buffer becomes the counts through each row."""
    classes = subtree_sums_(deepest_counts, links).clamp_(max=COUNT_CLASSES - 1)
    return classes.to(torch.uint8)
