"""What every neural n-gram model computes from its own logits, NLL sum and penalty."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class NgramModel(nn.Module):
    """A model of (B, c) contexts -> (B, V) logits (`forward`), with `nll_sum(x, y, counts)`
    (the count-weighted NLL sum, in float64 where the device has it, and the total count) and
    `penalty()`."""

    def nll_rows(self, x: Tensor, y: Tensor) -> Tensor:
        """(B, c) contexts, (B,) next ids -> (B,) each example's NLL, float32 or better."""
        return F.cross_entropy(at_least_float32(self(x)), y, reduction="none")

    def objective(
        self, x: Tensor, y: Tensor, counts: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """(loss, nll) on these examples: the mean cross-entropy, and that plus the penalty.

        With `counts`, row i stands for counts[i] identical examples: the mean is weighted.
        """
        if counts is None:
            nll = F.cross_entropy(at_least_float32(self(x)), y)
        else:
            nll_sum, total = self.nll_sum(x, y, counts)
            nll = nll_sum / total.clamp_min(1)  # an empty shard gives 0
        return nll + self.penalty(), nll

    @torch.no_grad()
    def log_probs(self, x: Tensor) -> Tensor:
        """(B, c) contexts -> (B, V) log-probabilities, float32 or better."""
        return torch.log_softmax(at_least_float32(self(x)), dim=-1)


def at_least_float32(t: Tensor) -> Tensor:
    """Losses and NLLs are computed in float32 or better, also under 16-bit mixed precision."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t
