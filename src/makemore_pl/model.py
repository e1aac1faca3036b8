"""The neural n-gram models' shared steps, and the dense one: one weight table W, trained with
cross-entropy plus an L2 term."""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from torch import Tensor, nn
from torchmetrics import MeanMetric

from makemore_pl.batches import Batch
from makemore_pl.data import DataError, Vocabulary, joint_context, one_hot_rows
from makemore_pl.dense_table import (
    at_least_float32,
    dense_checkpoint_problem,
    dense_logits,
    table_size_problem,
)
from makemore_pl.errors import CommandError
from makemore_pl.sampling import sample

DEFAULT_LR = {"sgd": 50.0, "adam": 0.5, "lbfgs": 1.0}


class NgramLitModule(LightningModule):
    """What every neural n-gram model shares: exact example-weighted NLLs, one step for every
    stage, the DDP objective, `log_probs` and `sample`.

    A subclass gives `forward` ((B, c) contexts -> (B, V) logits), `penalty` and
    `configure_optimizers`, and calls `_add_metrics` in its `__init__`.
    """

    def _add_metrics(self) -> None:
        # float64 running sums: exact example-weighted means over an epoch, synced across devices
        self.nll = nn.ModuleDict(
            {
                f"{stage}_nll": MeanMetric().set_dtype(torch.float64)
                for stage in ("train", "val", "test")
            }
        )
        self._counted_step = -1

    @property
    def vocab(self) -> Vocabulary | None:
        chars = self.hparams.chars
        return None if chars is None else Vocabulary(chars)

    def objective(
        self, x: Tensor, y: Tensor, counts: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """(loss, nll) on these examples: the mean cross-entropy, and that plus the L2 term.

        With `counts`, row i stands for counts[i] identical examples: the mean is weighted.
        """
        nll = self.data_nll(x, y, counts)
        return nll + self.penalty(), nll

    def data_nll(self, x: Tensor, y: Tensor, counts: Tensor | None = None) -> Tensor:
        if counts is None:
            return F.cross_entropy(at_least_float32(self(x)), y)
        nll_sum, total = self._nll_sum(x, y, counts)
        return nll_sum / total.clamp_min(1)  # an empty shard gives 0

    def _nll_sum(self, x: Tensor, y: Tensor, counts: Tensor) -> tuple[Tensor, Tensor]:
        """(sum of counts[i] * cross-entropy of row i, sum of counts), summed in float64: a
        float32 sum would round differently however the rows are split between devices."""
        per_row = F.cross_entropy(at_least_float32(self(x)), y, reduction="none")
        return (per_row.double() * counts).sum(), counts.sum()

    def _shared_step(self, batch: Batch, stage: str) -> Tensor:
        x, y, counts = batch
        nll_sum, total = self._nll_sum(x, y, counts)
        nll = nll_sum / total.clamp_min(1)
        metric = self.nll[f"{stage}_nll"]
        if metric.dtype != torch.float64:  # moving a metric (.to(device)) resets it to float32,
            metric.set_dtype(torch.float64)  # which would round each update before the sums
        if stage != "train" or self._first_evaluation_of_step():
            metric.update(nll.detach().double(), weight=total)
        epochwise = {"on_step": False, "on_epoch": True, "batch_size": len(y)}
        self.log(f"{stage}_nll", metric, prog_bar=stage == "val", **epochwise)
        if stage == "val":  # TensorBoard's hparams view ranks runs by hp_metric
            self.log("hp_metric", metric, **epochwise)
        if stage == "train" and self.trainer.world_size > 1:
            return self._global_objective(nll_sum, total)
        return nll + self.penalty()

    def _global_objective(self, nll_sum: Tensor, total: Tensor) -> Tensor:
        """This process's share of the global batch's objective.

        DDP averages gradients over the R processes, so the local NLL sum is scaled by
        R / (global example count), and process 0 alone carries R times the L2 term: their
        average is then exactly the one-device gradient, however unevenly the rows are split
        (bit for bit when R is a power of two and each context's rows are on one process).
        The value is the global objective, so that L-BFGS line searches agree across processes.
        """
        strategy, world = self.trainer.strategy, self.trainer.world_size
        total = total.detach().to(torch.float64, copy=True)  # reduced in place
        global_total = strategy.reduce(total, reduce_op="sum")
        penalty = self.penalty()
        share = nll_sum * (world / global_total)
        share = share + penalty * world if self.trainer.global_rank == 0 else share + 0 * penalty
        global_nll = strategy.reduce(nll_sum.detach().clone(), reduce_op="sum") / global_total
        return share + (global_nll + penalty - share).detach()

    def _first_evaluation_of_step(self) -> bool:
        """L-BFGS evaluates the loss several times per step; a step's examples count once."""
        first = self._counted_step != self.global_step
        self._counted_step = self.global_step
        return first

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        loss = self._shared_step(batch, "train")
        self.log("train_loss", loss, on_step=True, prog_bar=True, batch_size=len(batch[1]))
        return loss

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._shared_step(batch, "val")

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._shared_step(batch, "test")

    @torch.no_grad()
    def predict_step(self, batch: Batch, batch_idx: int) -> Tensor:
        """(B,) float64 log-probability of each example's next character."""
        x, y, _ = batch
        return torch.log_softmax(self(x).double(), dim=-1).gather(1, y[:, None])[:, 0]

    @torch.no_grad()
    def log_probs(self, x: Tensor) -> Tensor:
        """(B, c) contexts -> (B, V) log-probabilities."""
        return torch.log_softmax(self(x).float(), dim=-1)

    def sample(self, num_samples: int, seed: int = 0, **kwargs) -> list[list[int]]:
        """Character ids of generated words; see `makemore_pl.sampling.sample`."""
        return sample(
            self.log_probs,
            self.hparams.context_size,
            num_samples,
            seed,
            device=self.device,
            **kwargs,
        )


class BigramLitModule(NgramLitModule):
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
        super().__init__()
        check_settings(vocab_size, context_size, l2, lr)
        if chars is not None and len(chars) + 1 != vocab_size:
            raise DataError(f"chars has {len(chars)} characters but vocab_size is {vocab_size}")
        self.save_hyperparameters()
        self.W = nn.Parameter(torch.zeros(vocab_size**context_size, vocab_size))
        self._add_metrics()

    @classmethod
    def checkpoint_problem(cls, hparams: dict, state_dict: dict) -> str | None:
        """What makes these checkpoint contents unusable for this class, or None."""
        return dense_checkpoint_problem(hparams, state_dict)

    def forward(self, x: Tensor) -> Tensor:
        """(B, c) context ids, or (B, V**c) one-hot rows -> (B, V) logits."""
        # a one-hot product only selects rows of W; under 16-bit autocast it would round W to
        # 3 digits first, so it runs in W's own precision and NLLs stay float32 or better
        with torch.autocast(x.device.type, enabled=False):
            if x.is_floating_point():
                return x.to(self.W.dtype) @ self.W
            if self.hparams.encoding == "onehot":
                rows = joint_context(x, self.hparams.vocab_size)
                return one_hot_rows(rows, len(self.W), self.W.dtype) @ self.W
            return dense_logits(self.W, x, self.hparams.vocab_size)

    def penalty(self) -> Tensor:
        return self.hparams.l2 * at_least_float32(self.W).pow(2).mean()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        name, params = self.hparams.optimizer, self.parameters()
        lr = self.hparams.lr if self.hparams.lr is not None else DEFAULT_LR[name]
        if name == "sgd":
            return torch.optim.SGD(params, lr=lr)
        if name == "adam":
            return torch.optim.Adam(params, lr=lr)
        return torch.optim.LBFGS(params, lr=lr, max_iter=1, line_search_fn="strong_wolfe")


def check_settings(vocab_size: int, context_size: int, l2: float, lr: float | None) -> None:
    """Settings that would allocate too much, or train to nothing, fail here in one line."""
    if vocab_size < 1 or context_size < 1:
        raise CommandError(
            f"vocab_size and context_size must be 1 or more, got {vocab_size} and {context_size}"
        )
    if not (math.isfinite(l2) and l2 >= 0):
        raise CommandError(f"--model.l2 must be 0 or more, got {l2}")
    if lr is not None and not (math.isfinite(lr) and lr >= 0):  # 0 freezes W, to measure it
        raise CommandError(f"--model.lr must be 0 or more, got {lr}")
    problem = table_size_problem(vocab_size, context_size)
    if problem is not None:
        raise CommandError(problem)
