"""Saved models read as untrusted input: no code runs, sizes are checked, the data must fit;
then built as the plain model they hold, without the training stack."""

from __future__ import annotations

import inspect
import math
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from makemore_pl.core.data import NamesData
from makemore_pl.core.errors import CheckpointError, SettingError
from makemore_pl.core.text import human_bytes, printable
from makemore_pl.core.vocabulary import Vocabulary
from makemore_pl.models.ngram import NgramModel
from makemore_pl.models.registry import DEFAULT_MODEL, MODELS, ModelKind, kind_of_class_path

ZIP_MAGIC = b"PK\x03\x04"  # torch.save writes a zip archive
RESUME_KEYS = ("optimizer_states", "loops", "epoch", "global_step")  # what fit restores
INSTANTIATORS = {
    "lightning.pytorch.cli.instantiate_module",
    "pytorch_lightning.cli.instantiate_module",
}


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
    check_saved_settings(path, checkpoint)
    check_model_checkpoint(path, checkpoint)
    if resume:
        check_resumable(path, checkpoint)
    return checkpoint


def checked_file_size(path: str) -> int:
    file = Path(path)
    try:
        file.stat()
    except FileNotFoundError:
        raise CheckpointError(f"--ckpt_path {path}: no such file") from None
    except OSError as err:  # a symlink loop, a name too long, a folder we may not enter
        raise CheckpointError(f"--ckpt_path {path}: cannot read it ({err.strerror})") from None
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
            if claimed > size:
                raise CheckpointError(
                    f"--ckpt_path {path}: refused, its records claim {human_bytes(claimed)} but "
                    f"the file holds {human_bytes(size)} (compressed or crafted; torch.save "
                    "writes neither)"
                )
            # torch.load never checks the records' CRCs: a flipped bit would load as a weight
            corrupted = archive.testzip()
    except OSError as err:
        raise CheckpointError(f"--ckpt_path {path}: cannot read it ({err.strerror})") from None
    except (zipfile.BadZipFile, EOFError):
        raise CheckpointError(damaged(path)) from None
    if corrupted is not None:
        raise CheckpointError(
            f"--ckpt_path {path}: the checkpoint is damaged (its record {shown(corrupted)} fails "
            "its checksum); use another checkpoint or train again"
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


# a checkpoint of makemore_pl nests a few levels (hyper_parameters.chars[0]); the readers after
# this one (jsonargparse, Lightning) recurse, so a file nested deeper than Python's stack is
# refused here
MAX_NESTING = 100


class TooDeep(Exception):
    """A value nested deeper than MAX_NESTING, at `where`."""


def values(tree: Any) -> Iterator[tuple[str, Any]]:
    """(where, value) of every value inside dicts, lists, tuples and sets, depth first, without
    recursion (a crafted file can nest deeper than Python's stack); TooDeep past MAX_NESTING."""
    stack: list[tuple[str, Any, int]] = [("", tree, 0)]
    while stack:
        where, value, depth = stack.pop()
        yield where, value
        if isinstance(value, dict | list | tuple | set | frozenset) and depth >= MAX_NESTING:
            raise TooDeep(where)
        if isinstance(value, dict):
            items = [(shown(key), item) for key, item in value.items()]
            stack += [(f"{where}.{key}" if where else key, item, depth + 1) for key, item in items]
        elif isinstance(value, list | tuple | set | frozenset):
            stack += [(f"{where}[{i}]", item, depth + 1) for i, item in enumerate(value)]


def shown(key: Any, limit: int = 40) -> str:
    """A key of the file as safe, short text for a message."""
    text = printable(key if isinstance(key, str) else repr(key))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_contents(path: str, checkpoint: Any, size: int) -> None:
    """Every tensor plain contiguous data within the file, all of them together no more than the
    file holds (a stride-0 view of 27 floats can claim 30 TB, which copying it would allocate),
    and every integer within 64 bits."""
    try:
        total = checked_values(path, checkpoint, size)
    except TooDeep as deep:
        where = shown(str(deep), 60)
        raise CheckpointError(
            f"--ckpt_path {path}: refused, its value {where} nests deeper than {MAX_NESTING} "
            "levels (makemore_pl writes a few)"
        ) from None
    if total > size:
        raise CheckpointError(
            f"--ckpt_path {path}: refused, its tensors claim {human_bytes(total)} together but "
            f"the file holds {human_bytes(size)}"
        )


def checked_values(path: str, checkpoint: Any, size: int) -> int:
    """Bytes the checkpoint's tensors hold, each tensor and integer checked on the way."""
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
    return total


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


# a saved setting is a flag, a whole number (within 64 bits, as every integer of the file), a
# finite number, a short text (a path, a name, a choice) or a list of them (the characters, the
# suffix strengths); anything else comes from a damaged or crafted file, and would reach the
# model, jsonargparse and the messages as it is
SETTINGS_KEYS = ("hyper_parameters", "datamodule_hyper_parameters")
MAX_TEXT = 4096  # PATH_MAX on Linux: no path, name or choice is longer


def check_saved_settings(path: str, checkpoint: Any) -> None:
    """Every model and data setting of a checkpoint, before anything reads it: numbers finite,
    texts bounded, and the data settings within the ranges the data accepts."""
    if not isinstance(checkpoint, dict):
        return
    for key in SETTINGS_KEYS:
        saved = checkpoint.get(key)
        if saved is not None and not isinstance(saved, dict):
            raise CheckpointError(f"--ckpt_path {path}: refused, its {key} is not settings")
        for where, value in values(saved or {}):
            problem = setting_problem(value)
            if problem is not None:
                raise CheckpointError(
                    f"--ckpt_path {path}: refused, its setting {key}.{where} {problem}"
                )
    check_data_settings(path, saved_settings(checkpoint, "datamodule_hyper_parameters"))


def setting_problem(value: Any) -> str | None:
    if isinstance(value, float) and not math.isfinite(value):
        return f"is {value}, not a finite number"
    if isinstance(value, str) and len(value) > MAX_TEXT:
        return f"is a text of {len(value):,} characters (a setting holds at most {MAX_TEXT:,})"
    return None


def check_data_settings(path: str, settings: dict) -> None:
    """The data settings a command takes from the checkpoint, checked as the data checks its
    options (the data is not read)."""
    known = inspect.signature(NamesData).parameters
    try:
        NamesData(**{k: v for k, v in settings.items() if k in known})
    except SettingError as err:
        raise CheckpointError(f"--ckpt_path {path}: refused, its data setting {err}") from None
    except TypeError as err:  # a setting of another type, which the checks cannot compare
        raise CheckpointError(
            f"--ckpt_path {path}: refused, its data settings are not of the types makemore_pl "
            f"writes ({err})"
        ) from None


def model_kind(path: str, checkpoint: Any) -> ModelKind:
    """The model a checkpoint holds, from the class path LightningCLI saved (today's or an
    earlier version's); without one (the Python API's saves), from its tensors: a suffix table
    or W. Never an import: a class path from the file only selects an entry of MODELS."""
    hparams = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else None
    saved = hparams.get("_class_path") if isinstance(hparams, dict) else None
    if saved is None:  # the first model whose saved form it has; else checked as the default
        state = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
        settings = saved_settings(checkpoint) if isinstance(hparams, dict) else {}
        fits = (k for k in MODELS.values() if not k.checkpoint_problem(settings, state or {}))
        return next(fits, DEFAULT_MODEL)
    kind = kind_of_class_path(saved) if isinstance(saved, str) else None
    if kind is None:
        raise CheckpointError(
            f"--ckpt_path {path}: not a makemore_pl model checkpoint (its model class "
            f"{shown(saved)!r} is none of {', '.join(MODELS)})"
        )
    return kind


def check_model_checkpoint(path: str, checkpoint: Any) -> None:
    """Settings the checkpoint's model class takes, built the way LightningCLI builds it, and
    weights of the shape and kind they imply; anything else would fail later, inside
    Lightning, with a traceback."""
    hparams = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else None
    if not isinstance(hparams, dict) or not hparams:
        raise CheckpointError(
            f"--ckpt_path {path}: not a makemore_pl model checkpoint (it has no model settings)"
        )
    kind = model_kind(path, checkpoint)
    # and what LightningCLI adds: the function it built the model with, in subclass mode its class
    known = set(kind.settings) | {"_instantiator", "_class_path"}
    unknown = sorted(shown(key) for key in set(hparams) - known)
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
    problem = kind.checkpoint_problem(saved_settings(checkpoint), state)
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


def saved_settings(checkpoint: dict, key: str = "hyper_parameters") -> dict:
    """A checkpoint's saved settings (the model's, or with key "datamodule_hyper_parameters"
    the data's), without the keys LightningCLI adds for itself."""
    saved = checkpoint.get(key) or {}
    return {k: v for k, v in saved.items() if not str(k).startswith("_")}


def load_saved_model(
    path: str, checkpoint: dict, device: torch.device | str = "cpu"
) -> tuple[dict, NgramModel]:
    """(settings, the plain model) of a checkpoint that `read_checkpoint` returned: its
    log-probabilities are those of the LightningModule it was saved from, to the bit."""
    kind = model_kind(path, checkpoint)
    settings = {**kind.settings, **saved_settings(checkpoint)}
    return settings, kind.load(settings, checkpoint["state_dict"], device)
