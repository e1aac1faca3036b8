"""fit/validate/test/predict: LightningCLI on its public hooks; `--ckpt_path` is resolved first."""

import functools
import importlib
import inspect
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lightning.pytorch import Trainer
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.utilities import rank_zero_info

from makemore_pl.cli import runs
from makemore_pl.cli.commands import COMMANDS
from makemore_pl.cli.console import fit_check, fit_summary, quiet_console
from makemore_pl.cli.interrupts import raise_interrupted, sigint_handled_by
from makemore_pl.cli.loggers import logger_choices, run_loggers, takes_logger_spec
from makemore_pl.cli.model_help import asks_help, default_model_help
from makemore_pl.cli.plain.baseline import counting_model
from makemore_pl.cli.plain.command import flag, named_parser
from makemore_pl.cli.resume import Resolved, RunComplete, require_weights_only, resolve
from makemore_pl.cli.trainer_options import check_options, check_seed, check_splits
from makemore_pl.core.devices import device_of
from makemore_pl.core.errors import CommandError, SettingError, UserError
from makemore_pl.core.files import check_writable_target
from makemore_pl.lit.callbacks import (
    BestCheckpoint,
    CountingReference,
    LastCheckpoint,
    LogSnapshots,
    StopOnNonFiniteLoss,
    StopOnSignal,
)
from makemore_pl.lit.checkpoint_io import with_atomic_checkpoints
from makemore_pl.lit.datamodule import NamesDataModule
from makemore_pl.lit.module import NgramLitModule
from makemore_pl.lit.predictions import PREDICTIONS, PredictionWriter
from makemore_pl.lit.progress import ModelLine, PlainProgress, ReadableProgressBar
from makemore_pl.models.registry import DEFAULT_MODEL, MODELS

OPTIONS = """
        Args:
            ckpt_path: 'last' or 'best' (that checkpoint of the newest training run under
                --trainer.default_root_dir/lightning_logs) or a checkpoint's path; `fit`
                continues that run in its own folder with its saved settings (options given
                here win).
            weights_only: always true: checkpoints are read as tensors and plain values,
                never as code.{verbose}
        """
VERBOSE = "\n            verbose: print the results table."
LIGHTNING_LOG_EVERY_N_STEPS = 50  # the Trainer's default
PARTIAL_CONFIG = ".config.yaml.partial"  # renamed to config.yaml once written


def documented(command: str) -> Callable:
    """Trainer.`command`, checkpoints loaded as weights only, its help this package's (LightningCLI
    reads a command's help, and its options', from the method's docstring)."""
    method = getattr(Trainer, command)

    @functools.wraps(method)
    def run(self: Trainer, *args: Any, **kwargs: Any) -> Any:
        kwargs["weights_only"] = True
        if command == "predict":  # the writer has them: no second copy in memory
            kwargs["return_predictions"] = False
        return method(self, *args, **kwargs)

    verbose = VERBOSE if command in ("validate", "test") else ""
    run.__doc__ = COMMANDS[command] + OPTIONS.format(verbose=verbose)
    signature = inspect.signature(method)  # without the option it sets
    kept = [p for p in signature.parameters.values() if p.name != "return_predictions"]
    run.__signature__ = signature.replace(parameters=kept)
    return run


@takes_logger_spec
class MakemoreTrainer(Trainer):
    """The Lightning Trainer, its commands documented as this package runs them."""

    fit, validate, test, predict = map(documented, ("fit", "validate", "test", "predict"))
    run: Path | None = None  # the run folder, set by MakemoreCLI

    @property
    def log_dir(self) -> str | None:
        """The run folder (config.yaml goes there), whichever loggers the run has, if any; the
        first process's, which the others join (as Lightning's, every process calls it)."""
        return super().log_dir if self.run is None else self.strategy.broadcast(str(self.run))


class SaveFitConfig(SaveConfigCallback):
    """config.yaml is the training run's: `test` or `predict` in its folder leave it alone. It
    is written whole or not at all (a kill mid-write would leave a resume nothing to read)."""

    def setup(self, trainer: Trainer, pl_module, stage: str) -> None:
        if stage != "fit" or self.already_saved:
            return
        final, self.config_filename = self.config_filename, PARTIAL_CONFIG
        try:
            super().setup(trainer, pl_module, stage)
        finally:
            self.config_filename = final
        run = Path(trainer.log_dir)  # every process asks: it is broadcast
        if trainer.is_global_zero:
            os.replace(run / PARTIAL_CONFIG, run / final)


class MakemoreCLI(LightningCLI):
    """Links the data's vocabulary and order into the model; runs in a run folder of its own."""

    exit_code = 0
    lock = None  # the run's lock, held during fit by the process that writes the run (rank 0)
    fresh_run = False  # the run folder was made by this command (removed if it fails unstarted)

    def __init__(self, *args, resolved: Resolved | None = None, **kwargs) -> None:
        self.resolved = resolved or Resolved()
        try:
            super().__init__(*args, **kwargs)
        except BaseException:  # refused options, bad data, Ctrl-C: before the first checkpoint,
            # the newest run would hide an older run's best.ckpt from `--ckpt_path best`
            if self.fresh_run:
                runs.remove_if_unstarted(self.run)
            raise

    @property
    def saved(self):
        return self.resolved.saved

    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("data.context_size", "model.init_args.context_size")
        parser.link_arguments("data.encoding", "model.init_args.encoding")
        for key in ("vocab_size", "chars"):  # read from the data module once it is built
            setting = functools.partial(self.data_setting, key)
            parser.link_arguments("data", f"model.init_args.{key}", setting, "instantiate")
        parser.set_defaults({"model": {"class_path": DEFAULT_MODEL.class_path}})
        parser.add_lightning_class_args(LogSnapshots, "snapshots")
        parser.add_lightning_class_args(BestCheckpoint, "best_checkpoint")
        parser.add_lightning_class_args(LastCheckpoint, "last_checkpoint")
        run_name = "name shown in TensorBoard's run selector; default: the order and the model"
        parser.add_argument("--run_name", type=str | None, default=None, help=run_name)
        output = "predict: where to write the TSV of scored names; default: predictions.tsv in "
        output += "the checkpoint's run folder"
        parser.add_argument("--output", type=str | None, default=None, help=output)
        parser.set_defaults({"trainer.enable_model_summary": False})

    def parse_arguments(self, parser, args) -> None:
        super().parse_arguments(parser, args)
        command = self.config.get("subcommand")
        if command is None:  # run=False: the classes are built, no command runs
            return
        config = self.config[command]
        if isinstance(config.trainer.accelerator, str):  # a missing GPU: before the seed line
            device_of("--trainer.accelerator", config.trainer.accelerator)
        require_weights_only(config)
        check_seed(config.seed_everything)
        self.logger_choices = logger_choices(config.trainer.logger)
        # resolved already: LightningCLI would read the file again for its model settings
        config.ckpt_path = None

    def data_setting(self, key: str, data: NamesDataModule) -> Any:
        """The data's vocab_size or chars (it loads the words on first use). A checkpoint knows
        its characters: scoring --data.predict_path needs no training file."""
        chars = self.saved.model.config.chars if self.saved is not None else None
        if chars is not None and data.config.predict_path and not data.data.path.is_file():
            data.data.adopt_vocabulary(chars)
        return getattr(data.data, key)

    def before_instantiate_classes(self) -> None:
        if self.subcommand is None:
            return
        config = self.config[self.subcommand]
        check_options(self.subcommand, config)  # before any folder is made
        self.resolved.check_changes(self.subcommand, config)
        for note in self.resolved.notes:
            rank_zero_info(note)
        if self.saved is not None:
            config.ckpt_path = self.saved.path
        if self.subcommand == "fit":
            self.resolved.check_not_complete(config.trainer)

    def instantiate_trainer(self, **kwargs) -> Trainer:
        config = self.config_init[self.subcommand] if self.subcommand else self.config_init
        trainer = config["trainer"]
        if self.subcommand is None:  # run=False: no run folder, nor loggers
            kwargs["plugins"] = with_atomic_checkpoints(trainer.get("plugins"))
            return super().instantiate_trainer(**kwargs, logger=False)
        # a resumed run rewrites its own last.ckpt; the data files are never written over
        kwargs["plugins"] = with_atomic_checkpoints(trainer.get("plugins"), self.inputs()[:2])
        if self.saved is not None:  # before any folder is made
            self.saved.check_fits(self.datamodule.data)
        check_splits(self.subcommand, self.datamodule.data)
        if self.subcommand != "fit" and self.saved is None:
            raise CommandError(
                f"{self.subcommand} needs --ckpt_path best|last|PATH: without a checkpoint the "
                "model is untrained (every weight 0)"
            )
        if self.subcommand == "predict" and config.get("output"):
            check_writable_target(Path(config["output"]), CommandError, self.inputs(), PREDICTIONS)
        self.run = self.claim_run(config)
        for key in ("best_checkpoint", "last_checkpoint"):
            config[key].dirpath = str(self.run / "checkpoints")
        if trainer.get("log_every_n_steps") is None and self.subcommand == "fit":
            # Lightning's cadence, or once an epoch when an epoch has fewer steps (a full batch)
            steps = self.datamodule.steps_per_epoch()
            kwargs["log_every_n_steps"] = max(1, min(LIGHTNING_LOG_EVERY_N_STEPS, steps))
        held_out = self.subcommand != "fit" and self.saved is not None
        step = int(self.saved.checkpoint.get("global_step", 0)) if held_out else None
        model = type(self.model).__name__
        kwargs["logger"] = run_loggers(
            self.logger_choices, self.run, stage=self.subcommand, step=step, model=model
        )
        # ModelLine (fit only) prints before the bar starts drawing, never onto it
        callbacks = [*(trainer.get("callbacks") or []), ModelLine(self.run.name)]
        if trainer.get("enable_progress_bar") is not False:
            callbacks.append(ReadableProgressBar() if sys.stdout.isatty() else PlainProgress())
        if self.subcommand == "test":  # only there: every callback costs each training step
            callbacks.append(CountingReference())
        if self.subcommand == "predict":
            path = Path(config.get("output") or self.run / "predictions.tsv")
            callbacks.append(PredictionWriter(path, self.inputs()))
        kwargs["callbacks"] = [*callbacks, StopOnSignal()]  # fit only
        made = super().instantiate_trainer(**kwargs)
        made.run = self.run
        return made

    def claim_run(self, config) -> Path:
        """The run this command writes to: the checkpoint's own, or a new one."""
        resumed = runs.run_of_checkpoint(config["ckpt_path"]) if config.get("ckpt_path") else None
        if resumed is not None and (self.subcommand == "fit" or runs.writable(resumed)):
            return resumed
        if resumed is not None:  # a held-out command of a run it cannot write to logs elsewhere
            rank_zero_info(
                f"note: {resumed} cannot be written to: {self.subcommand} logs into a new run"
            )
        joined = os.environ.get(runs.RUN_ENV)
        root = Path(config["trainer"].get("default_root_dir") or ".")
        name = config.get("run_name") or self.default_name()
        prefix = "" if self.subcommand == "fit" else f"{self.subcommand}-"
        # one form, absolute, so that a resumed checkpoint callback finds its own folder again
        run = runs.new_run_folder(root / "lightning_logs", runs.safe_name(prefix + name)).resolve()
        self.fresh_run = joined is None and run.is_dir()  # made here, by this process
        os.environ[runs.RUN_ENV] = str(run)  # processes a multi-device launch starts join this run
        return run

    def default_name(self) -> str:
        kind = MODELS.get(type(self.model).__name__)
        if kind is None:  # a model class of the user's own
            return type(self.model).__name__.removesuffix("LitModule").lower()
        return kind.run_name(self.model.config)

    def inputs(self) -> tuple[str | None, ...]:
        """The files this command reads, never to be replaced: data, names to score, checkpoint."""
        data, saved = self.datamodule, self.saved
        return (str(data.data.path), data.config.predict_path, saved and saved.path)

    def after_instantiate_classes(self) -> None:
        """Fails early on a run folder it cannot write to; takes the run's lock for `fit`."""
        if self.subcommand is not None and self.trainer.is_global_zero:
            runs.check_writable(self.run)
            if self.subcommand == "fit":
                runs.check_writable(self.run / "checkpoints")
                self.lock = runs.lock_run(self.run)

    def after_fit(self) -> None:
        if self.lock is not None:  # the other processes of a multi-device run hold none
            self.lock.close()  # the run is free to be resumed
        stop = next(cb for cb in self.trainer.callbacks if isinstance(cb, StopOnSignal))
        best = next(cb for cb in self.trainer.callbacks if isinstance(cb, BestCheckpoint))
        if stop.received is not None:
            self.exit_code = stop.exit_code
            last = Path(self.run, "checkpoints", "last.ckpt")
            rank_zero_info(stop.message(last, self.command_line("fit", "last")))
            return
        if self.trainer.is_global_zero and not any(self.run.glob("checkpoints/*.ckpt")):
            runs.remove_if_unstarted(self.run)  # it would hide an older run's checkpoints
            why = "a debug run" if self.trainer.fast_dev_run else "it stopped before its first save"
            rank_zero_info(f"no checkpoint saved ({why}): the run folder {self.run} is removed")
            return
        rank_zero_info(fit_summary(self.run, best, self.trainer, self.command_line))
        if best.best_model_score is not None and self.trainer.is_global_zero:
            warning = self.compare_with_counting(float(best.best_model_score))
            if warning is not None:
                rank_zero_info(warning)

    def compare_with_counting(self, best: float) -> str | None:
        """The end-of-fit check: the best counting model of the same order on val."""
        data = self.datamodule.data
        val = data.ngram_counts("val")
        if len(val) == 0:
            return None
        sweep = f"{self.parser.prog} sweep --data.path {data.config.path} "
        sweep += f"--data.context_size {data.context_size}"
        last = self.trainer.callback_metrics.get("val_nll")
        improving = last is not None and float(last) <= best
        counting = counting_model(data, "best").counts_nll(val)
        minibatch = data.config.batch_size is not None
        return fit_check(best, counting, data.vocab_size, minibatch, sweep, improving)

    def command_line(self, command: str, checkpoint: str) -> str:
        """How to call this package again for the same run folder."""
        root = self.config.fit.trainer.default_root_dir
        where = f" --trainer.default_root_dir {root}" if root not in (None, ".") else ""
        return f"{self.parser.prog} {command}{where} --ckpt_path {checkpoint}"

    def after_predict(self) -> None:
        writer = next(cb for cb in self.trainer.callbacks if isinstance(cb, PredictionWriter))
        if writer.written is not None:
            rank_zero_info(f"predictions: {writer.written} ({writer.rows:,} names)")


def user_error_in(err: BaseException) -> UserError | None:
    """The user's mistake an exception was raised for, if one is among its causes."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, SettingError):
            return CommandError(f"{flag(err.setting)} {err.problem}")
        if isinstance(err, UserError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def run_training(prog: str, args: list[str]) -> int:
    """Runs a training command; returns the exit status."""
    quiet_console(args[0])
    joined = os.environ.get(runs.RUN_ENV)  # set when this process is one of a multi-device launch
    for kind in MODELS.values():  # --model SuffixLitModule finds the classes imported
        importlib.import_module(kind.lit_module)
    try:  # Ctrl-C raises Interrupted but while training runs
        with sigint_handled_by(raise_interrupted):
            resolved = resolve(args[0], args[1:])
            cli = MakemoreCLI(
                NgramLitModule,
                NamesDataModule,
                subclass_mode_model=True,
                trainer_class=MakemoreTrainer,
                trainer_defaults={
                    "max_epochs": 100,
                    # the data module splits every batch between processes itself, exactly: the
                    # DistributedSampler Lightning would add pads by repeating examples
                    "use_distributed_sampler": False,
                    "callbacks": [StopOnNonFiniteLoss()],
                },
                seed_everything_default=42,
                auto_configure_optimizers=False,  # the model's own (--model.optimizer)
                save_config_callback=SaveFitConfig,
                save_config_kwargs={"overwrite": True},  # a resumed run rewrites its own config
                parser_kwargs={"prog": prog},
                parser_class=named_parser(LightningArgumentParser, f"{prog} {args[0]}"),
                args=[args[0], *resolved.front, *args[1:]],
                resolved=resolved,
            )
    except SystemExit as done:  # --help: the default model's own options come last
        if done.code in (0, None) and asks_help(args):
            print(default_model_help(f"{prog} {args[0]}"))
        raise
    except RunComplete as done:
        print(done, file=sys.stderr)
        return 0
    except ValueError as err:  # jsonargparse wraps what a chosen model class raised
        raise user_error_in(err) or err from None
    finally:
        if joined is None:
            os.environ.pop(runs.RUN_ENV, None)
    return cli.exit_code
