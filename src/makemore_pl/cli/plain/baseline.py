"""`baseline`: the counting model fitted on the train split, its NLL on every split."""

import math
from typing import Literal

from makemore_pl.core.data import NamesData
from makemore_pl.core.errors import CommandError
from makemore_pl.models.counting import (
    KNESER_NEY,
    CountingBaseline,
    tune_best,
    tune_discounts,
    tune_smoothing,
)

# --smoothing of `baseline` and `sample --counting`: add-k k, or how to choose the smoothing
Smoothing = float | Literal["auto", "kneser-ney", "kneser-ney-auto", "best"]


def baseline(data: NamesData, smoothing: Smoothing = "auto") -> dict[str, float]:
    """Prints the counting model's NLL on every split and returns them.

    Args:
        smoothing: add-k smoothing k; "auto" for the k with the lowest val NLL on a grid;
            "kneser-ney" for interpolated modified Kneser-Ney with discounts estimated from
            the counts; "kneser-ney-auto" for those discounts scaled by the factor with the
            lowest val NLL on a grid; "best" for whichever of the two choices on val is better
            there (what `test` compares a model with).
    """
    counting, c = counting_model(data, smoothing), data.context_size
    print(f"counting model, context_size {c}, {describe(counting, smoothing)}")
    results = {}
    for split in ("train", "val", "test"):
        counts = data.ngram_counts(split)  # streamed: no example tensors
        results[f"{split}_nll"] = counting.counts_nll(counts) if len(counts) else float("nan")
        print(f"{split}_nll {results[f'{split}_nll']:.5f} ({counts.total():,} examples)")
    return results


def counting_model(data: NamesData, smoothing: Smoothing = "auto") -> CountingBaseline:
    """The counting model fitted on the train split, its smoothing given or chosen on val."""
    if not isinstance(smoothing, str) and not 0 <= smoothing < math.inf:
        raise CommandError(
            f"--smoothing must be 0 or more, 'auto', 'kneser-ney', 'kneser-ney-auto' or 'best', "
            f"got {smoothing}"
        )
    # the data file is read a chunk at a time: memory for the distinct n-grams only
    train, val = data.ngram_counts("train"), data.ngram_counts("val")
    if smoothing in ("auto", "kneser-ney-auto", "best") and len(val) == 0:
        raise CommandError(f"--smoothing {smoothing} chooses on the val split, which is empty")
    v, c = data.vocab_size, data.context_size
    if smoothing == "auto":
        return tune_smoothing(CountingBaseline(v, c).fit_counts(train), val)
    if smoothing == "best":
        return tune_best(CountingBaseline(v, c).fit_counts(train), val)
    if smoothing == "kneser-ney-auto":
        return tune_discounts(CountingBaseline(v, c, KNESER_NEY).fit_counts(train), val)
    return CountingBaseline(v, c, smoothing).fit_counts(train)


def describe(counting: CountingBaseline, smoothing: Smoothing) -> str:
    """How the counting model smooths and why, e.g. 'smoothing 0.2 (lowest val_nll on the grid)'."""
    chosen = "lowest val_nll on the grid"
    if smoothing == "best":
        return f"{counting.describe()} (add-k or Kneser-Ney, the better on val)"
    if not counting.is_kneser_ney:
        return f"smoothing {counting.smoothing:g} ({chosen if smoothing == 'auto' else 'given'})"
    if smoothing == "kneser-ney-auto":
        return f"smoothing kneser-ney, discounts scaled by {counting.discount_scale:g} ({chosen})"
    return "smoothing kneser-ney (discounts from the counts of counts)"
