"""The dense model's weight table without the training stack: the size it may take, what a
saved one must hold, and its logits. `BigramLitModule` trains it; `sample` reads it back."""

from __future__ import annotations

import math
import reprlib
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from makemore_pl.contexts import context_rows
from makemore_pl.text import human_bytes

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


# BigramLitModule's settings and their defaults (tests/test_scoring.py keeps them in step)
DENSE_SETTINGS = {
    "vocab_size": 27,
    "context_size": 1,
    "encoding": "index",
    "l2": 0.001,
    "optimizer": "adam",
    "lr": None,
    "chars": None,
}


def at_least_float32(t: Tensor) -> Tensor:
    """Losses and NLLs are computed in float32 or better, also under 16-bit mixed precision."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


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
    return weights_problem(weights) or chars_problem(settings["chars"], v)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def weights_misfit(shape: tuple | None, v: Any, c: Any) -> str:
    return (
        f"not a makemore_pl model checkpoint (its weights W, of shape {shape}, do not fit "
        f"vocab_size {v!r} and context_size {c!r})"
    )


def weights_problem(weights: Tensor) -> str | None:
    if not weights.is_floating_point():
        return f"not a makemore_pl model checkpoint (its weights W are {weights.dtype}, not floats)"
    if not torch.isfinite(weights).all():
        return (
            "its weights W hold NaN or infinite values (the run that wrote it diverged); use an "
            "earlier checkpoint, or train again with a smaller --model.lr"
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
