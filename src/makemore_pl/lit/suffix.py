"""`SuffixLitModule`: the every-suffix model (`makemore_pl.models.suffix`) trained by the
Lightning Trainer: full-batch L-BFGS (`makemore_pl.models.suffix_fit`), its table built from the
data module's training split."""

from __future__ import annotations

import copy
import ctypes
from collections.abc import Callable

import torch
import torch.distributed as dist
from torch import Tensor

from makemore_pl.core.batches import Batch
from makemore_pl.core.devices import float64_of, sum_dtype
from makemore_pl.core.errors import CheckpointError, DataError, SettingError
from makemore_pl.lit.module import NgramLitModule
from makemore_pl.models.suffix import SuffixModel
from makemore_pl.models.suffix_fit import SuffixFit
from makemore_pl.models.suffixes import suffix_checkpoint_problem


def release_freed_memory() -> None:
    """Hands the memory freed so far back to the system (glibc's malloc_trim; elsewhere
    nothing). Building the table frees tens of MB of index temporaries that glibc would keep
    resident under the fit's own buffers, which are allocated next."""
    trim = getattr(ctypes.CDLL(None), "malloc_trim", None)
    if trim is not None:
        trim(0)


class FitSteps(torch.optim.Optimizer):
    """The optimizer Lightning steps: `step(closure)` runs the closure, which is a run of the
    model's own L-BFGS (`SuffixFit`, held by the module with its curvature memory). Its
    checkpointed state is empty: that memory is rebuilt in a few iterations after a resume."""

    def __init__(self, params) -> None:
        super().__init__(params, {})

    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        return None if closure is None else closure()


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
        history_size: int = 2,
        tolerance: float = 1e-7,
        chars: list[str] | None = None,
        l1: list[float] | None = None,
        smoothing: float = 1e-4,
        l1_by_count: list[float] | None = None,
        l2_by_count: list[float] | None = None,
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
            max_iter: L-BFGS iterations per training step; a step is one full batch, so an
                epoch is one step.
            history_size: L-BFGS curvature pairs kept (each two copies of the weights).
            tolerance: training stops moving once every entry of the gradient in W (per
                example) is at most this; 1e-7 leaves val_nll within about 1e-7 of the optimum.
            chars: the data's characters in index order, kept so a checkpoint can generate
                without the data file (set from the data).
            l1: L1 strength of the rows of each suffix length 0..c, in examples (c + 1 values;
                None: no L1 term): an elastic net with `strengths`, on W, smoothed.
            smoothing: eps of the smoothed absolute value sqrt(w^2 + eps^2) - eps the L1 term
                uses: quadratic below eps, L1 above; the optimum tends to the exact L1 one as
                eps goes to 0. Choose it on val with `suffix_sweep` too.
            l1_by_count: scales of the L1 strength of an entry (a suffix, a next character)
                seen 0, 1, 2, or 3 and more times in training (4 values; None: 1 each), as
                Kneser-Ney's discounts depend on the count. Choose them with `suffix_sweep`.
            l2_by_count: scales of the L2 strength of an entry by the same count classes (4
                values; None: 1 each).
        """
        for name, value, least in (("max_iter", max_iter, 1), ("history_size", history_size, 1)):
            if value < least:
                raise SettingError(name, f"must be {least} or more, got {value}")
        if not tolerance >= 0:
            raise SettingError("tolerance", f"must be 0 or more, got {tolerance}")
        super().__init__(
            vocab_size,
            context_size,
            strengths,
            shortest,
            chars,
            l1,
            smoothing,
            l1_by_count,
            l2_by_count,
        )
        self.save_hyperparameters()
        self.hparams.strengths = self.strengths
        self._add_metrics()
        self.automatic_optimization = False  # the fit runs its own iterations in a step
        self._fit: SuffixFit | None = None

    def on_fit_start(self) -> None:
        # L-BFGS on a few hundred thousand weights: a second CPU thread gains little and, on a
        # shared machine, makes the c = 5 fit several times slower (47 s on one, 7 min on two)
        self._threads = torch.get_num_threads()
        torch.set_num_threads(1)

    def on_train_end(self) -> None:
        # the fit's buffers, (3 + 2 history_size) copies of the weights, go before the end of
        # fit hooks (the TensorBoard snapshot) allocate theirs
        self._fit = None

    def on_fit_end(self) -> None:
        torch.set_num_threads(self._threads)

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        """max_iter iterations of the fit on the whole (or this process's share of the) count
        table; every iteration's objective is logged as `fit_objective`, by iteration."""
        if self._fit is None:  # the first step, or the first after a resume: from U
            reduce = self._sum_over_processes if self.trainer.world_size > 1 else None
            hp = self.hparams
            release_freed_memory()
            self._fit = SuffixFit(self, batch, hp.history_size, hp.tolerance, reduce)
        report = self.optimizers().step(closure=self._run_fit)
        loss = torch.tensor(report.objective, dtype=sum_dtype(self.device))
        # the train NLL at the step's end weights, from the fit (the same on every process)
        self._log_nll("train", *host_nll(report.nll, batch[2]), len(batch[1]))
        self.log("train_loss", loss, on_step=True, prog_bar=True, batch_size=len(batch[1]))
        return loss

    def _run_fit(self):
        def log(iteration: int, objective: float) -> None:
            if self.logger is not None:  # a curve of every iteration, not only each step's end
                self.logger.log_metrics({"fit_objective": objective}, step=iteration)

        return self._fit.run(self.hparams.max_iter, log)

    @staticmethod
    def _sum_over_processes(tensor: Tensor) -> None:
        dist.all_reduce(tensor)

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
        return FitSteps(self.parameters())

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Resizes the table to the checkpoint's before Lightning loads its state dict."""
        state = checkpoint.get("state_dict", {})
        problem = self.checkpoint_problem(dict(self.hparams), state)
        if problem is not None:
            raise CheckpointError(f"not a suffix model checkpoint: {problem}")
        self.resize_to(state)  # loads as it was saved
        carry_step_count(checkpoint)

    @classmethod
    def checkpoint_problem(cls, hparams: dict, state_dict: dict) -> str | None:
        """Why these settings and tensors cannot be a SuffixLitModule, or None."""
        return suffix_checkpoint_problem(hparams, state_dict)


def carry_step_count(checkpoint: dict) -> None:
    """A checkpoint of the earlier fit (torch's L-BFGS, stepped by Lightning's automatic
    optimization) counts its steps there; the manual loop takes them over, so a resumed run
    goes on from the same global step."""
    loops = checkpoint.get("loops", {}).get("fit_loop", {})
    automatic = loops.get("epoch_loop.automatic_optimization.optim_progress")
    manual = loops.get("epoch_loop.manual_optimization.optim_step_progress")
    if automatic and manual and not manual["total"]["completed"]:
        loops["epoch_loop.manual_optimization.optim_step_progress"] = copy.deepcopy(
            automatic["optimizer"]["step"]
        )


def host_nll(nll: float, counts: Tensor) -> tuple[Tensor, Tensor]:
    """(a fit's NLL, its example count) in float64, on the host where the device has none."""
    total = float64_of(counts).sum()
    return torch.tensor(nll, dtype=torch.float64, device=total.device), total
