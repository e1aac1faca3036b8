"""Choosing the every-suffix model's penalty on val.

A coordinate search on a log scale: for each suffix length 1..c in turn, its L2 strength and,
when an L1 start is given, its L1 strength are doubled and halved, and the better side followed
while val NLL falls, the others held; then the L1 term's smoothing and the scales by count. A
second round moves by factors of sqrt(2). The empty suffix's strengths stay where they start:
its row sees every example, so they hardly matter. A value of 0 stays 0. Every point is the
model fitted to its optimum on train, warm-started from the best point so far; the two sides of
a move, and two points ahead along a side, are fitted at the same time.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor

from makemore_pl.core.batches import count_table
from makemore_pl.core.errors import CommandError
from makemore_pl.core.settings import Settings, number, setting, whole
from makemore_pl.core.threads import one_thread
from makemore_pl.models.ngram import mean_nll
from makemore_pl.models.suffix_fit import fit_suffix_model
from makemore_pl.models.suffix_model import SuffixConfig, SuffixModel

MAX_MOVES = 4  # steps in one direction per setting and round: at most 2**4 = 16 times
MAX_ROUNDS = 20  # the factor of round 20 is 2**(0.5**19), 1 + 1.3e-6: nothing moves
Examples = tuple[Tensor, Tensor, Tensor | None]  # X (N, c), Y (N,), weights (N,) or None
PENALTY = tuple(f.name for f in fields(SuffixConfig) if f.metadata.get("penalty"))


def rounds_problem(value: object) -> str | None:
    problem = whole(1, words="must be 1 or more")(value)
    if problem is None and value > MAX_ROUNDS:
        return f"must be at most {MAX_ROUNDS} (by then a move is a factor of 1), got {value}"
    return problem


def above_one(value: object) -> str | None:
    fits = isinstance(value, int | float) and 1 < value < math.inf
    return None if fits else f"must be a number above 1, got {value}"


@dataclass(frozen=True)
class Search(Settings):
    """How the penalty is searched: rounds, the first round's factor, each point's fit, and
    how many points are fitted at a time (each on one thread)."""

    rounds: int = setting(
        2,
        "search rounds: the first moves each strength by factors of 2, the next by sqrt(2), and "
        "so on.",
        rounds_problem,
    )
    max_iter: int = setting(
        500, "L-BFGS iterations at most per fitted point.", whole(1, words="must be 1 or more")
    )
    step: float = setting(
        2.0,
        "the factor of the first round (2: doubling and halving); each round after moves by "
        "the square root of the one before.",
        above_one,
    )
    tolerance: float = setting(
        1e-7,
        "each point is fitted, from the best point so far, until every gradient entry (per "
        "example) is at most this. A step in a strength moves the gradient by about the change "
        "/ N (5e-7 at N = 182,000), so this must stay well below that.",
        number(0, words="must be finite and 0 or more"),
    )
    workers: int = setting(
        2,
        "points fitted at a time, each on one thread (the search is the same for any number).",
        whole(1, words="must be 1 or more"),
    )


@dataclass
class PenaltyPoint:
    penalty: SuffixConfig
    train_nll: float
    val_nll: float
    seconds: float  # to fit this point


def penalty_key(config: SuffixConfig) -> tuple:
    """The penalty's values, hashable: what tells two points of the search apart."""
    values = (getattr(config, name) for name in PENALTY)
    return tuple(tuple(v) if isinstance(v, list) else v for v in values)


def penalty_text(config: SuffixConfig) -> str:
    """The penalty as the search prints it: the lists set, to 3 digits."""
    shown = []
    for name in PENALTY:
        value = getattr(config, name)
        if name == "smoothing" and config.l1 is not None:
            shown.append(f"{value:.3g}")
        elif isinstance(value, list):
            shown.append(f"[{', '.join(f'{s:.3g}' for s in value)}]")
    return " ".join(shown)


def penalty_heading(config: SuffixConfig) -> str:
    """What the columns of `penalty_text` hold."""
    heading = "L2 strengths (suffix lengths 0..c)"
    if config.l1 is not None:
        heading += ", L1 strengths, smoothing"
    for name, words in (("l1_by_count", "L1"), ("l2_by_count", "L2")):
        heading += f", {words} scales by count" if getattr(config, name) is not None else ""
    return heading


def moved(config: SuffixConfig, setting: str, k: int | None, factor: float) -> SuffixConfig:
    """The config with one penalty value multiplied by `factor`, rounded to 4 digits."""
    if k is None:
        return replace(config, **{setting: float(f"{getattr(config, setting) * factor:.4g}")})
    values = list(getattr(config, setting))
    values[k] = float(f"{values[k] * factor:.4g}")  # config-ready
    return replace(config, **{setting: values})


def search_moves(config: SuffixConfig) -> list[tuple[str, int | None]]:
    """The settings the search moves, in order: per length 1..c its L2 then its L1 strength
    (where not 0), then the smoothing when there is an L1 term, then the L2 and the L1 scales
    of entries seen 0, 1, 2 times (the 3+ entries' scales are the reference: the strengths per
    length set their level); a 0 is not moved."""
    moves = []
    for k in range(1, len(config.strengths)):
        moves.append(("strengths", k))
        if config.l1 is not None and config.l1[k] > 0:
            moves.append(("l1", k))
    if config.l1 is not None:
        moves.append(("smoothing", None))
    for name in ("l2_by_count", "l1_by_count"):
        scales = getattr(config, name)
        if scales is not None and (name == "l2_by_count" or config.l1 is not None):
            moves += [(name, k) for k in (0, 1, 2) if scales[k] > 0]
    return moves


def fit_point(
    config: SuffixConfig, train: Examples, warm: SuffixModel | None, search: Search
) -> SuffixModel:
    """A model of this penalty fitted on train in float64, starting from `warm`'s logits."""
    model = SuffixModel(config).double()
    model.build_table(*train)
    if warm is not None:
        with torch.no_grad():
            model.U.copy_(warm.theta / model.scale[:, None])
    table = count_table(*train[:2], config.vocab_size, train[2])
    fit_suffix_model(model, table, search.max_iter, search.tolerance)
    return model


def choose_penalty(
    train: Examples, val: Examples, start: SuffixConfig, search: Search = Search(), report=None
) -> tuple[SuffixConfig, list[PenaltyPoint], SuffixModel]:
    """The penalty with the lowest val NLL found by the coordinate search, every point tried
    and the chosen model; `report(point)` is called as each point is done.

    Each setting in turn is moved up and down at once; the better side, if it lowers val NLL,
    is followed two points at a time while val NLL falls (up to MAX_MOVES points). The points
    of a batch are fitted `search.workers` at a time, all from the best model so far, so the
    search is the same whatever the number of workers."""
    if len(val[1]) == 0:
        raise CommandError("choosing the penalty needs val examples: the val split is empty")
    v = start.vocab_size
    tables = [count_table(*split[:2], v, split[2]) for split in (train, val)]
    points: list[PenaltyPoint] = []
    tried: dict[tuple, float] = {}

    def fit(config: SuffixConfig, warm: SuffixModel | None) -> tuple[SuffixModel, PenaltyPoint]:
        started = time.perf_counter()
        model = fit_point(config, train, warm, search)
        nlls = [mean_nll(model, table) for table in tables]
        return model, PenaltyPoint(config, *nlls, time.perf_counter() - started)

    def best_of(trials: list[SuffixConfig], warm: SuffixModel | None):
        """(index, model, val NLL) of the lowest val NLL among the trials; a point tried before
        is not fitted again (and, never better than the best so far, has no model)."""
        new = list({penalty_key(p): p for p in trials if penalty_key(p) not in tried}.values())
        models = {}
        for model, point in pool.map(lambda p: fit(p, warm), new):  # in order
            points.append(point)
            key = penalty_key(point.penalty)
            tried[key], models[key] = point.val_nll, model
            if report is not None:
                report(point)
        i = min(range(len(trials)), key=lambda j: tried[penalty_key(trials[j])])
        return i, models.get(penalty_key(trials[i])), tried[penalty_key(trials[i])]

    # L-BFGS fits on 1.6 M weights: one thread each (a second one gains little and, on a
    # shared machine, costs several times the time); `workers` fits at a time
    with one_thread(), ThreadPoolExecutor(search.workers) as pool:
        chosen, model = _search(start, search, best_of)
    return chosen, points, model


def _search(start: SuffixConfig, search: Search, best_of) -> tuple[SuffixConfig, SuffixModel]:
    """The coordinate search from `start`, `best_of(trials, warm)` fitting each batch: the
    chosen penalty and its model."""
    current = start
    _, best, best_val = best_of([start], None)
    for factor in [search.step ** (0.5**r) for r in range(search.rounds)]:  # 2, sqrt(2), ...
        for name, k in search_moves(start):
            trials = [moved(current, name, k, factor), moved(current, name, k, 1 / factor)]
            i, model, val_nll = best_of(trials, best)
            direction, moves = (factor, 1 / factor)[i], 1
            while val_nll < best_val:
                current, best, best_val = trials[i], model, val_nll
                if moves == MAX_MOVES or (moves > 1 and i < len(trials) - 1):
                    break  # as far as a setting goes in a round, or val NLL rose again
                trials = []
                for _ in range(min(2, MAX_MOVES - moves)):  # the next points along the line
                    trials.append(moved(trials[-1] if trials else current, name, k, direction))
                i, model, val_nll = best_of(trials, best)
                moves += i + 1
    return current, best
