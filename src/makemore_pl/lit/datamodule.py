"""`NamesDataModule`: the Trainer's loaders (and DDP shards) of a `NamesData` it holds."""

import math

import torch
from lightning.pytorch import LightningDataModule
from torch import Tensor
from torch.utils.data import DataLoader

from makemore_pl.core.batches import (
    BatchSlices,
    TensorBatches,
    counts_table,
    example_table,
    one_hot_rows,
)
from makemore_pl.core.contexts import context_rows
from makemore_pl.core.data import DataConfig, NamesData
from makemore_pl.core.data_identity import DataFile
from makemore_pl.core.errors import DataError
from makemore_pl.core.settings import takes_settings
from makemore_pl.core.vocabulary import build_ngrams


@takes_settings(DataConfig)
class NamesDataModule(LightningDataModule):
    """Character n-grams of a one-name-per-line file, split by word into train/val/test."""

    def __init__(self, *args, **settings) -> None:
        LightningDataModule.__init__(self)  # not super(): see takes_settings
        self.data = NamesData(*args, **settings)
        self.save_hyperparameters(self.data.config.saved())

    @property
    def config(self) -> DataConfig:
        return self.data.config

    def prepare_data(self) -> None:
        self.data.ensure_file()

    def setup(self, stage: str | None = None) -> None:
        # the data file by resolved path and content, so that a checkpoint finds it anywhere
        if stage == "fit":
            self.hparams["_data_file"] = DataFile.of(self.data.path).saved()

    def _loader(self, split: str, batch_size: int | None, aggregate: bool) -> DataLoader:
        if aggregate:  # from the streaming counts: no example tensors at all
            table = counts_table(self.data.ngram_counts(split))
        else:
            table = example_table(*self.data.examples(split))
        sampler = BatchSlices(len(table[1]), batch_size, batch_size is not None, self.config.seed)
        # every process sees the same global batches and keeps its contexts' rows of each
        trainer = self.trainer
        world, rank = (1, 0) if trainer is None else (trainer.world_size, trainer.global_rank)
        owner = context_rows(table[0], self.data.vocab_size) % world if world > 1 else None
        return DataLoader(TensorBatches(table, owner, rank), sampler=sampler, batch_size=None)

    def steps_per_epoch(self) -> int:
        """Training batches in an epoch (the same on every process)."""
        size = self.config.batch_size
        return 1 if size is None else math.ceil(len(self.data.examples("train")[1]) / size)

    def train_dataloader(self) -> DataLoader:
        batch_size = self.config.batch_size
        return self._loader("train", batch_size, self.config.aggregate and batch_size is None)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", None, self.config.aggregate)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", None, self.config.aggregate)

    def predict_dataloader(self) -> DataLoader:
        """Every example of every name, in order, on every process (each scores all of them)."""
        data, words = self.data, self.data.predict_words()
        for number, word in enumerate(words, start=1):
            if unknown := sorted(set(word) - set(data.vocab.chars)):
                where = self.config.predict_path or "the test split"
                raise DataError(
                    f"{where}, name {number}: {word!r} has characters the model does not know "
                    f"({''.join(unknown)!r}); the model knows {''.join(data.vocab.chars)!r}"
                )
        table = example_table(*build_ngrams(words, data.vocab, data.context_size))
        sampler = BatchSlices(len(table[1]), None, False, 0)
        return DataLoader(TensorBatches(table), sampler=sampler, batch_size=None)

    def on_after_batch_transfer(self, batch: tuple[Tensor, ...], dataloader_idx: int):
        x, *rest = batch
        if self.config.encoding == "onehot":  # (B, c) ids -> (B, V**c) one-hot, on the device
            v = self.data.vocab_size
            x = one_hot_rows(context_rows(x, v), v**self.data.context_size, torch.float32)
        return x, *rest
