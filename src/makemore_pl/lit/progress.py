"""While a run trains: an 80-column bar on a terminal, one line per tenth of the run in a file."""

import contextlib
import logging
import sys
import time
import warnings
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.callbacks.progress import ProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm
from lightning.pytorch.utilities import rank_zero_info
from tqdm.contrib.logging import logging_redirect_tqdm


def shown_metrics(items: dict) -> dict:
    """Losses to 4 decimals (3 cannot tell models apart), without Lightning's version number."""
    items.pop("v_num", None)
    return {k: f"{v:.4f}" if isinstance(v, float) else v for k, v in items.items()}


class EpochBar(Tqdm):
    """ "Epoch 7/10, train_loss=…": tqdm would write "Epoch 7/10: , train_loss=…"."""

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        self.set_description_str(desc or "", refresh)


def epochs_shown(trainer: Trainer) -> str:
    """'7/10': the epoch running, counted from 1, of max_epochs ('7/?' without a limit)."""
    total = trainer.max_epochs if (trainer.max_epochs or 0) > 0 else "?"
    return f"{trainer.current_epoch + 1}/{total}"


class ReadableProgressBar(TQDMProgressBar):
    """The losses first, then the bar: Lightning's layout leaves val_nll no room in 80 columns.
    A run of one step per epoch (full batch) gets a bar over its epochs, with the time left;
    no bar flickers for validation; messages and warnings go on lines of their own above it."""

    BAR_FORMAT = "{desc}{postfix} |{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}]"
    EPOCHS_FORMAT = "Epoch {n_fmt}/{total_fmt}{postfix} |{bar}| [{elapsed}<{remaining}]"
    REDRAW_SECONDS = 0.1  # tqdm's own pace: a redraw per step costs more than a small step does

    def __init__(self) -> None:
        super().__init__()
        self._redirect, self._drawn = contextlib.ExitStack(), 0.0

    @property
    def over_epochs(self) -> bool:
        return self.total_train_batches == 1

    def init_train_tqdm(self) -> Tqdm:
        bar = dict(desc=self.train_description, position=2 * self.process_position, smoothing=0)
        bar |= dict(disable=self.is_disabled, leave=True, dynamic_ncols=True, file=sys.stdout)
        if not self.over_epochs:
            return EpochBar(bar_format=self.BAR_FORMAT, **bar)
        epochs = self.trainer.max_epochs if (self.trainer.max_epochs or 0) > 0 else None
        # the epochs run before a resume count as done, not in the rate
        initial = self.trainer.current_epoch
        return EpochBar(bar_format=self.EPOCHS_FORMAT, total=epochs, initial=initial, **bar)

    def init_validation_tqdm(self) -> Tqdm:
        if self.trainer.state.fn == "fit":  # one quick batch: a line that only flickers
            return Tqdm(disable=True)
        return super().init_validation_tqdm()

    def init_sanity_tqdm(self) -> Tqdm:
        return Tqdm(disable=True)

    def on_train_epoch_start(self, trainer: Trainer, *_: Any) -> None:
        if not self.over_epochs:
            super().on_train_epoch_start(trainer)
            self.train_progress_bar.set_description(f"Epoch {epochs_shown(trainer)}")

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any) -> None:
        if not self.over_epochs:  # args: outputs, batch, batch_idx
            now, last = time.monotonic(), args[-1] + 1 == self.total_train_batches
            if last or now - self._drawn >= self.REDRAW_SECONDS:
                self._drawn = now
                super().on_train_batch_end(trainer, pl_module, *args)
            return
        bar = self.train_progress_bar
        bar.n = trainer.current_epoch + 1
        bar.set_postfix(self.get_metrics(trainer, pl_module))  # and redrawn

    def get_metrics(self, trainer: Trainer, pl_module: LightningModule) -> dict:
        return shown_metrics(super().get_metrics(trainer, pl_module))

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
        self._redirect.enter_context(logging_redirect_tqdm(loggers, Tqdm))  # rank_zero_info's
        self._redirect.enter_context(warnings.catch_warnings())
        warnings.showwarning = self.show_warning

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._redirect.close()
        super().teardown(trainer, pl_module, stage)

    @staticmethod
    def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
        text = warnings.formatwarning(message, category, filename, lineno, line)
        Tqdm.write(text.rstrip("\n"), file=sys.stderr)


class PlainProgress(ProgressBar):
    """For a file: a line per tenth of the epochs (and every `seconds`), not a redrawn bar."""

    def __init__(self, seconds: float = 60.0) -> None:
        super().__init__()
        self.seconds, self._enabled, self._last = seconds, True, 0.0

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._last = time.monotonic()

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *_: Any) -> None:
        if time.monotonic() - self._last >= self.seconds:
            self.report(trainer, pl_module, f"step {trainer.global_step}")

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        epoch, total = trainer.current_epoch, trainer.max_epochs
        every = max(1, total // 10) if total is not None and total > 0 else 1
        last = total is not None and epoch + 1 >= total
        if (epoch + 1) % every == 0 or last or time.monotonic() - self._last >= self.seconds:
            self.report(trainer, pl_module, "")

    def report(self, trainer: Trainer, pl_module: LightningModule, where: str) -> None:
        if not self._enabled or trainer.sanity_checking:
            return
        self._last = time.monotonic()
        metrics = shown_metrics(self.get_metrics(trainer, pl_module))
        losses = ", ".join(f"{k}={v}" for k, v in metrics.items())
        head = f"Epoch {epochs_shown(trainer)}" + (f" {where}" if where else "")
        self.print(f"{head}: {losses}" if losses else head)

    def print(self, *args: Any, **kwargs: Any) -> None:
        print(*args, **kwargs, file=sys.stdout, flush=True)


class ModelLine(Callback):
    """Prints the run's name and a line on the model (instead of Lightning's summary table, whose
    only row would be the metrics) once every table is built, before the bar."""

    def __init__(self, run_name: str) -> None:
        self.run_name = run_name

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        plain = getattr(pl_module, "model", pl_module)  # the plain model a LightningModule holds
        shapes = ", ".join(
            f"{name} {'×'.join(map(str, p.shape))}" for name, p in plain.named_parameters()
        )
        count = sum(p.numel() for p in pl_module.parameters())
        model = f"model: {type(pl_module).__name__}, {shapes} ({count:,} parameters)"
        rank_zero_info(f"run: {self.run_name}\n{model}")
