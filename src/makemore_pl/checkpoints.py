"""Checkpoints read as untrusted input: no code runs, sizes are checked, the data must fit."""

from __future__ import annotations

import importlib
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from makemore_pl.data import Vocabulary
from makemore_pl.dense_table import DENSE_SETTINGS, dense_checkpoint_problem
from makemore_pl.errors import CheckpointError
from makemore_pl.suffixes import SUFFIX_SETTINGS, suffix_checkpoint_problem
from makemore_pl.text import human_bytes, printable

ZIP_MAGIC = b"PK\x03\x04"  # torch.save writes a zip archive
RESUME_KEYS = ("optimizer_states", "loops", "epoch", "global_step")  # what fit restores
INSTANTIATORS = {
    "lightning.pytorch.cli.instantiate_module",
    "pytorch_lightning.cli.instantiate_module",
}


def require_weights_only(config: Any) -> None:
    """Sets a command's `weights_only` to True: Lightning's default, None, defers to torch.load's,
    which is False before torch 2.6. Refuses an explicit False."""
    if config.weights_only is False:
        raise CheckpointError(
            "--weights_only false: makemore_pl loads checkpoints with weights_only=True only, so "
            "that a checkpoint cannot run code; its own checkpoints need nothing more"
        )
    config.weights_only = True


def read_checkpoint(path: str, resume: bool = False) -> dict:
    """A model checkpoint's contents, checked before anything is built from them.

    The file is untrusted input: it is loaded with weights_only=True so that it cannot run code,
    only after its zip archive is seen to claim no more data than the file holds; every tensor
    must then be plain contiguous data inside the file, every integer fit 64 bits, and
    `model_class.checkpoint_problem` accept the settings and weights. With `resume`, the file
    must also hold what `fit` resumes from. Raises CheckpointError naming the file otherwise.
    """
    size = checked_file_size(path)
    check_archive(path, size)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for truncated or foreign files
        raise CheckpointError(unreadable_reason(path, err)) from None
    check_contents(path, checkpoint, size)
    check_model_checkpoint(path, checkpoint)
    if resume:
        check_resumable(path, checkpoint)
    return checkpoint


def checked_file_size(path: str) -> int:
    file = Path(path)
    if not file.exists():
        raise CheckpointError(f"--ckpt_path {path}: no such file")
    if not file.is_file():
        raise CheckpointError(f"--ckpt_path {path}: not a regular file")
    return file.stat().st_size


def check_archive(path: str, size: int) -> None:
    """A file torch.save wrote: a zip archive whose records, once read, are no larger than the
    file (torch.save stores them uncompressed; a compressed record could expand a thousandfold)."""
    try:
        with open(path, "rb") as file:
            head = file.read(len(ZIP_MAGIC))
        if not head:
            raise CheckpointError(f"--ckpt_path {path}: the file is empty, not a checkpoint")
        if head != ZIP_MAGIC:
            raise CheckpointError(
                f"--ckpt_path {path}: not a checkpoint (expected a file written by torch.save)"
            )
        with zipfile.ZipFile(path) as archive:
            claimed = sum(record.file_size for record in archive.infolist())
    except OSError as err:
        raise CheckpointError(f"--ckpt_path {path}: cannot read it ({err.strerror})") from None
    except zipfile.BadZipFile:
        raise CheckpointError(damaged(path)) from None
    if claimed > size:
        raise CheckpointError(
            f"--ckpt_path {path}: refused, its records claim {human_bytes(claimed)} but the file "
            f"holds {human_bytes(size)} (compressed or crafted; torch.save writes neither)"
        )


def damaged(path: str) -> str:
    # torch's own words depend on where the file was cut ("central directory", "Errno 22", ...)
    return (
        f"--ckpt_path {path}: the checkpoint is damaged (truncated or corrupted); use another "
        "checkpoint or train again"
    )


def unreadable_reason(path: str, err: Exception) -> str:
    """Why torch.load failed, in the user's terms."""
    if "Weights only load failed" in str(err):
        return (
            f"--ckpt_path {path}: refused, the file holds objects other than tensors and plain "
            "values, which could run code when loaded; use a checkpoint written by makemore_pl"
        )
    return damaged(path)


def values(tree: Any) -> Iterator[tuple[str, Any]]:
    """(where, value) of every value inside dicts, lists, tuples and sets, depth first, without
    recursion (a crafted file can nest deeper than Python's stack)."""
    stack: list[tuple[str, Any]] = [("", tree)]
    while stack:
        where, value = stack.pop()
        yield where, value
        if isinstance(value, dict):
            items = [(shown(key), item) for key, item in value.items()]
            stack += [(f"{where}.{key}" if where else key, item) for key, item in items]
        elif isinstance(value, list | tuple | set | frozenset):
            stack += [(f"{where}[{i}]", item) for i, item in enumerate(value)]


def shown(key: Any, limit: int = 40) -> str:
    """A key of the file as safe, short text for a message."""
    text = printable(key if isinstance(key, str) else repr(key))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_contents(path: str, checkpoint: Any, size: int) -> None:
    """Every tensor plain contiguous data within the file, all of them together no more than the
    file holds (a stride-0 view of 27 floats can claim 30 TB, which copying it would allocate),
    and every integer within 64 bits."""
    total, seen = 0, set()
    for where, value in values(checkpoint):
        if isinstance(value, torch.Tensor) and id(value) not in seen:
            seen.add(id(value))
            tensor_problem = check_tensor(value, size)
            if tensor_problem:
                raise CheckpointError(
                    f"--ckpt_path {path}: refused, its tensor {where} {tensor_problem}"
                )
            total += value.numel() * value.element_size()
        elif isinstance(value, int) and not -(2**63) <= value < 2**63:
            raise CheckpointError(
                f"--ckpt_path {path}: refused, its value {where} = {big_int(value)} is out of "
                "range (a 64-bit integer)"
            )
    if total > size:
        raise CheckpointError(
            f"--ckpt_path {path}: refused, its tensors claim {human_bytes(total)} together but "
            f"the file holds {human_bytes(size)}"
        )


def check_tensor(tensor: torch.Tensor, size: int) -> str | None:
    """Why this tensor is not plain data stored in a file of `size` bytes; None if it is."""
    if tensor.layout != torch.strided or tensor.device.type != "cpu":
        return f"is not a plain tensor ({tensor.layout}, on {tensor.device})"
    claimed = tensor.numel() * tensor.element_size()
    stored = tensor.untyped_storage().nbytes() - tensor.storage_offset() * tensor.element_size()
    if claimed > min(stored, size):
        return (
            f"of shape {tuple(tensor.shape)} claims {human_bytes(claimed)} but holds "
            f"{human_bytes(stored)} (the file {human_bytes(size)})"
        )
    if not tensor.is_contiguous():
        return f"of shape {tuple(tensor.shape)} is a strided view {tensor.stride()}, not plain data"
    return None


def big_int(value: int) -> str:
    # str() of an int above 4,300 digits raises ValueError in Python 3.11+
    return str(value) if value.bit_length() < 128 else f"an integer of {value.bit_length()} bits"


# the model classes a checkpoint may name, with their settings and the check of their saved
# form: never an import path taken from the file itself, and no training stack to check one
MODEL_KINDS = {
    "BigramLitModule": ("makemore_pl.model", set(DENSE_SETTINGS), dense_checkpoint_problem),
    "SuffixLitModule": (
        "makemore_pl.suffix_model",
        set(SUFFIX_SETTINGS),
        suffix_checkpoint_problem,
    ),
}


def model_kind(path: str, checkpoint: Any) -> str:
    """The name of the class a checkpoint's model is, from the class path LightningCLI saved;
    without one (the Python API's saves, older runs), from its tensors: a suffix table or W."""
    hparams = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else None
    saved = hparams.get("_class_path") if isinstance(hparams, dict) else None
    state = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    suffix = isinstance(state, dict) and "keys" in state and "W" not in state
    name = str(saved).rsplit(".", 1)[-1] if saved is not None else None
    name = name or ("SuffixLitModule" if suffix else "BigramLitModule")
    module = MODEL_KINDS.get(name, ("",))[0]
    if name not in MODEL_KINDS or saved not in (None, f"makemore_pl.{name}", f"{module}.{name}"):
        raise CheckpointError(
            f"--ckpt_path {path}: not a makemore_pl model checkpoint (its model class "
            f"{shown(saved)!r} is none of {', '.join(MODEL_KINDS)})"
        )
    return name


def model_class_of(path: str, checkpoint: Any) -> type:
    """The LightningModule class of a checkpoint's model (imports the training stack)."""
    name = model_kind(path, checkpoint)
    return getattr(importlib.import_module(MODEL_KINDS[name][0]), name)


def check_model_checkpoint(path: str, checkpoint: Any) -> None:
    """Settings the checkpoint's model class takes, built the way LightningCLI builds it, and
    weights of the shape and kind they imply; anything else would fail later, inside
    Lightning, with a traceback."""
    hparams = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else None
    if not isinstance(hparams, dict) or not hparams:
        raise CheckpointError(
            f"--ckpt_path {path}: not a makemore_pl model checkpoint (it has no model settings)"
        )
    _, known, problem_of = MODEL_KINDS[model_kind(path, checkpoint)]
    # and what LightningCLI adds: the function it built the model with, in subclass mode its class
    unknown = sorted(shown(key) for key in set(hparams) - known - {"_instantiator", "_class_path"})
    if unknown:
        raise CheckpointError(
            f"--ckpt_path {path}: not a makemore_pl model checkpoint (unknown model settings: "
            f"{', '.join(unknown)})"
        )
    builder = hparams.get("_instantiator", next(iter(INSTANTIATORS)))
    if builder not in INSTANTIATORS:
        raise CheckpointError(
            f"--ckpt_path {path}: not a makemore_pl model checkpoint (it asks for its model to be "
            f"built by {shown(builder)!r})"
        )
    state = checkpoint.get("state_dict")
    state = state if isinstance(state, dict) else {}
    settings = {key: value for key, value in hparams.items() if not str(key).startswith("_")}
    problem = problem_of(settings, state)
    if problem is not None:
        raise CheckpointError(f"--ckpt_path {path}: {problem}")


def check_resumable(path: str, checkpoint: dict) -> None:
    """`fit --ckpt_path` needs the optimizer's state and the loops' progress, which a checkpoint
    saved with save_weights_only=True does not hold."""
    missing = [key for key in RESUME_KEYS if key not in checkpoint]
    if missing:
        raise CheckpointError(
            f"--ckpt_path {path}: holds the weights only (no {', '.join(missing)}), so `fit` "
            "cannot resume from it; use it with validate, test, predict or sample, or resume "
            "from a full checkpoint such as last.ckpt"
        )
    for key in ("epoch", "global_step"):
        count = checkpoint[key]
        if not (isinstance(count, int) and count >= 0):
            raise CheckpointError(
                f"--ckpt_path {path}: refused, its {key} is {shown(count)}, not a count"
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
        known = f"the characters {''.join(saved)!r}" if saved is not None else count
        raise CheckpointError(
            f"--ckpt_path {path}: the model knows {known} but data file "
            f"{data_path!r} has {''.join(chars)!r}; pass the --data.path it was trained on"
        )


def checkpoint_vocabulary(path: str, hparams: dict, datamodule: Any | None) -> Vocabulary:
    """The model's characters: kept in the checkpoint (as the CLI's runs keep them), or else
    those of the data (a model built in Python may have none), if they are as many."""
    if hparams.get("chars") is not None:
        return Vocabulary(hparams["chars"])
    known = f"{hparams['vocab_size'] - 1} characters"
    if datamodule is None:
        raise CheckpointError(
            f"--ckpt_path {path}: the checkpoint does not say which {known} the model knows; "
            "pass the --data.path it was trained on"
        )
    vocab = datamodule.vocab
    if len(vocab) != hparams["vocab_size"]:
        raise CheckpointError(
            f"--ckpt_path {path}: the model knows {known} but data file "
            f"{str(datamodule.path)!r} has {len(vocab) - 1}, {''.join(vocab.chars)!r}; pass the "
            "--data.path it was trained on"
        )
    return vocab


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


def load_model_checkpoint(path: str, device: torch.device):
    """The LightningModule a checkpoint holds, checked first and read without running code."""
    checkpoint = read_checkpoint(path)
    model_class = model_class_of(path, checkpoint)
    return model_class.load_from_checkpoint(path, map_location=device, weights_only=True)
