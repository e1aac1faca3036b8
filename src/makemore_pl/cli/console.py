"""What the terminal shows around a training command: no dependency chatter, a closing summary."""

import logging
import math
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, Timer

from makemore_pl.cli.loggers import viewer

# lines Lightning prints on every run that say nothing about the user's own settings
CHATTER = ("GPU available:", "TPU available:", "HPU available:", "💡 Tip:")
CHATTER += ("`Trainer.fit` stopped:",)  # glued to the bar; the summary says where the run went


class DropChatter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).lstrip().startswith(CHATTER)


def quiet_console(command: str = "fit") -> None:
    """Keeps Lightning's real warnings and drops its advertisements and device inventory."""
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logging.getLogger(name).addFilter(DropChatter())
    # raised inside Lightning itself by a newer torch, not by anything the user did
    warnings.filterwarnings("ignore", message=".*LeafSpec")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    # predict writes its file from the predictions in order; it needs no batch indices
    warnings.filterwarnings("ignore", message="Couldn't infer the batch indices")
    # every run has a folder of its own: a non-empty one is the run being resumed
    warnings.filterwarnings("ignore", message="Checkpoint directory .* exists and is not empty")
    # main() hands LightningCLI the arguments it took from sys.argv itself
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
    if command != "fit":  # test/validate/predict save no checkpoints: what they knew is moot
        warnings.filterwarnings("ignore", message="The dirpath has changed from")
        warnings.filterwarnings("ignore", message="Be aware that when using `ckpt_path`")


def fit_summary(
    run: Path, best: ModelCheckpoint, trainer: Trainer, again: Callable[[str, str], str]
) -> str:
    """Where the run went and what to do next (`again(command, checkpoint)`), files that exist."""
    last = run / "checkpoints" / "last.ckpt"
    trained = f"trained: {trainer.current_epoch} epochs, step {trainer.global_step}"
    lines = ["", f"run: {run}", trained, *filter(None, [stopped_early(trainer)])]
    use = None
    if best.best_model_score is not None and Path(best.best_model_path).is_file():
        # mmap: the epoch alone, without reading the weights into memory
        saved = torch.load(best.best_model_path, map_location="cpu", weights_only=True, mmap=True)
        epoch = saved.get("val_epoch", saved["epoch"]) + 1  # counted from 1, as the bar does
        lines.append(f"best val_nll: {float(best.best_model_score):.5f} (epoch {epoch})")
        lines.append(f"best: {best.best_model_path}")
        use = "best"
    if last.is_file():
        lines.append(f"last: {last}")
        use = use or "last"
    lines.append("next:")
    if use is not None:
        lines += [f"  {again('test', use)}", f"  {again('sample', use)}"]
    lines += [f"  {viewer(logger)}" for logger in trainer.loggers]
    return "\n".join(lines)


def stopped_early(trainer: Trainer) -> str | None:
    """Which callback ended the run before its max_epochs, and after which epoch."""
    done, limit = trainer.current_epoch, trainer.max_epochs
    if limit is None or limit < 0 or done >= limit:
        return None
    after = f"after epoch {done} of {limit}"
    for callback in trainer.callbacks:
        if isinstance(callback, EarlyStopping) and callback.stopped_epoch:
            return f"stopped by EarlyStopping ({callback.monitor}) {after}"
        if isinstance(callback, Timer) and (callback.time_remaining("train") or 1) <= 0:
            return f"stopped by max_time {after}"
    if trainer.max_steps >= 0 and trainer.global_step >= trainer.max_steps:
        return f"stopped by max_steps {trainer.max_steps} {after}"
    return f"stopped by a callback {after}"


TOLERANCE = 0.01  # nats: a neural model within this of the counting model has learnt it


def fit_check(
    best: float,
    counting: float,
    vocab_size: int,
    minibatch: bool,
    sweep: str,
    improving: bool = False,
) -> str | None:
    """One line when the best val_nll is worse than counting (same order, same split) or uniform
    guessing, with the likely cause (`improving`: the last val_nll was the best) and a remedy."""
    uniform = math.log(vocab_size)
    if best <= min(counting, uniform) + TOLERANCE:
        return None
    worse = "uniform guessing" if best > uniform else "the counting model"
    figures = f"counting model {counting:.4f}, uniform ln {vocab_size} = {uniform:.4f}"
    if minibatch:  # Adam at the full-batch lr, on batches of 64: 2.69 where counting has 2.45
        cause = "minibatch steps too large for this lr: try a lower --model.lr (e.g. a tenth)"
    elif improving:
        cause = "val_nll was still falling: train longer (a larger --trainer.max_epochs)"
    else:
        cause = f"l2 does not suit this data: choose it on val with `{sweep}`"
    return f"warning: best val_nll {best:.4f} is worse than {worse} ({figures}); {cause}"
