"""`--trainer.logger`: any of Lightning's loggers, as users write them (a name, a class path, a
`{class_path, init_args}` mapping, a list of these, true, false), each writing into the run's
folder; config.yaml records them as given, so that a resume keeps them."""

import importlib.util
import inspect
import re
from pathlib import Path
from typing import Any

from lightning.pytorch import loggers
from lightning.pytorch.loggers import CSVLogger, Logger, MLFlowLogger, TensorBoardLogger

from makemore_pl.core.errors import CommandError
from makemore_pl.lit.logger import RunCSVLogger, RunLogger

LoggerSpec = bool | str | dict[str, Any] | list[str | dict[str, Any]] | None
HELP = (
    "loggers, each writing into the run's folder: a name (TensorBoardLogger, CSVLogger, "
    "WandbLogger, MLFlowLogger, ...), a class path, {class_path: ..., init_args: {...}}, or a "
    "list of these; true or null: TensorBoard; false: none."
)
# where Lightning's loggers are defined: a class path is looked up by name there, never imported
MODULES = ("lightning.pytorch.loggers", "pytorch_lightning.loggers")
NAMES = sorted(set(loggers.__all__) - {"Logger"})
# the package a logger needs beyond this package's own: (module, what pip installs)
NEEDS = {
    "WandbLogger": ("wandb", "wandb"),
    "MLFlowLogger": ("mlflow", "mlflow"),
    "CometLogger": ("comet_ml", "comet-ml"),
    "LitLogger": ("litlogger", "litlogger"),
}
LOCATION = ("save_dir", "name", "version")  # the run folder's, for the file loggers

Choice = tuple[type[Logger], dict[str, Any]]  # a logger's class and its init_args


def logger_choices(spec: LoggerSpec) -> list[Choice]:
    """Each logger given, checked before any folder is made: one line for an unknown logger, a
    wrong argument or a package that is not installed."""
    if spec is None or spec is True:
        return [(TensorBoardLogger, {})]
    if spec is False:
        return []
    return [choice(item) for item in (spec if isinstance(spec, list) else [spec])]


def choice(item: Any) -> Choice:
    if isinstance(item, dict):
        class_path, init_args = item.get("class_path"), item.get("init_args") or {}
        if set(item) - {"class_path", "init_args"} or not isinstance(init_args, dict):
            raise CommandError(
                f"--trainer.logger {item}: give {{class_path: ..., init_args: {{...}}}}"
            )
    else:
        class_path, init_args = item, {}
    module, _, name = str(class_path).rpartition(".")
    if name not in NAMES or module and not module.startswith(MODULES):
        raise CommandError(
            f"--trainer.logger: {str(class_path)!r} is not one of Lightning's loggers "
            f"({', '.join(NAMES)})"
        )
    needs = NEEDS.get(name)
    if needs is not None and importlib.util.find_spec(needs[0]) is None:
        raise CommandError(
            f"--trainer.logger {name} needs the {needs[1]!r} package: pip install {needs[1]}"
        )
    cls = getattr(loggers, name)
    try:
        inspect.signature(cls).bind_partial(**init_args)
    except TypeError as err:
        raise CommandError(f"--trainer.logger {name}: {err}") from None
    return cls, init_args


def run_loggers(choices: list[Choice], run: Path, **held_out: Any) -> list[Logger]:
    """The loggers, built in the run's folder; `held_out`: the stage, step and model's name."""
    built = []
    for cls, init_args in choices:
        own = {key: value for key, value in init_args.items() if key not in LOCATION}
        if cls is TensorBoardLogger:
            built.append(RunLogger(run, **held_out, **own))
        elif cls is CSVLogger:
            built.append(RunCSVLogger(run, **held_out, **own))
        else:  # the run's folder unless told otherwise (a tracking server, say)
            built.append(cls(**{**placed(cls, run), **init_args}))
    return built


def placed(cls: type[Logger], run: Path) -> dict[str, Any]:
    if cls is MLFlowLogger:
        return {"tracking_uri": (run / "mlruns").as_uri(), "run_name": run.name}
    parameters = inspect.signature(cls).parameters
    where = {"save_dir": str(run), "root_dir": str(run), "name": run.name}
    return {key: value for key, value in where.items() if key in parameters}


def viewer(logger: Logger) -> str:
    """How to look at what a logger wrote, for the end of `fit`."""
    if isinstance(logger, TensorBoardLogger):
        return f"tensorboard --logdir {logger.root_dir}"
    if isinstance(logger, CSVLogger):
        return f"metrics: {Path(logger.log_dir, 'metrics.csv')}"
    if isinstance(logger, MLFlowLogger) and logger.save_dir is not None:
        return f"mlflow ui --backend-store-uri {Path(logger.save_dir).as_uri()}"
    return f"{type(logger).__name__}: {logger.save_dir or logger.log_dir or 'see its own output'}"


def takes_logger_spec(trainer_class: type) -> type:
    """The Trainer's signature with `logger` of type LoggerSpec: jsonargparse would build the
    loggers itself, and CSVLogger's required save_dir fails before any hook of the CLI runs."""
    init = trainer_class.__init__

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)

    signature = inspect.signature(init)
    parameters = [
        p.replace(annotation=LoggerSpec) if p.name == "logger" else p
        for p in signature.parameters.values()
    ]
    __init__.__signature__ = signature.replace(parameters=parameters)
    # the option's help: the entry up to the next one, at the same indentation
    __init__.__doc__ = re.sub(
        r"(\n +)logger: .*?(?=\1\w+:)", rf"\1logger: {HELP}", init.__doc__, flags=re.S
    )
    trainer_class.__init__ = __init__
    return trainer_class
