"""`BigramLitModule`: the dense table W trained by the Lightning Trainer, cross-entropy + L2."""

from __future__ import annotations

from typing import Literal

import torch

from makemore_pl.lit.module import NgramLitModule
from makemore_pl.models.dense import DenseTable, check_lr, dense_checkpoint_problem

DEFAULT_LR = {"sgd": 50.0, "adam": 0.5, "lbfgs": 1.0}


class BigramLitModule(DenseTable, NgramLitModule):
    """logits = W[context] (index) or one_hot(context) @ W (one-hot): the same numbers.

    With `context_size` c, W has one row per joint context, V**c rows of V logits.
    """

    def __init__(
        self,
        vocab_size: int = 27,
        context_size: int = 1,
        encoding: Literal["index", "onehot"] = "index",
        l2: float = 0.001,
        optimizer: Literal["sgd", "adam", "lbfgs"] = "adam",
        lr: float | None = None,
        chars: list[str] | None = None,
    ) -> None:
        """
        Args:
            vocab_size: V, tokens including the boundary (set from the data).
            context_size: characters of context, c (set from the data).
            encoding: how a context selects its row: "index" looks it up, "onehot" multiplies
                one_hot(context) @ W as in the lecture (set from the data).
            l2: weight of the (W**2).mean() penalty; plays the role of count smoothing (0.001 is
                best on val for the bigram, 0.01 for the trigram).
            optimizer: "sgd" (the lecture's), "adam" or "lbfgs" (one L-BFGS iteration per step,
                with a strong-Wolfe line search).
            lr: learning rate; None takes the optimizer's default (sgd 50, adam 0.5, lbfgs 1);
                0 leaves W as it is (to measure a model's train_nll).
            chars: the data's characters in index order, kept so a checkpoint can generate
                without the data file (set from the data).
        """
        check_lr(lr)
        super().__init__(vocab_size, context_size, encoding, l2, chars)
        self.save_hyperparameters()
        self._add_metrics()

    @classmethod
    def checkpoint_problem(cls, hparams: dict, state_dict: dict) -> str | None:
        """What makes these checkpoint contents unusable for this class, or None."""
        return dense_checkpoint_problem(hparams, state_dict)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        name, params = self.hparams.optimizer, self.parameters()
        lr = self.hparams.lr if self.hparams.lr is not None else DEFAULT_LR[name]
        if name == "sgd":
            return torch.optim.SGD(params, lr=lr)
        if name == "adam":
            return torch.optim.Adam(params, lr=lr)
        return torch.optim.LBFGS(params, lr=lr, max_iter=1, line_search_fn="strong_wolfe")
