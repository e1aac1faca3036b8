"""What the terminal shows: no dependency chatter, a readable progress bar, a closing summary."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.utilities import rank_zero_info

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


class ReadableProgressBar(TQDMProgressBar):
    """Shows losses to 4 decimals (3 cannot tell models apart) and the run's folder name."""

    def __init__(self, run_name: str) -> None:
        super().__init__()
        self.run_name = run_name

    def get_metrics(self, trainer: Trainer, pl_module: LightningModule) -> dict:
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        shown = {k: f"{v:.4f}" if isinstance(v, float) else v for k, v in items.items()}
        return {"run": self.run_name, **shown}


def describe_model(model: LightningModule) -> str:
    """One line instead of Lightning's summary table, whose only row would be the metrics."""
    shapes = ", ".join(
        f"{name} {'×'.join(map(str, p.shape))}" for name, p in model.named_parameters()
    )
    count = sum(p.numel() for p in model.parameters())
    return f"model: {type(model).__name__}, {shapes} ({count:,} parameters)"


class ModelLine(Callback):
    """Prints `describe_model` once training starts, when every table is built."""

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        rank_zero_info(describe_model(pl_module))


def fit_summary(run: Path, best: ModelCheckpoint, trainer: Trainer, again: str) -> str:
    """Where the run went and what to do next, on lines of their own."""
    last = run / "checkpoints" / "last.ckpt"
    lines = [
        "",
        f"run: {run}",
        f"trained: {trainer.current_epoch} epochs, step {trainer.global_step}",
    ]
    if best.best_model_score is not None and Path(best.best_model_path).is_file():
        epoch = torch.load(best.best_model_path, map_location="cpu", weights_only=True)["epoch"]
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
