"""The commands beyond Lightning's: `sample`, `baseline` and `sweep`, as Trainer methods."""

from __future__ import annotations

import os
import sys
import time
import unicodedata
from pathlib import Path
from typing import Literal

from lightning.pytorch import Trainer
from lightning.pytorch.loggers import TensorBoardLogger

from makemore_pl.baseline import (
    KNESER_NEY,
    SMOOTHING_GRID,
    CountingBaseline,
    tune_discounts,
    tune_smoothing,
)
from makemore_pl.batches import count_table
from makemore_pl.data import NamesData, Vocabulary
from makemore_pl.datamodule import NamesDataModule
from makemore_pl.errors import CommandError, DataError
from makemore_pl.model import BigramLitModule
from makemore_pl.sweep import (
    L2_GRID,
    SweepPoint,
    best_on_val,
    fit_optimum,
    sweep_counting,
    sweep_figure,
    sweep_neural,
    table_nll,
)

# --smoothing of `baseline` and `sample --counting`: add-k k, or how to choose the smoothing
Smoothing = float | Literal["auto", "kneser-ney", "kneser-ney-auto"]


class MakemoreTrainer(Trainer):
    """The Lightning Trainer plus the `sample`, `baseline` and `sweep` commands."""

    def sample(
        self,
        model: BigramLitModule | None = None,
        datamodule: NamesDataModule | None = None,
        ckpt_path: str | None = None,
        num_samples: int = 20,
        seed: int = 0,
        temperature: float = 1.0,
        prefix: str = "",
        counting: bool = False,
        smoothing: Smoothing = "auto",
    ) -> list[str]:
        """Generate names and print them on stdout, one per line.

        Args:
            ckpt_path: checkpoint to sample from: a path, or "best"/"last" of the latest run.
            num_samples: how many names to print.
            seed: the same seed prints the same names.
            temperature: below 1 favours likely characters, above 1 flattens the distribution.
            prefix: every name starts with these characters.
            counting: sample from the counting model fitted on the data's train split instead
                of a checkpoint.
            smoothing: the counting model's smoothing, as for `baseline`.
        """
        if num_samples < 0:
            raise CommandError(f"--num_samples must be 0 or more, got {num_samples}")
        if temperature <= 0:
            raise CommandError(f"--temperature must be positive, got {temperature}")
        if not counting and smoothing != "auto":
            raise CommandError("--smoothing is the counting model's: it needs --counting true")
        if counting:
            source, vocab = counting_model(datamodule, smoothing), datamodule.vocab
        else:
            if ckpt_path is None:
                raise CommandError("sample needs --ckpt_path PATH|best|last (or --counting true)")
            source = BigramLitModule.load_from_checkpoint(
                ckpt_path, map_location=self.strategy.root_device, weights_only=True
            )
            vocab = source.vocab
        ids = source.sample(
            num_samples, seed=seed, temperature=temperature, prefix=encode_prefix(vocab, prefix)
        )
        names = [vocab.decode(w) for w in ids]
        print_utf8(names)
        train_words = set(datamodule.split()["train"]) if datamodule is not None else None
        print(novelty_summary(names, train_words), file=sys.stderr)
        return names

    def baseline(
        self,
        model: BigramLitModule | None = None,
        datamodule: NamesDataModule | None = None,
        smoothing: Smoothing = "auto",
    ) -> dict[str, float]:
        """Fit the counting model on the train split and print its NLL on every split.

        Args:
            smoothing: add-k smoothing k; "auto" for the k with the lowest val NLL on a grid;
                "kneser-ney" for interpolated modified Kneser-Ney with discounts estimated from
                the counts; "kneser-ney-auto" for those discounts scaled by the factor with the
                lowest val NLL on a grid.
        """
        counting, c = counting_model(datamodule, smoothing), datamodule.context_size
        print(f"counting model, context_size {c}, {describe(counting, smoothing)}")
        results = {}
        for split in ("train", "val", "test"):
            counts = datamodule.ngram_counts(split)  # streamed: no example tensors
            results[f"{split}_nll"] = counting.counts_nll(counts) if len(counts) else float("nan")
            print(f"{split}_nll {results[f'{split}_nll']:.5f} ({counts.total():,} examples)")
        return results

    def sweep(
        self,
        model: BigramLitModule | None = None,
        datamodule: NamesDataModule | None = None,
        models: Literal["both", "counting", "neural"] = "both",
        smoothing_grid: tuple[float, ...] = SMOOTHING_GRID,
        l2_grid: tuple[float, ...] = L2_GRID,
        plot: str | None = None,
    ) -> list[SweepPoint]:
        """Sweep regularisation on val, print the table, plot it and test the best once.

        Args:
            models: which models to sweep: the counting model's add-k smoothing, the neural
                model's l2 weight (each fitted to its optimum), or both.
            smoothing_grid: add-k values for the counting model.
            l2_grid: l2 weights for the neural model.
            plot: where to write the PNG; default: sweep.png in the run's log folder.
        """
        datamodule.setup("fit")
        c, v = datamodule.context_size, datamodule.vocab_size
        splits = {split: datamodule.examples(split) for split in ("train", "val", "test")}
        started = time.perf_counter()
        points = []
        if models in ("both", "counting"):
            points += sweep_counting(v, c, splits, smoothing_grid)
        if models in ("both", "neural"):
            points += sweep_neural(v, c, splits, l2_grid)
        print(f"{'model':<9} {'strength':>8} {'train_nll':>9} {'val_nll':>9}")
        for p in points:
            print(f"{p.model:<9} {p.strength:>8g} {p.train_nll:>9.5f} {p.val_nll:>9.5f}")
        for kind in dict.fromkeys(p.model for p in points):
            best = best_on_val([p for p in points if p.model == kind])
            test = test_nll(best, v, c, splits)
            print(
                f"best {kind}: strength {best.strength:g}, val_nll {best.val_nll:.5f}, "
                f"test_nll {test:.5f}"
            )
        print(f"plot: {save_sweep_plot(self, points, plot, c)}")
        print(
            f"swept {len(points)} models in {time.perf_counter() - started:.1f} s", file=sys.stderr
        )
        return points


def test_nll(point: SweepPoint, vocab_size: int, context_size: int, splits) -> float:
    """The one look at the test split: the chosen model, refitted on train."""
    if point.model == "counting":
        fitted = CountingBaseline(vocab_size, context_size, point.strength).fit(*splits["train"])
        return fitted.nll(*splits["test"])
    train, test = (count_table(*splits[s][:2], vocab_size, splits[s][2]) for s in ("train", "test"))
    return table_nll(fit_optimum(vocab_size, context_size, point.strength, train).log_probs, test)


def save_sweep_plot(trainer: Trainer, points: list[SweepPoint], path: str | None, c: int) -> Path:
    """Writes the PNG (atomically) and logs the figure to TensorBoard when there is a logger."""
    logger = trainer.logger
    folder = Path(logger.log_dir) if logger is not None else Path(".")
    path = Path(path) if path else folder / "sweep.png"
    fig = sweep_figure(points, f"regularisation sweep, context_size {c}")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    fig.savefig(partial, format="png", dpi=110)
    os.replace(partial, path)
    if isinstance(logger, TensorBoardLogger):
        logger.experiment.add_figure("sweep", fig, 0)
        logger.experiment.flush()
    return path


def counting_model(datamodule: NamesData, smoothing: Smoothing = "auto") -> CountingBaseline:
    """The counting model fitted on the train split, its smoothing given or chosen on val."""
    if not isinstance(smoothing, str) and smoothing < 0:
        raise CommandError(
            f"--smoothing must be 0 or more, 'auto', 'kneser-ney' or 'kneser-ney-auto', "
            f"got {smoothing}"
        )
    # the data file is read a chunk at a time: memory for the distinct n-grams only
    train, val = datamodule.ngram_counts("train"), datamodule.ngram_counts("val")
    if smoothing in ("auto", "kneser-ney-auto") and len(val) == 0:
        raise CommandError(f"--smoothing {smoothing} chooses on the val split, which is empty")
    v, c = datamodule.vocab_size, datamodule.context_size
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


def novelty_summary(names: list[str], train_words: set[str] | None) -> str:
    if train_words is None:
        return f"{len(names)} names (no training words at hand to compare with)"
    seen = sum(name in train_words for name in names)
    return f"{len(names)} names: {len(names) - seen} new, {seen} in the training words"
