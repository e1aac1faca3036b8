"""Choosing the every-suffix model's penalty on val, and testing the choice once.

A coordinate search on a log scale: for each suffix length 1..c in turn, its L2 strength and,
when an L1 start is given, its L1 strength are doubled (or halved) while val NLL falls, the
others held; then the L1 term's smoothing. A second round moves by factors of sqrt(2). The
empty suffix's strengths stay where they start: its row sees every example, so they hardly
matter. A value of 0 stays 0. Every point is the model fitted to its optimum on train,
warm-started from the best point so far.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from makemore_pl.core.batches import count_table
from makemore_pl.core.data import NamesData
from makemore_pl.core.errors import CommandError, SettingError
from makemore_pl.models.optimum import table_nll
from makemore_pl.models.suffix import SuffixModel
from makemore_pl.models.suffix_fit import fit_suffix_model
from makemore_pl.models.suffixes import (
    by_count_problem,
    default_strengths,
    l1_problem,
    settings_problem,
)

MAX_MOVES = 4  # steps in one direction per setting and round: at most 2**4 = 16 times
Examples = tuple[Tensor, Tensor, Tensor | None]  # X (N, c), Y (N,), weights (N,) or None


@dataclass(frozen=True)
class Penalty:
    """The every-suffix model's penalty: L2 and L1 strengths per suffix length, the smoothing."""

    strengths: tuple[float, ...]
    l1: tuple[float, ...] | None = None
    smoothing: float = 1e-4
    l1_by_count: tuple[float, ...] | None = None
    l2_by_count: tuple[float, ...] | None = None

    def moved(self, setting: str, k: int | None, factor: float) -> Penalty:
        """This penalty with one value multiplied by `factor`, rounded to 4 digits."""
        if k is None:
            return replace(self, **{setting: float(f"{getattr(self, setting) * factor:.4g}")})
        values = list(getattr(self, setting))
        values[k] = float(f"{values[k] * factor:.4g}")  # config-ready
        return replace(self, **{setting: tuple(values)})

    def settings(self) -> dict:
        """The model's init_args for it."""
        lists = {"strengths": self.strengths, "l1": self.l1, "smoothing": self.smoothing}
        lists.update(l1_by_count=self.l1_by_count, l2_by_count=self.l2_by_count)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in lists.items()}

    def __str__(self) -> str:
        shown = [f"[{', '.join(f'{s:.3g}' for s in self.strengths)}]"]
        if self.l1 is not None:
            shown += [f"[{', '.join(f'{s:.3g}' for s in self.l1)}]", f"{self.smoothing:.3g}"]
        for scales in (self.l1_by_count, self.l2_by_count):
            if scales is not None:
                shown.append(f"[{', '.join(f'{s:.3g}' for s in scales)}]")
        return " ".join(shown)


@dataclass
class PenaltyPoint:
    penalty: Penalty
    train_nll: float
    val_nll: float
    seconds: float  # to fit this point


def fit_point(
    penalty: Penalty,
    train: Examples,
    vocab_size: int,
    warm: SuffixModel | None = None,
    max_iter: int = 500,
    tolerance: float = 1e-7,
) -> SuffixModel:
    """A model of this penalty fitted on train in float64, starting from `warm`'s logits."""
    context_size = train[0].shape[1]
    model = SuffixModel(vocab_size, context_size, **penalty.settings()).double()
    model.build_table(*train)
    if warm is not None:
        with torch.no_grad():
            model.U.copy_(warm.theta / model.scale[:, None])
    fit_suffix_model(model, count_table(*train[:2], vocab_size, train[2]), max_iter, tolerance)
    return model


def search_moves(penalty: Penalty) -> list[tuple[str, int | None]]:
    """The settings the search moves, in order: per length 1..c its L2 then its L1 strength
    (where not 0), then the smoothing when there is an L1 term, then the L2 and the L1 scales
    of entries seen 0, 1, 2 times (the 3+ entries' scales are the reference: the strengths per
    length set their level); a 0 is not moved."""
    moves = []
    for k in range(1, len(penalty.strengths)):
        moves.append(("strengths", k))
        if penalty.l1 is not None and penalty.l1[k] > 0:
            moves.append(("l1", k))
    if penalty.l1 is not None:
        moves.append(("smoothing", None))
    for setting in ("l2_by_count", "l1_by_count"):
        scales = getattr(penalty, setting)  # 4 values, checked
        if scales is not None and (setting == "l2_by_count" or penalty.l1 is not None):
            moves += [(setting, k) for k in (0, 1, 2) if scales[k] > 0]
    return moves


def check_search(
    start: Penalty,
    vocab_size: int,
    context_size: int,
    rounds: int,
    val: int,
    step: float,
    tolerance: float = 1e-7,
):
    """Refuses a search that cannot run, naming suffix_sweep's option (--start: the L2
    strengths), before anything is fitted or printed."""
    l1, by_count = start.settings()["l1"], start.settings()["l1_by_count"]
    problem = settings_problem(vocab_size, context_size, list(start.strengths), 0)
    problem = problem or l1_problem(context_size, l1, start.smoothing, by_count)
    problem = problem or by_count_problem("l2_by_count", start.settings()["l2_by_count"])
    if problem is not None:  # "<setting> <what is wrong>"
        setting, words = problem.split(" ", 1)
        raise SettingError("start" if setting == "strengths" else setting, words)
    if rounds < 1:
        raise SettingError("rounds", f"must be 1 or more, got {rounds}")
    if not 1 < step < float("inf"):
        raise SettingError("step", f"must be a number above 1, got {step}")
    if not 0 <= tolerance < float("inf"):
        raise SettingError("tolerance", f"must be finite and 0 or more, got {tolerance}")
    if val == 0:
        raise CommandError("choosing the penalty needs val examples: the val split is empty")


def choose_penalty(
    train: Examples,
    val: Examples,
    vocab_size: int,
    start: Penalty,
    rounds: int = 2,
    max_iter: int = 500,
    report=None,
    step: float = 2.0,
    tolerance: float = 1e-7,
) -> tuple[Penalty, list[PenaltyPoint], SuffixModel]:
    """The penalty with the lowest val NLL found by the coordinate search, every point tried
    and the chosen model; `report(point)` is called as each point is done."""
    check_search(start, vocab_size, train[0].shape[1], rounds, len(val[1]), step, tolerance)
    val_table = count_table(*val[:2], vocab_size, val[2])
    train_table = count_table(*train[:2], vocab_size, train[2])
    points: list[PenaltyPoint] = []
    tried: dict[Penalty, float] = {}

    def evaluate(penalty: Penalty, warm: SuffixModel | None):
        if penalty in tried:  # a later round can step back onto a point
            return None, tried[penalty]
        started = time.perf_counter()
        model = fit_point(penalty, train, vocab_size, warm, max_iter, tolerance)
        nlls = [table_nll(model.log_probs, t) for t in (train_table, val_table)]
        points.append(PenaltyPoint(penalty, *nlls, time.perf_counter() - started))
        tried[penalty] = nlls[1]
        if report is not None:
            report(points[-1])
        return model, nlls[1]

    current = start
    best, best_val = evaluate(current, None)
    for factor in [step ** (0.5**r) for r in range(rounds)]:  # 2, then sqrt(2), ...
        for setting, k in search_moves(start):
            for direction in (factor, 1 / factor):
                moved = False
                for _ in range(MAX_MOVES):
                    trial = current.moved(setting, k, direction)
                    model, val_nll = evaluate(trial, best)
                    if val_nll >= best_val:
                        break
                    current, best, best_val, moved = trial, model, val_nll, True
                if moved:
                    break  # improved going up: no need to try down
    return current, points, best


def suffix_sweep(
    data: NamesData,
    start: list[float] | None = None,
    l1: list[float] | None = None,
    smoothing: float = 1e-4,
    l1_by_count: list[float] | None = None,
    l2_by_count: list[float] | None = None,
    rounds: int = 2,
    max_iter: int = 500,
    step: float = 2.0,
    tolerance: float = 1e-7,
) -> dict[str, float | list[float] | None]:
    """Choose the every-suffix model's L2 (and L1) strengths on val, then test it once.

    Prints every point tried, then the one look at test.

    Args:
        start: L2 strengths (suffix lengths 0..c) the search starts from; default 1 for the
            empty suffix and 0.25 for the others.
        l1: L1 strengths (suffix lengths 0..c) the search starts from; None: L2 only. Entries
            of 0 stay 0.
        smoothing: the L1 term's smoothing the search starts from.
        l1_by_count: the L1 scales of entries seen 0, 1, 2, 3+ times the search starts from
            (with `l1`); None: 1 each, not searched.
        l2_by_count: the L2 scales of entries seen 0, 1, 2, 3+ times the search starts from;
            None: 1 each, not searched.
        rounds: search rounds: the first moves each strength by factors of 2, the next by
            sqrt(2), and so on.
        max_iter: L-BFGS iterations at most per fitted point.
        tolerance: each point is fitted, from the best point so far, until every gradient
            entry (per example) is at most this. A step in a strength moves the gradient by
            about the change / N (5e-7 at N = 182,000), so this must stay well below that.
        step: the factor of the first round (2: doubling and halving); each round after
            moves by the square root of the one before.
    """
    data.setup("fit")
    strengths = default_strengths(data.context_size) if start is None else start
    penalty = Penalty(
        tuple(float(s) for s in strengths),
        None if l1 is None else tuple(float(s) for s in l1),
        float(smoothing),
        *(None if v is None else tuple(float(s) for s in v) for v in (l1_by_count, l2_by_count)),
    )
    # one L-BFGS fit after another on 1.6 M weights: a second thread gains little and, on a
    # shared machine, costs several times the time
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _sweep(data, penalty, rounds, max_iter, step, tolerance)
    finally:
        torch.set_num_threads(threads)


def _sweep(
    data: NamesData, start: Penalty, rounds: int, max_iter: int, step: float, tolerance: float
) -> dict:
    started = time.perf_counter()
    train, val = data.examples("train"), data.examples("val")
    check_search(start, data.vocab_size, data.context_size, rounds, len(val[1]), step, tolerance)
    heading = "L2 strengths (suffix lengths 0..c)"
    if start.l1 is not None:
        heading += ", L1 strengths, smoothing"
    if start.l1_by_count is not None:
        heading += ", L1 scales by count"
    if start.l2_by_count is not None:
        heading += ", L2 scales by count"
    width = max(44, len(str(start)) + 8)
    print(f"{heading:<{width}} {'train_nll':>9} {'val_nll':>9} {'s':>5}")

    def show(p: PenaltyPoint) -> None:
        print(f"{str(p.penalty):<{width}} {p.train_nll:>9.5f} {p.val_nll:>9.5f} {p.seconds:>5.1f}")

    v = data.vocab_size
    penalty, points, model = choose_penalty(
        train, val, v, start, rounds, max_iter, show, step, tolerance
    )
    best = min(points, key=lambda p: p.val_nll)
    x, y, weights = data.examples("test")
    test = table_nll(model.log_probs, count_table(x, y, v, weights))  # the one look at test
    chosen = {k: value for k, value in penalty.settings().items() if value is not None}
    if start.l1 is None:
        chosen.pop("smoothing")
    shown = ", ".join(f"{key} {value}" for key, value in chosen.items())
    print(
        f"chosen {shown}: val_nll {best.val_nll:.5f}, test_nll {test:.5f} "
        f"({len(points)} fits, {time.perf_counter() - started:.0f} s)"
    )
    return {**penalty.settings(), "val_nll": best.val_nll, "test_nll": test}
