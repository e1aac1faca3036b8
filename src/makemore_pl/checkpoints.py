"""Checkpoint files: written atomically, read without running code, checked against the data."""

from __future__ import annotations

import inspect
import os
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from fsspec.implementations.local import LocalFileSystem
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.plugins.io import CheckpointIO, TorchCheckpointIO

from makemore_pl.errors import CheckpointError
from makemore_pl.model import BigramLitModule

ZIP_MAGIC = b"PK\x03\x04"  # torch.save writes a zip archive
# what save_hyperparameters stores for a BigramLitModule: its arguments, plus the function
# LightningCLI built it with (load_from_checkpoint raises on any other than these two)
MODEL_SETTINGS = set(inspect.signature(BigramLitModule.__init__).parameters) - {"self"}
INSTANTIATORS = {
    "lightning.pytorch.cli.instantiate_module",
    "pytorch_lightning.cli.instantiate_module",
}


class AtomicCheckpointIO(TorchCheckpointIO):
    """Saves each checkpoint to a temporary file beside it and renames it into place, so a run
    killed mid-save keeps the previous checkpoint whole; loads only tensors and plain values
    unless told otherwise."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None or not isinstance(get_filesystem(path), LocalFileSystem):
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # beside the target, so the rename never crosses file systems (Lightning's own saver
        # writes to the system temp folder and moves, which turns into a copy across devices)
        partial = path.with_name(f"{path.name}.{uuid.uuid4().hex}.partial")
        try:
            torch.save(checkpoint, partial)
            os.replace(partial, path)  # atomic: readers see the old file or the new one
        finally:
            partial.unlink(missing_ok=True)

    def load_checkpoint(
        self,
        path: _PATH,
        map_location: Callable | None = lambda storage, loc: storage,
        weights_only: bool | None = None,
    ) -> dict[str, Any]:
        # Lightning passes None through to torch.load, whose default is False before torch 2.6
        # and under TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1: a crafted pickle could then run code
        safe = True if weights_only is None else weights_only
        return super().load_checkpoint(path, map_location, weights_only=safe)


def with_atomic_checkpoints(plugins: Any) -> list:
    """The Trainer's plugins, plus AtomicCheckpointIO unless a CheckpointIO is already given."""
    plugins = [] if plugins is None else list(plugins) if isinstance(plugins, list) else [plugins]
    if not any(isinstance(plugin, CheckpointIO) for plugin in plugins):
        plugins.append(AtomicCheckpointIO())
    return plugins


def require_weights_only(config: Any) -> None:
    """Sets a command's `weights_only` to True: Lightning's default, None, defers to torch.load's,
    which is False before torch 2.6. Refuses an explicit False."""
    if config.weights_only is False:
        raise CheckpointError(
            "--weights_only false: makemore_pl loads checkpoints with weights_only=True only, so "
            "that a checkpoint cannot run code; its own checkpoints need nothing more"
        )
    config.weights_only = True


def read_checkpoint(path: str) -> dict:
    """A makemore_pl model checkpoint's contents, loaded with weights_only=True so that a
    crafted file cannot run code; raises CheckpointError naming the file otherwise."""
    if not Path(path).is_file():
        raise CheckpointError(f"--ckpt_path {path}: no such file")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for truncated or foreign files
        raise CheckpointError(unreadable_reason(path, err)) from None
    check_model_checkpoint(path, checkpoint)
    return checkpoint


def unreadable_reason(path: str, err: Exception) -> str:
    """Why torch.load failed, in the user's terms."""
    if "Weights only load failed" in str(err):
        return (
            f"--ckpt_path {path}: refused, the file holds objects other than tensors and plain "
            "values, which could run code when loaded; use a checkpoint written by makemore_pl"
        )
    with open(path, "rb") as file:
        head = file.read(len(ZIP_MAGIC))
    if not head:
        return f"--ckpt_path {path}: the file is empty, not a checkpoint"
    if head != ZIP_MAGIC:
        return f"--ckpt_path {path}: not a checkpoint (expected a file written by torch.save)"
    # torch's own words depend on where the file was cut ("central directory", "Errno 22", ...)
    return (
        f"--ckpt_path {path}: the checkpoint is damaged (truncated or corrupted); use another "
        "checkpoint or train again"
    )


def check_model_checkpoint(path: str, checkpoint: Any) -> None:
    """Settings a BigramLitModule takes and a weight table of the shape they imply; anything
    else would fail later, inside Lightning, with a traceback."""
    hparams = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else None
    if not isinstance(hparams, dict) or "vocab_size" not in hparams:
        raise CheckpointError(
            f"--ckpt_path {path}: not a makemore_pl model checkpoint (it has no model settings)"
        )
    unknown = sorted(set(hparams) - MODEL_SETTINGS - {"_instantiator"})
    if unknown:
        raise CheckpointError(
            f"--ckpt_path {path}: not a makemore_pl model checkpoint (unknown model settings: "
            f"{', '.join(unknown)})"
        )
    builder = hparams.get("_instantiator", next(iter(INSTANTIATORS)))
    if builder not in INSTANTIATORS:
        raise CheckpointError(
            f"--ckpt_path {path}: not a makemore_pl model checkpoint (it asks for its model to be "
            f"built by {builder!r})"
        )
    state = checkpoint.get("state_dict")
    weights = state.get("W") if isinstance(state, dict) else None
    v, c = hparams["vocab_size"], hparams.get("context_size", 1)
    shape = tuple(weights.shape) if isinstance(weights, torch.Tensor) else None
    if not (isinstance(v, int) and isinstance(c, int) and shape == (v**c, v)):
        raise CheckpointError(
            f"--ckpt_path {path}: not a makemore_pl model checkpoint (its weights W, of shape "
            f"{shape}, do not fit vocab_size {v!r} and context_size {c!r})"
        )


def check_fits_data(
    path: str, hparams: dict, data_path: str, context_size: int, chars: list[str]
) -> None:
    """A model can be tested or resumed only on data of its own order and vocabulary."""
    if hparams.get("context_size", 1) != context_size:
        raise CheckpointError(
            f"--ckpt_path {path}: the model has context_size {hparams.get('context_size', 1)} "
            f"but --data.context_size is {context_size}; use the context size it was trained with"
        )
    saved = hparams.get("chars")
    if hparams["vocab_size"] != len(chars) + 1 or (saved is not None and list(saved) != chars):
        count = f"{hparams['vocab_size'] - 1} characters"
        known = repr("".join(saved)) if saved is not None else count
        raise CheckpointError(
            f"--ckpt_path {path}: the model knows the characters {known} but data file "
            f"{data_path!r} has {''.join(chars)!r}; pass the --data.path it was trained on"
        )


def check_writable(folder: str | Path) -> None:
    """Creates `folder` and a file in it, so that a run fails before training, not at its first
    checkpoint, when it cannot write its logs or checkpoints."""
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise CheckpointError(
            f"cannot write the run's logs and checkpoints to {str(folder)!r} ({err.strerror}); "
            "set --trainer.default_root_dir to a folder you can write to"
        ) from None


def load_model_checkpoint(path: str, device: torch.device) -> BigramLitModule:
    """The model a checkpoint holds, checked first and read without running code."""
    read_checkpoint(path)
    return BigramLitModule.load_from_checkpoint(path, map_location=device, weights_only=True)
