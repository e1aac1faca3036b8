"""What every neural n-gram LightningModule shares: exact example-weighted NLLs, one step for
every stage, the DDP objective, sampling. The model's math comes from its plain module."""

from __future__ import annotations

import torch
from lightning.pytorch import LightningModule
from torch import Tensor, nn
from torchmetrics import MeanMetric

from makemore_pl.core.batches import Batch
from makemore_pl.core.sampling import sample
from makemore_pl.core.vocabulary import Vocabulary


class NgramLitModule(LightningModule):
    """What every neural n-gram model shares: exact example-weighted NLLs, one step for every
    stage, the DDP objective and `sample`.

    A subclass puts its plain model first among its bases, which gives `forward` ((B, c)
    contexts -> (B, V) logits), `nll_sum`, `penalty` and `log_probs`; it adds
    `configure_optimizers` and calls `_add_metrics` in its `__init__`.
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

    def _shared_step(self, batch: Batch, stage: str) -> Tensor:
        x, y, counts = batch
        nll_sum, total = self.nll_sum(x, y, counts)
        nll = nll_sum / total.clamp_min(1)
        if stage != "train" or self._first_evaluation_of_step():
            self._log_nll(stage, nll.detach(), total, len(y))
        if stage != "train":  # held out: the NLL alone (the penalty is a pass over all weights)
            return nll
        if self.trainer.world_size > 1:
            return self._global_objective(nll_sum, total)
        return nll + self.penalty()

    def _log_nll(self, stage: str, nll: Tensor, total: Tensor, batch_size: int) -> None:
        """Adds a batch's mean NLL over `total` examples to the stage's exact running mean."""
        metric = self.nll[f"{stage}_nll"]
        if metric.dtype != torch.float64:  # moving a metric (.to(device)) resets it to float32,
            metric.set_dtype(torch.float64)  # which would round each update before the sums
        metric.update(nll.double(), weight=total)
        epochwise = {"on_step": False, "on_epoch": True, "batch_size": batch_size}
        self.log(f"{stage}_nll", metric, prog_bar=stage == "val", **epochwise)
        if stage == "val":  # TensorBoard's hparams view ranks runs by hp_metric
            self.log("hp_metric", metric, **epochwise)

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

    def sample(self, num_samples: int, seed: int = 0, **kwargs) -> list[list[int]]:
        """Character ids of generated words; see `makemore_pl.core.sampling.sample`."""
        return sample(
            self.log_probs,
            self.hparams.context_size,
            num_samples,
            seed,
            device=self.device,
            **kwargs,
        )
