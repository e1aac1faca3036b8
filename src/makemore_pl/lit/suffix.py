"""`SuffixLitModule`: the every-suffix model (`makemore_pl.models.suffix`) trained by the
Lightning Trainer: full-batch L-BFGS, its table built from the data module's training split."""

from __future__ import annotations

import torch

from makemore_pl.core.errors import CheckpointError, DataError, SettingError
from makemore_pl.lit.module import NgramLitModule
from makemore_pl.models.suffix import SuffixModel
from makemore_pl.models.suffixes import suffix_checkpoint_problem


class LeanLBFGS(torch.optim.LBFGS):
    """L-BFGS whose checkpointed state is empty: its curvature memory (2 x history_size copies of
    the weights, 0.5 GB at c = 5) is rebuilt in a few steps after a resume."""

    def state_dict(self) -> dict:
        return {**super().state_dict(), "state": {}}


class SuffixLitModule(SuffixModel, NgramLitModule):
    """The every-suffix model; see `makemore_pl.models.suffix.SuffixModel`.

    Its table is built from the training split in `setup` and kept as buffers, so a checkpoint
    holds it.
    """

    def __init__(
        self,
        vocab_size: int = 27,
        context_size: int = 1,
        strengths: list[float] | None = None,
        shortest: int = 0,
        max_iter: int = 100,
        history_size: int = 20,
        tolerance: float = 1e-9,
        chars: list[str] | None = None,
    ) -> None:
        """
        Args:
            vocab_size: V, tokens including the boundary (set from the data).
            context_size: characters of context, c (set from the data).
            strengths: L2 strength of the rows of each suffix length 0..c, in examples (c + 1
                values; None: 1 for the empty suffix, 0.25 for the others, near the best on
                names.txt). Choose them on val with `suffix_sweep`.
            shortest: suffixes shorter than this get no rows; c leaves only the full context,
                the dense model's rows.
            max_iter: L-BFGS iterations (strong-Wolfe line search) per training step; a step is
                one full batch, so an epoch is one step.
            history_size: L-BFGS curvature pairs kept.
            tolerance: training stops moving once every gradient entry (in the U coordinates)
                is below this.
            chars: the data's characters in index order, kept so a checkpoint can generate
                without the data file (set from the data).
        """
        for name, value, least in (("max_iter", max_iter, 1), ("history_size", history_size, 1)):
            if value < least:
                raise SettingError(name, f"must be {least} or more, got {value}")
        if not tolerance >= 0:
            raise SettingError("tolerance", f"must be 0 or more, got {tolerance}")
        super().__init__(vocab_size, context_size, strengths, shortest, chars)
        self.save_hyperparameters()
        self.hparams.strengths = self.strengths
        self._add_metrics()

    def on_fit_start(self) -> None:
        # L-BFGS on a few hundred thousand weights: a second CPU thread gains little and, on a
        # shared machine, makes the c = 5 fit several times slower (47 s on one, 7 min on two)
        self._threads = torch.get_num_threads()
        torch.set_num_threads(1)

    def on_fit_end(self) -> None:
        torch.set_num_threads(self._threads)

    def setup(self, stage: str) -> None:
        if len(self.keys) or self.trainer is None or self.trainer.datamodule is None:
            return  # built already, or loaded from a checkpoint
        data = self.trainer.datamodule
        if getattr(data, "encoding", "index") != "index":
            raise DataError("the suffix model reads context ids: set --data.encoding index")
        self.build_table(*data.examples("train"))
        if not len(self.keys):
            raise DataError("the suffix model needs training examples: the train split is empty")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        hp = self.hparams
        return LeanLBFGS(
            self.parameters(),
            lr=1.0,
            max_iter=hp.max_iter,
            history_size=hp.history_size,
            tolerance_grad=hp.tolerance,
            tolerance_change=0.0,
            line_search_fn="strong_wolfe",
        )

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Resizes the table to the checkpoint's before Lightning loads its state dict."""
        state = checkpoint.get("state_dict", {})
        problem = self.checkpoint_problem(dict(self.hparams), state)
        if problem is not None:
            raise CheckpointError(f"not a suffix model checkpoint: {problem}")
        self.resize_to(state)  # loads as it was saved

    @classmethod
    def checkpoint_problem(cls, hparams: dict, state_dict: dict) -> str | None:
        """Why these settings and tensors cannot be a SuffixLitModule, or None."""
        return suffix_checkpoint_problem(hparams, state_dict)
