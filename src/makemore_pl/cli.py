"""`python -m makemore_pl`: LightningCLI with fit/validate/test/predict, sample, baseline, sweep."""

from __future__ import annotations

import sys
from pathlib import Path

from jsonargparse import ArgumentError
from lightning.pytorch import Trainer
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from makemore_pl.callbacks import BestCheckpoint, CountingReference, LastCheckpoint, LogSnapshots
from makemore_pl.checkpoints import (
    check_fits_data,
    check_writable,
    read_checkpoint,
    require_weights_only,
    with_atomic_checkpoints,
)
from makemore_pl.commands import MakemoreTrainer
from makemore_pl.datamodule import NamesDataModule
from makemore_pl.errors import CheckpointError, CommandError, UserError
from makemore_pl.model import BigramLitModule


def find_run_checkpoint(logs: Path, which: str) -> Path | None:
    """`which`.ckpt ('best' or 'last') of the newest training run under `logs`, if it has one.

    A training run is a version_N folder with a checkpoints folder, which `fit` creates before
    its first step: a run killed before its first checkpoint is still the newest, so that `last`
    starts it afresh instead of continuing an older run with other options.
    """
    runs = [run for run in logs.glob("version_*") if (run / "checkpoints").is_dir()]
    newest = max(runs, key=lambda run: int(run.name.split("_")[-1]), default=None)
    path = None if newest is None else newest / "checkpoints" / f"{which}.ckpt"
    return path if path is not None and path.is_file() else None


class MakemoreCLI(LightningCLI):
    """Links the data's vocabulary and order into the model; resolves best/last checkpoints."""

    resumed_run: Path | None = None
    checkpoint_hparams: dict | None = None  # the model settings of --ckpt_path

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        extra = {"model", "datamodule"}
        return {**LightningCLI.subcommands(), "sample": extra, "baseline": extra, "sweep": extra}

    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("data.context_size", "model.context_size")
        parser.link_arguments("data.encoding", "model.encoding")
        # read from the data module right after it is built: it loads the words on first use
        parser.link_arguments("data.vocab_size", "model.vocab_size", apply_on="instantiate")
        parser.link_arguments("data.chars", "model.chars", apply_on="instantiate")
        parser.add_lightning_class_args(LogSnapshots, "snapshots")
        parser.add_lightning_class_args(BestCheckpoint, "best_checkpoint")
        parser.add_lightning_class_args(LastCheckpoint, "last_checkpoint")

    def parse_arguments(self, parser, args) -> None:
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        config = self.config[subcommand] if subcommand else None
        if config is not None and "weights_only" in config:
            require_weights_only(config)
        if config is None or not config.get("ckpt_path"):
            return
        if config.ckpt_path in ("best", "last"):
            config.ckpt_path = self.resolve_run_checkpoint(subcommand, config)
        if config.ckpt_path is not None:
            checkpoint = read_checkpoint(config.ckpt_path)
            self.checkpoint_hparams = checkpoint["hyper_parameters"]
            self.use_checkpoint_data_settings(subcommand, checkpoint)

    def _parse_ckpt_path(self) -> None:
        """Lightning merges the checkpoint's model settings into the config here and checks the
        whole config, data settings taken from the checkpoint included: settings that do not
        parse are a checkpoint error, not a usage message."""
        self.parser.exit_on_error = False
        try:
            super()._parse_ckpt_path()
        except ArgumentError as err:
            path = self.config[self.config.subcommand].ckpt_path
            raise CheckpointError(
                f"--ckpt_path {path}: its settings do not fit makemore_pl "
                f"({' '.join(str(err).split())})"
            ) from None
        finally:
            self.parser.exit_on_error = True

    def resolve_run_checkpoint(self, subcommand: str, config) -> str | None:
        """'best' or 'last' -> that checkpoint of the newest run under default_root_dir."""
        which, logs = (
            config.ckpt_path,
            Path(config.trainer.default_root_dir or ".", "lightning_logs"),
        )
        path = find_run_checkpoint(logs, which)
        if path is None and subcommand == "fit":
            rank_zero_info(
                f"no {which}.ckpt in the newest training run under {logs}: a new run starts"
            )
            return None
        if path is None:
            raise CommandError(
                f"--ckpt_path {which}: no {which}.ckpt in the newest training run under {logs}; "
                "train one with `fit` or pass a checkpoint path"
            )
        if subcommand == "fit":
            self.resumed_run = path.parent.parent  # log the resumed run into its own folder
        return str(path)

    def use_checkpoint_data_settings(self, subcommand: str, checkpoint: dict) -> None:
        """The data settings the checkpoint was trained with replace the defaults (an option
        given on the command line or in a config still wins), so that `test --ckpt_path` of a
        trigram run tests a trigram model on its own split."""
        saved = checkpoint.get("datamodule_hyper_parameters", {})
        data, defaults = self.config[subcommand].data, self._parser(subcommand).get_defaults().data
        for key, value in saved.items():
            if key in data and data[key] == defaults[key]:
                data[key] = value

    def instantiate_classes(self) -> None:
        config = self.config.get(self.subcommand, {})
        if self.subcommand in ("sample", "baseline"):
            # no neural model: a checkpoint holds it and its vocabulary, so the data file may be
            # absent; the counting model needs none (W of context_size 6 would take 42 GB)
            self.config_init, self.model = self.config, None
            counting = self.subcommand == "baseline" or config.get("counting")
            path = Path(config.data.path)
            needed = counting or path.is_file()
            self.datamodule = NamesDataModule(**config.data.as_dict()) if needed else None
            self.trainer = self.trainer_class(
                logger=False,
                accelerator=config.trainer.accelerator,
                devices=1,
                enable_progress_bar=False,
            )
            return
        super().instantiate_classes()

    def after_instantiate_classes(self) -> None:
        """Fails before the run starts: on a checkpoint of another order or vocabulary than the
        data, and on a folder the run could not write its logs and checkpoints to."""
        if self.subcommand not in ("fit", "validate", "test", "predict"):
            return
        if self.checkpoint_hparams is not None:
            data = self.datamodule
            args = (str(data.path), data.context_size, data.chars)
            check_fits_data(self.config[self.subcommand].ckpt_path, self.checkpoint_hparams, *args)
        self.check_run_folders()

    @rank_zero_only  # another rank would take the next free version_N and create it for nothing
    def check_run_folders(self) -> None:
        trainer = self.trainer
        if trainer.logger is not None:
            check_writable(trainer.log_dir)
        if self.subcommand == "fit":
            for callback in trainer.checkpoint_callbacks:
                check_writable(callback.dirpath or Path(trainer.log_dir, "checkpoints"))

    def instantiate_trainer(self, **kwargs) -> Trainer:
        trainer_config = self._get(self.config_init, "trainer", {})
        kwargs["plugins"] = with_atomic_checkpoints(trainer_config.get("plugins"))
        logger = trainer_config.get("logger")
        if self.resumed_run is not None and logger in (None, True):
            root = self.resumed_run.parent.parent
            kwargs["logger"] = TensorBoardLogger(root, version=self.resumed_run.name)
        return super().instantiate_trainer(**kwargs)


def main(args: list[str] | None = None) -> None:
    try:
        MakemoreCLI(
            BigramLitModule,
            NamesDataModule,
            trainer_class=MakemoreTrainer,
            trainer_defaults={
                "max_epochs": 100,
                "log_every_n_steps": 1,
                # the data module splits every batch between processes itself, exactly: the
                # DistributedSampler Lightning would add pads by repeating examples
                "use_distributed_sampler": False,
                "callbacks": [CountingReference()],
            },
            seed_everything_default=42,
            auto_configure_optimizers=False,  # the model chooses its optimizer (--model.optimizer)
            save_config_kwargs={"overwrite": True},  # a resumed run rewrites its config
            args=args,
        )
    except UserError as err:  # says what to fix; no traceback
        sys.exit(f"makemore_pl: error: {err}")
    except MisconfigurationException as err:  # e.g. --trainer.accelerator gpu without a GPU
        sys.exit(f"makemore_pl: error: {err} (Lightning refused the --trainer options)")
