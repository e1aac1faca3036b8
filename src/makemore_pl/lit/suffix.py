"""`SuffixLitModule`: the every-suffix model fitted by full-batch L-BFGS (`models.suffix_fit`)."""

import copy
import ctypes
from collections.abc import Callable
from functools import partial

import torch
import torch.distributed as dist
from torch import Tensor

from makemore_pl.core.batches import Batch
from makemore_pl.core.devices import float64_of, sum_dtype
from makemore_pl.core.errors import DataError
from makemore_pl.core.settings import takes_settings
from makemore_pl.core.threads import one_thread
from makemore_pl.lit.module import NgramLitModule
from makemore_pl.models.suffix_fit import SuffixFit
from makemore_pl.models.suffix_model import SuffixConfig, SuffixModel


class FitSteps(torch.optim.Optimizer):
    """The optimizer Lightning steps: the closure runs the module's own L-BFGS (`SuffixFit`),
    whose curvature memory is not checkpointed: a resume rebuilds it in a few iterations."""

    def __init__(self, params) -> None:
        super().__init__(params, {})

    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        return None if closure is None else closure()


@takes_settings(SuffixConfig)
class SuffixLitModule(NgramLitModule):
    """The every-suffix model; see `makemore_pl.models.suffix_model.SuffixModel`."""

    model_class = SuffixModel
    _fit: SuffixFit | None = None  # the L-BFGS state, made at the first step
    automatic_optimization = False  # the fit runs its own iterations in a step

    def on_train_end(self) -> None:
        super().on_train_end()
        # the fit's (3 + 2 history_size) copies of the weights go before the snapshot allocates
        self._fit = None

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        """max_iter iterations of the fit on (this process's share of) the count table."""
        if self._fit is None:  # the first step, or the first after a resume: from U
            reduce = dist.all_reduce if self.trainer.world_size > 1 else None  # sums in place
            # glibc's malloc_trim: building the table frees tens of MB of temporaries that glibc
            # would keep resident under the fit's buffers, allocated next (elsewhere: nothing)
            if (trim := getattr(ctypes.CDLL(None), "malloc_trim", None)) is not None:
                trim(0)
            config = self.config
            self._fit = SuffixFit(self.model, batch, config.history_size, config.tolerance, reduce)
        with one_thread():
            fit = partial(self._fit.run, self.config.max_iter, self._log_iteration)
            report = self.optimizers().step(closure=fit)
        loss = torch.tensor(report.objective, dtype=sum_dtype(self.device))
        # the train NLL at the step's end weights, from the fit (the same on every process)
        self._add_train_nll(*host_nll(report.nll, batch[2]))
        self._log_train_loss(loss, len(batch[1]), batch_idx)
        return loss

    def _log_iteration(self, iteration: int, objective: float) -> None:
        if self.logger is not None:  # a curve of every iteration, not only each step's end
            self.logger.log_metrics({"fit_objective": objective}, step=iteration)

    def setup(self, stage: str) -> None:  # the table, in buffers a checkpoint holds
        super().setup(stage)
        if len(self.model.keys) or self.trainer.datamodule is None:
            return  # built already, or loaded from a checkpoint
        data = self.trainer.datamodule.data
        if data.config.encoding != "index":
            raise DataError("the suffix model reads context ids: set --data.encoding index")
        self.model.build_table(*data.examples("train"))
        if not len(self.model.keys):
            raise DataError("the suffix model needs training examples: the train split is empty")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return FitSteps(self.parameters())

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """A checkpoint of the earlier fit (torch's L-BFGS, automatic optimization) counts its
        steps there; the manual loop takes them over, so a resumed run goes on from that step."""
        super().on_load_checkpoint(checkpoint)
        loops = checkpoint.get("loops", {}).get("fit_loop", {})
        manual_key = "epoch_loop.manual_optimization.optim_step_progress"
        automatic = loops.get("epoch_loop.automatic_optimization.optim_progress")
        manual = loops.get(manual_key)
        if automatic and manual and not manual["total"]["completed"]:
            loops[manual_key] = copy.deepcopy(automatic["optimizer"]["step"])


def host_nll(nll: float, counts: Tensor) -> tuple[Tensor, Tensor]:
    """(a fit's NLL sum over its examples, their count) in float64, on the host if need be."""
    total = float64_of(counts).sum()
    return torch.tensor(nll, dtype=torch.float64, device=total.device) * total, total
