"""fit, validate, test and predict: LightningCLI on its public hooks, with runs that resume.

`--ckpt_path best|last|PATH` is resolved before anything is built: `fit` of a run's checkpoint
continues that run with its own saved config.yaml (options given on the command line still win);
the other commands take the checkpoint's data settings, so a trigram is tested on its own split.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import yaml
from jsonargparse import ArgumentError, ArgumentParser
from lightning.pytorch import Trainer
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from makemore_pl.cli.baseline import counting_model
from makemore_pl.cli.config_files import safe_load
from makemore_pl.cli.console import fit_check, fit_summary, quiet_console
from makemore_pl.cli.runs import (
    RUN_ENV,
    check_writable,
    find_named_checkpoint,
    is_being_trained,
    lock_run,
    new_run_folder,
    newest_training_run,
    run_of_checkpoint,
    safe_name,
)
from makemore_pl.core.data_identity import DataFile, locate
from makemore_pl.core.devices import device_of, has_float64
from makemore_pl.core.errors import CheckpointError, CommandError, SettingError, UserError
from makemore_pl.core.files import check_writable_target
from makemore_pl.core.words import NAMES_SHA256
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
from makemore_pl.lit.logger import RunLogger
from makemore_pl.lit.module import NgramLitModule
from makemore_pl.lit.predictions import PredictionWriter
from makemore_pl.lit.progress import ModelLine, progress_display
from makemore_pl.lit.trainer import MakemoreTrainer
from makemore_pl.models.registry import DEFAULT_MODEL, MODELS, ModelKind, kind_of_class_path
from makemore_pl.models.saved import (
    check_fits_data,
    model_kind,
    read_checkpoint,
    saved_settings,
)


class SaveFitConfig(SaveConfigCallback):
    """config.yaml is the training run's: `test` or `predict` of its checkpoint, which log into
    the same folder, leave it as it is."""

    def setup(self, trainer: Trainer, pl_module, stage: str) -> None:
        if stage == "fit":
            super().setup(trainer, pl_module, stage)


class RunComplete(Exception):
    """`fit --ckpt_path` of a run that has already trained as far as asked."""


class MakemoreCLI(LightningCLI):
    """Links the data's vocabulary and order into the model; resolves best/last checkpoints."""

    exit_code = 0
    lock = None  # the run's lock, held by the process that writes the run (rank 0) during fit
    ckpt_path: str | None = None  # --ckpt_path resolved
    checkpoint: dict | None = None  # its contents, read and checked once
    fresh_run = False  # the run folder was made by this command (and is removed if it fails)

    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("data.context_size", "model.init_args.context_size")
        parser.link_arguments("data.encoding", "model.init_args.encoding")
        # read from the data module right after it is built: it loads the words on first use
        parser.link_arguments(
            "data", "model.init_args.vocab_size", self.data_vocab_size, apply_on="instantiate"
        )
        parser.link_arguments("data", "model.init_args.chars", self.data_chars, "instantiate")
        parser.set_defaults({"model": {"class_path": DEFAULT_MODEL.class_path}})
        parser.add_lightning_class_args(LogSnapshots, "snapshots")
        parser.add_lightning_class_args(BestCheckpoint, "best_checkpoint")
        parser.add_lightning_class_args(LastCheckpoint, "last_checkpoint")
        parser.add_argument(
            "--run_name",
            type=str | None,
            default=None,
            help="name shown in TensorBoard's run selector; default: the order and the model",
        )
        parser.add_argument(
            "--output",
            type=str | None,
            default=None,
            help="predict: where to write the TSV of scored names; default: predictions.tsv in "
            "the checkpoint's run folder",
        )
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
        if not config.ckpt_path:
            return
        root = config.trainer.default_root_dir
        path = find_named_checkpoint(config.ckpt_path, root, required=command != "fit")
        if path is None:
            self.start_again(parser, args, config, root)
            return
        # read and checked once, here; Lightning's restore is the only other read
        self.checkpoint = read_checkpoint(path, resume=command == "fit")
        kind = model_kind(path, self.checkpoint)
        check_settings(path, self.checkpoint, kind)
        run = run_of_checkpoint(path)
        data = saved_settings(self.checkpoint, "datamodule_hyper_parameters")
        if command == "fit" and run is not None and (run / "config.yaml").is_file():
            front = ["--config", run_config(run / "config.yaml")]  # the run's settings, then ours
        else:  # the data settings the checkpoint was trained with
            front = ["--data", json.dumps(data)]
        front += self.data_file_of(path, command, str(data.get("path", "names.txt")), args)
        super().parse_arguments(parser, [command, *front, *args[1:]])
        model = {"class_path": kind.class_path, "dict_kwargs": saved_settings(self.checkpoint)}
        self.config = parser.parse_object({command: {"model": model}}, self.config)
        require_weights_only(self.config[command])
        # LightningCLI would read the file again for the model settings just given
        self.ckpt_path, self.config[command].ckpt_path = path, None

    def data_file_of(self, path: str, command: str, typed: str, args: list[str]) -> list[str]:
        """`--data.path FILE` of the file the checkpoint was trained on, wherever the command
        runs from; [] when the user chose the file or the checkpoint does not record one."""
        saved = self.checkpoint.get("datamodule_hyper_parameters") or {}
        recorded = DataFile.from_saved(saved.get("_data_file"))
        if recorded is None:  # a checkpoint of an older makemore_pl: the path as saved
            return []
        explicit = option_value(args, "--data.path")
        without_file = command == "predict" and option_value(args, "--data.predict_path")
        where, note = choose_data_file(path, command, recorded, typed, explicit, without_file)
        if note is not None:
            rank_zero_info(note)
        return [] if where is None else ["--data.path", where]

    def data_vocab_size(self, data: NamesDataModule) -> int:
        self.adopt_checkpoint_vocabulary(data)
        return data.vocab_size

    def data_chars(self, data: NamesDataModule) -> list[str]:
        self.adopt_checkpoint_vocabulary(data)
        return data.chars

    def adopt_checkpoint_vocabulary(self, data: NamesDataModule) -> None:
        """A checkpoint knows its characters: scoring --data.predict_path needs no training file."""
        chars = (self.checkpoint or {}).get("hyper_parameters", {}).get("chars")
        if chars is not None and data.predict_path and not data.path.is_file():
            data.adopt_vocabulary(chars)

    def start_again(self, parser, args, config, root: str | None) -> None:
        """`fit --ckpt_path last|best` without that checkpoint: a run killed before its first
        checkpoint starts again with its own config.yaml (options given still win); a run
        another process is training is refused; with no run at all, a new run starts."""
        run = newest_training_run(Path(root or ".", "lightning_logs"))
        if run is not None and is_being_trained(run):
            raise CommandError(
                f"--ckpt_path {config.ckpt_path}: the newest run {str(run)!r} is being trained "
                "by another process and has no checkpoint yet; wait for it to end or stop it"
            )
        if run is not None and (run / "config.yaml").is_file():
            rank_zero_info(
                f"no {config.ckpt_path}.ckpt in {run} (stopped before its first checkpoint): a "
                "new run starts with its settings"
            )
            front = ["--config", run_config(run / "config.yaml")]
            super().parse_arguments(parser, ["fit", *front, *args[1:]])
            require_weights_only(self.config.fit)
        else:
            rank_zero_info(
                f"no {config.ckpt_path}.ckpt in the newest training run: a new run starts"
            )
        self.config.fit.ckpt_path = None

    def before_instantiate_classes(self) -> None:
        if self.subcommand is not None:  # before any folder is made
            config = self.config[self.subcommand]
            check_device(config.trainer)
            check_trainer_options(self.subcommand, config.trainer)
            check_precision(self.subcommand, config.trainer, config.model)
        if self.ckpt_path is not None:
            self.config[self.subcommand].ckpt_path = self.ckpt_path
        if self.subcommand == "fit" and self.ckpt_path is not None:
            check_not_complete(self.ckpt_path, self.checkpoint, self.config.fit.trainer)

    def instantiate_trainer(self, **kwargs) -> Trainer:
        config = self.config_init[self.subcommand] if self.subcommand else self.config_init
        trainer = config["trainer"]
        if self.subcommand is None:  # run=False: no run folder either
            kwargs["plugins"] = with_atomic_checkpoints(trainer.get("plugins"))
            return super().instantiate_trainer(**kwargs)
        # a resumed run rewrites its own last.ckpt; the data files are never written over
        data = self.datamodule
        reads = tuple(str(p) for p in (data.path, data.predict_path) if p)
        kwargs["plugins"] = with_atomic_checkpoints(trainer.get("plugins"), reads)
        self.check_checkpoint_fits_data()  # before any folder is made
        check_splits(self.subcommand, self.datamodule, config)
        if self.subcommand == "predict" and config.get("output"):
            check_writable_target(Path(config["output"]), CommandError, self.inputs())
        self.run = self.claim_run(config)
        for key in ("best_checkpoint", "last_checkpoint"):
            config[key].dirpath = str(self.run / "checkpoints")
        if trainer.get("logger") in (None, True):
            held_out = self.subcommand != "fit" and self.checkpoint is not None
            step = int(self.checkpoint.get("global_step", 0)) if held_out else None
            kwargs["logger"] = RunLogger(self.run, stage=self.subcommand, step=step)
        # ModelLine (fit only) prints before the bar starts drawing, never onto it
        callbacks = [*(trainer.get("callbacks") or []), ModelLine(self.run.name)]
        if trainer.get("enable_progress_bar") is not False:
            callbacks.append(progress_display(sys.stdout.isatty()))
        if self.subcommand == "predict":
            callbacks.append(PredictionWriter(self.predictions_path(config), self.inputs()))
        kwargs["callbacks"] = [*callbacks, StopOnSignal()]  # fit only
        try:
            return super().instantiate_trainer(**kwargs)
        except BaseException:  # Lightning refused the options: the run never started
            if self.fresh_run and not any(self.run.iterdir()):
                self.run.rmdir()
            raise

    def claim_run(self, config) -> Path:
        """The run this command writes to: the checkpoint's own, or a new one."""
        resumed = run_of_checkpoint(config["ckpt_path"]) if config.get("ckpt_path") else None
        if resumed is not None:
            return resumed
        joined = os.environ.get(RUN_ENV)
        root = Path(config["trainer"].get("default_root_dir") or ".")
        name = config.get("run_name") or self.default_name()
        prefix = "" if self.subcommand == "fit" else f"{self.subcommand}-"
        # one form, absolute, so that a resumed checkpoint callback finds its own folder again
        run = new_run_folder(root / "lightning_logs", safe_name(prefix + name)).resolve()
        self.fresh_run = joined is None and run.is_dir()  # made here, by this process
        os.environ[RUN_ENV] = str(run)  # processes a multi-device launch starts join this run
        return run

    def default_name(self) -> str:
        kind = MODELS.get(type(self.model).__name__)
        if kind is None:  # a model class of the user's own
            return type(self.model).__name__.removesuffix("LitModule").lower()
        return kind.run_name(dict(self.model.hparams))

    def inputs(self) -> tuple[str, ...]:
        """The files this command reads, which none of its outputs may replace."""
        data = self.datamodule
        paths = (str(data.path), data.predict_path, self.ckpt_path)
        return tuple(path for path in paths if path)

    def predictions_path(self, config) -> Path:
        return Path(config.get("output") or self.run / "predictions.tsv")

    def check_checkpoint_fits_data(self) -> None:
        """A checkpoint of another order or vocabulary than the data fails before the run."""
        if self.checkpoint is not None:
            hparams, data = self.checkpoint["hyper_parameters"], self.datamodule
            check_fits_data(self.ckpt_path, hparams, str(data.path), data.context_size, data.chars)

    def after_instantiate_classes(self) -> None:
        """Fails before the run starts on a folder the run could not write its logs and
        checkpoints to; takes the run's lock for `fit`."""
        if self.subcommand is not None and self.trainer.is_global_zero:
            check_writable(self.run)
            if self.subcommand == "fit":
                check_writable(self.run / "checkpoints")
                self.lock = lock_run(self.run)

    def after_fit(self) -> None:
        if self.lock is not None:  # the other processes of a multi-device run hold none
            self.lock.close()  # the run is free to be resumed
        stop = next(cb for cb in self.trainer.callbacks if isinstance(cb, StopOnSignal))
        best = next(cb for cb in self.trainer.callbacks if isinstance(cb, BestCheckpoint))
        if stop.signal_name is not None:
            self.exit_code = stop.exit_code
            last = Path(self.run, "checkpoints", "last.ckpt")
            rank_zero_info(stop.message(last, self.command_line("fit", "last")))
            return
        rank_zero_info(fit_summary(self.run, best, self.trainer, self.command_line))
        if best.best_model_score is not None and self.trainer.is_global_zero:
            warning = self.compare_with_counting(float(best.best_model_score))
            if warning is not None:
                rank_zero_info(warning)

    def compare_with_counting(self, best: float) -> str | None:
        """The end-of-fit check: the counting model of the same order, add-k chosen on val."""
        data = self.datamodule
        val = data.ngram_counts("val")
        if len(val) == 0:
            return None
        counting = counting_model(data, "auto").counts_nll(val)
        options = data.options
        sweep = (
            f"{self.parser.prog} sweep --data.path {options['path']} "
            f"--data.context_size {data.context_size}"
        )
        last = self.trainer.callback_metrics.get("val_nll")
        improving = last is not None and float(last) <= best
        minibatch = data.batch_size is not None
        return fit_check(best, counting, data.vocab_size, minibatch, sweep, improving)

    def command_line(self, command: str, checkpoint: str) -> str:
        """How to call this package again for the same run folder (options after the command,
        where its parser takes them)."""
        root = self.config.fit.trainer.default_root_dir
        where = f" --trainer.default_root_dir {root}" if root not in (None, ".") else ""
        return f"{self.parser.prog} {command}{where} --ckpt_path {checkpoint}"

    def after_predict(self) -> None:
        writer = next(cb for cb in self.trainer.callbacks if isinstance(cb, PredictionWriter))
        if writer.written is not None:
            rank_zero_info(f"predictions: {writer.written} ({writer.rows:,} names)")


def check_device(trainer: Any) -> None:
    """A missing GPU fails in one line; 64-true on a device without float64 (MPS) trains in
    float32, said in one line (the NLL sums stay exact: they are carried on the host)."""
    if not isinstance(trainer.accelerator, str):  # an Accelerator object: Lightning's to check
        return
    device = device_of("--trainer.accelerator", trainer.accelerator)
    if str(trainer.precision) in ("64", "64-true") and not has_float64(device):
        trainer.precision = "32-true"
        rank_zero_info(
            f"{device.type} has no float64: training in float32 (--trainer.precision 32-true), "
            "its NLLs summed exactly on the host; for float64 weights, --trainer.accelerator cpu"
        )


def option_value(args: list[str], option: str) -> str | None:
    """The value given to `option` on the command line (`--opt value` or `--opt=value`)."""
    value = None
    for i, arg in enumerate(args):
        if arg == option and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith(option + "="):
            value = arg.split("=", 1)[1]
    return value


def choose_data_file(
    path: str,
    command: str,
    recorded: DataFile,
    typed: str,
    explicit: str | None,
    without_file: bool,
) -> tuple[str | None, str | None]:
    """(the --data.path to use, or None to keep the given one; a one-line note, or None).

    A resume must train on the recorded content; `test`/`validate`/`predict` take another file
    only when it is given with --data.path, and say so."""
    if explicit is not None:
        if recorded.same_content(explicit):
            return None, None
        if command == "fit":
            raise CheckpointError(
                f"--ckpt_path {path}: the run was trained on {recorded.describe()}; --data.path "
                f"{explicit} holds other data, and a resume must train on the same file"
            )
        return None, (
            f"note: {command} on --data.path {explicit}, not the file the model was trained on, "
            f"{recorded.describe()}"
        )
    found, moved = locate(recorded, typed)
    if found is not None:
        note = f"data file moved: {recorded.path} is now {found}" if moved else None
        return str(found), note
    if without_file:  # predict --data.predict_path: the checkpoint's characters are enough
        return None, None
    if recorded.sha256 == NAMES_SHA256:  # the canonical names.txt: downloaded where it was
        return recorded.path, None
    state = "has changed" if Path(recorded.path).exists() else "is gone"
    here = "holds other data" if Path(typed).is_file() else "is missing"
    raise CheckpointError(
        f"--ckpt_path {path}: the data file it was trained on, {recorded.describe()}, {state} "
        f"(and {typed} here {here}); pass --data.path FILE to use another file"
    )


# Trainer options that count something: Lightning divides by some (ZeroDivisionError) and
# silently trains nothing with others
POSITIVE = ("accumulate_grad_batches", "check_val_every_n_epoch", "log_every_n_steps")
FIT_POSITIVE = ("max_epochs", "max_steps", "limit_train_batches")
NO_LIMIT = -1  # max_epochs and max_steps: Lightning's "no limit"


def check_trainer_options(command: str, trainer: Any) -> None:
    """Counts Lightning expects positive, checked before any run folder is made."""
    strategy = trainer.get("strategy")
    if isinstance(strategy, str) and "spawn" in strategy:
        raise CommandError(
            f"--trainer.strategy {strategy}: not supported (a spawned process cannot be handed "
            "the run's open lock and data); use --trainer.strategy ddp"
        )
    names = POSITIVE + (FIT_POSITIVE if command == "fit" else ())
    for name in names:
        value = trainer.get(name)
        if value is None or isinstance(value, bool) or value == NO_LIMIT and "max_" in name:
            continue
        if value <= 0:
            allowed = " (or -1, no limit)" if name.startswith("max_") else ""
            raise CommandError(f"--trainer.{name} must be above 0{allowed}, got {value}")


def check_precision(command: str, trainer: Any, model: Any) -> None:
    """float16 weights cannot train with Adam: its eps (1e-8) is 0 in float16, so the first
    step divides by zero whatever the learning rate."""
    init_args = model.get("init_args") if hasattr(model, "get") else None
    optimizer = init_args.get("optimizer") if init_args is not None else None
    if command == "fit" and str(trainer.get("precision")) == "16-true" and optimizer == "adam":
        raise CommandError(
            "--trainer.precision 16-true: Adam cannot train float16 weights (its eps, 1e-8, is 0 "
            "in float16, and the first step divides by it); use --trainer.precision 16-mixed "
            "(float32 weights) or --model.optimizer sgd"
        )


def check_splits(command: str, data: NamesDataModule, config: Any) -> None:
    """A split the command uses must hold names: fit trains on train (and checks val unless it
    is asked not to), test and validate read their own; predict has its own file to score."""
    used = {"fit": ["train"], "validate": ["val"], "test": ["test"]}.get(command, [])
    if command == "predict" and not data.predict_path:
        used = ["test"]
    if command == "fit" and data.val_fraction > 0:
        used.append("val")
    sizes = split_sizes(data) if used else {}  # predict of its own file reads no data file
    for split in used:
        if sizes[split] == 0:
            raise CommandError(
                f"data file {str(data.path)!r}: its {sum(sizes.values())} names leave the "
                f"{split} split empty (val_fraction {data.val_fraction}, test_fraction "
                f"{data.test_fraction}); use more names or other fractions"
            )


def split_sizes(data: NamesDataModule) -> dict[str, int]:
    """How many names each split gets, as the split itself rounds them."""
    n = len(data.words) if data.dedupe else data.scan.num_names
    test, val = round(n * data.test_fraction), round(n * data.val_fraction)
    return {"train": n - test - val, "val": val, "test": test}


def check_seed(seed: int | bool) -> None:
    """Lightning seeds numpy too, which takes 32-bit seeds only."""
    if not isinstance(seed, bool) and not 0 <= seed < 2**32:
        raise CommandError(f"--seed_everything must be from 0 to {2**32 - 1}, got {seed}")


def check_settings(path: str, checkpoint: dict, kind: ModelKind) -> None:
    """The model and data settings a checkpoint brings are checked like command-line options."""
    model_class = getattr(importlib.import_module(kind.lit_module), kind.name)
    data = saved_settings(checkpoint, "datamodule_hyper_parameters")
    for key, cls, saved in (
        ("model", model_class, saved_settings(checkpoint)),
        ("data", NamesDataModule, data),
    ):
        parser = ArgumentParser(exit_on_error=False)
        parser.add_class_arguments(cls, key, fail_untyped=False)
        try:
            parser.parse_object({key: saved})
        except ArgumentError as err:
            raise CheckpointError(
                f"--ckpt_path {path}: its settings do not fit makemore_pl "
                f"({' '.join(str(err).split())})"
            ) from None


def run_config(path: Path) -> str:
    """A run's config.yaml, with the model's class path as this version names it."""
    config = safe_load(path.read_text(encoding="utf-8"), str(path))
    model = config.get("model") if isinstance(config, dict) else None
    if isinstance(model, dict) and isinstance(model.get("class_path"), str):
        kind = kind_of_class_path(model["class_path"])
        model["class_path"] = kind.class_path if kind is not None else model["class_path"]
    return yaml.safe_dump(config)


def require_weights_only(config: Any) -> None:
    """Sets a command's `weights_only` to True: Lightning's default, None, defers to torch.load's,
    which is False before torch 2.6. Refuses an explicit False."""
    if config.weights_only is False:
        raise CheckpointError(
            "--weights_only false: makemore_pl loads checkpoints with weights_only=True only, so "
            "that a checkpoint cannot run code; its own checkpoints need nothing more"
        )
    config.weights_only = True


def check_not_complete(path: str, checkpoint: dict, trainer) -> None:
    """A run that has trained as far as asked says so instead of touching its files."""
    done = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {})
    epochs = done.get("current", {}).get("processed", checkpoint.get("epoch", 0))
    max_epochs, max_steps = trainer.max_epochs, trainer.max_steps
    by_epochs = max_epochs is not None and max_epochs >= 0 and epochs >= max_epochs
    by_steps = max_steps is not None and max_steps >= 0 and checkpoint["global_step"] >= max_steps
    if by_epochs or by_steps:
        limit = f"max_epochs {max_epochs}" if by_epochs else f"max_steps {max_steps}"
        raise RunComplete(
            f"{path}: the run is complete ({epochs} epochs, step {checkpoint['global_step']}, "
            f"{limit}); to train further, add e.g. --trainer.max_epochs {epochs + max(epochs, 1)}"
        )


def user_error_in(err: BaseException) -> UserError | None:
    """The user's mistake an exception was raised for, if one is among its causes."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, SettingError):
            return CommandError(f"{option_of(err.setting)} {err.problem}")
        if isinstance(err, UserError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def option_of(setting: str) -> str:
    """The command-line option of a model's or the data's setting."""
    return f"--data.{setting}" if setting in DATA_SETTINGS else f"--model.{setting}"


DATA_SETTINGS = set(inspect.signature(NamesDataModule).parameters)


def named_parser(prog: str) -> type[LightningArgumentParser]:
    """A parser class named `prog` by default: jsonargparse makes the parser of `--model.help`
    without a name, which would show as `__main__.py`."""

    class Parser(LightningArgumentParser):
        def __init__(self, *args, **kwargs) -> None:
            kwargs.setdefault("prog", prog)
            super().__init__(*args, **kwargs)

    return Parser


def asks_help(args: list[str]) -> bool:
    return any(arg in ("-h", "--help") for arg in args) and not any(
        arg.startswith("--model") for arg in args
    )


def default_model_help(prog: str) -> str:
    """The options of the default model, which `--help` of a subclass-mode CLI leaves out."""
    kind = DEFAULT_MODEL
    model_class = getattr(importlib.import_module(kind.lit_module), kind.name)
    parser = named_parser(prog)(
        description=f"the default model's options ({kind.name}; another model's: "
        f"--model NAME --model.help NAME)"
    )
    linked = {"vocab_size", "context_size", "encoding", "chars"}  # set from the data
    parser.add_class_arguments(model_class, "model", skip=linked, fail_untyped=False)
    text = parser.format_help()  # without a second usage line, nor a second -h
    text = re.sub(r"\noptions:\n  -h, --help .*\n", "", text[text.index("\n\n") :])
    return text


def run_training(prog: str, args: list[str]) -> int:
    """Runs a training command; returns the exit status."""
    quiet_console(args[0])
    joined = os.environ.get(RUN_ENV)  # set when this process is one of a multi-device launch
    for kind in MODELS.values():  # --model SuffixLitModule finds the classes imported
        importlib.import_module(kind.lit_module)
    try:
        cli = MakemoreCLI(
            NgramLitModule,
            NamesDataModule,
            subclass_mode_model=True,
            trainer_class=MakemoreTrainer,
            trainer_defaults={
                "max_epochs": 100,
                "log_every_n_steps": 1,
                # the data module splits every batch between processes itself, exactly: the
                # DistributedSampler Lightning would add pads by repeating examples
                "use_distributed_sampler": False,
                "callbacks": [CountingReference(), StopOnNonFiniteLoss()],
            },
            seed_everything_default=42,
            auto_configure_optimizers=False,  # the model chooses its optimizer (--model.optimizer)
            save_config_callback=SaveFitConfig,
            save_config_kwargs={"overwrite": True},  # a resumed run rewrites its own config
            parser_kwargs={"prog": prog},
            parser_class=named_parser(f"{prog} {args[0]}"),
            args=args,
        )
    except SystemExit as done:  # --help: the default model's own options come last
        if done.code in (0, None) and asks_help(args):
            print(default_model_help(f"{prog} {args[0]}"))
        raise
    except RunComplete as done:
        print(done, file=sys.stderr)
        return 0
    except MisconfigurationException as err:  # e.g. --trainer.accelerator gpu without a GPU
        raise CommandError(f"{err} (Lightning refused the --trainer options)") from None
    except ValueError as err:  # jsonargparse wraps what a chosen model class raised
        raise user_error_in(err) or err from None
    finally:
        if joined is None:
            os.environ.pop(RUN_ENV, None)
    return cli.exit_code
