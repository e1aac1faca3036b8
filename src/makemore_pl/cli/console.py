"""What the terminal shows around a training command: no dependency chatter, a closing summary."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint

# lines Lightning prints on every run that say nothing about the user's own settings
CHATTER = (
    "GPU available:",
    "TPU available:",
    "HPU available:",
    "💡 Tip:",
    "`Trainer.fit` stopped:",  # glued to the progress bar; the summary says where the run went
)


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


def fit_summary(run: Path, best: ModelCheckpoint, trainer: Trainer, again: str) -> str:
    """Where the run went and what to do next, on lines of their own."""
    last = run / "checkpoints" / "last.ckpt"
    lines = [
        "",
        f"run: {run}",
        f"trained: {trainer.current_epoch} epochs, step {trainer.global_step}",
    ]
    if best.best_model_score is not None and Path(best.best_model_path).is_file():
        # mmap: the epoch alone, without reading the weights into memory
        epoch = torch.load(best.best_model_path, map_location="cpu", weights_only=True, mmap=True)
        epoch = epoch["epoch"]
        lines.append(f"best val_nll: {float(best.best_model_score):.5f} (epoch {epoch})")
        lines.append(f"best: {best.best_model_path}")
    lines += [
        f"last: {last}",
        "next:",
        f"  {again} test --ckpt_path best",
        f"  {again} sample --ckpt_path best",
        f"  tensorboard --logdir {run.parent}",
    ]
    return "\n".join(lines)
