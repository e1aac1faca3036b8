"""`NamesDataModule`: `NamesData` plus what the Lightning Trainer needs (loaders, DDP shards)."""

from __future__ import annotations

import torch
from lightning.pytorch import LightningDataModule
from torch import Tensor
from torch.utils.data import DataLoader

from makemore_pl.core.batches import Batch, BatchSlices, TensorBatches, counts_table, example_table
from makemore_pl.core.contexts import context_rows
from makemore_pl.core.data import NamesData, one_hot_rows
from makemore_pl.core.data_identity import DataFile
from makemore_pl.core.errors import DataError
from makemore_pl.core.vocabulary import build_ngrams


class NamesDataModule(NamesData, LightningDataModule):
    """Character n-grams of a one-name-per-line file, split by word into train/val/test.

    Its options are `NamesData`'s (`--data.*` on the command line); checkpoints keep them as
    `datamodule_hyper_parameters`.
    """

    def _save_options(self, options: dict) -> None:
        self.save_hyperparameters(options)

    def prepare_data(self) -> None:
        self.ensure_file()

    def setup(self, stage: str | None = None) -> None:
        """For fit: records the data file by resolved path and content in the checkpoints (as
        `_data_file`, beside the settings), so that they find it, or notice another, anywhere."""
        if stage == "fit":
            self.hparams["_data_file"] = DataFile.of(self.path).saved()

    def _loader(self, split: str, batch_size: int | None, aggregate: bool) -> DataLoader:
        if aggregate:  # from the streaming counts: no example tensors at all
            table = counts_table(self.ngram_counts(split))
        else:
            table = example_table(*self.examples(split))
        sampler = BatchSlices(len(table[1]), batch_size, batch_size is not None, self.seed)
        return DataLoader(self._shard(table), sampler=sampler, batch_size=None)

    def _shard(self, table: Batch) -> TensorBatches:
        """Every process sees the same global batches and keeps its contexts' rows of each."""
        world = self.trainer.world_size if self.trainer is not None else 1
        if world == 1:
            return TensorBatches(table)
        owner = context_rows(table[0], self.vocab_size) % world
        return TensorBatches(table, owner, self.trainer.global_rank)

    def train_dataloader(self) -> DataLoader:
        aggregate = self.aggregate and self.batch_size is None
        return self._loader("train", self.batch_size, aggregate)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", None, self.aggregate)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", None, self.aggregate)

    def predict_dataloader(self) -> DataLoader:
        """Every example of every name, in order, on every process (each scores all of them)."""
        words = self.predict_words()
        for number, word in enumerate(words, start=1):
            unknown = sorted(set(word) - set(self.vocab.chars))
            if unknown:
                where = self.predict_path or "the test split"
                raise DataError(
                    f"{where}, name {number}: {word!r} has characters the model does not know "
                    f"({''.join(unknown)!r}); the model knows {''.join(self.vocab.chars)!r}"
                )
        x, y = build_ngrams(words, self.vocab, self.context_size)
        table = example_table(x, y)
        return DataLoader(
            TensorBatches(table), sampler=BatchSlices(len(y), None, False, 0), batch_size=None
        )

    def on_after_batch_transfer(self, batch: tuple[Tensor, ...], dataloader_idx: int):
        x, *rest = batch
        if self.encoding == "onehot":  # (B, c) ids -> (B, V**c) one-hot rows, built on the device
            rows = context_rows(x, self.vocab_size)
            x = one_hot_rows(rows, self.vocab_size**self.context_size, torch.float32)
        return x, *rest
