"""The every-suffix model's fit: L-BFGS in W with an analytic gradient and a tree preconditioner,

    objective(W) = NLL sum / N + sum_r L[len r] |W_r|^2 / N (+ L1),    theta = T W (tree sums)

Buffers are allocated once, (3 + 2 * history) copies of W (torch.optim.LBFGS with autograd took
the c = 5 fit to 1.9 GB). H0 is the exact inverse of T' D T + 2 Lambda (D: the NLL's curvature
in theta, Lambda: the L2 strengths), one pass up the tree and one down: half the iterations of
diag(scale^2) (444 against 957 at c = 5).
"""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from makemore_pl.core.batches import Batch
from makemore_pl.models import suffix_tree
from makemore_pl.models.suffix_model import SuffixModel

Reduce = Callable[[Tensor], None]  # sums a tensor over processes, in place (all_reduce)
REFRESH = 50  # with strengths per entry: iterations between preconditioners (they follow w)
BLOCK_ROWS = 4096  # rows per block of the penalty: its temporaries stay small


@dataclass
class FitReport:
    iterations: int  # in all, over every `run`
    evaluations: int
    objective: float  # NLL / N + penalty at the end
    max_gradient: float  # largest |gradient entry| in W: 0 at the exact optimum
    nll: float  # NLL / N, the training examples' mean, at the end
    seconds: float
    stopped: str  # why the last run stopped: "gradient", "max_iter" or "line search"


class Objective:
    """f(W) and its gradient in W into preallocated buffers, summed over processes (`reduce`)."""

    def __init__(self, model: SuffixModel, train: Batch, reduce: Reduce | None = None) -> None:
        x, y, counts = train
        self.model, self.reduce = model, reduce or (lambda tensor: None)  # one process: no sums
        dtype, device, v = model.U.dtype, model.U.device, model.vocab_size
        x, y, counts = x.to(device), y.to(device), counts.to(device, dtype)
        rows = model.rows_of(x)
        known = rows >= 0
        self.flat = rows[known] * v + y[known]  # (n,) index into theta.view(-1)
        self.counts = counts[known]
        self.examples = torch.zeros(len(model.keys), dtype=dtype, device=device)
        self.examples.index_add_(0, rows[known], self.counts)  # N_r: rows' deepest examples
        self.all_examples = self.examples.clone()  # ... of every process
        self.reduce(self.all_examples)
        sums = torch.stack([counts.sum(), counts[~known].sum() * math.log(v)])
        self.reduce(sums)
        self.total, self.unknown = float(sums[0]), float(sums[1])  # uniform: no row at all
        self.inv_total = 1 / max(self.total, 1.0)
        self.l2 = (2 * self.inv_total) * model.strength_of_rows()[:, None]  # (R, 1)
        self.nll = math.nan  # of the last evaluation
        config, self.eps = model.config, model.config.smoothing
        # (R, 1) the L1 strengths / N; by count class: (4,) scales of the L1 and L2 strengths
        self.l1 = self.l1_scales = self.l2_scales = self.classes = None
        if config.has_l1:
            self.l1 = self.inv_total * model.strength_of_rows(config.l1)[:, None]
            if config.l1_by_count is not None:
                self.l1_scales = model.count_scales(config.l1_by_count)
        if config.l2_by_count is not None:
            self.l2_scales = model.count_scales(config.l2_by_count)
        if self.l1_scales is not None or self.l2_scales is not None:  # each entry's class
            self.classes = suffix_tree.count_classes(self._counts(), model.links)  # (R, V) uint8

    def __call__(self, w: Tensor, grad: Tensor) -> float:
        """f(w); its gradient into `grad`, the NLL per example into `self.nll`."""
        links = self.model.links
        # theta lives in grad until the softmax
        theta = suffix_tree.w_to_theta_(grad.copy_(w), links)
        picked = (theta.view(-1)[self.flat] * self.counts).sum()
        top = theta.amax(1, keepdim=True)
        grad.sub_(top).exp_()  # softmax rows, unnormalised
        sums = grad.sum(1, keepdim=True)
        lse = top[:, 0] + sums[:, 0].log()
        nll = ((self.examples * lse).sum() - picked).reshape(1)
        grad.mul_(self.examples[:, None] / sums)  # in theta: N_r softmax(theta_r) - counts
        grad.view(-1).index_add_(0, self.flat, self.counts, alpha=-1)
        suffix_tree.subtree_sums_(grad, links)  # in W
        self.reduce(nll)
        self.reduce(grad)
        grad.mul_(self.inv_total)
        self.nll = float(nll[0] + self.unknown) * self.inv_total
        square = 0.0
        if self.l2_scales is None:  # one L2 strength per row: the term in one pass
            grad.addcmul_(self.l2, w)
            square = float(torch.einsum("rv,rv,r->", w, w, self.l2[:, 0]) * 0.5)
        return self.nll + square + self._add_by_blocks(w, grad)

    def _add_by_blocks(self, w: Tensor, grad: Tensor) -> float:
        """Terms with strengths per entry, their gradient added to grad, block by block."""
        if self.l2_scales is None and self.l1 is None:
            return 0.0
        value = torch.zeros((), dtype=w.dtype, device=w.device)
        for start in range(0, len(w), BLOCK_ROWS):  # by blocks: no (R, V) temporary
            block, rows = w[start : start + BLOCK_ROWS], slice(start, start + BLOCK_ROWS)
            square = torch.mul(block, block)
            if self.l2_scales is not None:
                l2 = self._strength_of(self.l2, self.l2_scales, start)
                value += torch.mul(square, l2).sum() / 2
                grad[rows].addcmul_(l2, block)
            if self.l1 is not None:
                l1 = self._strength_of(self.l1, self.l1_scales, start)
                root = square.add_(self.eps**2).sqrt_()
                value += (root - self.eps).mul_(l1).sum()
                # d/dw sqrt(w^2 + eps^2) = w / sqrt(w^2 + eps^2)
                grad[rows].addcmul_(l1, root.reciprocal_().mul_(block))
        return float(value)

    def _strength_of(self, per_row: Tensor, scales: Tensor | None, start: int) -> Tensor:
        """(R, 1) strengths -> the block's from `start`: (B, 1), or (B, V) scaled by class."""
        strengths = per_row[start : start + BLOCK_ROWS]
        if scales is None:
            return strengths
        return scales.take(self.classes[start : start + BLOCK_ROWS].long()).mul_(strengths)

    def couplings(self, w: Tensor) -> Tensor:
        """The preconditioner's lambda: L2 / 2N, plus l1 eps^2 / (w^2 + eps^2)^(3/2) / 2."""
        if self.l1 is None and self.l2_scales is None:
            return self.l2 / 2
        t = torch.empty_like(w)  # one (R, V) buffer
        for start in range(0, len(w), BLOCK_ROWS):
            rows = slice(start, start + BLOCK_ROWS)
            t[rows] = self._strength_of(self.l2, self.l2_scales, start) / 2
            if self.l1 is not None:
                l1 = self._strength_of(self.l1, self.l1_scales, start)
                curve = torch.mul(w[rows], w[rows]).add_(self.eps**2).pow_(1.5).reciprocal_()
                t[rows].addcmul_(curve, l1, value=self.eps**2 / 2)
        return t

    def curvature(self, w: Tensor | None = None, per_entry: bool = False) -> Tensor:
        """N_r p (1 - p) / N, the NLL's Hessian diagonal in theta, (R, V) or its row means."""
        if w is None:  # each row's next-character frequencies, smoothed by one overall example
            p = self._counts()
            overall = p.sum(0, keepdim=True)
            overall /= overall.sum().clamp_min(1)
            p.add_(overall).div_((self.all_examples + 1)[:, None])
        else:  # a softmax per row, in place in one (R, V) buffer
            p = suffix_tree.w_to_theta_(w.clone(), self.model.links)
            p.sub_(p.amax(1, keepdim=True)).exp_()
            p.div_(p.sum(1, keepdim=True))
        p.addcmul_(p, p, value=-1)  # p (1 - p), in place: no second (R, V) copy
        p.mul_((self.all_examples * self.inv_total)[:, None])
        return p if per_entry else p.mean(1, keepdim=True)

    def _counts(self) -> Tensor:
        """(R, V) C_rv: every process's examples of deepest row r and next character v."""
        table = torch.zeros_like(self.model.U)
        table.view(-1).index_add_(0, self.flat, self.counts)
        self.reduce(table)
        return table


class TreePreconditioner:
    """H0 = (T' D T + 2 Lambda)^-1 by elimination from the deepest rows: in theta, rows couple
    along the tree only, a_r = D_r + sum over children of 2 lambda_c a_c / (a_c + 2 lambda_c)."""

    def __init__(self, links, curvature: Tensor, l2: Tensor) -> None:
        """D (R, 1) or like lambda `l2` ((R, 1) or (R, V)): both buffers become the factors."""
        self.links = links
        root = torch.ones(len(l2), 1, dtype=l2.dtype, device=l2.device)
        for (start, end), _, _ in links:
            root[start:end] = 0
        a = curvature if curvature.shape == l2.shape else curvature.expand_as(l2).clone()
        a.addcmul_(root, l2, value=2)  # a root's W is theta: its L2 term is its own
        for (start, end), (p0, p1), parent in reversed(links):
            pull, below = 2 * l2[start:end], a[start:end]  # below: final, its children done
            gain = l2[start:end]  # k_c = 2 lambda_c / (a_c + 2 lambda_c), in lambda's place
            torch.div(pull, below + pull, out=gain)
            a[p0:p1].index_add_(0, parent, below * gain)
            below.add_(pull)  # a_c + 2 lambda_c
        self.gain = l2.mul_(1 - root)  # a root has no parent: no gain
        self.inverse = a.reciprocal_()  # 1 / (a_c + 2 lambda_c); roots 1 / a

    def apply_(self, q: Tensor) -> Tensor:
        """q (a gradient in W) <- H0 q (a step in W), in place."""
        suffix_tree.subtree_diffs_(q, self.links)  # in theta
        for (start, end), (p0, p1), parent in reversed(self.links):  # up: b_p += k_c b_c
            q[p0:p1].index_add_(0, parent, q[start:end] * self.gain[start:end])
        q.mul_(self.inverse)  # down: theta_c = b_c / (a_c + 2 lambda_c) + k_c theta_p
        for (start, end), (p0, p1), parent in self.links:
            q[start:end].addcmul_(self.gain[start:end], q[p0:p1][parent])
        return suffix_tree.theta_to_w_(q, self.links)


def _dot(a: Tensor, b: Tensor) -> float:
    return float(torch.dot(a.view(-1), b.view(-1)))


class SuffixFit:
    """L-BFGS until every gradient entry in W is at most `tolerance`, resumable by `run`."""

    def __init__(
        self,
        model: SuffixModel,
        train: Batch,
        history: int = 2,
        tolerance: float = 1e-7,
        reduce: Reduce | None = None,
    ) -> None:
        if not len(model.keys):
            raise ValueError("the suffix table is empty: build_table first")
        self.model, self.tolerance, self.history = model, tolerance, history
        with torch.no_grad():
            self.f = Objective(model, train, reduce)
            # with strengths per entry H0 is per entry too, renewed as w moves
            self.per_entry = self.f.l1 is not None or self.f.l2_scales is not None
            self.w = suffix_tree.theta_to_w_(model.theta.contiguous(), model.links)
            self.tree = self._preconditioner()
            self.g = torch.empty_like(self.w)
            self.s = torch.empty(history, *self.w.shape, dtype=self.w.dtype, device=self.w.device)
            self.y = torch.empty_like(self.s)
            self.value = self.f(self.w, self.g)
            self.nll = self.f.nll
        self.rho, self.pairs, self.gamma = [0.0] * history, [], 1.0
        self.largest = float(self.g.abs().max())
        self.iterations, self.evaluations, self.seconds = 0, 1, 0.0

    @torch.no_grad()
    def run(self, max_iter: int, log: Callable[[int, float], None] | None = None) -> FitReport:
        """At most `max_iter` more iterations; `log(iteration, objective)` after each."""
        started, stopped = time.perf_counter(), "max_iter"
        u = self.model.U  # not read until the end: its storage holds the direction
        d = u.data if u.is_contiguous() else torch.empty_like(self.w)
        for _ in range(max_iter):
            if self.largest <= self.tolerance:
                break
            if self.per_entry and self.iterations % REFRESH == 0 and self.iterations:
                # a new H0 and new pairs (old ones stall the fit at a small smoothing); the
                # old H0 goes first: (R, V) factors each
                self.tree = None
                self.tree = self._preconditioner()
                self.pairs.clear()
            if not self._iterate(d):
                stopped = "line search"
                break
            self.iterations += 1
            if log is not None:
                log(self.iterations, self.value)
        if self.largest <= self.tolerance:
            stopped = "gradient"
        self.model.set_W(self.w)
        self.seconds += time.perf_counter() - started
        progress = (self.iterations, self.evaluations, self.value, self.largest, self.nll)
        return FitReport(*progress, self.seconds, stopped)

    def _preconditioner(self) -> TreePreconditioner:
        """H0 at w: the curvature per row from the counts, or per entry at w (unless w is 0)."""
        if self.per_entry and bool(self.w.any()):
            curvature = self.f.curvature(self.w, per_entry=True)
        else:
            curvature = self.f.curvature()
        return TreePreconditioner(self.model.links, curvature, self.f.couplings(self.w))

    def _iterate(self, d: Tensor) -> bool:
        """One iteration: the two-loop direction, a backtracking line search, the new pair."""
        w, g, s, y, rho, pairs = self.w, self.g, self.s, self.y, self.rho, self.pairs
        d.copy_(g)
        alphas = []
        for slot in reversed(pairs):
            alphas.append(rho[slot] * _dot(s[slot], d))
            d.add_(y[slot], alpha=-alphas[-1])
        self.tree.apply_(d).mul_(self.gamma)
        for slot, a in zip(pairs, reversed(alphas), strict=True):
            d.add_(s[slot], alpha=a - rho[slot] * _dot(y[slot], d))
        d.neg_()
        slope = _dot(d, g)
        if not slope < 0:  # round-off near the optimum: forget the curvature, or stop
            if not pairs:
                return False
            pairs.clear()
            return True
        # Armijo backtracking; the trial point and its gradient go into the free slot
        free = [k for k in range(self.history) if k not in pairs]
        slot = free[0] if free else pairs.pop(0)
        trial_w, trial_g = s[slot], y[slot]
        step = 1.0
        for _ in range(50):
            torch.add(w, d, alpha=step, out=trial_w)
            trial = self.f(trial_w, trial_g)
            self.evaluations += 1
            if trial <= self.value + 1e-4 * step * slope:
                break
            step *= 0.5
        else:
            return False
        # accept: w, g <- the trial point; the slot <- the pair s = w_new - w, y = g_new - g
        d.copy_(w)
        w.copy_(trial_w)
        trial_w.sub_(d)
        d.copy_(trial_g)
        trial_g.sub_(g)
        g.copy_(d)
        sy = _dot(trial_w, trial_g)
        if sy > 0:  # always with L2 > 0 (strictly convex); else the pair is dropped
            rho[slot] = 1 / sy
            pairs.append(slot)
            # gamma = s.y / y.H0 y at every iteration (a fixed gamma: 3x the evaluations)
            self.gamma = sy / _dot(trial_g, self.tree.apply_(d.copy_(trial_g)))
        self.value, self.nll = trial, self.f.nll
        self.largest = float(g.abs().max())
        return True


def fit_suffix_model(
    model: SuffixModel,
    train: Batch,
    max_iter: int = 2000,
    tolerance: float = 1e-7,
    history: int = 2,
) -> FitReport:
    """Fits `model` (its table built, U the start) in place on a count table; see `SuffixFit`."""
    return SuffixFit(model, train, history, tolerance).run(max_iter)
