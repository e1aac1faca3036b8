"""What `--ckpt_path` brings to a command: the checkpoint's settings checked like options, its
run's config, its data file found wherever the command runs, and whether its run is complete."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import yaml
from jsonargparse import ArgumentError, ArgumentParser

from makemore_pl.cli.config_files import ConfigRefused, safe_load
from makemore_pl.core.data_identity import DataFile, locate
from makemore_pl.core.errors import CheckpointError
from makemore_pl.core.words import NAMES_SHA256
from makemore_pl.lit.datamodule import NamesDataModule
from makemore_pl.models.registry import ModelKind, kind_of_class_path
from makemore_pl.models.saved import (
    saved_settings,
)


class RunComplete(Exception):
    """`fit --ckpt_path` of a run that has already trained as far as asked."""


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
        except (ArgumentError, ConfigRefused) as err:
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
