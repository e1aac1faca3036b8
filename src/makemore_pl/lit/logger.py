"""A run's file loggers, in its own folder: TensorBoard (the curves first, the settings that
rank runs) and CSV (one metrics.csv across resumes); `test` of a checkpoint logs at its step."""

import csv
import time
from argparse import Namespace
from pathlib import Path
from typing import Any

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.utilities import rank_zero_only
from torch.utils.tensorboard.summary import hparams

from makemore_pl.models.registry import DEFAULT_MODEL, MODELS

# TensorBoard lists tag groups (prefixes) alphabetically: training curves first, held-out next
TAGS = {
    "train_loss": "curves/train_loss",
    "train_nll": "curves/train_nll",
    "fit_objective": "curves/lbfgs_loss",  # every L-BFGS iteration of the suffix fit
    "val_nll": "curves/val_nll",
    "test_nll": "held_out/test_nll",
    "counting_test_nll": "held_out/counting_test_nll",
}
SAVE_SECONDS = 5.0  # between flushes of the event file; finalize flushes at the end


def settings_columns(model: str, params: Any) -> dict[str, Any]:
    """The model's name and its own settings, as its config gives them (the lr in use, a
    number per strength); a model of the user's own shows its hyperparameters as they are."""
    params = vars(params) if isinstance(params, Namespace) else dict(params)
    if (kind := MODELS.get(model)) is None:
        return {"model": model, **params}
    config = kind.config.from_saved({k: v for k, v in params.items() if k in kind.config.names()})
    return {"model": model, **config.hparams()}


class InRunFolder:
    """A file logger in the run folder; a held-out `stage` logs at `step`, its checkpoint's."""

    def __init__(
        self,
        run: Path,
        stage: str = "fit",
        step: int | None = None,
        model: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(run.parent.parent, name=run.parent.name, version=run.name, **kwargs)
        self.stage, self.fixed_step = stage, step
        self.model = model or DEFAULT_MODEL.name  # Lightning hands on no class path


class RunLogger(InRunFolder, TensorBoardLogger):
    """TensorBoard in the run folder; only `fit` ranks the run in the HParams table."""

    _saved = -SAVE_SECONDS  # the first save is at once

    @rank_zero_only
    def log_hyperparams(self, params: Any, metrics: Any = None) -> None:
        if self.stage != "fit":
            return
        columns = settings_columns(self.model, params)
        self.hparams.update(columns)  # hparams.yaml
        # the session alone, no experiment summary: TensorBoard then shows the settings of every
        # run (not only the first run's columns) and ranks by every scalar, hp_metric among them;
        # and no placeholder hp_metric at step 0, which would hide a resumed run's earlier points
        for summary in hparams(columns, {})[1:]:  # the session's start and end
            self.experiment._get_file_writer().add_summary(summary)

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


class AppendingWriter(ExperimentWriter):
    """Lightning's CSV writer deletes metrics.csv of a folder that is not empty, as a run folder
    never is: this one goes on after the rows there (a resume, `test` of a checkpoint)."""

    def _check_log_dir_exists(self) -> None:
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as file:
                self.metrics_keys = next(csv.reader(file), [])


class RunCSVLogger(InRunFolder, CSVLogger):
    """metrics.csv and hparams.yaml in the run folder, one file across resumes."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._experiment = AppendingWriter(log_dir=self.log_dir)
        return self._experiment

    def log_hyperparams(self, params: Any, metrics: Any = None) -> None:
        if self.stage == "fit":
            super().log_hyperparams(settings_columns(self.model, params))

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if self.fixed_step is None:
            return super().log_metrics(metrics, step)
        held_out = {key: value for key, value in metrics.items() if key != "epoch"}  # 0: moot
        super().log_metrics(held_out, self.fixed_step)
