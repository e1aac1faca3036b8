"""What a run shows while it trains: a readable progress bar and a one-line model summary."""

from __future__ import annotations

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.utilities import rank_zero_info


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
