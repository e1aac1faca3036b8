"""Callbacks every run gets: checkpoints, snapshots, the counting reference, clean stops."""

import functools
import math
import signal
import threading
import warnings
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only, rank_zero_warn

from makemore_pl.core.contexts import row_contexts
from makemore_pl.core.errors import CommandError
from makemore_pl.lit.heatmap import probability_heatmap
from makemore_pl.lit.module import NgramLitModule
from makemore_pl.models.counting import CountingBaseline, tune_best
from makemore_pl.models.ngram import MAX_WEIGHT


class LogSnapshots(Callback):
    """Logs TensorBoard snapshots: the next-character heatmap and a few generated names."""

    def __init__(
        self, every_n_epochs: int = 100, num_samples: int = 20, max_rows: int = 27
    ) -> None:
        """
        Args:
            every_n_epochs: epochs between snapshots; 0 = only at the end of training.
            num_samples: names generated per snapshot (at most 1,000).
            max_rows: contexts shown in the heatmap (at most 1,000): all V rows for a bigram,
                the most frequent training contexts for higher orders.
        """
        for name, value, most in (("num_samples", num_samples, 1000), ("max_rows", max_rows, 1000)):
            if not 0 <= value <= most:  # a snapshot is a glance, taken while training waits
                raise CommandError(f"--snapshots.{name} must be from 0 to {most:,}, got {value}")
        if every_n_epochs < 0:
            raise CommandError(
                f"--snapshots.every_n_epochs must be 0 or more, got {every_n_epochs}"
            )
        self.every_n_epochs, self.num_samples, self.max_rows = every_n_epochs, num_samples, max_rows

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        n, done = self.every_n_epochs, trainer.current_epoch + 1
        final = trainer.max_epochs is not None and done >= trainer.max_epochs  # on_fit_end's
        if n > 0 and done % n == 0 and not final and not trainer.sanity_checking:
            self.snapshot(trainer, pl_module, annotate=False)  # no values printed: ~0.15 s

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # on_fit_end, not on_train_end: Lightning runs checkpoint callbacks' on_train_end last
        self.snapshot(trainer, pl_module, annotate=True)

    @rank_zero_only
    def snapshot(self, trainer: Trainer, model: NgramLitModule, annotate: bool) -> None:
        logger, step = trainer.logger, trainer.global_step
        try:
            with warnings.catch_warnings():  # a character the font lacks draws as a box
                warnings.filterwarnings("ignore", message="Glyph .* missing from font")
                if not isinstance(logger, TensorBoardLogger) or (vocab := model.vocab) is None:
                    return
                v, c = model.config.vocab_size, model.config.context_size
                if v**c <= self.max_rows:  # every context of a small table
                    rows = list(range(v**c))
                else:  # the most frequent training contexts
                    keys, counts = trainer.datamodule.data.ngram_counts("train").contexts()
                    rows = sorted(keys[counts.topk(min(self.max_rows, len(keys))).indices].tolist())
                contexts = row_contexts(torch.tensor(rows, device=model.device), v, c)  # (R, c)
                probs = model.log_probs(contexts).exp()
                title = f"P(next | context), step {step}"
                fig = probability_heatmap(probs, rows, vocab, c, title, annotate)
                logger.experiment.add_figure("next_char_probs", fig, step)
                words = model.names(self.num_samples, seed=step)
                logger.experiment.add_text("samples", "  \n".join(words), step)
        except Exception as err:  # optional: the run and its checkpoints matter more
            rank_zero_warn(f"TensorBoard snapshot at step {step} failed: {err}")


class CountingReference(Callback):
    """Logs `counting_test_nll`: the best counting model of the same order on val (add-k or
    Kneser-Ney, each tuned there), and says which it is."""

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        data = getattr(trainer.datamodule, "data", None)
        val = data.ngram_counts("val") if data is not None else None
        if val is None or len(val) == 0:
            return
        # on the CPU, from the streaming counts (every process counts the same table): float64
        # cannot live on MPS, and a closed form gains nothing from a GPU
        v, c = pl_module.config.vocab_size, pl_module.config.context_size
        fitted = CountingBaseline(v, c, 0.0).fit_counts(data.ngram_counts("train"))
        counting = tune_best(fitted, val)
        rank_zero_info(f"counting_test_nll: {counting.describe()}, the best on val")
        nll = counting.counts_nll(data.ngram_counts("test"))
        pl_module.log("counting_test_nll", torch.tensor(nll, dtype=torch.float64))


# Lightning formats a checkpoint callback's state_key for each hook it calls, six per training
# step; it depends only on settings fixed when the callback is built, so it is formatted once
KEY_FORMATTED_ONCE = functools.cached_property(lambda self: ModelCheckpoint.state_key.fget(self))
ONE_FILE = {"save_top_k": 1, "enable_version_counter": False}  # one per run, across resumes


class BestCheckpoint(ModelCheckpoint):
    """checkpoints/best.ckpt: the lowest val_nll, judged every `every_n_epochs` and at the end."""

    state_key = KEY_FORMATTED_ONCE

    def __init__(self, every_n_epochs: int = 10) -> None:
        """
        Args:
            every_n_epochs: epochs between looks (a save costs a few ms, about what a full-batch
                epoch does: saving every epoch would double a run's time).
        """
        best = {"monitor": "val_nll", "mode": "min", "filename": "best"}
        super().__init__(every_n_epochs=every_n_epochs, **best, **ONE_FILE)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        score = trainer.callback_metrics.get("val_nll")  # of the final weights
        if trainer.fast_dev_run or score is None:  # a debug run is never the best
            return
        if self.best_model_score is None or score < self.best_model_score:
            self.best_model_path = self.format_checkpoint_name({})
            self.best_model_score = score
            trainer.save_checkpoint(self.best_model_path, weights_only=False)


class LastCheckpoint(ModelCheckpoint):
    """checkpoints/last.ckpt: rewritten every `every_n_epochs` epochs and when training ends."""

    state_key = KEY_FORMATTED_ONCE

    def __init__(self, every_n_epochs: int = 10) -> None:
        """
        Args:
            every_n_epochs: epochs between saves of last.ckpt (1: after every epoch).
        """
        # an unmonitored top-1 checkpoint named "last": in Lightning 2.6 save_last=True writes
        # nothing mid-run even with save_top_k=0, too late for a killed run
        last = {"filename": "last", "save_on_train_epoch_end": True}
        super().__init__(every_n_epochs=every_n_epochs, **last, **ONE_FILE)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        if trainer.fast_dev_run:  # a debug run saves nothing to resume
            return
        path = Path(self.format_checkpoint_name({}))
        # the step the file there was saved at (memory-mapped: no weights are read)
        load = functools.partial(torch.load, map_location="cpu", weights_only=True, mmap=True)
        saved = load(path)["global_step"] if path.is_file() else None
        # the final epochs, if unsaved; every process must agree, as the save waits for them all
        if trainer.strategy.broadcast(saved != trainer.global_step, src=0):
            trainer.save_checkpoint(path, weights_only=False)


class StopOnSignal(Callback):
    """Ctrl-C or SIGTERM (a scheduler's notice) ends training at the end of the epoch, as a
    finished run ends, its last.ckpt written; a second signal stops at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received: int | None = None
        self.previous: dict[int, object] = {}

    @property
    def exit_code(self) -> int:
        return 0 if self.received is None else 128 + self.received  # as the shell reports it

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # here, not on_fit_start: Lightning installs its own SIGTERM handler in between
        if threading.current_thread() is threading.main_thread():
            self.previous = {sig: signal.signal(sig, self.handle) for sig in self.SIGNALS}

    def handle(self, signum: int, frame) -> None:
        self.received = signum
        for sig, handler in self.previous.items():  # the next signal acts at once
            signal.signal(sig, handler if sig != signal.SIGINT else signal.default_int_handler)
        name = signal.Signals(signum).name  # two lines, each whole in 80 columns
        rank_zero_info(
            f"{name}: stopping at the end of this epoch and saving last.ckpt\n"
            f"(send {name} again to stop at once, without saving)"
        )

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.received is not None:
            trainer.should_stop = True

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        self.previous = {}

    def message(self, last: Path, resume: str) -> str:
        name = signal.Signals(self.received).name
        return f"stopped by {name}; saved {last}\nresume with: {resume}"


class StopOnNonFiniteLoss(Callback):
    """Stops training at the first step whose loss or updated weights are NaN or infinite (an lr
    too large). Lightning runs it before the checkpoint callbacks of the same hook, so the last
    checkpoint keeps the last good weights; under DDP every process stops at the same step."""

    def on_train_batch_start(self, trainer: Trainer, *_: Any) -> None:
        self.step = trainer.global_step  # the step this batch runs (train_loss's x in TensorBoard)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, *_) -> None:
        # one reduction per tensor and no more: on a small table each op costs what a step does
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor) and loss.numel() == 1 and not math.isfinite(loss.item()):
            self.stop(pl_module, f"the training loss is {loss.item()}")
        for weights in pl_module.parameters():
            largest = weights.detach().abs().max().item() if weights.numel() else 0.0
            if not math.isfinite(largest):  # max is NaN if any weight is
                self.stop(pl_module, "the weights hold NaN or infinite values")
            # a checkpoint of such weights would be refused by every reader (models.dense)
            if largest > MAX_WEIGHT:
                self.stop(pl_module, f"the weights reach {largest:.3g}, beyond {MAX_WEIGHT:g}")

    def stop(self, pl_module: LightningModule, what: str) -> None:
        lr = getattr(pl_module.config, "learning_rate", "the optimizer's default")
        raise CommandError(
            f"training diverged at step {self.step}: {what}; stopped before saving it (the last "
            f"checkpoint holds the last good weights); train again with a --model.lr below {lr}"
        )
