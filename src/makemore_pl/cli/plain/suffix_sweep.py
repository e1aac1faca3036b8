"""`suffix_sweep`: the every-suffix model's penalty chosen on val (`models.penalty_search`), then
tested once; options: the search's settings and the penalty's, the L2 strengths as `--start`."""

import time

from makemore_pl.core.batches import count_table
from makemore_pl.core.data import NamesData
from makemore_pl.core.settings import describe, options_of
from makemore_pl.models.ngram import mean_nll
from makemore_pl.models.penalty_search import (
    PENALTY,
    PenaltyPoint,
    Search,
    choose_penalty,
    penalty_heading,
    penalty_text,
)
from makemore_pl.models.suffix_model import SuffixConfig

RENAMED = {"strengths": "start"}  # the L2 strengths: where the search starts
OPTIONS = [*options_of(SuffixConfig, PENALTY, RENAMED), *options_of(Search)]
SETTING = {name: f.name for name, f, _ in OPTIONS}  # option -> setting


def suffix_sweep(data: NamesData, **options) -> dict:
    """Prints every point tried, then the one look at test; returns the chosen penalty with its
    val and test NLL."""
    settings = {SETTING[name]: value for name, value in options.items()}
    search = Search(**{k: v for k, v in settings.items() if k in Search.names()})
    start = SuffixConfig(
        data.vocab_size, data.context_size, **{k: v for k, v in settings.items() if k in PENALTY}
    )
    started = time.perf_counter()
    train, val = data.examples("train"), data.examples("val")
    width = max(44, len(penalty_text(start)) + 8)

    def show(p: PenaltyPoint) -> None:
        if p.penalty is start:  # the first point: nothing is printed before the search runs
            print(f"{penalty_heading(start):<{width}} {'train_nll':>9} {'val_nll':>9} {'s':>5}")
        text = penalty_text(p.penalty)
        print(f"{text:<{width}} {p.train_nll:>9.5f} {p.val_nll:>9.5f} {p.seconds:>5.1f}")

    penalty, points, model = choose_penalty(train, val, start, search, show)
    best = min(points, key=lambda p: p.val_nll)
    x, y, weights = data.examples("test")
    test = mean_nll(model, count_table(x, y, data.vocab_size, weights))  # the one look at test
    chosen = {k: getattr(penalty, k) for k in PENALTY if getattr(penalty, k) is not None}
    if penalty.l1 is None:
        chosen.pop("smoothing")
    shown = ", ".join(f"{key} {value}" for key, value in chosen.items())
    print(
        f"chosen {shown}: val_nll {best.val_nll:.5f}, test_nll {test:.5f} "
        f"({len(points)} fits, {time.perf_counter() - started:.0f} s)"
    )
    return {**{k: getattr(penalty, k) for k in PENALTY}, "val_nll": best.val_nll, "test_nll": test}


describe(suffix_sweep, OPTIONS, ["data"])


def options_from_fit_config(config: dict) -> dict:
    """A fit config's suffix-model penalty, as this command's options (the search's start)."""
    model = config.get("model")
    suffix = isinstance(model, dict) and str(model.get("class_path")).endswith(".SuffixLitModule")
    settings = model.get("init_args") if suffix else None
    if not isinstance(settings, dict):
        return {}
    return {name: settings[s] for name, s in SETTING.items() if s in PENALTY and s in settings}
