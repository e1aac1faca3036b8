"""The every-suffix neural model: one linear layer over every suffix of the context.

The one-hot input has a slot for every suffix of the context seen in training (lengths 0..c:
the empty one, the last character, the last two, ...), so that

    logits(h) = sum_k W[row of suffix_k(h)],      loss = mean NLL + sum_r L[len r] |W_r|^2 / N,

with N the training examples and L the per-length strengths (in examples: L = 1 weighs like one
example). A suffix never seen in training has no row and adds nothing: the neural form of backing
off. The suffixes of h that have rows are lengths 0..m, so the sum telescopes: with
theta_r = W_r + W_parent(r) + ... (parent: one character shorter), logits(h) = theta[deepest row
of h]. Training works in the coordinates U = theta / scale, scale ~ 1 / sqrt(curvature): there
the rows of different lengths no longer pull against each other and full-batch L-BFGS reaches
the optimum in a few hundred steps instead of tens of thousands.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from makemore_pl.batches import count_table
from makemore_pl.errors import CheckpointError, CommandError, DataError
from makemore_pl.model import NgramLitModule, at_least_float32
from makemore_pl.suffixes import (
    deepest_logits,
    deepest_rows,
    default_strengths,
    key_lengths,
    parent_rows,
    settings_problem,
    suffix_checkpoint_problem,
    table_keys,
)


class LeanLBFGS(torch.optim.LBFGS):
    """L-BFGS whose checkpointed state is empty: its curvature memory (2 x history_size copies of
    the weights, 0.5 GB at c = 5) is rebuilt in a few steps after a resume."""

    def state_dict(self) -> dict:
        return {**super().state_dict(), "state": {}}


class SuffixLitModule(NgramLitModule):
    """logits(h) = sum over the suffixes of h seen in training of their row of W.

    The suffix table is built from the training split in `setup` (or by `build_table`) and kept
    as buffers, so a checkpoint holds it; W, its (R, V) rows, is a view of the parameter U.
    """

    def __init__(
        self,
        vocab_size: int = 27,
        context_size: int = 1,
        strengths: list[float] | None = None,
        shortest: int = 0,
        max_iter: int = 100,
        history_size: int = 20,
        tolerance: float = 1e-9,
        chars: list[str] | None = None,
    ) -> None:
        """
        Args:
            vocab_size: V, tokens including the boundary (set from the data).
            context_size: characters of context, c (set from the data).
            strengths: L2 strength of the rows of each suffix length 0..c, in examples (c + 1
                values; None: 1 for the empty suffix, 0.25 for the others, near the best on
                names.txt). Choose them on val with `suffix_sweep`.
            shortest: suffixes shorter than this get no rows; c leaves only the full context,
                the dense model's rows.
            max_iter: L-BFGS iterations (strong-Wolfe line search) per training step; a step is
                one full batch, so an epoch is one step.
            history_size: L-BFGS curvature pairs kept.
            tolerance: training stops moving once every gradient entry (in the U coordinates)
                is below this.
            chars: the data's characters in index order, kept so a checkpoint can generate
                without the data file (set from the data).
        """
        super().__init__()
        if chars is not None and len(chars) + 1 != vocab_size:
            raise DataError(f"chars has {len(chars)} characters but vocab_size is {vocab_size}")
        strengths = default_strengths(context_size) if strengths is None else list(strengths)
        problem = settings_problem(vocab_size, context_size, strengths, shortest)
        if problem or max_iter < 1 or history_size < 1 or tolerance < 0:
            raise CommandError(
                problem or "max_iter and history_size must be positive, tolerance 0 or more"
            )
        self.save_hyperparameters()
        self.hparams.strengths = strengths
        self._allocate(0)
        self._add_metrics()

    def _allocate(self, num_rows: int, dtype: torch.dtype | None = None) -> None:
        """Zero weights and an empty table of `num_rows` rows, on the module's device, in
        `dtype` (default: the weights' current one)."""
        v, device = self.hparams.vocab_size, getattr(self, "device", None)
        dtype = dtype or (self.U.dtype if hasattr(self, "U") else torch.get_default_dtype())
        self.U = nn.Parameter(torch.zeros(num_rows, v, dtype=dtype, device=device))
        self.register_buffer("scale", torch.ones(num_rows, dtype=dtype, device=device))
        self.register_buffer("keys", torch.zeros(num_rows, dtype=torch.long, device=device))
        self.register_buffer("train_total", torch.zeros((), dtype=torch.long, device=device))
        self._derive()

    def _derive(self) -> None:
        """Each row's suffix length and parent row, from the keys (not saved: they follow)."""
        hp = self.hparams
        lengths = key_lengths(self.keys, hp.vocab_size, hp.context_size)
        self.register_buffer("lengths", lengths, persistent=False)
        parents = parent_rows(self.keys, hp.vocab_size, hp.context_size)
        self.register_buffer("parents", parents, persistent=False)
        self._looked_up: tuple[Tensor, Tensor] | None = None  # (contexts, rows) of rows_of

    def on_fit_start(self) -> None:
        # L-BFGS on a few hundred thousand weights: a second CPU thread gains little and, on a
        # shared machine, makes the c = 5 fit several times slower (47 s on one, 7 min on two)
        self._threads = torch.get_num_threads()
        torch.set_num_threads(1)

    def on_fit_end(self) -> None:
        torch.set_num_threads(self._threads)

    def setup(self, stage: str) -> None:
        if len(self.keys) or self.trainer is None or self.trainer.datamodule is None:
            return  # built already, or loaded from a checkpoint
        data = self.trainer.datamodule
        if getattr(data, "encoding", "index") != "index":
            raise DataError("the suffix model reads context ids: set --data.encoding index")
        self.build_table(*data.examples("train"))
        if not len(self.keys):
            raise DataError("the suffix model needs training examples: the train split is empty")

    @torch.no_grad()
    def build_table(self, x: Tensor, y: Tensor, weights: Tensor | None = None) -> None:
        """Rows for every suffix of the training contexts X (N, c), Y (N,), at zero, and the
        coordinates the fit works in."""
        hp, device = self.hparams, self.device
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

    def strength_of_rows(self) -> Tensor:
        strengths = torch.tensor(self.hparams.strengths, dtype=self.scale.dtype, device=self.device)
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

    def forward(self, x: Tensor) -> Tensor:
        """(B, c) context ids -> (B, V) logits; 0 (uniform) for a context with no row at all."""
        hp = self.hparams
        if not len(self.keys):
            return self.U.new_zeros(len(x), hp.vocab_size)
        return deepest_logits(self.theta, self.rows_of(x))

    @torch.no_grad()
    def log_probs(self, x: Tensor) -> Tensor:
        """(B, c) contexts -> (B, V) log-probabilities, in the weights' precision (float64 when
        trained so: exact NLLs for choosing strengths)."""
        return torch.log_softmax(at_least_float32(self(x)), dim=-1)

    def rows_of(self, x: Tensor) -> Tensor:
        """(B, c) contexts -> (B,) their deepest rows; L-BFGS evaluates one batch many times
        per step, so the last batch's rows are kept."""
        if self._looked_up is not None and self._looked_up[0] is x:
            return self._looked_up[1]
        hp = self.hparams
        rows = deepest_rows(self.keys, x, hp.vocab_size, hp.shortest)
        self._looked_up = (x, rows)
        return rows

    def _nll_sum(self, x: Tensor, y: Tensor, counts: Tensor) -> tuple[Tensor, Tensor]:
        """(sum of counts[i] * cross-entropy of example i, sum of counts), as
        sum_r N_r logsumexp(theta_r) - sum_i counts[i] theta[row_i, y_i], N_r the examples of
        row r: one logsumexp per row instead of one per example."""
        theta, rows, v = self.theta, self.rows_of(x), self.hparams.vocab_size
        counts = counts.to(theta.dtype)  # a float32 total would round the logged NLL to float32
        known = rows >= 0
        per_row = torch.zeros_like(theta[:, 0]).index_add_(0, rows[known], counts[known])
        picked = F.embedding(rows.clamp_min(0) * v + y, theta.reshape(-1, 1))[:, 0]
        unknown = counts[~known].sum() * math.log(v)  # uniform: a context with no row
        nll = (per_row * theta.logsumexp(1)).sum() - (counts * picked * known).sum()
        return nll + unknown, counts.sum()

    def penalty(self) -> Tensor:
        squares = self.W.pow(2).sum(1)  # (R,)
        return (self.strength_of_rows() * squares).sum() / self.train_total.clamp_min(1)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        hp = self.hparams
        return LeanLBFGS(
            self.parameters(),
            lr=1.0,
            max_iter=hp.max_iter,
            history_size=hp.history_size,
            tolerance_grad=hp.tolerance,
            tolerance_change=0.0,
            line_search_fn="strong_wolfe",
        )

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Resizes the table to the checkpoint's before Lightning loads its state dict."""
        state = checkpoint.get("state_dict", {})
        problem = self.checkpoint_problem(dict(self.hparams), state)
        if problem is not None:
            raise CheckpointError(f"not a suffix model checkpoint: {problem}")
        self._allocate(len(state["keys"]), state["U"].dtype)  # loads as it was saved
        self.keys.copy_(state["keys"])
        self._derive()

    @classmethod
    def checkpoint_problem(cls, hparams: dict, state_dict: dict) -> str | None:
        """Why these settings and tensors cannot be a SuffixLitModule, or None."""
        return suffix_checkpoint_problem(hparams, state_dict)
