"""The suffix model's own fit (models/suffix_fit.py) on tiny data: its tree transforms, its
analytic objective and gradient, its optimum and its determinism."""

import pytest
import torch

from makemore_pl import Vocabulary, build_ngrams
from makemore_pl.core.batches import count_table
from makemore_pl.models.suffix_fit import Objective, SuffixFit, fit_suffix_model
from makemore_pl.models.suffix_model import SuffixConfig, SuffixModel
from makemore_pl.models.suffix_tree import (
    subtree_diffs_,
    subtree_sums_,
    suffix_rows,
    theta_to_w_,
    w_to_theta_,
)

WORDS = ["emma", "olivia", "ava", "isabella", "sophia", "mia", "amelia", "ella", "emily", "anna"]
WORDS += ["ann", "annie", "liam", "noah", "oliver", "elijah", "william", "james", "ben", "emmy"]


def table(c: int):
    vocab = Vocabulary.from_words(WORDS)
    x, y = build_ngrams(WORDS, vocab, c)
    return len(vocab), x, y, count_table(x, y, len(vocab))


def model(c: int, strengths: list[float]) -> tuple[SuffixModel, tuple]:
    v, x, y, counts = table(c)
    m = SuffixModel(SuffixConfig(v, c, strengths=strengths)).double()
    m.build_table(x, y)
    return m, counts


def by_autograd(m: SuffixModel, counts, w: torch.Tensor) -> tuple[float, torch.Tensor]:
    """The objective as the lecture writes it (logits: a sum of rows of W), by autograd."""
    x, y, n = counts
    n = n.double()
    w = w.clone().requires_grad_(True)
    rows = suffix_rows(m.keys, x, m.vocab_size)
    logits = (w[rows.clamp_min(0)] * (rows >= 0)[..., None]).sum(1)
    nll = (torch.nn.functional.cross_entropy(logits, y, reduction="none") * n).sum() / n.sum()
    value = nll + (m.strength_of_rows() * w.pow(2).sum(1)).sum() / n.sum()
    value.backward()
    return value.item(), w.grad


def test_tree_transforms_are_inverse_and_adjoint():
    m, _ = model(3, [1.0, 0.3, 0.3, 0.3])
    a, b = torch.randn_like(m.U), torch.randn_like(m.U)
    assert torch.allclose(theta_to_w_(w_to_theta_(a.clone(), m.links), m.links), a, atol=1e-14)
    t_a = w_to_theta_(a.clone(), m.links)  # T^T is T's adjoint, T^-T its inverse
    assert torch.allclose((t_a * b).sum(), (a * subtree_sums_(b.clone(), m.links)).sum())
    assert torch.allclose(subtree_diffs_(subtree_sums_(b.clone(), m.links), m.links), b)
    m.set_W(a)
    assert torch.allclose(m.W, a, atol=1e-14)


def test_the_analytic_objective_and_gradient_are_autograds():
    m, counts = model(3, [1.0, 0.3, 0.5, 0.7])
    w = torch.randn_like(m.U, generator=torch.Generator().manual_seed(0)) * 0.3
    grad = torch.empty_like(w)
    value = Objective(m, counts)(w, grad)
    expected, expected_grad = by_autograd(m, counts, w)
    assert abs(value - expected) < 1e-12
    assert torch.allclose(grad, expected_grad, rtol=0, atol=1e-13)
    m.set_W(w)  # and the model's own NLL and penalty
    nll_sum, total = m.nll_sum(*counts)
    assert abs((nll_sum / total + m.penalty()).item() - expected) < 1e-12


def test_the_fit_stops_at_the_optimum_and_is_deterministic():
    fits = []
    for _ in range(2):
        m, counts = model(4, [1.0, 0.3, 0.3, 0.5, 0.7])
        report = fit_suffix_model(m, counts, tolerance=1e-10)
        assert report.stopped == "gradient" and report.max_gradient <= 1e-10
        _, grad = by_autograd(m, counts, m.W.detach())
        assert grad.abs().max() < 1e-9  # the stopping test holds in the lecture's form too
        fits.append(m.U.clone())
    assert torch.equal(*fits)  # bit for bit


def test_runs_continue_where_the_last_stopped():
    m, counts = model(3, [1.0, 0.3, 0.3, 0.3])
    whole = fit_suffix_model(m, counts, max_iter=30, tolerance=0)
    u = m.U.clone()
    m.U.data.zero_()
    fit = SuffixFit(m, counts, tolerance=0)
    for _ in range(3):
        report = fit.run(10)
    assert report.iterations == whole.iterations == 30 and report.stopped == "max_iter"
    assert torch.equal(m.U, u) and report.objective == whole.objective


def elastic_net(eps: float, by_count=None, l2_by_count=None, l1=(0.0, 0.5, 1.0, 1.0)):
    v, x, y, counts = table(3)
    l1 = {"l1": l1 and list(l1), "smoothing": eps, "l1_by_count": by_count}
    m = SuffixModel(
        SuffixConfig(v, 3, strengths=[1.0, 0.3, 0.3, 0.3], **l1, l2_by_count=l2_by_count)
    )
    m.double().build_table(x, y)
    return m, counts


@pytest.mark.parametrize(
    "l1, by_count, l2_by_count",
    [
        ((0.0, 0.5, 1.0, 1.0), None, None),
        ((0.0, 0.5, 1.0, 1.0), [1.5, 0.5, 1.0, 2.0], None),
        ((0.0, 0.5, 1.0, 1.0), [1.5, 0.5, 1.0, 2.0], [0.4, 1.3, 0.8, 1.0]),
        (None, None, [0.4, 1.3, 0.8, 1.0]),  # L2 scales alone
    ],
)
def test_the_penalty_terms_are_the_models(l1, by_count, l2_by_count):
    m, counts = elastic_net(1e-3, by_count, l2_by_count, l1)
    w = torch.randn_like(m.U, generator=torch.Generator().manual_seed(1)) * 0.01
    grad = torch.empty_like(w)
    objective = Objective(m, counts)
    value = objective(w, grad)
    classes = m.count_classes_of(*counts)
    if by_count is None and l2_by_count is None:
        assert objective.classes is None
    else:
        assert torch.equal(objective.classes, classes)
    assert {0, 1, 2, 3} <= set(classes.unique().tolist())  # pairs seen 0, 1, 2 and 3+ times
    u = w.clone().requires_grad_(True)
    m.U = torch.nn.Parameter(torch.zeros_like(m.U))
    m.set_W(u.detach())
    nll_sum, total = m.nll_sum(*counts)
    assert abs((nll_sum / total + m.penalty(classes)).item() - value) < 1e-12
    (nll_sum / total + m.penalty(classes)).backward()  # in U; in W: T^-T (grad in theta) ...
    in_theta = m.U.grad / m.scale[:, None]
    assert torch.allclose(subtree_sums_(in_theta.clone(), m.links), grad, rtol=0, atol=1e-12)


@pytest.mark.slow
def test_the_smoothed_optimum_converges_to_the_exact_l1_optimum():
    """As eps shrinks by 10 the fit's weights move about 10 times less, and at eps = 1e-6 they
    meet the exact L1 optimum's subgradient condition: where W = 0 the smooth part's gradient is
    at most the L1 strength, elsewhere it is -L1 sign(W)."""
    fits = {}
    for eps in (1e-4, 1e-5, 1e-6):
        m, counts = elastic_net(eps)
        report = fit_suffix_model(m, counts, tolerance=1e-9, max_iter=5000)
        # (1e-10 is below the round-off floor of some CPUs at eps = 1e-4: 6.7e-10 here)
        assert report.stopped == "gradient"
        fits[eps] = m.W.detach().clone()
    first, second = ((fits[a] - fits[b]).abs().max() for a, b in ((1e-4, 1e-5), (1e-5, 1e-6)))
    assert second < 2e-4 and second < first / 5  # measured: 9.2e-4, then 7.9e-5
    w = fits[1e-6]
    smooth = SuffixModel(SuffixConfig(m.vocab_size, 3, strengths=[1.0, 0.3, 0.3, 0.3])).double()
    smooth.build_table(*table(3)[1:3])
    grad = torch.empty_like(w)
    Objective(smooth, counts)(w, grad)  # NLL + L2 only
    l1 = smooth.strength_of_rows([0.0, 0.5, 1.0, 1.0])[:, None].expand_as(w) / smooth.train_total
    zero = w.abs() < 1e-5
    assert zero.float().mean() > 0.5  # the L1 term zeroes weights out (95 % here)
    assert (grad.abs() - l1)[zero].max() <= 1e-9
    assert (grad + l1 * w.sign())[~zero].abs().max() < 1e-7
