"""The dense model: one weight table W of V**c rows of V logits, looked up by the joint context
(index encoding) or multiplied by its one-hot row (one-hot encoding): the same numbers."""

import math
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from makemore_pl.core.batches import one_hot_rows
from makemore_pl.core.contexts import context_rows
from makemore_pl.core.errors import SettingError
from makemore_pl.core.settings import number, one_of, optional, setting
from makemore_pl.core.text import human_bytes
from makemore_pl.models.ngram import (
    NgramConfig,
    NgramModel,
    at_least_float32,
    chars_setting,
    is_sized,
)

# fixed, not a share of this machine's memory, so a model that builds here builds everywhere:
# 537 MB for W, 2.1 GB with Adam; names.txt up to context_size 4 (57 MB), not 5 (1.5 GB)
MAX_WEIGHT_CELLS = 2**27
BYTES_PER_CELL = 4  # float32
DEFAULT_LR = {"sgd": 50.0, "adam": 0.5, "lbfgs": 1.0}


@dataclass(frozen=True)
class DenseConfig(NgramConfig):
    """The dense model's settings (`--model.*` of BigramLitModule)."""

    encoding: Literal["index", "onehot"] | None = setting(
        None,
        'how a context selects its row: "index" looks it up, "onehot" multiplies '
        "one_hot(context) @ W as in the lecture (None: the data's).",
        optional(one_of("index", "onehot")),
    )
    l2: float = setting(
        0.001,
        "weight of the (W**2).mean() penalty; plays the role of count smoothing (0.001 is best "
        "on val for the bigram, 0.01 for the trigram).",
        number(0),
    )
    optimizer: Literal["sgd", "adam", "lbfgs"] = setting(
        "adam",
        '"sgd" (the lecture\'s), "adam" or "lbfgs" (one L-BFGS iteration per step, with a '
        "strong-Wolfe line search).",
        one_of("sgd", "adam", "lbfgs"),
    )
    lr: float | None = setting(
        None,
        "learning rate; None takes the optimizer's default (sgd 50, adam 0.5, lbfgs 1); 0 leaves "
        "W as it is (to measure a model's train_nll).",
        number(0, optional=True),
    )
    chars: list[str] | None = chars_setting()

    def check(self) -> None:
        super().check()
        if not is_sized(self):
            return  # checked once the data gives them
        problem = table_size_problem(self.vocab_size, self.context_size)
        if problem is not None:
            raise SettingError("context_size", problem.removeprefix("context_size "))

    @property
    def learning_rate(self) -> float:
        """The lr in use: the one given, or the optimizer's default."""
        return DEFAULT_LR[self.optimizer] if self.lr is None else self.lr

    def hparams(self) -> dict:
        return {**super().hparams(), "lr": self.learning_rate}


def table_size_problem(vocab_size: int, context_size: int) -> str | None:
    """Why a W of V**c x V cells cannot be built, before anything is allocated; None if it can."""
    # in logarithms: V**c of a hostile c (10**9) would take minutes as an integer
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


class DenseTable(NgramModel):
    """logits = W[context] (index) or one_hot(context) @ W (one-hot), W of shape (V**c, V)."""

    config_class = DenseConfig

    def __init__(self, config: DenseConfig) -> None:
        super().__init__(config)
        v, c = config.vocab_size, config.context_size
        self.W = nn.Parameter(torch.zeros(v**c, v))

    def forward(self, x: Tensor) -> Tensor:
        """(B, c) context ids, or (B, V**c) one-hot rows -> (B, V) logits."""
        # 16-bit autocast would round W to 3 digits first: a one-hot product only selects rows
        # (left only when on: entering a context costs a small step more than its ops)
        on, kind = torch.is_autocast_enabled(x.device.type), x.device.type
        with torch.autocast(kind, enabled=False) if on else nullcontext():
            if x.is_floating_point():
                return x.to(self.W.dtype) @ self.W
            if self.config.encoding == "onehot":
                rows = context_rows(x, self.vocab_size)
                return one_hot_rows(rows, len(self.W), self.W.dtype) @ self.W
            # F.embedding: W[rows] with a deterministic backward (W[rows]'s drifts by ~1e-4)
            return F.embedding(context_rows(x, self.vocab_size), self.W)

    def penalty(self) -> Tensor:
        return self.config.l2 * at_least_float32(self.W).pow(2).mean()
