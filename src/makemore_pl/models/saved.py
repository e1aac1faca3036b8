"""Saved models read as untrusted input, and checked by building them: the file guards first (its
size, its zip records and their checksums, tensors and plain values only, its nesting, every
value bounded), then the config from the saved settings, the model from the config and the
weights loaded strictly. No code runs and nothing is allocated beyond what the file holds."""

from __future__ import annotations

import math
import reprlib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from makemore_pl.core.data import DataConfig, NamesData
from makemore_pl.core.data_identity import DataFile
from makemore_pl.core.devices import has_float64
from makemore_pl.core.errors import CheckpointError, DataError, SettingError
from makemore_pl.core.settings import UnknownSettings
from makemore_pl.core.text import human_bytes, printable
from makemore_pl.core.vocabulary import Vocabulary
from makemore_pl.models.ngram import NgramModel
from makemore_pl.models.registry import MODELS, ModelKind, kind_of_class_path, kind_of_state

ZIP_MAGIC = b"PK\x03\x04"  # torch.save writes a zip archive
RESUME_KEYS = ("optimizer_states", "loops", "epoch", "global_step")  # what fit restores
INSTANTIATORS = {  # how earlier versions' checkpoints say LightningCLI built their model
    "lightning.pytorch.cli.instantiate_module",
    "pytorch_lightning.cli.instantiate_module",
}
SIZES = ("vocab_size", "context_size")  # the settings that give the weights their shape


@dataclass
class SavedModel:
    """A checkpoint read, checked and built once: what every command takes from it."""

    path: str
    checkpoint: dict  # its contents as loaded, tensors on the host
    kind: ModelKind
    model: NgramModel  # the plain model, its weights loaded, on the host, as saved
    data: DataConfig | None  # the data settings it was trained with (None: saved from Python)

    @property
    def data_file(self) -> DataFile | None:
        """The data file it was trained on, by path and content (older versions record none)."""
        saved = self.checkpoint.get("datamodule_hyper_parameters") or {}
        return DataFile.from_saved(saved.get("_data_file"))

    def error(self, problem: str) -> CheckpointError:
        return CheckpointError(f"--ckpt_path {self.path}: {problem}")

    def model_on(self, device: torch.device | str) -> NgramModel:
        """The plain model on `device` (float64 weights as float32 where it has no float64)."""
        model = self.model
        if not has_float64(device):
            model = model.to(torch.float32)  # on the host first: float64 cannot be moved there
        return model.to(device)

    def vocabulary(self, data: NamesData | None) -> Vocabulary:
        """The model's characters: kept in the checkpoint (as the CLI's runs keep them), or else
        those of the data (a model built in Python may have none), if they are as many."""
        config = self.model.config
        if config.chars is not None:
            return Vocabulary(config.chars)
        known = f"{config.vocab_size - 1} characters"
        if data is None:
            raise self.error(
                f"the checkpoint does not say which {known} the model knows; pass the "
                "--data.path it was trained on"
            )
        if data.vocab_size != config.vocab_size:
            raise self.error(
                f"the model knows {known} but data file {str(data.path)!r} has "
                f"{data.vocab_size - 1}, {''.join(data.vocab.chars)!r}; pass the --data.path it "
                "was trained on"
            )
        return data.vocab

    def check_fits(self, data: NamesData) -> None:
        """A model can be tested or resumed only on data of its own order and vocabulary."""
        config = self.model.config
        if config.context_size != data.context_size:
            raise self.error(
                f"the model has context_size {config.context_size} but --data.context_size is "
                f"{data.context_size}; use the context size it was trained with"
            )
        chars, saved = data.vocab.chars, config.chars
        if config.vocab_size != len(chars) + 1 or (saved is not None and saved != chars):
            known = f"the characters {''.join(saved)!r}" if saved is not None else (
                f"{config.vocab_size - 1} characters"
            )  # fmt: skip
            raise self.error(
                f"the model knows {known} but data file {str(data.path)!r} has "
                f"{''.join(chars)!r}; pass the --data.path it was trained on"
            )


def read_checkpoint(path: str, resume: bool = False) -> SavedModel:
    """A model checkpoint, checked by building it; CheckpointError naming the file otherwise.

    The file is untrusted input: it is loaded with weights_only=True so that it cannot run code,
    only after its zip archive is seen to claim no more data than the file holds; every tensor
    must then be plain contiguous data inside the file and every integer fit 64 bits. With
    `resume`, the file must also hold what `fit` resumes from.
    """
    size = checked_file_size(path)
    check_archive(path, size)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for truncated or foreign files
        raise CheckpointError(unreadable_reason(path, err)) from None
    check_contents(path, checkpoint, size)
    check_saved_values(path, checkpoint)
    kind = model_kind(path, checkpoint)
    saved = SavedModel(path, checkpoint, kind, build_model(path, kind, checkpoint), None)
    saved.data = data_config(path, checkpoint)
    if resume:
        check_resumable(path, checkpoint)
    return saved


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
# configs and the messages as it is
SETTINGS_KEYS = ("hyper_parameters", "datamodule_hyper_parameters")
MAX_TEXT = 4096  # PATH_MAX on Linux: no path, name or choice is longer


def check_saved_values(path: str, checkpoint: Any) -> None:
    """Every model and data setting of a checkpoint, before anything reads it: numbers finite,
    texts bounded."""
    if not isinstance(checkpoint, dict):
        return
    for key in SETTINGS_KEYS:
        saved = checkpoint.get(key)
        if saved is not None and not isinstance(saved, dict):
            raise CheckpointError(f"--ckpt_path {path}: refused, its {key} is not settings")
        for where, value in values(saved or {}):
            problem = value_problem(value)
            if problem is not None:
                raise CheckpointError(
                    f"--ckpt_path {path}: refused, its setting {key}.{where} {problem}"
                )


def value_problem(value: Any) -> str | None:
    if isinstance(value, float) and not math.isfinite(value):
        return f"is {value}, not a finite number"
    if isinstance(value, str) and len(value) > MAX_TEXT:
        return f"is a text of {len(value):,} characters (a setting holds at most {MAX_TEXT:,})"
    return None


def saved_settings(checkpoint: dict, key: str = "hyper_parameters") -> dict:
    """A checkpoint's saved settings (the model's, or with key "datamodule_hyper_parameters"
    the data's), without the keys LightningCLI and the data record add for themselves."""
    saved = checkpoint.get(key) or {}
    return {k: v for k, v in saved.items() if not str(k).startswith("_")}


def model_kind(path: str, checkpoint: Any) -> ModelKind:
    """The model a checkpoint holds: from the class path an earlier version's LightningCLI saved,
    or else from its weights. Never an import: a class path from the file only selects an entry
    of MODELS."""
    hparams = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else None
    if not isinstance(hparams, dict) or not hparams:
        raise CheckpointError(
            f"--ckpt_path {path}: not a makemore_pl model checkpoint (it has no model settings)"
        )
    builder = hparams.get("_instantiator", next(iter(INSTANTIATORS)))
    if builder not in INSTANTIATORS:
        raise CheckpointError(
            f"--ckpt_path {path}: not a makemore_pl model checkpoint (it asks for its model to be "
            f"built by {shown(builder)!r})"
        )
    class_path = hparams.get("_class_path")
    if class_path is None:
        state = checkpoint.get("state_dict")
        return kind_of_state(state if isinstance(state, dict) else {})
    kind = kind_of_class_path(class_path) if isinstance(class_path, str) else None
    if kind is None:
        raise CheckpointError(
            f"--ckpt_path {path}: not a makemore_pl model checkpoint (its model class "
            f"{shown(class_path)!r} is none of {', '.join(MODELS)})"
        )
    return kind


def build_model(path: str, kind: ModelKind, checkpoint: dict) -> NgramModel:
    """The config from the saved settings (each checked as when it is given), the model from the
    config, the weights loaded strictly and checked as a trained model's."""
    settings = saved_settings(checkpoint)
    unknown = sorted(shown(key) for key in set(map(str, settings)) - set(kind.config.names()))
    if unknown:
        raise CheckpointError(
            f"--ckpt_path {path}: not a makemore_pl model checkpoint (unknown model settings: "
            f"{', '.join(unknown)})"
        )
    try:
        model = kind.plain(kind.config(**settings))
    except SettingError as err:
        raise CheckpointError(f"--ckpt_path {path}: {setting_refused(err, settings)}") from None
    except DataError:  # characters that are not vocab_size - 1
        raise CheckpointError(
            f"--ckpt_path {path}: not a makemore_pl model checkpoint (its characters "
            f"{reprlib.repr(settings.get('chars'))} are not vocab_size - 1 = "
            f"{settings.get('vocab_size', 27) - 1} distinct characters)"
        ) from None
    state = checkpoint.get("state_dict")
    problem = load_weights(model, plain_state(state if isinstance(state, dict) else {}))
    if problem is not None:
        raise CheckpointError(f"--ckpt_path {path}: {problem}")
    return model


def setting_refused(err: SettingError, settings: dict) -> str:
    if err.setting in SIZES:
        v, c = settings.get("vocab_size", 27), settings.get("context_size", 1)
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in (v, c)):
            return (
                f"not a makemore_pl model checkpoint (vocab_size {v!r} and context_size {c!r}; "
                "both must be whole numbers of 1 or more)"
            )
    return f"its setting {err}"


def plain_state(state: dict) -> dict:
    """The plain model's state dict of a LightningModule's (`model.W`): the one place that maps
    saved keys. Checkpoints written before the LightningModule held its model name the plain
    model's tensors directly (`W`)."""
    return {str(key).removeprefix("model."): value for key, value in state.items()}


def load_weights(model: NgramModel, state: dict) -> str | None:
    """Loads `state` into `model` strictly, in the saved precision; what is wrong, or None."""
    model.prepare_for(state)
    own = model.state_dict()
    sizes = f"vocab_size {model.vocab_size} and context_size {model.context_size}"
    extra = sorted(shown(key) for key in set(state) - set(own))
    missing = sorted(set(own) - set(state))
    if extra or missing:
        what = f"unknown weights: {', '.join(extra)}" if extra else (
            f"no weights {', '.join(missing)}"
        )  # fmt: skip
        return f"not a makemore_pl model checkpoint ({what})"
    for name, tensor in own.items():
        saved = state[name]
        shape = tuple(saved.shape) if isinstance(saved, torch.Tensor) else None
        if shape != tuple(tensor.shape):
            return (
                f"not a makemore_pl model checkpoint (its weights {name}, of shape {shape}, do "
                f"not fit {sizes})"
            )
        if saved.is_floating_point() != tensor.is_floating_point():
            kind = "floats" if tensor.is_floating_point() else "integers"
            return (
                f"not a makemore_pl model checkpoint (its weights {name} are {saved.dtype}, not "
                f"{kind})"
            )
    model.load_state_dict(state, strict=True)
    return model.weights_problem()


def data_config(path: str, checkpoint: dict) -> DataConfig | None:
    """The data settings a command takes from the checkpoint, checked as when they are given
    (the data is not read); None for a checkpoint saved without a data module."""
    settings = saved_settings(checkpoint, "datamodule_hyper_parameters")
    if not settings:
        return None
    try:
        return DataConfig.from_saved(settings)
    except SettingError as err:
        raise CheckpointError(f"--ckpt_path {path}: refused, its data setting {err}") from None
    except UnknownSettings as err:
        raise CheckpointError(
            f"--ckpt_path {path}: refused, its data settings are not makemore_pl's ({err})"
        ) from None


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
