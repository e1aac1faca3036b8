"""TensorBoard logging of a run: its own folder, the curves first, the settings that matter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import TensorBoardLogger

from makemore_pl.models.registry import DEFAULT_MODEL

# TensorBoard groups tags by their prefix and lists the groups alphabetically: the training
# curves come first, the held-out figures of `test`/`validate` next to them
TAGS = {
    "train_loss": "curves/train_loss",
    "train_nll": "curves/train_nll",
    "fit_objective": "curves/fit_objective",  # every L-BFGS iteration of the suffix fit
    "val_nll": "curves/val_nll",
    "test_nll": "held_out/test_nll",
    "counting_test_nll": "held_out/counting_test_nll",
}
HPARAMS = ("context_size", "encoding", "l2", "optimizer", "lr", "batch_size", "dedupe")


class RunLogger(TensorBoardLogger):
    """Logs into an existing run folder. `fit` ranks the run in the HParams table by its
    settings; `test`/`validate` of a run's checkpoint add their figures to that run at the
    checkpoint's step, so they sit on the same axes as its training curves."""

    def __init__(self, run: Path, stage: str = "fit", step: int | None = None) -> None:
        super().__init__(run.parent.parent, name=run.parent.name, version=run.name)
        self.stage, self.fixed_step = stage, step

    def log_hyperparams(self, params: Any, metrics: Any = None) -> None:
        if self.stage != "fit":  # only training runs rank in the HParams table
            return
        params = dict(vars(params) if hasattr(params, "__dict__") else params)
        shown = {key: params[key] for key in HPARAMS if key in params}
        shown["lr"] = shown.get("lr") if shown.get("lr") is not None else "default"
        shown["model"] = params.get("_class_path", DEFAULT_MODEL.class_path).split(".")[-1]
        super().log_hyperparams(shown, metrics)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        shown = {TAGS.get(key, key): value for key, value in metrics.items() if key != "epoch"}
        super().log_metrics(shown, self.fixed_step if self.fixed_step is not None else step)
