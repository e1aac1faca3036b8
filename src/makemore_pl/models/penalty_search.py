"""Choosing the every-suffix model's penalty on val by a coordinate search on a log scale: each
setting in turn (per suffix length 1..c its L2 and L1 strengths, then the smoothing and the
scales by count) doubled and halved, the better side followed while val NLL falls; a second
round moves by sqrt(2). The empty suffix's strengths stay (its row sees every example), and a
0 stays 0. Every point is fitted to its optimum on train, warm-started from the best so far.
"""

import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor

from makemore_pl.core.batches import count_table
from makemore_pl.core.errors import CommandError
from makemore_pl.core.settings import Settings, number, setting
from makemore_pl.core.threads import one_thread
from makemore_pl.models.ngram import mean_nll
from makemore_pl.models.suffix_fit import fit_suffix_model
from makemore_pl.models.suffix_model import ONE_OR_MORE, SuffixConfig, SuffixModel

MAX_MOVES = 4  # steps in one direction per setting and round: at most 2**4 = 16 times
MAX_ROUNDS = 20  # the factor of round 20 is 2**(0.5**19), 1 + 1.3e-6: nothing moves
Examples = tuple[Tensor, Tensor, Tensor | None]  # X (N, c), Y (N,), weights (N,) or None
PENALTY = tuple(f.name for f in fields(SuffixConfig) if f.metadata.get("penalty"))


def rounds_problem(value: object) -> str | None:
    problem = ONE_OR_MORE(value)
    if problem is None and value > MAX_ROUNDS:
        return f"must be at most {MAX_ROUNDS} (by then a move is a factor of 1), got {value}"
    return problem


def above_one(value: object) -> str | None:
    fits = isinstance(value, int | float) and 1 < value < math.inf
    return None if fits else f"must be a number above 1, got {value}"


@dataclass(frozen=True)
class Search(Settings):
    """How the penalty is searched: rounds, factor, each point's fit, points at a time."""

    rounds: int = setting(
        2,
        "search rounds: the first moves each strength by factors of 2, the next by sqrt(2), ...",
        rounds_problem,
    )
    max_iter: int = setting(500, "L-BFGS iterations at most per fitted point.", ONE_OR_MORE)
    step: float = setting(
        2.0,
        "the first round's factor (2: doubling and halving); each next round's is its square root.",
        above_one,
    )
    tolerance: float = setting(
        1e-7,
        "each point is fitted from the best so far until every gradient entry (per example) is at "
        "most this: well below a strength step's effect, about the change / N (5e-7 at N = 182k).",
        number(0, words="must be finite and 0 or more"),
    )
    workers: int = setting(
        2,
        "points fitted at a time, each on one thread (the search is the same for any number).",
        ONE_OR_MORE,
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
    """The settings moved, in order: not a 0, nor the 3+ scales (the strengths set their level)."""
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


def choose_penalty(
    train: Examples, val: Examples, start: SuffixConfig, search: Search = Search(), report=None
) -> tuple[SuffixConfig, list[PenaltyPoint], SuffixModel]:
    """The penalty of the lowest val NLL found, every point tried and the chosen model;
    `report(point)` as each point is done. The points of a batch are fitted `search.workers` at
    a time, all from the best model so far: the search is the same for any number of workers."""
    if len(val[1]) == 0:
        raise CommandError("choosing the penalty needs val examples: the val split is empty")
    v = start.vocab_size
    tables = [count_table(*split[:2], v, split[2]) for split in (train, val)]
    points: list[PenaltyPoint] = []
    tried: dict[tuple, float] = {}

    def fit(config: SuffixConfig, warm: SuffixModel | None) -> tuple[SuffixModel, PenaltyPoint]:
        """The model of this penalty fitted on train in float64, from `warm`'s logits."""
        started = time.perf_counter()
        model = SuffixModel(config).double()
        model.build_table(*train)
        if warm is not None:
            with torch.no_grad():
                model.U.copy_(warm.theta / model.scale[:, None])
        fit_suffix_model(model, tables[0], search.max_iter, search.tolerance)
        nlls = [mean_nll(model, table) for table in tables]
        return model, PenaltyPoint(config, *nlls, time.perf_counter() - started)

    def best_of(trials: list[SuffixConfig], warm: SuffixModel | None):
        """(index, model, val NLL) of the best trial; one tried before is not fitted again."""
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

    # one thread per fit: a second gains little and, on a shared machine, costs several times
    with one_thread(), ThreadPoolExecutor(search.workers) as pool:
        chosen, model = _search(start, search, best_of)
    return chosen, points, model


def _search(start: SuffixConfig, search: Search, best_of) -> tuple[SuffixConfig, SuffixModel]:
    """The chosen penalty and its model: both sides of a move at once, then two points ahead."""
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
