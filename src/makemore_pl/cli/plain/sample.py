"""`sample`: names generated from a checkpoint or from the counting model, without Lightning."""

import sys
import unicodedata
from typing import Literal

from makemore_pl.cli.plain.baseline import Smoothing, counting_model
from makemore_pl.cli.runs import find_named_checkpoint
from makemore_pl.core.data import NamesData
from makemore_pl.core.data_identity import locate
from makemore_pl.core.devices import device_of
from makemore_pl.core.errors import CommandError, DataError
from makemore_pl.core.sampling import iter_samples
from makemore_pl.core.text import printable
from makemore_pl.core.vocabulary import Vocabulary
from makemore_pl.models.saved import SavedModel, read_checkpoint

Accelerator = Literal["auto", "cpu", "gpu", "cuda", "mps"]


def sample(
    data: NamesData,
    ckpt_path: str | None = None,
    num_samples: int = 20,
    seed: int = 0,
    temperature: float = 1.0,
    prefix: str = "",
    counting: bool = False,
    smoothing: Smoothing = "auto",
    accelerator: Accelerator = "auto",
    default_root_dir: str = ".",
) -> int:
    """Prints the names one per line on stdout and returns how many.

    Args:
        ckpt_path: checkpoint to sample from: a path, or "best"/"last" of the newest training
            run under --trainer.default_root_dir.
        num_samples: how many names to print.
        seed: the same seed prints the same names.
        temperature: below 1 favours likely characters, above 1 flattens the distribution.
        prefix: every name starts with these characters.
        counting: sample from the counting model fitted on the data's train split instead
            of a checkpoint.
        smoothing: the counting model's smoothing, as for `baseline`.
        accelerator: where to run the model: "auto" takes a GPU if there is one.
        default_root_dir: the folder whose lightning_logs "best"/"last" look in.
    """
    if num_samples < 0:
        raise CommandError(f"--num_samples must be 0 or more, got {num_samples}")
    if not -(2**63) <= seed < 2**64:  # what torch.Generator takes
        raise CommandError(f"--seed must be from -2**63 to 2**64 - 1, got {seed}")
    if not counting and smoothing != "auto":
        raise CommandError("--smoothing is the counting model's: it needs --counting true")
    device = device_of("--trainer.accelerator", accelerator)
    if counting:
        source, vocab, device = counting_model(data, smoothing), data.vocab, "cpu"
        train_words = set(data.split()["train"])
    elif ckpt_path is None:
        raise CommandError("sample needs --ckpt_path PATH|best|last (or --counting true)")
    else:
        saved = read_checkpoint(find_named_checkpoint(ckpt_path, default_root_dir))
        print(f"sampling from {saved.path}", file=sys.stderr)
        source = saved.model_on(device)
        vocab = saved.vocabulary(data if data.path.is_file() else None)
        train_words = checkpoint_train_words(saved, data)
    prefix_ids = encode_prefix(vocab, prefix)
    c, printed, seen = source.context_size, 0, 0
    chunks = iter_samples(
        source.log_probs, c, num_samples, seed, temperature, prefix_ids, device=device
    )
    for chunk in chunks:  # printed as they come: a million names never sit in memory at once
        names = [vocab.decode(w) for w in chunk]
        print_utf8([printable(name) for name in names])
        printed += len(names)
        seen += sum(name in train_words for name in names) if train_words is not None else 0
    print(novelty_summary(printed, seen if train_words is not None else None), file=sys.stderr)
    return printed


def checkpoint_train_words(saved: SavedModel, data: NamesData) -> set[str] | None:
    """The model's training words: its recorded data file (or, if it records none, --data.path)
    split with its own settings; None when that file is not at hand."""
    recorded, settings = saved.data_file, saved.data or data.config
    if recorded is None:
        found = data.path if data.path.is_file() else None
    else:
        found, _ = locate(recorded, settings.path)
        if found is None and recorded.same_content(data.path):
            found = data.path
    if found is None:
        return None
    print(f"new names: compared with the training words of {found}", file=sys.stderr)
    return set(NamesData(**{**settings.saved(), "path": str(found)}).split()["train"])


def encode_prefix(vocab: Vocabulary, prefix: str) -> list[int]:
    try:  # NFC, as the data: an "é" typed as e + combining accent is still "é"
        return vocab.encode(unicodedata.normalize("NFC", prefix))
    except DataError as err:
        raise CommandError(f"--prefix {prefix!r}: {err}") from None


def print_utf8(lines: list[str]) -> None:
    """One per line, as UTF-8 like the data file, whatever the locale says (a latin-1 or ASCII
    stdout could not print every name)."""
    sys.stdout.flush()
    sys.stdout.buffer.write("".join(f"{line}\n" for line in lines).encode("utf-8"))
    sys.stdout.buffer.flush()


def novelty_summary(printed: int, seen: int | None) -> str:
    """How many names were printed, and how many are training words (None: unknown)."""
    if seen is None:
        return f"{printed} names (no training words at hand to compare with)"
    return f"{printed} names: {printed - seen} new, {seen} in the training words"
