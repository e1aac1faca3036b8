"""The dense model: one weight table W of V**c rows of V logits, looked up by the joint context
(index encoding) or multiplied by its one-hot row (one-hot encoding): the same numbers.

`DenseTable` is its math in plain torch: logits, the NLL sum, the L2 penalty; the size it may
take and what a saved one must hold. `BigramLitModule` trains it; `sweep` fits it exactly and
`sample` reads it back, neither with the training stack."""

from __future__ import annotations

import math
import reprlib
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from makemore_pl.core.contexts import check_sizes, context_rows
from makemore_pl.core.data import one_hot_rows
from makemore_pl.core.devices import sum_dtype
from makemore_pl.core.errors import DataError, SettingError
from makemore_pl.core.text import human_bytes
from makemore_pl.models.ngram import NgramModel, at_least_float32

# A fixed cap, not a share of this machine's memory, so that a model (or a checkpoint) that
# builds on one machine builds on every other. 2**27 float32 cells are 537 MB for W; training
# holds W, its gradient and Adam's two moments, about 2.1 GB. That admits names.txt up to
# context_size 4 (57 MB) and a 3,921-character bigram (61 MB), and refuses context_size 5
# (1.5 GB), where the counting model is the better tool anyway.
MAX_WEIGHT_CELLS = 2**27
BYTES_PER_CELL = 4  # float32


def table_size_problem(vocab_size: int, context_size: int) -> str | None:
    """Why a W of V**c x V cells cannot be built, before anything is allocated; None if it can."""
    # in logarithms: V**c of a hostile c (10**9) would take minutes to compute as an integer
    log_cells = (context_size + 1) * math.log(max(vocab_size, 1))
    if log_cells <= math.log(MAX_WEIGHT_CELLS):
        return None
    log10_bytes = log_cells / math.log(10) + math.log10(BYTES_PER_CELL)
    size = human_bytes(10**log10_bytes) if log10_bytes < 27 else f"10^{log10_bytes:.0f} bytes"
    limit = human_bytes(MAX_WEIGHT_CELLS * BYTES_PER_CELL)
    return (
        f"context_size {context_size} with vocab_size {vocab_size} needs a {size} weight table "
        f"(the limit is {limit}); use the counting model (`baseline`, `sample --counting true`) "
        "with --smoothing kneser-ney, which stores only the n-grams seen"
    )


# the settings a saved dense model holds, and their defaults (BigramLitModule's own:
# tests/test_registry.py keeps them in step with its signature)
DENSE_SETTINGS = {
    "vocab_size": 27,
    "context_size": 1,
    "encoding": "index",
    "l2": 0.001,
    "optimizer": "adam",
    "lr": None,
    "chars": None,
}


class DenseTable(NgramModel):
    """logits = W[context] (index) or one_hot(context) @ W (one-hot), W of shape (V**c, V)."""

    def __init__(
        self,
        vocab_size: int = 27,
        context_size: int = 1,
        encoding: str = "index",
        l2: float = 0.001,
        chars: list[str] | None = None,
    ) -> None:
        super().__init__()
        check_settings(vocab_size, context_size, l2, chars)
        self.vocab_size, self.context_size, self.encoding, self.l2 = (
            vocab_size,
            context_size,
            encoding,
            l2,
        )
        self.W = nn.Parameter(torch.zeros(vocab_size**context_size, vocab_size))

    def forward(self, x: Tensor) -> Tensor:
        """(B, c) context ids, or (B, V**c) one-hot rows -> (B, V) logits."""
        # a one-hot product only selects rows of W; under 16-bit autocast it would round W to
        # 3 digits first, so it runs in W's own precision and NLLs stay float32 or better
        with torch.autocast(x.device.type, enabled=False):
            if x.is_floating_point():
                return x.to(self.W.dtype) @ self.W
            if self.encoding == "onehot":
                rows = context_rows(x, self.vocab_size)
                return one_hot_rows(rows, len(self.W), self.W.dtype) @ self.W
            return dense_logits(self.W, x, self.vocab_size)

    def nll_sum(self, x: Tensor, y: Tensor, counts: Tensor) -> tuple[Tensor, Tensor]:
        """(sum of counts[i] * cross-entropy of row i, sum of counts), summed in float64 where
        the device has it: a float32 sum would round differently however the rows are split
        between devices. (Without float64, MPS, the training module sums its NLLs on the host.)"""
        per_row = self.nll_rows(x, y)
        return (per_row.to(sum_dtype(per_row.device)) * counts).sum(), counts.sum()

    def penalty(self) -> Tensor:
        return self.l2 * at_least_float32(self.W).pow(2).mean()

    @torch.no_grad()
    def log_probs(self, x: Tensor) -> Tensor:
        """(B, c) contexts -> (B, V) float32 log-probabilities."""
        return torch.log_softmax(self(x).float(), dim=-1)


def check_settings(vocab_size: int, context_size: int, l2: float, chars: list | None) -> None:
    """Settings that would allocate too much, or train to nothing, fail here in one line."""
    check_sizes(vocab_size, context_size)
    if not (math.isfinite(l2) and l2 >= 0):
        raise SettingError("l2", f"must be 0 or more, got {l2}")
    problem = table_size_problem(vocab_size, context_size)
    if problem is not None:
        raise SettingError("context_size", problem.removeprefix("context_size "))
    if chars is not None and len(chars) + 1 != vocab_size:
        raise DataError(f"chars has {len(chars)} characters but vocab_size is {vocab_size}")


def check_lr(lr: float | None) -> None:
    if lr is not None and not (math.isfinite(lr) and lr >= 0):  # 0 freezes W, to measure it
        raise SettingError("lr", f"must be 0 or more, got {lr}")


def dense_logits(W: Tensor, x: Tensor, vocab_size: int) -> Tensor:
    """(B, c) context ids -> (B, V) logits: the rows of W. F.embedding is W[rows] with a
    deterministic backward (W[rows] accumulates its gradient in a thread-dependent order:
    identical runs would drift apart by ~1e-4)."""
    return F.embedding(context_rows(x, vocab_size), W)


def dense_checkpoint_problem(hparams: dict, state_dict: dict) -> str | None:
    """What makes checkpoint contents unusable as a dense table, as the rest of a line after
    "--ckpt_path PATH: "; None if they build one. Tensors are already known to be backed by
    real bytes of the file."""

    settings = {**DENSE_SETTINGS, **hparams}
    v, c, weights = settings["vocab_size"], settings["context_size"], state_dict.get("W")
    extra = sorted(map(str, set(state_dict) - {"W"}))
    if extra:
        return f"not a makemore_pl model checkpoint (unknown weights: {', '.join(extra)})"
    if not (is_int(v) and is_int(c) and v >= 1 and c >= 1):
        return (
            f"not a makemore_pl model checkpoint (vocab_size {v!r} and context_size {c!r}; "
            "both must be whole numbers of 1 or more)"
        )
    shape = tuple(weights.shape) if isinstance(weights, Tensor) else None
    # a W whose bytes are all in the file cannot be of a hostile size: V**c is then small
    if shape is None or len(shape) != 2 or shape[1] != v or math.log(v) * c > 64 * math.log(2):
        return weights_misfit(shape, v, c)
    if shape[0] != v**c:
        return weights_misfit(shape, v, c)
    return (
        weights_problem(weights) or chars_problem(settings["chars"], v) or ranges_problem(settings)
    )


def ranges_problem(settings: dict) -> str | None:
    """The checks the model makes when it is built (l2, lr, its size), as a checkpoint's."""
    l2, lr = settings["l2"], settings["lr"]
    if not is_number(l2) or not (lr is None or is_number(lr)):
        return f"its settings l2 {l2!r} and lr {lr!r} must be numbers (lr may be None)"
    try:
        check_settings(settings["vocab_size"], settings["context_size"], l2, settings["chars"])
        check_lr(lr)
    except SettingError as err:
        return f"its setting {err}"
    return None


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def weights_misfit(shape: tuple | None, v: Any, c: Any) -> str:
    return (
        f"not a makemore_pl model checkpoint (its weights W, of shape {shape}, do not fit "
        f"vocab_size {v!r} and context_size {c!r})"
    )


# no trained table comes near: softmax saturates long before, and the L2 term pulls weights to 0
MAX_WEIGHT = 1e6


def weights_problem(weights: Tensor) -> str | None:
    if not weights.is_floating_point():
        return f"not a makemore_pl model checkpoint (its weights W are {weights.dtype}, not floats)"
    if not torch.isfinite(weights).all():
        return (
            "its weights W hold NaN or infinite values (the run that wrote it diverged); use an "
            "earlier checkpoint, or train again with a smaller --model.lr"
        )
    largest = weights.abs().max().item() if weights.numel() else 0.0
    if largest > MAX_WEIGHT:
        return (
            f"its weights W reach {largest:.3g}, far beyond any trained model's (at most "
            f"{MAX_WEIGHT:g}): the file is corrupted or the run diverged; use an earlier checkpoint"
        )
    return None


def chars_problem(chars: Any, vocab_size: int) -> str | None:
    """The saved vocabulary: None (take it from the data) or vocab_size - 1 distinct characters."""
    if chars is None:
        return None
    valid = isinstance(chars, list) and all(isinstance(ch, str) and len(ch) == 1 for ch in chars)
    if valid and len(set(chars)) == len(chars) == vocab_size - 1:
        return None
    return (
        f"not a makemore_pl model checkpoint (its characters {reprlib.repr(chars)} are not "
        f"vocab_size - 1 = {vocab_size - 1} distinct characters)"
    )
