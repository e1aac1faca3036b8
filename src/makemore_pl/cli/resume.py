"""What `--ckpt_path` brings to a training command, resolved before LightningCLI is built: the
checkpoint, the run it continues, its settings (before the user's) and its data file."""

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from makemore_pl.cli.config_files import ConfigRefused, ConfigTooLarge, read_config, safe_load
from makemore_pl.cli.plain.command import flag
from makemore_pl.cli.runs import (
    find_named_checkpoint,
    is_being_trained,
    newest_training_run,
    run_of_checkpoint,
)
from makemore_pl.core.data_identity import locate
from makemore_pl.core.errors import CheckpointError, CommandError, UserError
from makemore_pl.core.settings import Settings
from makemore_pl.core.words import NAMES_SHA256
from makemore_pl.models.registry import kind_of_class_path
from makemore_pl.models.saved import SavedModel, read_checkpoint


class RunComplete(Exception):
    """`fit --ckpt_path` of a run that has already trained as far as asked."""


@dataclass
class Resolved:
    """A training command's checkpoint, and the options it implies."""

    saved: SavedModel | None = None  # the checkpoint, read and checked once
    front: list[str] = field(default_factory=list)  # options before the user's (theirs win)
    notes: list[str] = field(default_factory=list)  # said once, before the run

    def check_not_complete(self, trainer: Any) -> None:
        """A run that has trained as far as asked says so instead of touching its files."""
        if self.saved is None:
            return
        checkpoint, step = self.saved.checkpoint, self.saved.checkpoint["global_step"]
        done = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {})
        epochs = done.get("current", {}).get("processed", checkpoint.get("epoch", 0))
        max_epochs, max_steps = trainer.max_epochs, trainer.max_steps
        by_epochs = max_epochs is not None and max_epochs >= 0 and epochs >= max_epochs
        by_steps = max_steps is not None and max_steps >= 0 and step >= max_steps
        if by_epochs or by_steps:
            limit = f"max_epochs {max_epochs}" if by_epochs else f"max_steps {max_steps}"
            raise RunComplete(
                f"{self.saved.path}: the run is complete ({epochs} epochs, step {step}, {limit}); "
                f"to train further, add e.g. --trainer.max_epochs {epochs + max(epochs, 1)}"
            )

    def check_changes(self, command: str, config: Any) -> None:
        """The one rule for what a command given a checkpoint may change. A resume refuses a
        setting that would change what its numbers mean (`kept`: the split, the data, the
        model's shape), and applies and records any other, saying so; a held-out command uses
        the checkpoint's model, and says how its split differs from the one trained on."""
        if self.saved is None:
            return
        saved, kind = self.saved, self.saved.kind
        if kind_of_class_path(str(config.model.class_path)) is not kind:
            raise saved.error(f"it holds a {kind.name}, not a {config.model.class_path}")
        model = changed(saved.model.config, vars(config.model.init_args), LINKED)
        data = changed(saved.data, vars(config.data), ("path", "predict_path"))
        shape = {n: c for n, c in model.items() if n in kind.config.kept()}
        split = {n: c for n, c in data.items() if n in type(saved.data).kept()}
        if command == "fit" and (shape or split):
            raise saved.error(
                f"{shown_changes({**shape, **split})}: a resume keeps what its numbers mean (the "
                "split, the data, the model's shape); drop the option, or start a new run "
                "without --ckpt_path"
            )
        if shape:  # a held-out command scores the checkpoint's model
            raise saved.error(
                f"{shown_changes(shape)}: the model is the checkpoint's; drop the option"
            )
        if command == "fit" and model:
            self.notes.append(f"resume: {shown_changes(model)}: in effect, recorded in the run")
        elif model:
            self.notes.append(
                f"note: {shown_changes(model)}: no effect, the model is the checkpoint's"
            )
        if split:
            self.notes.append(
                f"note: {command} on a split other than the model's: {shown_changes(split)}; its "
                "words may include training words"
            )


# the model's settings the command line links from the data (cli/training.py), compared there
LINKED = ("vocab_size", "context_size", "encoding", "chars")


def changed(saved: Settings | None, given: dict, skip: tuple) -> dict[str, tuple]:
    """setting -> (saved value, given value, the saved settings) where they differ; the given
    values read as the settings class reads them (defaults written out)."""
    if saved is None:
        return {}
    given = {k: v for k, v in given.items() if k in saved.names() and k not in skip}
    try:
        now = replace(saved, **given)
    except (UserError, TypeError):  # refused when the model or data is built, naming it
        return {}
    return {
        name: (getattr(saved, name), getattr(now, name), saved)
        for name in given
        if getattr(now, name) != getattr(saved, name)
    }


def shown_changes(changes: dict[str, tuple]) -> str:
    return ", ".join(f"{flag(n)} {new} (was {old})" for n, (old, new, _) in changes.items())


def given(args: list[str], key: str) -> Any:
    """The value a command line gives a dotted option (`--key V`, `--key=V`, in a `--config`);
    the last one wins, as when it is parsed."""
    value = None
    for i, arg in enumerate(args):
        name, has_value, inline = arg.partition("=")
        following = args[i + 1] if i + 1 < len(args) else None
        if name == f"--{key}":
            value = inline if has_value else following
        elif name in ("--config", "-c") and (has_value or following is not None):
            found = config_value(inline if has_value else following, key.split("."))
            value = found if found is not None else value
    return value


def config_value(config: str, keys: list[str]) -> Any:
    """A dotted key of a --config file or text, or None."""
    try:
        text = read_config(config, "--config") if os.path.exists(config) else config
        loaded = safe_load(text, f"--config {config}")
    except (OSError, UnicodeDecodeError, yaml.YAMLError, ConfigRefused, UserError):
        return None  # the parser reports it, naming the file
    for key in keys:
        loaded = loaded.get(key) if isinstance(loaded, dict) else None
    return loaded


def resolve(command: str, args: list[str]) -> Resolved:
    """`--ckpt_path best|last|PATH` of a training command, and what it implies."""
    ckpt_path, root = given(args, "ckpt_path"), given(args, "trainer.default_root_dir")
    if not ckpt_path or not isinstance(ckpt_path, str):
        return Resolved()
    path = find_named_checkpoint(ckpt_path, root, required=command != "fit")
    if path is None:
        return start_again(ckpt_path, root)
    saved = read_checkpoint(path, resume=command == "fit")
    run, data = run_of_checkpoint(path), saved.data
    resolved = Resolved(saved)
    if command == "fit" and run is not None and (run / "config.yaml").is_file():
        resolved.front += ["--config", run_config(run / "config.yaml")]
    else:  # the settings the checkpoint was trained with
        model = {"class_path": saved.kind.class_path, "init_args": saved.model.config.saved()}
        resolved.front += ["--model", json.dumps(model)]
        resolved.front += [] if data is None else ["--data", json.dumps(data.saved())]
        config = run / "config.yaml" if run is not None else None  # the run's loggers
        logger = config_value(str(config), ["trainer", "logger"]) if config else None
        resolved.front += [] if logger is None else ["--trainer.logger", json.dumps(logger)]
    typed = data.path if data is not None else "names.txt"
    where, note = data_file_of(saved, command, typed, args)
    resolved.front += [] if where is None else ["--data.path", where]
    resolved.notes += [] if note is None else [note]
    return resolved


def start_again(ckpt_path: str, root: str | None) -> Resolved:
    """`fit --ckpt_path last|best` without that checkpoint: a run killed before its first one
    starts again with its config.yaml; one being trained is refused; else a new run starts."""
    run = newest_training_run(Path(root or ".", "lightning_logs"))
    if run is not None and is_being_trained(run):
        raise CommandError(
            f"--ckpt_path {ckpt_path}: the newest run {str(run)!r} is being trained by another "
            "process and has no checkpoint yet; wait for it to end or stop it"
        )
    if run is not None and (run / "config.yaml").is_file():
        note = (
            f"no {ckpt_path}.ckpt in {run} (stopped before its first checkpoint): a new run "
            "starts with its settings"
        )
        return Resolved(None, ["--config", run_config(run / "config.yaml")], [note])
    return Resolved(None, [], [f"no {ckpt_path}.ckpt in the newest training run: a new run starts"])


def run_config(path: Path) -> str:
    """A run's config.yaml, with the model's class path as this version names it."""
    try:
        config = safe_load(read_config(str(path), str(path), hint=""), str(path))
    except ConfigTooLarge:
        raise
    except (yaml.YAMLError, UserError) as err:
        reason = " ".join(str(err).removeprefix(f"{path}: ").split())[:200]
        raise CommandError(
            f"{path}: the run's config is damaged ({reason}); fix it, or remove it to resume "
            "with the checkpoint's own settings"
        ) from None
    if not isinstance(config, dict):
        raise CommandError(f"{path}: the run's config holds no options; fix or remove it")
    model = config.get("model")
    if isinstance(model, dict) and isinstance(model.get("class_path"), str):
        kind = kind_of_class_path(model["class_path"])
        model["class_path"] = kind.class_path if kind is not None else model["class_path"]
    return yaml.safe_dump(config)


def data_file_of(
    saved: SavedModel, command: str, typed: str, args: list[str]
) -> tuple[str | None, str | None]:
    """(the --data.path to use or None, a note or None): a resume trains on the recorded content;
    the other commands take another file only when given with --data.path, and say so."""
    recorded = saved.data_file
    if recorded is None:  # a checkpoint of an older makemore_pl: the path as saved
        return None, None
    explicit = given(args, "data.path")
    if explicit is not None:
        if recorded.same_content(explicit):
            return None, None
        if command == "fit":
            raise saved.error(
                f"the run was trained on {recorded.describe()}; --data.path {explicit} holds "
                "other data, and a resume must train on the same file"
            )
        return None, (
            f"note: {command} on --data.path {explicit}, not the file the model was trained on, "
            f"{recorded.describe()}"
        )
    found, moved = locate(recorded, typed)
    if moved:
        return str(found), f"data file moved: {recorded.path} is now {found}"
    if found is not None:  # named unless it is the file the run's path names from here
        return str(found), None if found == Path(typed).resolve() else f"data: {found}"
    if command == "predict" and given(args, "data.predict_path"):
        return None, None  # the checkpoint's characters are enough to score other names
    if recorded.sha256 == NAMES_SHA256:  # the canonical names.txt: downloaded where it was
        return recorded.path, None
    state = "has changed" if Path(recorded.path).exists() else "is gone"
    here = "holds other data" if Path(typed).is_file() else "is missing"
    raise saved.error(
        f"the data file it was trained on, {recorded.describe()}, {state} (and {typed} here "
        f"{here}); pass --data.path FILE to use another file"
    )


def require_weights_only(config: Any) -> None:
    """weights_only=True, always (Lightning's None defers to torch.load: False before 2.6)."""
    if config.weights_only is False:
        raise CheckpointError(
            "--weights_only false: makemore_pl loads checkpoints with weights_only=True only, so "
            "that a checkpoint cannot run code; its own checkpoints need nothing more"
        )
    config.weights_only = True
