"""Runs plain command `<name>` (cli/plain/<name>.py) with its own options and `--data.*`."""

import importlib
import inspect
import sys
import typing

import yaml

from makemore_pl.cli.commands import COMMANDS
from makemore_pl.cli.config_files import read_config, safe_load
from makemore_pl.cli.interrupts import plain_command_started
from makemore_pl.core.data import DataConfig, NamesData
from makemore_pl.core.errors import CommandError, SettingError

# options the plain commands share with the Trainer, spelled --trainer.NAME everywhere
TRAINER_OPTIONS = {
    "default_root_dir": "the folder whose lightning_logs holds the runs",
    "accelerator": 'where to run the model: "auto" takes a GPU if there is one',
}
# sections of a training config (`fit --config`) that these commands have no use for
TRAINING_SECTIONS = {"trainer", "model", "seed_everything", "ckpt_path", "run_name", "output"}
TRAINING_SECTIONS |= {"snapshots", "best_checkpoint", "last_checkpoint", "weights_only"}


def named_parser(base: type, prog: str) -> type:
    """The parser class `base` named `prog` (jsonargparse's `--model.help` would show
    `__main__.py`). argparse ignores an OSError while printing help (`--help >/dev/full` would
    exit 0 with the help lost); here it reaches the one-line message and the exit status."""

    class Parser(base):
        def __init__(self, *args, **kwargs) -> None:
            kwargs.setdefault("prog", prog)
            super().__init__(*args, **kwargs)

        def _print_message(self, message: str, file: typing.IO[str] | None = None) -> None:
            file = file or sys.stderr
            if message and file is not None:  # None: the stream was closed at start
                file.write(message)

    return Parser


def run_command(prog: str, name: str, args: list[str]) -> object:
    """Parses `args` for command `name` (its own options and --data.*) and runs it."""
    from jsonargparse import ActionConfigFile, ArgumentParser

    module = importlib.import_module(f"makemore_pl.cli.plain.{name}")
    function = getattr(module, name)
    plain_command_started()
    parser = named_parser(ArgumentParser, f"{prog} {name}")(description=COMMANDS[name])
    parser.add_argument(
        "--config",
        action=ActionConfigFile,
        help="a YAML file of options; the data section of a `fit` config is read (and for "
        "suffix_sweep its suffix model's penalty, as the start), the rest skipped",
    )
    parameters = inspect.signature(function).parameters
    shared = [name for name in TRAINER_OPTIONS if name in parameters]
    parser.add_function_arguments(function, skip={"data", *shared}, as_group=False)
    hints = typing.get_type_hints(function)
    for name in shared:  # spelled as by the training commands, whose runs these commands read
        default, text = parameters[name].default, TRAINER_OPTIONS[name]
        parser.add_argument(f"--trainer.{name}", type=hints[name], default=default, help=text)
    parser.add_class_arguments(NamesData, "data")
    for arg in args:  # one spelling per option across commands: the other is refused, named
        name = arg.split("=", 1)[0].removeprefix("--")
        if arg.startswith("--") and name in TRAINER_OPTIONS:
            raise CommandError(f"--{name} is spelled --trainer.{name}, as for fit and test")
    config = parser.parse_args(data_sections_only(args, module))
    own = [key for key in vars(config) if key not in ("config", "data", "trainer")]
    try:
        init = parser.instantiate_classes(config)
        options = {key: getattr(init, key) for key in own}
        options.update({name: init.trainer[name] for name in shared})
        return function(init.data, **options)
    except SettingError as err:  # named as the option the user typed
        renamed = getattr(module, "RENAMED", {})
        named = {**{key: key for key in own}, **renamed}
        raise CommandError(f"{flag(err.setting, named)} {err.problem}") from None


def flag(setting: str, own: dict[str, str] | None = None) -> str:
    """A setting's command-line option: `own[setting]`, else the data's or the model's."""
    if own is not None and setting in own:
        return f"--{own[setting]}"
    return f"--data.{setting}" if setting in DataConfig.names() else f"--model.{setting}"


def data_sections_only(args: list[str], command=None) -> list[str]:
    """Each `--config FILE` without its training-only sections, so that a `fit` config serves
    too; a command module's `options_from_fit_config` takes more from it."""
    out, rest = [], iter(args)
    for arg in rest:
        path = next(rest, None) if arg == "--config" else None
        if arg.startswith("--config="):
            path = arg.split("=", 1)[1]
        if path is None:
            out.append(arg)
            continue
        try:
            loaded = safe_load(read_config(path, f"--config {path}"), f"--config {path}")
        except yaml.YAMLError as err:
            raise CommandError(f"--config {path}: cannot read it as YAML ({err})") from None
        if not isinstance(loaded, dict):
            raise CommandError(f"--config {path}: not a mapping of options")
        kept = {k: v for k, v in loaded.items() if k not in TRAINING_SECTIONS}
        from_fit = getattr(command, "options_from_fit_config", None)
        kept.update(from_fit(loaded) if from_fit is not None else {})
        out += ["--config", yaml.safe_dump(kept) if kept else "{}"]
    return out
