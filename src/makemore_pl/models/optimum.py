"""The neural model's exact optimum on a count table: one small convex problem per context."""

import torch
from torch import Tensor

from makemore_pl.core.batches import Batch
from makemore_pl.core.contexts import context_rows
from makemore_pl.models.dense import DenseConfig, DenseTable


def fit_optimum(
    vocab_size: int, context_size: int, l2: float, table: Batch, iterations: int = 60
) -> DenseTable:
    """The model minimising cross-entropy + l2 * (W**2).mean() on a count table, exactly: one
    convex problem per seen row of W, solved together by damped Newton steps in float64 (rows
    never seen stay at 0, where L2 pulls them)."""
    x, y, counts = table
    seen, local = torch.unique(context_rows(x, vocab_size), return_inverse=True)
    n = torch.zeros(len(seen), vocab_size, dtype=torch.float64, device=x.device)
    n.index_put_((local, y), counts.double(), accumulate=True)  # (S, V) counts per seen row
    mu = l2 / (vocab_size**context_size * vocab_size)  # the mean's weight on each cell
    rows = newton_rows(n, n.sum(), mu, iterations)
    model = DenseTable(DenseConfig(vocab_size, context_size, l2=l2)).to(x.device)
    with torch.no_grad():
        model.W[seen] = rows.to(model.W.dtype)
    return model


def newton_rows(n: Tensor, total: Tensor, mu: float, iterations: int) -> Tensor:
    """argmin over w (S, V) of sum_r [N_r logsumexp(w_r) - n_r . w_r] / total + mu |w_r|^2; a
    row stops once its Newton decrement is below the float64 noise of its objective."""
    w = torch.zeros_like(n)
    active = torch.arange(len(n), device=n.device)
    for _ in range(iterations):
        step, slope = newton_step(w[active], n[active], total, mu)
        moving = -slope >= 1e-15  # minus the decrement: the gain still to be had
        active, step, slope = active[moving], step[moving], slope[moving]
        if len(active) == 0:
            break
        counts = n[active]

        def objective(rows: Tensor, counts: Tensor = counts) -> Tensor:  # (A,) per row
            gain = counts.sum(1) * rows.logsumexp(1) - (counts * rows).sum(1)
            return gain / total + mu * rows.pow(2).sum(1)

        w[active] += backtrack(objective, w[active], step, slope)
    return w


def newton_step(w: Tensor, n: Tensor, total: Tensor, mu: float) -> tuple[Tensor, Tensor]:
    """The Newton step of every row and its slope (gradient . step). A row's Hessian
    c (diag(p) - p p^T) + lam I, c = N_r / total, is solved in O(V) by Sherman-Morrison."""
    c = n.sum(1, keepdim=True) / total
    p = w.softmax(1)
    grad = c * p - n / total + 2 * mu * w
    lam = 2 * mu + 1e-12  # the tiny ridge keeps the step defined along all-ones when mu = 0
    d_inv = 1 / (c * p + lam)
    x, y = d_inv * grad, d_inv * p
    # 1 - c p.D^-1 p, written as lam * sum(p D^-1) (as sum(p) = 1) to avoid cancelling
    denominator = lam * (p * d_inv).sum(1, keepdim=True)
    step = -(x + y * c * (p * x).sum(1, keepdim=True) / denominator)
    return step, (grad * step).sum(1)


def backtrack(objective, w: Tensor, step: Tensor, slope: Tensor) -> Tensor:
    """Per row, the largest of 1, 1/2, 1/4, ... times `step` with enough decrease (Armijo)."""
    scale = torch.ones_like(slope)
    start = objective(w)
    for _ in range(40):
        enough = objective(w + scale[:, None] * step) <= start + 1e-4 * scale * slope
        if enough.all():
            break
        scale = torch.where(enough, scale, scale / 2)
    return scale[:, None] * step
