"""Saved models read as untrusted input: the file guards first (size, zip records, checksums,
tensors and plain values only, nesting, every value bounded), then the config from the saved
settings, the model from the config and the weights loaded strictly."""

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
# torch's own words depend on where the file was cut ("central directory", "Errno 22", ...)
DAMAGED = (
    "the checkpoint is damaged (truncated or corrupted); use another checkpoint or train again"
)
# a checkpoint of makemore_pl nests a few levels (hyper_parameters.chars[0]); the readers after
# the guards (jsonargparse, Lightning) recurse, so deeper than Python's stack is refused here
MAX_NESTING = 100
SETTINGS_KEYS = ("hyper_parameters", "datamodule_hyper_parameters")
MAX_TEXT = 4096  # PATH_MAX on Linux: no path, name or choice is longer


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
        """The model's characters: from the checkpoint, or else from the data if as many."""
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
            known = f"{config.vocab_size - 1} characters"
            if saved is not None:
                known = f"the characters {''.join(saved)!r}"
            raise self.error(
                f"the model knows {known} but data file {str(data.path)!r} has "
                f"{''.join(chars)!r}; pass the --data.path it was trained on"
            )


def refused(problem: str) -> CheckpointError:
    return CheckpointError(f"refused, {problem}")


def not_ours(problem: str) -> CheckpointError:
    return CheckpointError(f"not a makemore_pl model checkpoint ({problem})")


def read_checkpoint(path: str, resume: bool = False) -> SavedModel:
    """A model checkpoint, checked by building it; CheckpointError naming the file otherwise."""
    try:
        checkpoint = load_guarded(path)
        kind = model_kind(checkpoint)
        model = build_model(kind, checkpoint)
        saved = SavedModel(path, checkpoint, kind, model, data_config(checkpoint))
        if resume:
            check_resumable(checkpoint, model)
    except CheckpointError as err:  # the checks below say what; the file is named here
        raise CheckpointError(f"--ckpt_path {path}: {err}") from None
    return saved


def load_guarded(path: str) -> Any:
    """The file loaded with weights_only=True (it cannot run code), only after its zip records
    are seen to claim no more than it holds; then its tensors, integers and settings checked."""
    size = checked_size(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for truncated or foreign files
        if "Weights only load failed" in str(err):
            raise refused(
                "the file holds objects other than tensors and plain values, which could run "
                "code when loaded; use a checkpoint written by makemore_pl"
            ) from None
        raise CheckpointError(DAMAGED) from None
    check_contents(checkpoint, size)
    check_saved_values(checkpoint)
    return checkpoint


def checked_size(path: str) -> int:
    """The size of a regular file holding a zip archive whose records, once read, are no larger
    than it (torch.save stores them uncompressed; compressed, they could expand a thousandfold)."""
    try:
        size = Path(path).stat().st_size
        if not Path(path).is_file():
            raise CheckpointError("not a regular file")
        with open(path, "rb") as file:
            head = file.read(len(ZIP_MAGIC))
        if not head:
            raise CheckpointError("the file is empty, not a checkpoint")
        if head != ZIP_MAGIC:
            raise CheckpointError("not a checkpoint (expected a file written by torch.save)")
        with zipfile.ZipFile(path) as archive:
            claimed = sum(record.file_size for record in archive.infolist())
            if claimed > size:
                raise refused(
                    f"its records claim {human_bytes(claimed)} but the file holds "
                    f"{human_bytes(size)} (compressed or crafted; torch.save writes neither)"
                )
            # torch.load never checks the records' CRCs: a flipped bit would load as a weight
            corrupted = archive.testzip()
    except FileNotFoundError:
        raise CheckpointError("no such file") from None
    except OSError as err:  # a symlink loop, a name too long, a folder we may not enter
        raise CheckpointError(f"cannot read it ({err.strerror})") from None
    except (zipfile.BadZipFile, EOFError):
        raise CheckpointError(DAMAGED) from None
    if corrupted is not None:
        raise CheckpointError(
            f"the checkpoint is damaged (its record {shown(corrupted)} fails its checksum); use "
            "another checkpoint or train again"
        )
    return size


def values(tree: Any) -> Iterator[tuple[str, Any]]:
    """(where, value) of every value inside dicts, lists, tuples and sets, depth first, without
    recursion (a crafted file can nest deeper than Python's stack), to MAX_NESTING levels."""
    stack: list[tuple[str, Any, int]] = [("", tree, 0)]
    while stack:
        where, value, depth = stack.pop()
        yield where, value
        if isinstance(value, dict | list | tuple | set | frozenset) and depth >= MAX_NESTING:
            raise refused(
                f"its value {shown(where, 60)} nests deeper than {MAX_NESTING} levels "
                "(makemore_pl writes a few)"
            )
        if isinstance(value, dict):
            items = [(shown(key), item) for key, item in value.items()]
            stack += [(f"{where}.{key}" if where else key, item, depth + 1) for key, item in items]
        elif isinstance(value, list | tuple | set | frozenset):
            stack += [(f"{where}[{i}]", item, depth + 1) for i, item in enumerate(value)]


def shown(key: Any, limit: int = 40) -> str:
    """A key of the file as safe, short text for a message."""
    text = printable(key if isinstance(key, str) else repr(key))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_contents(checkpoint: Any, size: int) -> None:
    """Every tensor plain contiguous data within the file, all together no more than the file
    holds (a stride-0 view of 27 floats can claim 30 TB, which copying it would allocate), and
    every integer within 64 bits."""
    total, seen = 0, set()
    for where, value in values(checkpoint):
        if isinstance(value, torch.Tensor) and id(value) not in seen:
            seen.add(id(value))
            problem = tensor_problem(value, size)
            if problem:
                raise refused(f"its tensor {where} {problem}")
            total += value.numel() * value.element_size()
        elif isinstance(value, int) and not -(2**63) <= value < 2**63:
            # str() of an int above 4,300 digits raises ValueError in Python 3.11+
            bits = value.bit_length()
            text = str(value) if bits < 128 else f"an integer of {bits} bits"
            raise refused(f"its value {where} = {text} is out of range (a 64-bit integer)")
    if total > size:
        raise refused(
            f"its tensors claim {human_bytes(total)} together but the file holds "
            f"{human_bytes(size)}"
        )


def tensor_problem(tensor: torch.Tensor, size: int) -> str | None:
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


def check_saved_values(checkpoint: Any) -> None:
    """Every model and data setting, before anything reads it: numbers finite, texts bounded."""
    if not isinstance(checkpoint, dict):
        return
    for key in SETTINGS_KEYS:
        saved = checkpoint.get(key)
        if saved is not None and not isinstance(saved, dict):
            raise refused(f"its {key} is not settings")
        for where, value in values(saved or {}):
            if isinstance(value, float) and not math.isfinite(value):
                raise refused(f"its setting {key}.{where} is {value}, not a finite number")
            if isinstance(value, str) and len(value) > MAX_TEXT:
                raise refused(
                    f"its setting {key}.{where} is a text of {len(value):,} characters (a setting "
                    f"holds at most {MAX_TEXT:,})"
                )


def saved_settings(checkpoint: dict, key: str = "hyper_parameters") -> dict:
    """The saved settings under `key`, without the keys LightningCLI and the data record add."""
    saved = checkpoint.get(key) or {}
    return {k: v for k, v in saved.items() if not str(k).startswith("_")}


def model_kind(checkpoint: Any) -> ModelKind:
    """The model a checkpoint holds: from the class path an earlier version's LightningCLI saved,
    or else from its weights. Never an import: the class path only selects an entry of MODELS."""
    hparams = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else None
    if not isinstance(hparams, dict) or not hparams:
        raise not_ours("it has no model settings")
    builder = hparams.get("_instantiator", next(iter(INSTANTIATORS)))
    if builder not in INSTANTIATORS:
        raise not_ours(f"it asks for its model to be built by {shown(builder)!r}")
    class_path = hparams.get("_class_path")
    if class_path is None:
        state = checkpoint.get("state_dict")
        return kind_of_state(state if isinstance(state, dict) else {})
    kind = kind_of_class_path(class_path) if isinstance(class_path, str) else None
    if kind is None:
        raise not_ours(f"its model class {shown(class_path)!r} is none of {', '.join(MODELS)}")
    return kind


def build_model(kind: ModelKind, checkpoint: dict) -> NgramModel:
    """The config from the saved settings, the model from the config, its weights strictly."""
    settings = saved_settings(checkpoint)
    unknown = sorted(shown(key) for key in set(map(str, settings)) - set(kind.config.names()))
    if unknown:
        raise not_ours(f"unknown model settings: {', '.join(unknown)}")
    # the sizes are saved by every version; earlier ones left their defaults, 27 and 1, implied
    v, c = settings.setdefault("vocab_size", 27), settings.setdefault("context_size", 1)
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in (v, c)):
        raise not_ours(
            f"vocab_size {v!r} and context_size {c!r}; both must be whole numbers of 1 or more"
        )
    try:
        model = kind.plain(kind.config(**settings))
    except SettingError as err:
        raise CheckpointError(f"its setting {err}") from None
    except DataError:  # characters that are not vocab_size - 1
        raise not_ours(
            f"its characters {reprlib.repr(settings.get('chars'))} are not vocab_size - 1 = "
            f"{v - 1} distinct characters"
        ) from None
    state = checkpoint.get("state_dict")
    load_weights(model, plain_state(state if isinstance(state, dict) else {}))
    return model


def plain_state(state: dict) -> dict:
    """The plain model's state dict of a LightningModule's (`model.W`) or an older one's (`W`)."""
    return {str(key).removeprefix("model."): value for key, value in state.items()}


def load_weights(model: NgramModel, state: dict) -> None:
    """Loads `state` into `model` strictly, in the saved precision, and checks the weights."""
    model.prepare_for(state)
    own = model.state_dict()
    sizes = f"vocab_size {model.vocab_size} and context_size {model.context_size}"
    extra = sorted(shown(key) for key in set(state) - set(own))
    if extra:
        raise not_ours(f"unknown weights: {', '.join(extra)}")
    missing = sorted(set(own) - set(state))
    if missing:
        raise not_ours(f"no weights {', '.join(missing)}")
    for name, tensor in own.items():
        saved = state[name]
        shape = tuple(saved.shape) if isinstance(saved, torch.Tensor) else None
        if shape != tuple(tensor.shape):
            raise not_ours(f"its weights {name}, of shape {shape}, do not fit {sizes}")
        if saved.is_floating_point() != tensor.is_floating_point():
            kind = "floats" if tensor.is_floating_point() else "integers"
            raise not_ours(f"its weights {name} are {saved.dtype}, not {kind}")
    model.load_state_dict(state, strict=True)
    problem = model.weights_problem()
    if problem is not None:
        raise CheckpointError(problem)


def data_config(checkpoint: dict) -> DataConfig | None:
    """The data settings, checked as when given; None for a checkpoint saved without data."""
    settings = saved_settings(checkpoint, "datamodule_hyper_parameters")
    if not settings:
        return None
    try:
        return DataConfig.from_saved(settings)
    except SettingError as err:
        raise refused(f"its data setting {err}") from None
    except UnknownSettings as err:
        raise refused(f"its data settings are not makemore_pl's ({err})") from None


def check_resumable(checkpoint: dict, model: NgramModel) -> None:
    """What `fit --ckpt_path` resumes from, which save_weights_only=True does not save."""
    missing = [key for key in RESUME_KEYS if key not in checkpoint]
    if missing:
        raise CheckpointError(
            f"holds the weights only (no {', '.join(missing)}), so `fit` cannot resume from it; "
            "use it with validate, test, predict or sample, or resume from a full checkpoint "
            "such as last.ckpt"
        )
    counts = [("epoch", checkpoint["epoch"]), ("global_step", checkpoint["global_step"])]
    counts += [
        (f"loops.{where}", v) for where, v in values(checkpoint["loops"]) if not isinstance(v, dict)
    ]
    for where, count in counts:  # Lightning's progress counters: whole numbers, flags
        if not (isinstance(count, int) and count >= 0):
            raise refused(f"its {where} is {shown(count)}, not a count")
    check_optimizer_state(checkpoint["optimizer_states"], list(model.parameters()))


def check_optimizer_state(states: Any, weights: list[torch.Tensor]) -> None:
    """Every per-weight tensor of the optimizer's saved state (Adam's moments) of its weight's
    shape: another would fail at the first step, after the run has started."""
    if not isinstance(states, list):
        raise refused("its optimizer_states are not a list of optimizer states")
    for state in states:
        per_weight = state.get("state", {}) if isinstance(state, dict) else None
        if not isinstance(per_weight, dict):
            raise refused("its optimizer state holds no per-weight state")
        for index, entries in per_weight.items():
            known = isinstance(index, int) and 0 <= index < len(weights)
            weight = weights[index] if known else None
            tensors = entries.items() if isinstance(entries, dict) else ()
            for name, value in ((n, v) for n, v in tensors if isinstance(v, torch.Tensor)):
                if weight is None or (value.dim() and value.shape != weight.shape):
                    raise refused(
                        f"its optimizer state {name} of weight {shown(index)} does not fit the "
                        f"model's weights (of shapes {[tuple(w.shape) for w in weights]})"
                    )
