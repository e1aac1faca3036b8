"""`python -m makemore_pl`: LightningCLI with fit/validate/test/predict, sample and baseline."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

import torch
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from makemore_pl.baseline import KNESER_NEY, CountingBaseline, tune_discounts, tune_smoothing
from makemore_pl.callbacks import CountingReference, LogSnapshots
from makemore_pl.data import DataError, NamesDataModule, Vocabulary
from makemore_pl.model import BigramLitModule


class CommandError(ValueError):
    """A command-line mistake the user can fix; printed without a traceback."""


# --smoothing of `baseline` and `sample --counting`: add-k k, or how to choose the smoothing
Smoothing = float | Literal["auto", "kneser-ney", "kneser-ney-auto"]


class MakemoreTrainer(Trainer):
    """The Lightning Trainer plus the `sample` and `baseline` commands."""

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
        if names:
            print("\n".join(names), flush=True)
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
            x, y, weights = datamodule.examples(split)
            results[f"{split}_nll"] = counting.nll(x, y, weights) if len(y) else float("nan")
            examples = len(y) if weights is None else int(weights.sum())
            print(f"{split}_nll {results[f'{split}_nll']:.5f} ({examples:,} examples)")
        return results


def counting_model(datamodule: NamesDataModule, smoothing: Smoothing = "auto") -> CountingBaseline:
    """The counting model fitted on the train split, its smoothing given or chosen on val."""
    if not isinstance(smoothing, str) and smoothing < 0:
        raise CommandError(
            f"--smoothing must be 0 or more, 'auto', 'kneser-ney' or 'kneser-ney-auto', "
            f"got {smoothing}"
        )
    datamodule.setup("fit")
    train, val = datamodule.examples("train"), datamodule.examples("val")
    if smoothing in ("auto", "kneser-ney-auto") and len(val[1]) == 0:
        raise CommandError(f"--smoothing {smoothing} chooses on the val split, which is empty")
    v, c = datamodule.vocab_size, datamodule.context_size
    if smoothing == "auto":
        return tune_smoothing(CountingBaseline(v, c).fit(*train), val)
    if smoothing == "kneser-ney-auto":
        return tune_discounts(CountingBaseline(v, c, KNESER_NEY).fit(*train), val)
    return CountingBaseline(v, c, smoothing).fit(*train)


def describe(counting: CountingBaseline, smoothing: Smoothing) -> str:
    """How the counting model smooths and why, e.g. 'smoothing 0.2 (lowest val_nll on the grid)'."""
    chosen = "lowest val_nll on the grid"
    if not counting.is_kneser_ney:
        return f"smoothing {counting.smoothing:g} ({chosen if smoothing == 'auto' else 'given'})"
    if smoothing == "kneser-ney-auto":
        return f"smoothing kneser-ney, discounts scaled by {counting.discount_scale:g} ({chosen})"
    return "smoothing kneser-ney (discounts from the counts of counts)"


def encode_prefix(vocab: Vocabulary, prefix: str) -> list[int]:
    try:
        return vocab.encode(prefix)
    except DataError as err:
        raise CommandError(f"--prefix {prefix!r}: {err}") from None


def novelty_summary(names: list[str], train_words: set[str] | None) -> str:
    if train_words is None:
        return f"{len(names)} names (no training words at hand to compare with)"
    seen = sum(name in train_words for name in names)
    return f"{len(names)} names: {len(names) - seen} new, {seen} in the training words"


def read_checkpoint(path: str) -> dict:
    """Loads a checkpoint's plain contents (weights_only: a crafted file cannot run code)."""
    if not Path(path).is_file():
        raise CommandError(f"--ckpt_path {path}: no such file")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for truncated or foreign files
        if "Weights only load failed" in str(err):
            raise CommandError(
                f"--ckpt_path {path}: refused, the file holds objects other than tensors and plain "
                "values, which could run code when loaded; use a checkpoint written by makemore_pl"
            ) from None
        raise CommandError(
            f"--ckpt_path {path}: not a readable checkpoint (truncated or not a checkpoint: "
            f"{str(err).splitlines()[0]})"
        ) from None
    if not isinstance(checkpoint, dict) or "vocab_size" not in checkpoint.get(
        "hyper_parameters", {}
    ):
        raise CommandError(f"--ckpt_path {path}: not a makemore_pl model checkpoint")
    return checkpoint


def find_run_checkpoint(logs: Path, which: str) -> Path | None:
    """`which`.ckpt ('best' or 'last') of the newest run (version_N) under `logs`, if any."""
    runs = logs.glob("version_*")
    found = [run / "checkpoints" / f"{which}.ckpt" for run in runs]
    found = [path for path in found if path.is_file()]
    return max(found, key=lambda p: int(p.parent.parent.name.split("_")[-1]), default=None)


class MakemoreCLI(LightningCLI):
    """Links the data's vocabulary and order into the model; resolves best/last checkpoints."""

    resumed_run: Path | None = None

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        extra = {"model", "datamodule"}
        return {**LightningCLI.subcommands(), "sample": extra, "baseline": extra}

    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("data.context_size", "model.context_size")
        parser.link_arguments("data.encoding", "model.encoding")
        # read from the data module right after it is built: it loads the words on first use
        parser.link_arguments("data.vocab_size", "model.vocab_size", apply_on="instantiate")
        parser.link_arguments("data.chars", "model.chars", apply_on="instantiate")
        parser.add_lightning_class_args(LogSnapshots, "snapshots")

    def parse_arguments(self, parser, args) -> None:
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        config = self.config[subcommand] if subcommand else None
        if config is None or not config.get("ckpt_path"):
            return
        if config.ckpt_path in ("best", "last"):
            config.ckpt_path = self.resolve_run_checkpoint(subcommand, config)
        if config.ckpt_path is not None:
            checkpoint = read_checkpoint(config.ckpt_path)
            self.use_checkpoint_data_settings(subcommand, checkpoint)

    def resolve_run_checkpoint(self, subcommand: str, config) -> str | None:
        """'best' or 'last' -> that checkpoint of the newest run under default_root_dir."""
        which, logs = (
            config.ckpt_path,
            Path(config.trainer.default_root_dir or ".", "lightning_logs"),
        )
        path = find_run_checkpoint(logs, which)
        if path is None and subcommand == "fit":
            rank_zero_info(f"no {which}.ckpt under {logs}: a new run starts")
            return None
        if path is None:
            raise CommandError(
                f"--ckpt_path {which}: no {which}.ckpt in any run under {logs}; "
                "train one with `fit` or pass a checkpoint path"
            )
        if subcommand == "fit":
            self.resumed_run = path.parent.parent  # log the resumed run into its own folder
        return str(path)

    def use_checkpoint_data_settings(self, subcommand: str, checkpoint: dict) -> None:
        """The data settings the checkpoint was trained with replace the defaults (an option
        given on the command line or in a config still wins), so that `test --ckpt_path` of a
        trigram run tests a trigram model on its own split."""
        saved = checkpoint.get("datamodule_hyper_parameters", {})
        data, defaults = self.config[subcommand].data, self._parser(subcommand).get_defaults().data
        for key, value in saved.items():
            if key in data and data[key] == defaults[key]:
                data[key] = value

    def instantiate_classes(self) -> None:
        config = self.config.get(self.subcommand, {})
        if self.subcommand in ("sample", "baseline"):
            # no neural model: a checkpoint holds it and its vocabulary, so the data file may be
            # absent; the counting model needs none (W of context_size 6 would take 42 GB)
            self.config_init, self.model = self.config, None
            counting = self.subcommand == "baseline" or config.get("counting")
            path = Path(config.data.path)
            needed = counting or path.is_file()
            self.datamodule = NamesDataModule(**config.data.as_dict()) if needed else None
            self.trainer = self.trainer_class(
                logger=False,
                accelerator=config.trainer.accelerator,
                devices=1,
                enable_progress_bar=False,
            )
            return
        super().instantiate_classes()

    def instantiate_trainer(self, **kwargs) -> Trainer:
        logger = self._get(self.config_init, "trainer", {}).get("logger")
        if self.resumed_run is not None and logger in (None, True):
            root = self.resumed_run.parent.parent
            kwargs["logger"] = TensorBoardLogger(root, version=self.resumed_run.name)
        return super().instantiate_trainer(**kwargs)


def checkpoint_callbacks() -> list[ModelCheckpoint]:
    # a monitored ModelCheckpoint writes last.ckpt only when it saves a top-k one: keep the best
    # and the true last step with two callbacks
    best = ModelCheckpoint(monitor="val_nll", mode="min", filename="best", save_top_k=1)
    last = ModelCheckpoint(save_top_k=0, save_last=True, save_on_train_epoch_end=True)
    return [best, last]


def main(args: list[str] | None = None) -> None:
    try:
        MakemoreCLI(
            BigramLitModule,
            NamesDataModule,
            trainer_class=MakemoreTrainer,
            trainer_defaults={
                "max_epochs": 100,
                "log_every_n_steps": 1,
                # the data module splits every batch between processes itself, exactly: the
                # DistributedSampler Lightning would add pads by repeating examples
                "use_distributed_sampler": False,
                "callbacks": [*checkpoint_callbacks(), CountingReference()],
            },
            seed_everything_default=42,
            auto_configure_optimizers=False,  # the model chooses its optimizer (--model.optimizer)
            save_config_kwargs={"overwrite": True},  # a resumed run rewrites its config
            args=args,
        )
    except (DataError, CommandError) as err:  # the message says what to fix; no traceback
        sys.exit(f"makemore_pl: error: {err}")
    except MisconfigurationException as err:  # e.g. --trainer.accelerator gpu without a GPU
        sys.exit(f"makemore_pl: error: {err} (Lightning refused the --trainer options)")
