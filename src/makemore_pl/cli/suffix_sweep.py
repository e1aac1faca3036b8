"""Choosing the every-suffix model's penalty on val, and testing the choice once.

A coordinate search on a log scale: for each suffix length 1..c in turn, its L2 strength and,
when an L1 start is given, its L1 strength are doubled and halved, and the better side followed
while val NLL falls, the others held; then the L1 term's smoothing and the scales by count. A
second round moves by factors of sqrt(2). The empty suffix's strengths stay where they start:
its row sees every example, so they hardly matter. A value of 0 stays 0. Every point is the
model fitted to its optimum on train, warm-started from the best point so far; the two sides of
a move, and two points ahead along a side, are fitted at the same time.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from makemore_pl.core.batches import count_table
from makemore_pl.core.data import NamesData
from makemore_pl.core.errors import CommandError, SettingError
from makemore_pl.models.optimum import table_nll
from makemore_pl.models.suffix import SuffixModel
from makemore_pl.models.suffix_fit import fit_suffix_model
from makemore_pl.models.suffixes import default_strengths, penalty_problem, settings_problem

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


@dataclass(frozen=True)
class Search:
    """How the penalty is searched: rounds, the first round's factor, each point's fit, and
    how many points are fitted at a time (each on one thread)."""

    rounds: int = 2
    step: float = 2.0
    max_iter: int = 500
    tolerance: float = 1e-7
    workers: int = 2

    def check(self) -> None:
        """Refuses settings the search cannot run with, naming suffix_sweep's option."""
        if self.rounds < 1:
            raise SettingError("rounds", f"must be 1 or more, got {self.rounds}")
        if not 1 < self.step < float("inf"):
            raise SettingError("step", f"must be a number above 1, got {self.step}")
        if self.max_iter < 1:
            raise SettingError("max_iter", f"must be 1 or more, got {self.max_iter}")
        if not 0 <= self.tolerance < float("inf"):
            raise SettingError("tolerance", f"must be finite and 0 or more, got {self.tolerance}")
        if self.workers < 1:
            raise SettingError("workers", f"must be 1 or more, got {self.workers}")


def check_search(start: Penalty, vocab_size: int, context_size: int, val: int, search: Search):
    """Refuses a search that cannot run, naming suffix_sweep's option (--start: the L2
    strengths), before anything is fitted or printed."""
    scales = start.settings()["l1_by_count"], start.settings()["l2_by_count"]
    problem = settings_problem(vocab_size, context_size, list(start.strengths), 0)
    problem = problem or penalty_problem(
        context_size, start.settings()["l1"], start.smoothing, *scales
    )
    if problem is not None:  # "<setting> <what is wrong>"
        setting, words = problem.split(" ", 1)
        raise SettingError("start" if setting == "strengths" else setting, words)
    search.check()
    if val == 0:
        raise CommandError("choosing the penalty needs val examples: the val split is empty")


def line(penalty: Penalty, setting: str, k: int | None, factor: float, count: int) -> list:
    """The next `count` penalties from `penalty`, moving one setting by `factor` each time."""
    points = []
    for _ in range(count):
        penalty = penalty.moved(setting, k, factor)
        points.append(penalty)
    return points


def choose_penalty(
    train: Examples,
    val: Examples,
    vocab_size: int,
    start: Penalty,
    search: Search = Search(),
    report=None,
) -> tuple[Penalty, list[PenaltyPoint], SuffixModel]:
    """The penalty with the lowest val NLL found by the coordinate search, every point tried
    and the chosen model; `report(point)` is called as each point is done.

    Each setting in turn is moved up and down at once; the better side, if it lowers val NLL,
    is followed two points at a time while val NLL falls (up to MAX_MOVES points). The points
    of a batch are fitted `search.workers` at a time, all from the best model so far, so the
    search is the same whatever the number of workers."""
    check_search(start, vocab_size, train[0].shape[1], len(val[1]), search)
    val_table = count_table(*val[:2], vocab_size, val[2])
    train_table = count_table(*train[:2], vocab_size, train[2])
    points: list[PenaltyPoint] = []
    tried: dict[Penalty, float] = {}

    def fit(penalty: Penalty, warm: SuffixModel | None) -> tuple[SuffixModel, PenaltyPoint]:
        started = time.perf_counter()
        model = fit_point(penalty, train, vocab_size, warm, search.max_iter, search.tolerance)
        nlls = [table_nll(model.log_probs, t) for t in (train_table, val_table)]
        return model, PenaltyPoint(penalty, *nlls, time.perf_counter() - started)

    def best_of(trials: list[Penalty], warm: SuffixModel | None):
        """(index, model, val NLL) of the lowest val NLL among the trials; a point tried before
        is not fitted again (and, never better than the best so far, has no model)."""
        new = [p for p in dict.fromkeys(trials) if p not in tried]
        models = {}
        for model, point in pool.map(lambda p: fit(p, warm), new):  # in order
            points.append(point)
            tried[point.penalty], models[point.penalty] = point.val_nll, model
            if report is not None:
                report(point)
        i = min(range(len(trials)), key=lambda j: tried[trials[j]])
        return i, models.get(trials[i]), tried[trials[i]]

    # L-BFGS fits on 1.6 M weights: one thread each (a second one gains little and, on a
    # shared machine, costs several times the time); `workers` fits at a time
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(search.workers) as pool:
            chosen, model = _search(start, search, best_of)
    finally:
        torch.set_num_threads(threads)
    return chosen, points, model


def _search(start: Penalty, search: Search, best_of) -> tuple[Penalty, SuffixModel]:
    """The coordinate search from `start`, `best_of(trials, warm)` fitting each batch: the
    chosen penalty and its model."""
    current = start
    _, best, best_val = best_of([start], None)
    for factor in [search.step ** (0.5**r) for r in range(search.rounds)]:  # 2, sqrt(2), ...
        for setting, k in search_moves(start):
            trials = [current.moved(setting, k, factor), current.moved(setting, k, 1 / factor)]
            i, model, val_nll = best_of(trials, best)
            direction, moves = (factor, 1 / factor)[i], 1
            while val_nll < best_val:
                current, best, best_val = trials[i], model, val_nll
                if moves == MAX_MOVES or (moves > 1 and i < len(trials) - 1):
                    break  # as far as a setting goes in a round, or val NLL rose again
                trials = line(current, setting, k, direction, min(2, MAX_MOVES - moves))
                i, model, val_nll = best_of(trials, best)
                moves += i + 1
    return current, best


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
    workers: int = 2,
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
        workers: points fitted at a time, each on one thread (the search is the same for any
            number).
    """
    data.setup("fit")
    strengths = default_strengths(data.context_size) if start is None else start
    penalty = Penalty(
        tuple(float(s) for s in strengths),
        None if l1 is None else tuple(float(s) for s in l1),
        float(smoothing),
        *(None if v is None else tuple(float(s) for s in v) for v in (l1_by_count, l2_by_count)),
    )
    return _sweep(data, penalty, Search(rounds, step, max_iter, tolerance, workers))


def _sweep(data: NamesData, start: Penalty, search: Search) -> dict:
    started = time.perf_counter()
    train, val = data.examples("train"), data.examples("val")
    check_search(start, data.vocab_size, data.context_size, len(val[1]), search)
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
    penalty, points, model = choose_penalty(train, val, v, start, search, show)
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
