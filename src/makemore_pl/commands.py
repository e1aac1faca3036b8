"""The commands that train nothing: `sample`, `baseline` and `sweep`, as plain functions.

Each takes the data settings (`--data.*`, as `fit` does) and only the options it honours; none
imports the Lightning Trainer.
"""

from __future__ import annotations

import importlib
import sys
import time
import unicodedata
from pathlib import Path
from typing import Literal

import torch
import yaml

from makemore_pl.baseline import (
    KNESER_NEY,
    SMOOTHING_GRID,
    CountingBaseline,
    tune_discounts,
    tune_smoothing,
)
from makemore_pl.data import NamesData, Vocabulary
from makemore_pl.errors import CommandError, DataError
from makemore_pl.runs import find_run_checkpoint, new_run_folder
from makemore_pl.sweep import L2_GRID
from makemore_pl.text import printable

# --smoothing of `baseline` and `sample --counting`: add-k k, or how to choose the smoothing
Smoothing = float | Literal["auto", "kneser-ney", "kneser-ney-auto"]
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
    """Generate names and print them on stdout, one per line; returns how many.

    Args:
        ckpt_path: checkpoint to sample from: a path, or "best"/"last" of the newest training
            run under --default_root_dir.
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
    if temperature <= 0:
        raise CommandError(f"--temperature must be positive, got {temperature}")
    if not counting and smoothing != "auto":
        raise CommandError("--smoothing is the counting model's: it needs --counting true")
    device = torch_device(accelerator)
    if counting:
        source, vocab, c, device = (
            counting_model(data, smoothing),
            data.vocab,
            data.context_size,
            "cpu",
        )
    else:
        path = checkpoint_path(ckpt_path, default_root_dir)
        source = load_model(path, device)
        vocab = checkpoint_vocabulary(path, source.hparams, data if data.path.is_file() else None)
        c = source.context_size
    from makemore_pl.sampling import iter_samples

    prefix_ids = encode_prefix(vocab, prefix)
    chunks = iter_samples(
        source.log_probs, c, num_samples, seed, temperature, prefix_ids, device=device
    )
    train_words = set(data.split()["train"]) if counting or data.path.is_file() else None
    printed = seen = 0
    for chunk in chunks:  # printed as they come: a million names never sit in memory at once
        names = [vocab.decode(w) for w in chunk]
        print_utf8([printable(name) for name in names])
        printed += len(names)
        seen += sum(name in train_words for name in names) if train_words is not None else 0
    print(novelty_summary(printed, seen if train_words is not None else None), file=sys.stderr)
    return printed


def baseline(data: NamesData, smoothing: Smoothing = "auto") -> dict[str, float]:
    """Fit the counting model on the train split and print its NLL on every split.

    Args:
        smoothing: add-k smoothing k; "auto" for the k with the lowest val NLL on a grid;
            "kneser-ney" for interpolated modified Kneser-Ney with discounts estimated from
            the counts; "kneser-ney-auto" for those discounts scaled by the factor with the
            lowest val NLL on a grid.
    """
    counting, c = counting_model(data, smoothing), data.context_size
    print(f"counting model, context_size {c}, {describe(counting, smoothing)}")
    results = {}
    for split in ("train", "val", "test"):
        counts = data.ngram_counts(split)  # streamed: no example tensors
        results[f"{split}_nll"] = counting.counts_nll(counts) if len(counts) else float("nan")
        print(f"{split}_nll {results[f'{split}_nll']:.5f} ({counts.total():,} examples)")
    return results


def sweep(
    data: NamesData,
    models: Literal["both", "counting", "neural"] = "both",
    smoothing_grid: tuple[float, ...] = SMOOTHING_GRID,
    l2_grid: tuple[float, ...] = L2_GRID,
    plot: str | None = None,
    default_root_dir: str = ".",
) -> list:
    """Sweep regularisation on val, print the table, plot it and test the best once.

    Args:
        models: which models to sweep: the counting model's add-k smoothing, the neural
            model's l2 weight (each fitted to its optimum), or both.
        smoothing_grid: add-k values for the counting model.
        l2_grid: l2 weights for the neural model.
        plot: where to write the PNG; default: sweep.png in a new run folder under
            --default_root_dir/lightning_logs, which TensorBoard shows too.
        default_root_dir: the folder whose lightning_logs holds the sweep's run folder.
    """
    from makemore_pl import sweep as sweeps

    for name, grid in (("smoothing_grid", smoothing_grid), ("l2_grid", l2_grid)):
        if not grid or min(grid) < 0:
            raise CommandError(f"--{name} must list values of 0 or more, got {list(grid)}")
    data.setup("fit")
    c, v = data.context_size, data.vocab_size
    splits = {split: data.examples(split) for split in ("train", "val", "test")}
    started = time.perf_counter()
    points = []
    if models in ("both", "counting"):
        points += sweeps.sweep_counting(v, c, splits, smoothing_grid)
    if models in ("both", "neural"):
        points += sweeps.sweep_neural(v, c, splits, l2_grid)
    print(f"{'model':<9} {'strength':>8} {'train_nll':>9} {'val_nll':>9}")
    for p in points:
        print(f"{p.model:<9} {p.strength:>8g} {p.train_nll:>9.5f} {p.val_nll:>9.5f}")
    for kind in dict.fromkeys(p.model for p in points):
        best = sweeps.best_on_val([p for p in points if p.model == kind])
        test = sweeps.test_nll(best, v, c, splits)
        print(
            f"best {kind}: strength {best.strength:g}, val_nll {best.val_nll:.5f}, "
            f"test_nll {test:.5f}"
        )
    print(f"plot: {save_sweep_plot(points, plot, c, default_root_dir)}")
    print(f"swept {len(points)} models in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return points


def save_sweep_plot(points: list, path: str | None, c: int, root: str) -> Path:
    """The figure goes to TensorBoard, in a new run folder, and as a PNG (written atomically)
    to `path`, or beside the events without it."""
    from torch.utils.tensorboard import SummaryWriter

    from makemore_pl.plots import save_png
    from makemore_pl.sweep import sweep_figure

    fig = sweep_figure(points, f"regularisation sweep, context_size {c}")
    written = save_png(fig, Path(path)) if path else None  # a bad --plot fails before the run
    folder = new_run_folder(Path(root, "lightning_logs"), "sweep")
    with SummaryWriter(str(folder)) as writer:
        writer.add_figure("sweep", fig, 0, close=False)
    return written or save_png(fig, folder / "sweep.png")


def checkpoint_path(ckpt_path: str | None, root: str) -> str:
    if ckpt_path is None:
        raise CommandError("sample needs --ckpt_path PATH|best|last (or --counting true)")
    if ckpt_path not in ("best", "last"):
        return ckpt_path
    logs = Path(root, "lightning_logs")
    path = find_run_checkpoint(logs, ckpt_path)
    if path is None:
        raise CommandError(
            f"--ckpt_path {ckpt_path}: no {ckpt_path}.ckpt in the newest training run under "
            f"{logs}; train one with `fit` or pass a checkpoint path"
        )
    return str(path)


def checkpoint_vocabulary(path: str, hparams: dict, data: NamesData | None) -> Vocabulary:
    from makemore_pl.checkpoints import checkpoint_vocabulary

    return checkpoint_vocabulary(path, hparams, data)


def load_model(path: str, device: torch.device):
    """The model of a checkpoint, read without running code, on `device`."""
    from makemore_pl.scoring import load_saved_model

    return load_saved_model(path, device)


def torch_device(accelerator: Accelerator) -> torch.device:
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise CommandError(f"--accelerator {accelerator}: no CUDA GPU on this machine")
        return torch.device("cuda")
    if accelerator == "mps":
        if not torch.backends.mps.is_available():
            raise CommandError("--accelerator mps: no MPS device on this machine")
        return torch.device("mps")
    return torch.device("cpu")


def counting_model(data: NamesData, smoothing: Smoothing = "auto") -> CountingBaseline:
    """The counting model fitted on the train split, its smoothing given or chosen on val."""
    if not isinstance(smoothing, str) and smoothing < 0:
        raise CommandError(
            f"--smoothing must be 0 or more, 'auto', 'kneser-ney' or 'kneser-ney-auto', "
            f"got {smoothing}"
        )
    # the data file is read a chunk at a time: memory for the distinct n-grams only
    train, val = data.ngram_counts("train"), data.ngram_counts("val")
    if smoothing in ("auto", "kneser-ney-auto") and len(val) == 0:
        raise CommandError(f"--smoothing {smoothing} chooses on the val split, which is empty")
    v, c = data.vocab_size, data.context_size
    if smoothing == "auto":
        return tune_smoothing(CountingBaseline(v, c).fit_counts(train), val)
    if smoothing == "kneser-ney-auto":
        return tune_discounts(CountingBaseline(v, c, KNESER_NEY).fit_counts(train), val)
    return CountingBaseline(v, c, smoothing).fit_counts(train)


def describe(counting: CountingBaseline, smoothing: Smoothing) -> str:
    """How the counting model smooths and why, e.g. 'smoothing 0.2 (lowest val_nll on the grid)'."""
    chosen = "lowest val_nll on the grid"
    if not counting.is_kneser_ney:
        return f"smoothing {counting.smoothing:g} ({chosen if smoothing == 'auto' else 'given'})"
    if smoothing == "kneser-ney-auto":
        return f"smoothing kneser-ney, discounts scaled by {counting.discount_scale:g} ({chosen})"
    return "smoothing kneser-ney (discounts from the counts of counts)"


def print_utf8(lines: list[str]) -> None:
    """One per line on stdout, as UTF-8 like the data file, whatever the terminal's locale says
    (a latin-1 or ASCII stdout could not print every name)."""
    sys.stdout.flush()
    sys.stdout.buffer.write("".join(f"{line}\n" for line in lines).encode("utf-8"))
    sys.stdout.buffer.flush()


def encode_prefix(vocab: Vocabulary, prefix: str) -> list[int]:
    try:  # NFC, as the data: an "é" typed as e + combining accent is still "é"
        return vocab.encode(unicodedata.normalize("NFC", prefix))
    except DataError as err:
        raise CommandError(f"--prefix {prefix!r}: {err}") from None


def novelty_summary(printed: int, seen: int | None) -> str:
    """How many names were printed, and how many of them are training words (None: unknown)."""
    if seen is None:
        return f"{printed} names (no training words at hand to compare with)"
    return f"{printed} names: {printed - seen} new, {seen} in the training words"


# command -> its function; suffix_sweep's module imports the suffix model, so it loads on use
COMMANDS = {
    "sample": lambda: sample,
    "baseline": lambda: baseline,
    "sweep": lambda: sweep,
    "suffix_sweep": lambda: importlib.import_module("makemore_pl.suffix_sweep").suffix_sweep,
}
# sections of a training config (`fit --config`) that these commands have no use for
TRAINING_SECTIONS = {
    "trainer",
    "model",
    "seed_everything",
    "ckpt_path",
    "snapshots",
    "best_checkpoint",
    "last_checkpoint",
    "run_name",
    "weights_only",
    "output",
}


def run_command(prog: str, name: str, args: list[str]) -> object:
    """Parses `args` for command `name` (its own options and --data.*) and runs it."""
    from jsonargparse import ActionConfigFile, ArgumentParser

    function = COMMANDS[name]()
    parser = ArgumentParser(prog=f"{prog} {name}", description=function.__doc__.split("\n")[0])
    parser.add_argument(
        "--config",
        action=ActionConfigFile,
        help="a YAML file of options; the data section of a `fit` config is read, the rest skipped",
    )
    parser.add_function_arguments(function, skip={"data"}, as_group=False)
    parser.add_class_arguments(NamesData, "data")
    config = parser.parse_args(data_sections_only(args))
    init = parser.instantiate_classes(config)
    options = {key: value for key, value in vars(init).items() if key not in ("config", "data")}
    return function(data=init.data, **options)


def data_sections_only(args: list[str]) -> list[str]:
    """Each `--config FILE` becomes the file's own text minus the training-only sections, so a
    config written for `fit` serves `baseline --config` too."""
    out, rest = [], iter(args)
    for arg in rest:
        path = next(rest, None) if arg == "--config" else None
        if arg.startswith("--config="):
            path = arg.split("=", 1)[1]
        if path is None:
            out.append(arg)
            continue
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError, UnicodeDecodeError) as err:
            raise CommandError(f"--config {path}: cannot read it as YAML ({err})") from None
        if not isinstance(loaded, dict):
            raise CommandError(f"--config {path}: not a mapping of options")
        kept = {k: v for k, v in loaded.items() if k not in TRAINING_SECTIONS}
        out += ["--config", yaml.safe_dump(kept) if kept else "{}"]
    return out
