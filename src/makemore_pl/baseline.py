"""The counting model: n-gram counts with add-k smoothing, in closed form."""

from __future__ import annotations

import torch
from torch import Tensor

from makemore_pl.data import joint_context
from makemore_pl.sampling import sample


class CountingBaseline:
    """P(next | context) = (N[context, next] + k) / (N[context].sum() + k * V).

    Contexts never seen (with k = 0) get the uniform distribution, so every row sums to 1.
    """

    def __init__(self, vocab_size: int, context_size: int = 1, smoothing: float = 1.0) -> None:
        if context_size < 1:
            raise ValueError(f"context_size must be at least 1, got {context_size}")
        if smoothing < 0:
            raise ValueError(f"smoothing must be 0 or more, got {smoothing}")
        self.vocab_size, self.context_size, self.smoothing = vocab_size, context_size, smoothing
        self.counts = torch.zeros(vocab_size**context_size, vocab_size, dtype=torch.long)

    def fit(self, x: Tensor, y: Tensor) -> CountingBaseline:
        """Count every (context, next) pair of X (N, c), Y (N,) in one bincount."""
        v = self.vocab_size
        pair = joint_context(x, v) * v + y
        self.counts = torch.bincount(pair, minlength=v**self.context_size * v).view(-1, v)
        return self

    def with_smoothing(self, smoothing: float) -> CountingBaseline:
        """The same counts under another add-k smoothing."""
        other = CountingBaseline(self.vocab_size, self.context_size, smoothing)
        other.counts = self.counts
        return other

    @property
    def probs(self) -> Tensor:
        """(V**c, V) float64 next-character distributions."""
        counts = self.counts.double() + self.smoothing
        totals = counts.sum(1, keepdim=True)
        uniform = torch.full_like(counts, 1 / self.vocab_size)
        return torch.where(totals > 0, counts / totals.clamp_min(1), uniform)

    def log_probs(self, x: Tensor) -> Tensor:
        """(B, c) contexts -> (B, V) log-probabilities."""
        return self.probs.to(x.device)[joint_context(x, self.vocab_size)].log()

    def nll(self, x: Tensor, y: Tensor) -> float:
        """Mean negative log-likelihood in nats over the examples, accumulated in float64."""
        rows = joint_context(x, self.vocab_size)
        return -self.probs.to(x.device)[rows, y].log().mean().item()

    def sample(self, num_samples: int, seed: int = 0, **kwargs) -> list[list[int]]:
        """Character ids of generated words; see `makemore_pl.sampling.sample`."""
        probs = self.probs.float()
        next_logprobs = lambda ctx: probs[joint_context(ctx, self.vocab_size)].log()  # noqa: E731
        return sample(next_logprobs, self.context_size, num_samples, seed, **kwargs)


# add-k values `baseline --smoothing auto` and the test-time reference choose from
SMOOTHING_GRID = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0)


def tune_smoothing(
    counting: CountingBaseline, val: tuple[Tensor, Tensor], grid: tuple[float, ...] = SMOOTHING_GRID
) -> CountingBaseline:
    """The fitted counting model under the add-k smoothing with the lowest NLL on `val`."""
    if len(val[1]) == 0:
        raise ValueError("choosing the smoothing needs validation words: set val_fraction > 0")
    candidates = [counting.with_smoothing(k) for k in grid]
    return min(candidates, key=lambda candidate: candidate.nll(*val))
