"""TensorBoard logging of a run: its own folder, the curves first, the settings that matter."""

import time
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import TensorBoardLogger

from makemore_pl.models.registry import DEFAULT_MODEL

# TensorBoard lists tag groups (prefixes) alphabetically: training curves first, held-out next
TAGS = {
    "train_loss": "curves/train_loss",
    "train_nll": "curves/train_nll",
    "fit_objective": "curves/lbfgs_loss",  # every L-BFGS iteration of the suffix fit
    "val_nll": "curves/val_nll",
    "test_nll": "held_out/test_nll",
    "counting_test_nll": "held_out/counting_test_nll",
}
# the HParams columns besides "model": TensorBoard sorts columns by name and ticks the first five
HPARAMS = ("optimizer", "lr", "l2", "context_size")
SAVE_SECONDS = 5.0  # between flushes of the event file; finalize flushes at the end
NOT_ITS = "n/a"  # a setting the run's model does not have (the suffix model has no optimizer)


class RunLogger(TensorBoardLogger):
    """Logs into an existing run folder; `test`/`validate` of a checkpoint log at its step, on
    the same axes as its training curves; only `fit` ranks the run in the HParams table."""

    def __init__(
        self, run: Path, stage: str = "fit", step: int | None = None, model: str | None = None
    ) -> None:
        super().__init__(run.parent.parent, name=run.parent.name, version=run.name)
        self.stage, self.fixed_step = stage, step
        self.model = model or DEFAULT_MODEL.name  # Lightning hands on no class path
        self._saved = -SAVE_SECONDS  # the first save is at once

    def log_hyperparams(self, params: Any, metrics: Any = None) -> None:
        if self.stage != "fit":
            return
        params = dict(vars(params) if hasattr(params, "__dict__") else params)
        # every run gets every column: TensorBoard drops a column some run lacks
        shown = {"model": self.model, **{key: params.get(key, NOT_ITS) for key in HPARAMS}}
        super().log_hyperparams({key: cell(key, value) for key, value in shown.items()}, metrics)

    def save(self) -> None:
        """Lightning saves after every write of the logs, and a save waits for TensorBoard's
        writer thread to drain: at most one every few seconds (the end of the run saves too)."""
        now = time.monotonic()
        if now - self._saved >= SAVE_SECONDS:
            self._saved = now
            super().save()

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        shown = {TAGS.get(key, key): value for key, value in metrics.items() if key != "epoch"}
        super().log_metrics(shown, self.fixed_step if self.fixed_step is not None else step)


def cell(key: str, value: Any) -> Any:
    """A setting in the HParams table: words for None and booleans (not 'None' and '0.0000')."""
    if value is None:
        return "default" if key == "lr" else "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return value
