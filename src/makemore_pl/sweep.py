"""Regularisation sweeps: add-k for the counting model, l2 for the neural one, chosen on val."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from makemore_pl.baseline import SMOOTHING_GRID, CountingBaseline
from makemore_pl.batches import count_table
from makemore_pl.optimum import fit_optimum, table_nll

# l2 weights the mean over all V**c * V cells, so higher orders want larger values
L2_GRID = (0.0, 1e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)


@dataclass
class SweepPoint:
    model: str  # "counting" or "neural"
    strength: float  # add-k smoothing or l2 weight
    train_nll: float
    val_nll: float


Examples = dict[str, tuple[Tensor, Tensor, Tensor | None]]  # split -> (X, Y, weights or None)


def sweep_counting(
    vocab_size: int, context_size: int, examples: Examples, grid=SMOOTHING_GRID
) -> list[SweepPoint]:
    """The counting model fitted on train under every add-k in `grid`."""
    fitted = CountingBaseline(vocab_size, context_size, 0.0).fit(*examples["train"])
    points = []
    for k in grid:
        model = fitted.with_smoothing(k)
        train, val = model.nll(*examples["train"]), model.nll(*examples["val"])
        points.append(SweepPoint("counting", k, train, val))
    return points


def sweep_neural(
    vocab_size: int, context_size: int, examples: Examples, grid=L2_GRID
) -> list[SweepPoint]:
    """The neural model trained to its optimum on train under every l2 in `grid`."""
    tables = {name: count_table(*xyw[:2], vocab_size, xyw[2]) for name, xyw in examples.items()}
    points = []
    for l2 in grid:
        model = fit_optimum(vocab_size, context_size, l2, tables["train"])
        train, val = (table_nll(model.log_probs, tables[s]) for s in ("train", "val"))
        points.append(SweepPoint("neural", l2, train, val))
    return points


def best_on_val(points: list[SweepPoint]) -> SweepPoint:
    return min(points, key=lambda point: point.val_nll)


def sweep_figure(points: list[SweepPoint], title: str):
    """Train and val NLL against regularisation strength (log axis), one panel per model."""
    from matplotlib.figure import Figure  # matplotlib only when a figure is drawn

    kinds = sorted({p.model for p in points})
    fig = Figure(figsize=(5.5 * len(kinds), 4), layout="constrained")
    for ax, kind in zip(fig.subplots(1, len(kinds), squeeze=False)[0], kinds, strict=True):
        shown = [p for p in points if p.model == kind]
        strengths = [p.strength for p in shown]
        ax.plot(strengths, [p.train_nll for p in shown], "o-", label="train")
        ax.plot(strengths, [p.val_nll for p in shown], "o-", label="val")
        best = best_on_val(shown)
        ax.axvline(
            best.strength, color="gray", linestyle=":", label=f"best on val: {best.strength:g}"
        )
        # symlog: a log axis on which a strength of 0 (no regularisation) still has a place
        positive = [p.strength for p in shown if p.strength > 0]
        ax.set_xscale("symlog", linthresh=min(positive, default=1e-4))
        ax.set_xlabel("add-k smoothing k" if kind == "counting" else "l2 weight")
        ax.set_ylabel("NLL (nats)")
        ax.set_title(f"{kind} model")
        ax.legend()
    fig.suptitle(title)
    return fig


def test_nll(point: SweepPoint, vocab_size: int, context_size: int, splits: Examples) -> float:
    """The one look at the test split: the chosen model, refitted on train."""
    if point.model == "counting":
        fitted = CountingBaseline(vocab_size, context_size, point.strength).fit(*splits["train"])
        return fitted.nll(*splits["test"])
    train, test = (count_table(*splits[s][:2], vocab_size, splits[s][2]) for s in ("train", "test"))
    return table_nll(fit_optimum(vocab_size, context_size, point.strength, train).log_probs, test)
