"""What every n-gram LightningModule shares: exact NLLs, one step per stage, the DDP objective."""

import math
from typing import ClassVar

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor
from torchmetrics import MeanMetric

from makemore_pl.core.batches import Batch
from makemore_pl.core.devices import float64_of, has_float64, sum_dtype
from makemore_pl.core.errors import DataError
from makemore_pl.core.sampling import sample, sample_names
from makemore_pl.core.threads import step_threads, threads_line
from makemore_pl.core.vocabulary import Vocabulary
from makemore_pl.models.ngram import NgramModel, is_sized, with_data_settings
from makemore_pl.models.saved import plain_state


class NgramLitModule(LightningModule):
    """A plain n-gram model (`self.model`, built from its config) trained by Lightning."""

    model_class: ClassVar[type[NgramModel]]  # a subclass names it and adds configure_optimizers

    def __init__(self, *args, **settings) -> None:
        super().__init__()
        self.config = self.model_class.config_class(*args, **settings)
        self.save_hyperparameters(self.config.saved())
        # without its sizes, the plain model is built in `setup`, from the data
        self.model = self.model_class(self.config) if is_sized(self.config) else None
        # float64 running sums, synced across devices; not children of the module, so that
        # neither moving it nor its precision converts them: `_metric` puts them where float64 is
        self._nll_metrics = {stage: MeanMetric() for stage in ("train", "val", "test")}
        self._counted_step = -1
        self._train_sums: tuple[Tensor, Tensor] | None = None  # the epoch's NLL sum, examples
        self._lbfgs_curve = False  # log every loss L-BFGS evaluates (set when training starts)
        self._evaluations = 0  # losses L-BFGS evaluated: that curve's steps
        self._threads_before: int | None = None  # torch's threads before training, restored after
        self._best_val = math.inf

    def setup(self, stage: str) -> None:
        """The sizes, characters and encoding it was not given, from the NamesDataModule's data
        (one line for any it was given that the data contradicts)."""
        data, name = getattr(self.trainer.datamodule, "data", None), type(self).__name__
        if data is None and self.model is None:
            raise DataError(f"{name} takes its sizes from a NamesDataModule: give the Trainer one")
        if data is None:
            return
        found = {"vocab_size": data.vocab_size, "context_size": data.context_size}
        found |= {"chars": data.chars, "encoding": data.config.encoding}
        self.config = with_data_settings(self.config, found, name)
        if self.model is None:
            self.model = self.model_class(self.config)
        self.model.config = self.config  # the same shapes: only what was None is filled in
        self.save_hyperparameters(self.config.saved())  # a checkpoint holds the sizes

    @property
    def vocab(self) -> Vocabulary | None:
        chars = self.config.chars
        return None if chars is None else Vocabulary(chars)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Before Lightning loads the weights: the table sized as saved, keys of any version."""
        best = checkpoint.get("best_val_nll")  # an untrusted file: a finite number, or none
        finite = isinstance(best, float | int) and math.isfinite(best)
        self._best_val = float(best) if finite else math.inf
        state = plain_state(checkpoint.get("state_dict", {}))
        self.model.prepare_for(state)
        checkpoint["state_dict"] = {f"model.{key}": value for key, value in state.items()}

    def _metric(self, stage: str) -> MeanMetric:
        """The stage's float64 NLL metric, on the module's device, or the host's without float64."""
        metric = self._nll_metrics[stage]
        device = self.device if has_float64(self.device) else torch.device("cpu")
        if metric.device != device or metric.dtype != torch.float64:
            metric.to(device)  # a move resets a metric to float32, which would round each update
            metric.set_dtype(torch.float64)
        return metric

    def _shared_step(self, batch: Batch, stage: str) -> Tensor:
        nll_sum, total = self.model.nll_sum(*batch)
        if stage != "train":  # held out: the NLL alone (the penalty is a pass over all weights)
            self._log_nll(stage, *self._exact_nll(batch, nll_sum, total))
            return nll_sum / total.clamp_min(1)
        # L-BFGS evaluates a step's loss several times: its NLL counts once
        if self._counted_step != self.global_step:
            self._counted_step = self.global_step
            self._add_train_nll(*self._exact_nll(batch, nll_sum, total))
        if self.trainer.world_size > 1:
            return self._global_objective(nll_sum, total)
        return nll_sum / total.clamp_min(1) + self.model.penalty()

    def _add_train_nll(self, nll_sum: Tensor, total: Tensor) -> None:
        """A step's float64 NLL sum and count, added to the epoch's: a log at its end costs less."""
        if self._train_sums is None:
            self._train_sums = (torch.zeros_like(nll_sum), torch.zeros_like(total))
        self._train_sums[0].add_(nll_sum)
        self._train_sums[1].add_(total)

    def on_train_epoch_end(self) -> None:
        if self._train_sums is not None:
            self._log_nll("train", *self._train_sums)
            self._train_sums = None

    @torch.no_grad()
    def _log_nll(self, stage: str, nll_sum: Tensor, total: Tensor) -> None:
        """Adds `total` examples' float64 NLL sum to the stage's exact running mean."""
        metric = self._metric(stage)
        nll_sum, total = nll_sum.to(metric.device), total.to(metric.device)
        metric.update(nll_sum / total.clamp_min(1), weight=total)
        epochwise = {"on_step": False, "on_epoch": True}
        name = f"{stage}_nll"
        self.log(name, metric, prog_bar=stage == "val", metric_attribute=name, **epochwise)

    def _exact_nll(self, batch: Batch, nll_sum: Tensor, total: Tensor) -> tuple[Tensor, Tensor]:
        """(NLL sum, example count) in float64: the model's sums, or where the device has no
        float64 each example's NLL, summed on the host."""
        if has_float64(nll_sum.device):
            return nll_sum.detach().double(), total.double()
        x, y, counts = batch[0], batch[1], float64_of(batch[2])
        return (float64_of(self.model.nll_rows(x, y).detach()) * counts).sum(), counts.sum()

    def _global_objective(self, nll_sum: Tensor, total: Tensor) -> Tensor:
        """This process's share of the global objective: DDP averages gradients over R processes,
        so the local NLL sum is scaled by R / (global example count) and process 0 alone carries
        R times the penalty, which makes their average the one-device gradient however the rows
        are split. The value is the global objective, so that L-BFGS line searches agree."""
        strategy, world = self.trainer.strategy, self.trainer.world_size
        total = total.detach().to(sum_dtype(total.device), copy=True)  # reduced in place
        global_total = strategy.reduce(total, reduce_op="sum")
        penalty = self.model.penalty()
        share = nll_sum * (world / global_total)
        share = share + penalty * world if self.trainer.global_rank == 0 else share + 0 * penalty
        global_nll = strategy.reduce(nll_sum.detach().clone(), reduce_op="sum") / global_total
        return share + (global_nll + penalty - share).detach()

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        self._val_epoch = self.current_epoch
        val = self._metric("val")
        if self.trainer.state.fn == "fit" and val.update_called:  # `validate` ranks no run
            # hp_metric ranks training runs in TensorBoard's HParams view: the best so far
            self._best_val = min(self._best_val, float(val.compute()))
            self.log("hp_metric", self._best_val, sync_dist=True)  # the same on every process

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """The epoch of the val_nll a checkpoint was judged by (a later save has the next one's),
        and the best val_nll so far, which a resume goes on from."""
        if getattr(self, "_val_epoch", None) is not None:
            checkpoint["val_epoch"] = self._val_epoch
        checkpoint["best_val_nll"] = self._best_val

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        loss = self._shared_step(batch, "train")
        self._log_train_loss(loss, len(batch[1]), batch_idx)
        if self._lbfgs_curve:  # every loss L-BFGS evaluates, as its own curve: per-step curves
            # of a full-batch L-BFGS run (a few steps of many iterations) show a point or two
            self._evaluations += 1
            if self.trainer.is_global_zero:
                curve = self.logger.experiment
                curve.add_scalar("curves/lbfgs_loss", loss.item(), self._evaluations)
        return loss

    def _log_train_loss(self, loss: Tensor, batch_size: int, batch_idx: int) -> None:
        """train_loss at the steps the Trainer writes its logs (`log_every_n_steps`), and for the
        bar at an epoch's last step: a log call costs about what a small minibatch step does."""
        cadence = (self.global_step + 1) % max(self.trainer.log_every_n_steps, 1) == 0
        if cadence or batch_idx + 1 == self.trainer.num_training_batches:
            self.log("train_loss", loss, on_step=True, prog_bar=True, batch_size=batch_size)

    def on_train_start(self) -> None:
        lbfgs = isinstance(self.optimizers(use_pl_optimizer=False), torch.optim.LBFGS)
        self._lbfgs_curve = lbfgs and isinstance(self.logger, TensorBoardLogger)
        self._train_sums = None  # of an epoch an exception ended
        # the intra-op threads the training steps' size calls for (`core.threads`), said in the
        # run's header when they are not torch's default
        cells = self._step_cells()
        self._threads_before = torch.get_num_threads()
        if cells is not None:
            torch.set_num_threads(step_threads(cells))
        if (line := threads_line(self._threads_before, cells)) is not None:
            rank_zero_info(line)

    def _step_cells(self) -> int | None:
        """Cells of a training step's largest tensor (its logits, one-hot rows or weights); None
        for a data loader of the user's own, whose batches' rows are unknown."""
        loader = self.trainer.train_dataloader
        rows = getattr(getattr(loader, "sampler", None), "batch_size", None)  # BatchSlices'
        if (rows := rows or getattr(loader, "batch_size", None)) is None:
            return None
        onehot = getattr(self.config, "encoding", "index") == "onehot"
        width = self.config.vocab_size ** (self.config.context_size if onehot else 1)
        return max(rows * width, *(p.numel() for p in self.parameters()))

    def on_train_end(self) -> None:
        if self._threads_before is not None:
            torch.set_num_threads(self._threads_before)  # as the user had them

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._shared_step(batch, "val")

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._shared_step(batch, "test")

    @torch.no_grad()
    def predict_step(self, batch: Batch, batch_idx: int) -> Tensor:
        """(B,) float64 log-probability of each example's next character."""
        x, y, _ = batch
        log_p = torch.log_softmax(float64_of(self.model(x)), dim=-1)  # (B, V)
        return log_p.gather(1, y[:, None].to(log_p.device))[:, 0]

    def log_probs(self, x: Tensor) -> Tensor:
        return self.model.log_probs(x)

    def sample(self, num_samples: int, seed: int = 0, **kwargs) -> list[list[int]]:
        """Character ids of generated words; see `makemore_pl.core.sampling.sample`."""
        c, device = self.config.context_size, self.device
        return sample(self.model.log_probs, c, num_samples, seed, device=device, **kwargs)

    def names(self, num_samples: int, seed: int = 0, **kwargs) -> list[str]:
        """Generated names (`temperature`, `prefix` as in `makemore_pl.core.sampling.sample`)."""
        if self.config.chars is None:
            raise DataError("the model does not know its characters: fit it on a NamesDataModule")
        c = self.config
        args = (self.model.log_probs, c.chars, c.context_size, num_samples, seed)
        return sample_names(*args, **kwargs, device=self.device)
