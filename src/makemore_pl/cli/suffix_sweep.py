"""Choosing the every-suffix model's per-length L2 strengths on val, and testing the choice once.

A coordinate search on a log scale: for each suffix length 1..c in turn, the strength is doubled
(or halved) while val NLL falls, the others held; a second round moves by factors of sqrt(2).
The empty suffix's strength stays where it starts: its row sees every example, so it hardly
matters. Every
point is the model fitted to its optimum on train, warm-started from the best point so far.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import Tensor

from makemore_pl.core.batches import count_table
from makemore_pl.core.data import NamesData
from makemore_pl.core.errors import CommandError
from makemore_pl.models.optimum import table_nll
from makemore_pl.models.suffix import SuffixModel
from makemore_pl.models.suffix_fit import fit_suffix_model
from makemore_pl.models.suffixes import default_strengths, settings_problem

MAX_MOVES = 4  # steps in one direction per length and round: at most 2**4 = 16 times
Examples = tuple[Tensor, Tensor, Tensor | None]  # X (N, c), Y (N,), weights (N,) or None


@dataclass
class StrengthPoint:
    strengths: list[float]
    train_nll: float
    val_nll: float
    seconds: float  # to fit this point


def fit_point(
    strengths: list[float],
    train: Examples,
    vocab_size: int,
    warm: SuffixModel | None = None,
    max_iter: int = 500,
) -> SuffixModel:
    """A model of these strengths fitted on train in float64, starting from `warm`'s logits."""
    model = SuffixModel(vocab_size, train[0].shape[1], strengths=strengths).double()
    model.build_table(*train)
    if warm is not None:
        with torch.no_grad():
            model.U.copy_(warm.theta / model.scale[:, None])
    fit_suffix_model(model, count_table(*train[:2], vocab_size, train[2]), max_iter)
    return model


def choose_strengths(
    train: Examples,
    val: Examples,
    vocab_size: int,
    context_size: int,
    start: list[float] | None = None,
    rounds: int = 2,
    max_iter: int = 500,
    report=None,
) -> tuple[list[float], list[StrengthPoint], SuffixModel]:
    """Per-length strengths with the lowest val NLL found by the coordinate search, every point
    tried, and the chosen model; `report(point)` is called as each point is done."""
    current = default_strengths(context_size) if start is None else [float(s) for s in start]
    problem = settings_problem(vocab_size, context_size, current, 0)
    if problem or rounds < 1 or len(val[1]) == 0:
        raise CommandError(problem or "choosing strengths needs rounds >= 1 and val examples")
    val_table = count_table(*val[:2], vocab_size, val[2])
    train_table = count_table(*train[:2], vocab_size, train[2])
    points: list[StrengthPoint] = []
    tried: dict[tuple[float, ...], float] = {}

    def evaluate(strengths: list[float], warm: SuffixModel | None):
        if tuple(strengths) in tried:  # a later round can step back onto a point
            return None, tried[tuple(strengths)]
        started = time.perf_counter()
        model = fit_point(strengths, train, vocab_size, warm, max_iter)
        nlls = [table_nll(model.log_probs, t) for t in (train_table, val_table)]
        points.append(StrengthPoint(list(strengths), *nlls, time.perf_counter() - started))
        tried[tuple(strengths)] = nlls[1]
        if report is not None:
            report(points[-1])
        return model, nlls[1]

    best, best_val = evaluate(current, None)
    for factor in [2.0 ** (0.5**r) for r in range(rounds)]:  # 2, then sqrt(2), ...
        for k in range(1, context_size + 1):  # the empty suffix sees every example: left as is
            for direction in (factor, 1 / factor):
                moved = False
                for _ in range(MAX_MOVES):
                    trial = list(current)
                    trial[k] = float(f"{current[k] * direction:.4g}")  # config-ready
                    model, val_nll = evaluate(trial, best)
                    if val_nll >= best_val:
                        break
                    current, best, best_val, moved = trial, model, val_nll, True
                if moved:
                    break  # improved going up: no need to try down
    return current, points, best


def suffix_sweep(
    data: NamesData, start: list[float] | None = None, rounds: int = 2, max_iter: int = 500
) -> dict[str, float | list[float]]:
    """Choose the every-suffix model's L2 strengths on val, then test it once.

    Prints every point tried, then the one look at test.

    Args:
        start: strengths (suffix lengths 0..c) the search starts from; default 1 for the empty
            suffix and 0.25 for the others.
        rounds: search rounds: the first moves each strength by factors of 2, the next by
            sqrt(2), and so on.
        max_iter: L-BFGS iterations at most per fitted point.
    """
    data.setup("fit")
    # one L-BFGS fit after another on 1.6 M weights: a second thread gains little and, on a
    # shared machine, costs several times the time
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _sweep(data, start, rounds, max_iter)
    finally:
        torch.set_num_threads(threads)


def _sweep(data: NamesData, start, rounds: int, max_iter: int) -> dict[str, float | list[float]]:
    started = time.perf_counter()
    train, val = data.examples("train"), data.examples("val")
    print(f"{'strengths (suffix lengths 0..c)':<44} {'train_nll':>9} {'val_nll':>9} {'s':>5}")

    def show(p: StrengthPoint) -> None:
        shown = "[" + ", ".join(f"{s:.3g}" for s in p.strengths) + "]"
        print(f"{shown:<44} {p.train_nll:>9.5f} {p.val_nll:>9.5f} {p.seconds:>5.1f}", flush=True)

    c, v = data.context_size, data.vocab_size
    strengths, points, model = choose_strengths(train, val, v, c, start, rounds, max_iter, show)
    best = min(points, key=lambda p: p.val_nll)
    x, y, weights = data.examples("test")
    test = table_nll(model.log_probs, count_table(x, y, v, weights))  # the one look at test
    print(
        f"chosen strengths {strengths}: val_nll {best.val_nll:.5f}, test_nll {test:.5f} "
        f"({len(points)} fits, {time.perf_counter() - started:.0f} s)"
    )
    return {"strengths": strengths, "val_nll": best.val_nll, "test_nll": test}
