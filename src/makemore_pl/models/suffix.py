"""The every-suffix neural model: one linear layer over every suffix of the context.

The one-hot input has a slot for every suffix of the context seen in training (lengths 0..c:
the empty one, the last character, the last two, ...), so that

    logits(h) = sum_k W[row of suffix_k(h)],      loss = mean NLL + sum_r L[len r] |W_r|^2 / N,

with N the training examples and L the per-length strengths (in examples: L = 1 weighs like one
example); an optional per-length L1 term (elastic net), smoothed: L1[len r] sum |W_rv|_eps / N,
|w|_eps = sqrt(w^2 + eps^2) - eps: quadratic below eps (`smoothing`), |w| above. Either strength
of an entry W_rv can be scaled by how often the pair (suffix r, next character v) was seen in
training: 0, 1, 2, 3+ times (`l1_by_count`, `l2_by_count`). A suffix never seen in training has
no row and adds nothing: the neural form of backing off. The suffixes of h that have rows are
lengths 0..m, so the sum telescopes: with theta_r = W_r + W_parent(r) + ... (parent: one
character shorter), logits(h) = theta[deepest row of h]. The weights are kept as U = theta /
scale, scale ~ 1 / sqrt(curvature) (the checkpoint's form); the fit
(`makemore_pl.models.suffix_fit`) works in W.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from makemore_pl.core.batches import count_table
from makemore_pl.core.contexts import check_sizes
from makemore_pl.core.errors import DataError, SettingError
from makemore_pl.models.ngram import NgramModel
from makemore_pl.models.suffixes import (
    count_classes,
    deepest_logits,
    deepest_rows,
    default_strengths,
    key_lengths,
    parent_rows,
    penalty_problem,
    settings_problem,
    suffix_links,
    table_keys,
    w_to_theta_,
)


class SuffixModel(NgramModel):
    """logits(h) = sum over the suffixes of h seen in training of their row of W.

    The suffix table is built from training examples by `build_table` and kept as buffers, so
    a saved model holds it; W, its (R, V) rows, is a view of the parameter U.
    """

    def __init__(
        self,
        vocab_size: int = 27,
        context_size: int = 1,
        strengths: list[float] | None = None,
        shortest: int = 0,
        chars: list[str] | None = None,
        l1: list[float] | None = None,
        smoothing: float = 1e-4,
        l1_by_count: list[float] | None = None,
        l2_by_count: list[float] | None = None,
    ) -> None:
        super().__init__()
        if chars is not None and len(chars) + 1 != vocab_size:
            raise DataError(f"chars has {len(chars)} characters but vocab_size is {vocab_size}")
        strengths = default_strengths(context_size) if strengths is None else list(strengths)
        check_sizes(vocab_size, context_size)
        problem = settings_problem(vocab_size, context_size, strengths, shortest)
        problem = problem or penalty_problem(context_size, l1, smoothing, l1_by_count, l2_by_count)
        if problem is not None:  # "<setting> <what is wrong>"
            raise SettingError(*problem.split(" ", 1))
        self.vocab_size, self.context_size = vocab_size, context_size
        self.l1 = None if l1 is None else [float(s) for s in l1]
        self.smoothing = float(smoothing)
        self.l1_by_count = None if l1_by_count is None else [float(s) for s in l1_by_count]
        self.l2_by_count = None if l2_by_count is None else [float(s) for s in l2_by_count]
        self.strengths, self.shortest = strengths, shortest
        self._allocate(0)

    def _allocate(self, num_rows: int, dtype: torch.dtype | None = None) -> None:
        """Zero weights and an empty table of `num_rows` rows, on the module's device, in
        `dtype` (default: the weights' current one)."""
        v, device = self.vocab_size, self.U.device if hasattr(self, "U") else None
        dtype = dtype or (self.U.dtype if hasattr(self, "U") else torch.get_default_dtype())
        self.U = nn.Parameter(torch.zeros(num_rows, v, dtype=dtype, device=device))
        self.register_buffer("scale", torch.ones(num_rows, dtype=dtype, device=device))
        self.register_buffer("keys", torch.zeros(num_rows, dtype=torch.long, device=device))
        self.register_buffer("train_total", torch.zeros((), dtype=torch.long, device=device))
        self._derive()

    def _derive(self) -> None:
        """Each row's suffix length and parent row, from the keys (not saved: they follow)."""
        hp = self
        lengths = key_lengths(self.keys, hp.vocab_size, hp.context_size)
        self.register_buffer("lengths", lengths, persistent=False)
        parents = parent_rows(self.keys, hp.vocab_size, hp.context_size)
        self.register_buffer("parents", parents, persistent=False)
        self.links = suffix_links(lengths, parents, hp.context_size)  # the tree, per length
        self._looked_up: tuple[Tensor, Tensor] | None = None  # (contexts, rows) of rows_of

    @torch.no_grad()
    def build_table(self, x: Tensor, y: Tensor, weights: Tensor | None = None) -> None:
        """Rows for every suffix of the training contexts X (N, c), Y (N,), at zero, and the
        coordinates the fit works in."""
        hp, device = self, self.U.device
        x, y, counts = count_table(x, y, hp.vocab_size, weights)  # distinct rows: cheaper
        x, counts = x.to(device), counts.to(device, self.scale.dtype)
        keys = table_keys(x, hp.vocab_size, hp.shortest)
        self._allocate(len(keys))
        self.keys.copy_(keys)
        self._derive()
        self.train_total.fill_(int(counts.sum().item()))
        deepest = deepest_rows(self.keys, x, hp.vocab_size, hp.shortest)
        self.scale.copy_(self.curvature(deepest, counts).rsqrt())

    def curvature(self, deepest: Tensor, counts: Tensor) -> Tensor:
        """(R,) a rough diagonal of the objective's Hessian in theta: a fifth of the examples
        each row is the deepest row of, and the L2 terms of its own row and its children's."""
        examples = torch.zeros_like(self.scale).index_add_(0, deepest.clamp_min(0), counts)
        pull = 2 * self.strength_of_rows()
        has_parent = self.parents >= 0
        children = torch.zeros_like(pull).index_add_(0, self.parents[has_parent], pull[has_parent])
        total = self.train_total.to(pull.dtype).clamp_min(1)
        return (0.2 * examples + pull + children).clamp_min(0.01) / total

    def strength_of_rows(self, per_length: list[float] | None = None) -> Tensor:
        """(R,) a per-length setting at each row (default: the L2 strengths)."""
        per_length = self.strengths if per_length is None else per_length
        strengths = torch.tensor(per_length, dtype=self.scale.dtype, device=self.scale.device)
        return strengths[self.lengths]

    @property
    def has_l1(self) -> bool:
        return self.l1 is not None and any(s > 0 for s in self.l1)

    @property
    def theta(self) -> Tensor:
        """(R, V) the logits of a context whose longest suffix with a row is row r."""
        return self.U * self.scale[:, None]

    @property
    def W(self) -> Tensor:
        """(R, V) the linear layer: theta_r minus its parent's theta (the root: theta_0)."""
        theta = self.theta
        parent = F.embedding(self.parents.clamp_min(0), theta)  # deterministic backward
        return theta - parent * (self.parents >= 0)[:, None]

    @torch.no_grad()
    def set_W(self, w: Tensor) -> None:
        """U <- the coordinates of the linear layer `w` (R, V), which is left as it was."""
        self.U.copy_(w)
        w_to_theta_(self.U.data, self.links).div_(self.scale[:, None])

    def forward(self, x: Tensor) -> Tensor:
        """(B, c) context ids -> (B, V) logits; 0 (uniform) for a context with no row at all."""
        hp = self
        if not len(self.keys):
            return self.U.new_zeros(len(x), hp.vocab_size)
        return self.theta_of(self.rows_of(x))

    def theta_of(self, rows: Tensor) -> Tensor:
        """(B,) rows (-1: none) -> (B, V) their theta (0 for -1), computed for these rows only:
        the whole table's theta is a copy of all the weights. F.embedding: a deterministic
        backward, unlike U[rows]."""
        known = rows >= 0
        picked = rows.clamp_min(0)
        return deepest_logits(self.U, rows) * (self.scale[picked] * known)[:, None]

    def rows_of(self, x: Tensor) -> Tensor:
        """(B, c) contexts -> (B,) their deepest rows; L-BFGS evaluates one batch many times
        per step, so the last batch's rows are kept."""
        if self._looked_up is not None and self._looked_up[0] is x:
            return self._looked_up[1]
        hp = self
        rows = deepest_rows(self.keys, x, hp.vocab_size, hp.shortest)
        self._looked_up = (x, rows)
        return rows

    def nll_sum(self, x: Tensor, y: Tensor, counts: Tensor) -> tuple[Tensor, Tensor]:
        """(sum of counts[i] * cross-entropy of example i, sum of counts), as
        sum_r N_r logsumexp(theta_r) - sum_i counts[i] theta[row_i, y_i], N_r the examples of
        row r: one logsumexp per row with examples instead of one per example."""
        rows, v = self.rows_of(x), self.vocab_size
        counts = counts.to(self.U.dtype)  # a float32 total would round the logged NLL to float32
        known = rows >= 0
        per_row = torch.zeros_like(self.scale).index_add_(0, rows[known], counts[known])
        used = per_row.nonzero()[:, 0]
        lse = self.theta_of(used).logsumexp(1)
        flat = self.U.reshape(-1, 1)
        picked = F.embedding(rows.clamp_min(0) * v + y, flat)[:, 0] * self.scale[rows.clamp_min(0)]
        unknown = counts[~known].sum() * math.log(v)  # uniform: a context with no row
        nll = (per_row[used] * lse).sum() - (counts * picked * known).sum()
        return nll + unknown, counts.sum()

    def penalty(self, count_classes: Tensor | None = None) -> Tensor:
        """sum_r (L2 |W_r|^2 + L1 |W_r|_eps) / N, |w|_eps = sqrt(w^2 + eps^2) - eps the smoothed
        absolute value (eps: `smoothing`); with `l1_by_count` or `l2_by_count`, each entry's
        strength scaled by its class in `count_classes` (`count_classes_of` the training
        examples)."""
        w = self.W
        square = w.pow(2)
        if self.l2_by_count is not None:
            square = square * self.count_scales(self.l2_by_count)[count_classes.long()]
        terms = self.strength_of_rows() * square.sum(1)  # (R,)
        if self.has_l1:
            eps = self.smoothing
            smooth = (w.pow(2) + eps**2).sqrt().sub(eps)
            if self.l1_by_count is not None:
                smooth = smooth * self.count_scales(self.l1_by_count)[count_classes.long()]
            terms = terms + self.strength_of_rows(self.l1) * smooth.sum(1)
        return terms.sum() / self.train_total.clamp_min(1)

    def count_scales(self, scales: list[float]) -> Tensor:
        """(4,) the scale of an entry seen 0, 1, 2, 3+ times (`l1_by_count` or `l2_by_count`)."""
        return torch.tensor(scales, dtype=self.scale.dtype, device=self.scale.device)

    @torch.no_grad()
    def count_classes_of(self, x: Tensor, y: Tensor, counts: Tensor) -> Tensor:
        """(R, V) uint8: how often each (suffix, next character) pair is seen in these examples
        (distinct rows with counts), 0, 1, 2, or 3 for 3 and more."""
        rows = self.rows_of(x.to(self.U.device))
        table = torch.zeros_like(self.U)
        known = rows >= 0
        flat = rows[known] * self.vocab_size + y.to(rows.device)[known]
        table.view(-1).index_add_(0, flat, counts.to(table)[known])
        return count_classes(table, self.links)

    def resize_to(self, state: dict) -> None:
        """An empty table of a saved state's size and precision, ready for `load_state_dict`."""
        self._allocate(len(state["keys"]), state["U"].dtype)
        self.keys.copy_(state["keys"])
        self._derive()
