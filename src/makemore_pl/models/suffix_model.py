"""The every-suffix neural model: one linear layer over every suffix of h seen in training,

    logits(h) = sum_k W[row of suffix_k(h)],      loss = mean NLL + sum_r L[len r] |W_r|^2 / N,

N the training examples, L the per-length strengths (in examples), plus an optional L1 term
L1[len r] sum_v |W_rv|_eps / N, |w|_eps = sqrt(w^2 + eps^2) - eps, each strength scaled by how
often (suffix r, next v) was seen (0, 1, 2, 3+). A suffix never seen has no row. The sum
telescopes: with theta_r = W_r + theta_parent(r), logits(h) = theta[deepest row of h]. The
weights are kept as U = theta / scale, scale ~ 1 / sqrt(curvature).
"""

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from makemore_pl.core.batches import count_table
from makemore_pl.core.errors import SettingError
from makemore_pl.core.settings import number, numbers, optional, setting, whole
from makemore_pl.models import suffix_tree
from makemore_pl.models.ngram import NgramConfig, NgramModel, chars_setting, is_sized

BY_COUNT = "entries seen 0, 1, 2, 3+ times"
ONE_OR_MORE = whole(1, words="must be 1 or more")
scales = optional(numbers(suffix_tree.COUNT_CLASSES, BY_COUNT))  # of a strength by count


def penalty(default, help: str, check=None):
    """A setting of the penalty: what `suffix_sweep` searches, and reads from a fit config."""
    return field(default=default, metadata={"help": help, "check": check, "penalty": True})


@dataclass(frozen=True)
class SuffixConfig(NgramConfig):
    """The every-suffix model's settings (`--model.init_args.*` of SuffixLitModule)."""

    strengths: list[float] | None = penalty(
        None,
        "L2 strength of the rows of each suffix length 0..c, in examples (c + 1 values; None: 1 "
        "for the empty suffix, 0.25 for the others, near the best on names.txt). Choose them on "
        "val with `suffix_sweep`.",
    )
    shortest: int = setting(
        0,
        "suffixes shorter than this get no rows; c leaves only the full context (the dense model).",
        kept=True,
    )
    max_iter: int = setting(
        100,
        "L-BFGS iterations per training step; a step is one full batch, so an epoch is one step.",
        ONE_OR_MORE,
    )
    history_size: int = setting(
        2, "L-BFGS curvature pairs kept (each two copies of the weights).", ONE_OR_MORE
    )
    tolerance: float = setting(
        1e-7,
        "training stops moving once every entry of the gradient in W (per example) is at most "
        "this; 1e-7 leaves val_nll within about 1e-7 of the optimum.",
        number(0),
    )
    chars: list[str] | None = chars_setting()
    l1: list[float] | None = penalty(
        None,
        "L1 strength of the rows of each suffix length 0..c, in examples (c + 1 values; None: no "
        "L1 term): an elastic net with `strengths`, on W, smoothed.",
    )
    smoothing: float = penalty(
        1e-4,
        "eps of the smoothed absolute value sqrt(w^2 + eps^2) - eps the L1 term uses: quadratic "
        "below eps, L1 above; the optimum tends to the exact L1 one as eps goes to 0.",
        number(0, positive=True),
    )
    l1_by_count: list[float] | None = penalty(
        None,
        "scales of the L1 strength of an entry (suffix, next character) seen 0, 1, 2 or 3+ times "
        "in training (4 values; None: 1 each), as Kneser-Ney's discounts depend on the count.",
        scales,
    )
    l2_by_count: list[float] | None = penalty(
        None,
        "scales of the L2 strength of an entry by the same count classes (4 values; None: 1 each).",
        scales,
    )

    def check(self) -> None:
        super().check()
        if not is_sized(self):
            return  # checked once the data gives them
        v, c = self.vocab_size, self.context_size
        if c + 1 >= 63 or v ** (c + 1) >= 2**62:
            raise SettingError(
                "context_size", f"{c} overflows the int64 suffix keys (V**(c + 1) = {v}**{c + 1})"
            )
        if self.strengths is None:  # the default depends on c: written out, as saved
            object.__setattr__(self, "strengths", [1.0] + [0.25] * c)
        per_length = optional(numbers(c + 1, f"suffix lengths 0..{c}"))
        for name in ("strengths", "l1"):
            problem = per_length(getattr(self, name))
            if problem is not None:
                raise SettingError(name, problem)
        if not (isinstance(self.shortest, int) and 0 <= self.shortest <= c):
            raise SettingError("shortest", f"must be an integer in 0..{c}, got {self.shortest!r}")
        if self.l1_by_count is not None and self.l1 is None:
            raise SettingError("l1_by_count", "scales the L1 strengths: set l1 too")

    @property
    def has_l1(self) -> bool:
        return self.l1 is not None and any(s > 0 for s in self.l1)


class SuffixModel(NgramModel):
    """The model; its suffix table (`build_table`) is kept as buffers, so a saved one holds it."""

    config_class = SuffixConfig

    def __init__(self, config: SuffixConfig) -> None:
        super().__init__(config)
        self._allocate(0)

    def _allocate(self, num_rows: int, keys: Tensor | None = None) -> None:
        """Zero weights and a table of `num_rows` rows, its `keys` (None: zeros), on the module's
        device and dtype."""
        v, device = self.vocab_size, self.U.device if hasattr(self, "U") else None
        dtype = self.U.dtype if hasattr(self, "U") else torch.get_default_dtype()
        self.U = nn.Parameter(torch.zeros(num_rows, v, dtype=dtype, device=device))
        self.register_buffer("scale", torch.ones(num_rows, dtype=dtype, device=device))
        self.register_buffer("keys", torch.zeros(num_rows, dtype=torch.long, device=device))
        if keys is not None:
            self.keys.copy_(keys)
        self.register_buffer("train_total", torch.zeros((), dtype=torch.long, device=device))
        self._derive()

    def _derive(self) -> None:
        """Each row's suffix length and parent row, from the keys (not saved)."""
        v, c = self.vocab_size, self.context_size
        lengths = suffix_tree.key_lengths(self.keys, v, c)
        self.register_buffer("lengths", lengths, persistent=False)
        self.register_buffer("parents", suffix_tree.parent_rows(self.keys, v, c), persistent=False)
        self.links = suffix_tree.suffix_links(lengths, self.parents, c)  # the tree, per length
        self._looked_up: tuple[Tensor, Tensor] | None = None  # (contexts, rows) of rows_of

    @torch.no_grad()
    def build_table(self, x: Tensor, y: Tensor, weights: Tensor | None = None) -> None:
        """Rows, at zero, for every suffix of the training contexts X (N, c), Y (N,)."""
        v, shortest = self.vocab_size, self.config.shortest
        x, y, counts = count_table(x, y, v, weights)  # distinct rows: cheaper
        x, counts = x.to(self.U.device), counts.to(self.U.device, self.scale.dtype)
        keys = torch.unique(suffix_tree.suffix_keys(x, v, shortest))  # every suffix seen
        keys = keys[keys >= 0]
        self._allocate(len(keys), keys)
        self.train_total.fill_(int(counts.sum().item()))
        deepest = suffix_tree.deepest_rows(self.keys, x, v, shortest)
        self.scale.copy_(self.curvature(deepest, counts).rsqrt())

    def curvature(self, deepest: Tensor, counts: Tensor) -> Tensor:
        """(R,) a rough Hessian diagonal in theta: a fifth of the examples, and the L2 terms."""
        examples = torch.zeros_like(self.scale).index_add_(0, deepest.clamp_min(0), counts)
        pull = 2 * self.strength_of_rows()
        has_parent = self.parents >= 0
        children = torch.zeros_like(pull).index_add_(0, self.parents[has_parent], pull[has_parent])
        total = self.train_total.to(pull.dtype).clamp_min(1)
        return (0.2 * examples + pull + children).clamp_min(0.01) / total

    def strength_of_rows(self, per_length: list[float] | None = None) -> Tensor:
        """(R,) a per-length setting at each row (default: the L2 strengths)."""
        per_length = self.config.strengths if per_length is None else per_length
        strengths = torch.tensor(per_length, dtype=self.scale.dtype, device=self.scale.device)
        return strengths[self.lengths]

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
        suffix_tree.w_to_theta_(self.U.data, self.links).div_(self.scale[:, None])

    def forward(self, x: Tensor) -> Tensor:
        """(B, c) context ids -> (B, V) logits; 0 (uniform) for a context with no row at all."""
        if not len(self.keys):
            return self.U.new_zeros(len(x), self.vocab_size)
        return self.theta_of(self.rows_of(x))

    def theta_of(self, rows: Tensor) -> Tensor:
        """(B,) rows (-1: none) -> (B, V) their theta (0 for -1), for these rows only."""
        picked = rows.clamp_min(0)  # F.embedding: a deterministic backward, unlike U[picked]
        return F.embedding(picked, self.U) * (self.scale[picked] * (rows >= 0))[:, None]

    def rows_of(self, x: Tensor) -> Tensor:
        """(B, c) contexts -> (B,) deepest rows, the last batch's kept (L-BFGS reuses it)."""
        if self._looked_up is not None and self._looked_up[0] is x:
            return self._looked_up[1]
        rows = suffix_tree.deepest_rows(self.keys, x, self.vocab_size, self.config.shortest)
        self._looked_up = (x, rows)
        return rows

    def nll_sum(self, x: Tensor, y: Tensor, counts: Tensor) -> tuple[Tensor, Tensor]:
        """(sum of counts[i] * cross-entropy of example i, sum of counts): one logsumexp per row."""
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
        """sum_r (L2 |W_r|^2 + L1 |W_r|_eps) / N, scaled by `count_classes` (`count_classes_of`)."""
        config, w = self.config, self.W
        square = w.pow(2) * self.count_scales(config.l2_by_count, count_classes)
        terms = self.strength_of_rows() * square.sum(1)  # (R,)
        if config.has_l1:
            eps = config.smoothing
            smooth = (w.pow(2) + eps**2).sqrt().sub(eps)
            smooth = smooth * self.count_scales(config.l1_by_count, count_classes)
            terms = terms + self.strength_of_rows(config.l1) * smooth.sum(1)
        return terms.sum() / self.train_total.clamp_min(1)

    def count_scales(
        self, scales: list[float] | None, classes: Tensor | None = None
    ) -> Tensor | float:
        """(4,) scales by count class, or each entry's (R, V) with `classes`; 1 without."""
        if scales is None:
            return 1.0
        scales = torch.tensor(scales, dtype=self.scale.dtype, device=self.scale.device)
        return scales if classes is None else scales[classes.long()]

    @torch.no_grad()
    def count_classes_of(self, x: Tensor, y: Tensor, counts: Tensor) -> Tensor:
        """(R, V) uint8: each (suffix, next) pair seen 0, 1, 2 or 3+ times in these examples."""
        rows = self.rows_of(x.to(self.U.device))
        table = torch.zeros_like(self.U)
        known = rows >= 0
        flat = rows[known] * self.vocab_size + y.to(rows.device)[known]
        table.view(-1).index_add_(0, flat, counts.to(table)[known])
        return suffix_tree.count_classes(table, self.links)

    def prepare_for(self, state: dict[str, Tensor]) -> None:
        """An empty table of a saved state's size, precision and keys (Lightning loads past this
        module's own `load_state_dict`)."""
        super().prepare_for(state)
        keys = state.get("keys")
        fits = isinstance(keys, Tensor) and keys.dim() == 1 and keys.dtype == torch.long
        usable = fits and self.keys_problem(keys) is None  # else load_weights says what is wrong
        self._allocate(len(keys) if fits else 0, keys if usable else None)

    def keys_problem(self, keys: Tensor) -> str | None:
        """Why `keys` are not a suffix table of this context size: in range, sorted, distinct."""
        limit = int(suffix_tree.length_offsets(self.vocab_size, self.context_size)[-1])
        if len(keys) and (keys.min() < 0 or keys.max() >= limit):
            return (
                f"its suffix keys are not those of context_size {self.context_size} (from 0 to "
                f"{limit - 1})"
            )
        if len(keys) > 1 and not bool((keys[1:] > keys[:-1]).all()):
            return "its suffix keys are not sorted and distinct"
        return None

    def weights_problem(self) -> str | None:
        """Also: keys that are suffix keys of this context size, and positive scales."""
        problem = self.keys_problem(self.keys)
        if problem is None and not bool((self.scale > 0).all()):
            problem = "its scales are not all positive"
        return problem or super().weights_problem()
