"""The counting model: n-gram counts with add-k or Kneser-Ney smoothing, in closed form."""

from typing import Literal

import torch
from torch import Tensor

from makemore_pl.core.contexts import check_keys_fit, context_rows, row_contexts
from makemore_pl.core.ngrams import NgramCounts, check_weights, lookup
from makemore_pl.core.sampling import sample, sample_names
from makemore_pl.core.threads import one_thread
from makemore_pl.models.kneser_ney import KneserNey

KNESER_NEY = "kneser-ney"
# cells of the largest dense (V**c, V) table `counts` and `probs` build: 27**5 (c = 4) fits
DENSE_LIMIT = 2**25
EVAL_CHUNK = 1 << 18  # n-grams scored at a time


class CountingBaseline:
    """P(next | context) from the (context, next) counts seen, smoothed by add-k (N + k) /
    (N[context] + k V), uniform for a context never seen, or by Kneser-Ney ("kneser-ney")."""

    def __init__(
        self,
        vocab_size: int,
        context_size: int = 1,
        smoothing: float | Literal["kneser-ney"] = 1.0,
        discount_scale: float = 1.0,
    ) -> None:
        if context_size < 1:
            raise ValueError(f"context_size must be at least 1, got {context_size}")
        if smoothing != KNESER_NEY and (isinstance(smoothing, str) or smoothing < 0):
            raise ValueError(f"smoothing must be 0 or more, or {KNESER_NEY!r}, got {smoothing!r}")
        check_keys_fit(vocab_size, context_size)
        if discount_scale <= 0:
            raise ValueError(f"discount_scale must be positive, got {discount_scale}")
        self.vocab_size, self.context_size, self.smoothing = vocab_size, context_size, smoothing
        self.discount_scale = discount_scale  # Kneser-Ney only: a factor on every discount
        empty = torch.zeros(0, dtype=torch.long)
        self.table = NgramCounts(vocab_size, context_size, empty, empty)
        self._kneser_ney: KneserNey | None = None

    def fit(self, x: Tensor, y: Tensor, weights: Tensor | None = None) -> "CountingBaseline":
        """Count every (context, next) pair of X (N, c), Y (N,), example i `weights[i]` times."""
        return self.fit_counts(NgramCounts.from_examples(x, y, self.vocab_size, weights))

    def fit_counts(self, counts: NgramCounts) -> "CountingBaseline":
        """Take the (context, next) counts as they are, e.g. `NamesData.ngram_counts("train")`."""
        if (counts.vocab_size, counts.context_size) != (self.vocab_size, self.context_size):
            raise ValueError(
                f"counts of vocab_size {counts.vocab_size} and context_size {counts.context_size}"
                f" do not fit a model of {self.vocab_size} and {self.context_size}"
            )
        self.table, self._kneser_ney = counts, None
        return self

    @property
    def counts(self) -> Tensor:
        """(V**c, V) int64 counts N[context, next]."""
        self._check_dense("counts")
        return self.table.dense()

    @property
    def is_kneser_ney(self) -> bool:
        return self.smoothing == KNESER_NEY

    @property
    def kneser_ney(self) -> KneserNey:
        """The Kneser-Ney tables of every order, built from the counts on first use."""
        if self._kneser_ney is None:
            with one_thread():
                self._kneser_ney = KneserNey(self.table, self.discount_scale)
        return self._kneser_ney

    def with_smoothing(self, smoothing: float | Literal["kneser-ney"]) -> "CountingBaseline":
        """The same counts under another smoothing."""
        other = CountingBaseline(self.vocab_size, self.context_size, smoothing, self.discount_scale)
        other.table = self.table
        if other.is_kneser_ney and self.is_kneser_ney:
            other._kneser_ney = self._kneser_ney
        return other

    def with_discount_scale(self, discount_scale: float) -> "CountingBaseline":
        """The same counts under Kneser-Ney with every discount scaled (no recounting)."""
        source = self if self.is_kneser_ney else self.with_smoothing(KNESER_NEY)
        other = CountingBaseline(self.vocab_size, self.context_size, KNESER_NEY, discount_scale)
        other.table = self.table
        other._kneser_ney = source.kneser_ney.with_discount_scale(discount_scale)
        return other

    def next_probs(self, x: Tensor) -> Tensor:
        """(B, c) contexts -> (B, V) float64 next-character distributions."""
        everything = torch.arange(self.vocab_size, device=x.device).expand(len(x), -1)
        return self._row_probs(context_rows(x, self.vocab_size), everything)

    def _row_probs(self, rows: Tensor, next_ids: Tensor) -> Tensor:
        """(B,) context rows, (B, K) next ids -> (B, K) float64 probabilities."""
        if self.is_kneser_ney:
            return self.kneser_ney.row_probs(rows, next_ids)
        return add_k_probs(self.table.to(rows.device), self.smoothing, rows, next_ids)

    def _key_probs(self, keys: Tensor) -> Tensor:
        """(B,) n-gram keys -> (B,) float64 probabilities."""
        if self.is_kneser_ney and keys.device.type == "cpu":
            return self.kneser_ney.key_probs(keys)
        v = self.vocab_size
        return self._row_probs(keys // v, (keys % v)[:, None])[:, 0]

    @property
    def probs(self) -> Tensor:
        """(V**c, V) float64 next-character distributions, one row per joint context."""
        self._check_dense("probs")
        v, c = self.vocab_size, self.context_size
        return self.next_probs(row_contexts(torch.arange(v**c), v, c))

    def _check_dense(self, name: str) -> None:
        cells = self.vocab_size ** (self.context_size + 1)
        if cells > DENSE_LIMIT:
            raise ValueError(
                f"the dense `{name}` table of context_size {self.context_size} would have "
                f"{cells:,} cells, too many to build (nll, next_probs and sample need none)"
            )

    def describe(self) -> str:
        """Its smoothing, e.g. 'Kneser-Ney, discounts scaled by 0.9, c = 5' or 'add-k, k = 0.2'."""
        if self.is_kneser_ney:
            scaled = f", discounts scaled by {self.discount_scale:g}" * (self.discount_scale != 1)
            return f"Kneser-Ney{scaled}, c = {self.context_size}"
        return f"add-k, k = {self.smoothing:g}, c = {self.context_size}"

    def log_probs(self, x: Tensor) -> Tensor:
        """(B, c) contexts -> (B, V) log-probabilities."""
        return self.next_probs(x).log()

    def nll(self, x: Tensor, y: Tensor, weights: Tensor | None = None) -> float:
        """Mean NLL in nats over the examples (example i weights[i] times), in float64."""
        log_p = self._row_probs(context_rows(x, self.vocab_size), y[:, None])[:, 0].log()
        if weights is None:
            return -log_p.mean().item()
        check_weights(weights, len(y))
        weights = weights.to(log_p.device, torch.float64)
        return -((log_p * weights).sum() / weights.sum()).item()

    def counts_nll(self, counts: NgramCounts) -> float:
        """The mean NLL of the examples `counts` counted (NaN for none), a chunk at a time."""
        if counts.total() == 0:
            return float("nan")
        log_likelihood = 0.0
        chunks = zip(counts.keys.split(EVAL_CHUNK), counts.counts.split(EVAL_CHUNK), strict=True)
        with one_thread():
            for keys, n in chunks:
                log_p = self._key_probs(keys).log()
                log_likelihood += float(log_p @ n.to(log_p.device, torch.float64))
        return -log_likelihood / counts.total()

    def held_out_nll(self, data: NgramCounts | tuple[Tensor, ...]) -> float:
        """The NLL of n-gram counts, or of examples (x, y) or (x, y, weights)."""
        return self.counts_nll(data) if isinstance(data, NgramCounts) else self.nll(*data)

    def sample(self, num_samples: int, seed: int = 0, **kwargs) -> list[list[int]]:
        """Character ids of generated words; see `makemore_pl.core.sampling.sample`."""
        return sample(self.log_probs, self.context_size, num_samples, seed, **kwargs)

    def names(self, num_samples: int, chars: list[str], seed: int = 0, **kwargs) -> list[str]:
        """Generated names, of the data's characters `chars` (`NamesData.chars`)."""
        return sample_names(self.log_probs, chars, self.context_size, num_samples, seed, **kwargs)


def add_k_probs(table: NgramCounts, k: float, rows: Tensor, next_ids: Tensor) -> Tensor:
    """(B,) context rows, (B, K) next ids -> (B, K) float64 (N + k) / (N[context] + k * V)."""
    v = table.vocab_size
    contexts, totals = table.contexts()
    total = lookup(contexts, totals, rows).double()[:, None] + k * v
    count = lookup(table.keys, table.counts, rows[:, None] * v + next_ids).double()
    uniform = torch.full_like(count, 1 / v)  # a context never seen, with k = 0
    return torch.where(total > 0, (count + k) / torch.where(total > 0, total, 1.0), uniform)


HeldOut = NgramCounts | tuple[Tensor, ...]  # held-out data: its counts, or its examples
# add-k values `baseline --smoothing auto` and the test-time reference choose from
SMOOTHING_GRID = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0)
# factors on the Kneser-Ney discounts `--smoothing kneser-ney-auto` chooses from
DISCOUNT_SCALES = (0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4)


def tune_smoothing(
    counting: CountingBaseline, val: HeldOut, grid: tuple[float, ...] = SMOOTHING_GRID
) -> CountingBaseline:
    """The fitted model under the add-k smoothing of the lowest NLL on `val`."""
    _check_val(val)
    return _best_on(val, [counting.with_smoothing(k) for k in grid])


def tune_discounts(
    counting: CountingBaseline, val: HeldOut, grid: tuple[float, ...] = DISCOUNT_SCALES
) -> CountingBaseline:
    """The fitted model under Kneser-Ney, its discounts scaled by the best factor on `val`."""
    _check_val(val)
    if not counting.is_kneser_ney:
        counting = counting.with_smoothing(KNESER_NEY)  # built once, shared by the candidates
    return _best_on(val, [counting.with_discount_scale(scale) for scale in grid])


def tune_best(counting: CountingBaseline, val: HeldOut) -> CountingBaseline:
    """Add-k or Kneser-Ney, each tuned on `val`, whichever has the lower NLL there: the honest
    counting reference of a model of the same order."""
    return _best_on(val, [tune_smoothing(counting, val), tune_discounts(counting, val)])


def _best_on(val: HeldOut, candidates: list[CountingBaseline]) -> CountingBaseline:
    return min(candidates, key=lambda candidate: candidate.held_out_nll(val))


def _check_val(val: HeldOut) -> None:
    if (len(val) if isinstance(val, NgramCounts) else len(val[1])) == 0:
        raise ValueError("choosing the smoothing needs validation words: set val_fraction > 0")
