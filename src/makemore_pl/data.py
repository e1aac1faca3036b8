"""Words in, n-gram tensors out: vocabulary, framing, splitting and the data module."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import TypeVar

import torch
from lightning.pytorch import LightningDataModule
from torch import Tensor
from torch.utils.data import DataLoader

from makemore_pl.batches import Batch, BatchSlices, TensorBatches, count_table, example_table
from makemore_pl.words import (  # noqa: F401  (load_words and the names.txt source: public here)
    NAMES_SHA256,
    NAMES_URL,
    DataError,
    download_names,
    load_counted_words,
    load_words,
)

BOUNDARY = "."  # how index 0, the start/end-of-word token, is shown
Word = TypeVar("Word", bound=Hashable)


class Vocabulary:
    """Token 0 is the word boundary (shown as '.'); the data's characters, sorted, are 1..V-1.

    A '.' inside the data is an ordinary character with its own index, never the boundary.
    """

    def __init__(self, chars: Sequence[str]) -> None:
        if len(set(chars)) != len(chars) or any(len(ch) != 1 for ch in chars):
            raise DataError(f"a vocabulary is a list of distinct single characters, got {chars!r}")
        self.chars = list(chars)
        self.itos = [BOUNDARY, *self.chars]
        self.stoi = {ch: i for i, ch in enumerate(self.chars, start=1)}

    @classmethod
    def from_words(cls, words: Sequence[str]) -> Vocabulary:
        return cls(sorted(set("".join(words))))

    def __len__(self) -> int:
        return len(self.itos)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.chars == other.chars

    def __repr__(self) -> str:
        return f"Vocabulary({''.join(self.chars)!r})"

    def encode(self, word: str) -> list[int]:
        try:
            return [self.stoi[ch] for ch in word]
        except KeyError as err:
            raise DataError(
                f"character {err.args[0]!r} in {word!r} is not in the vocabulary "
                f"{''.join(self.chars)!r}"
            ) from None

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(self.itos[i] for i in ids)

    def to_list(self) -> list[str]:
        """The data's characters in index order (1..): a plain, checkpoint-safe form."""
        return list(self.chars)


def build_ngrams(
    words: Sequence[str], vocab: Vocabulary, context_size: int
) -> tuple[Tensor, Tensor]:
    """Every word framed as `c` boundaries + word + one boundary; one example per next character.

    Returns X (N, c) and Y (N,), int64, N = sum(len(w) + 1). Vectorised: the framed words are laid
    end to end in one stream and each example is a window of c + 1 tokens that stays in its word.
    """
    c = context_size
    if not words:
        return torch.zeros(0, c, dtype=torch.long), torch.zeros(0, dtype=torch.long)
    lengths = torch.tensor([len(w) for w in words], dtype=torch.long)
    chars = torch.tensor(vocab.encode("".join(words)), dtype=torch.long)
    framed = lengths + c + 1  # tokens per framed word
    word_start = torch.cumsum(framed, 0) - framed
    word_of_char = torch.repeat_interleave(torch.arange(len(words)), lengths)
    char_in_word = torch.arange(len(chars)) - (torch.cumsum(lengths, 0) - lengths)[word_of_char]
    stream = torch.zeros(int(framed.sum()), dtype=torch.long)
    stream[word_start[word_of_char] + c + char_in_word] = chars
    examples = lengths + 1
    first = torch.repeat_interleave(word_start, examples)
    offset = torch.arange(int(examples.sum())) - torch.repeat_interleave(
        torch.cumsum(examples, 0) - examples, examples
    )
    windows = stream.unfold(0, c + 1, 1)[first + offset]  # (N, c + 1)
    return windows[:, :c].contiguous(), windows[:, c].contiguous()


def split_words(
    words: Sequence[Word],
    val_fraction: float,
    test_fraction: float,
    seed: int,
    dedupe: bool = False,
) -> tuple[list[Word], list[Word], list[Word]]:
    """A seeded random split by word into (train, val, test); never splits a word's n-grams.

    With `dedupe`, repeated words are kept once, so no name can appear in two splits. A word may
    be a (name, count) pair: the name goes to one split with its count.
    """
    check_fractions(val_fraction, test_fraction)
    if dedupe:
        words = list(dict.fromkeys(words))
    order = torch.randperm(len(words), generator=torch.Generator().manual_seed(seed)).tolist()
    n_test = round(len(words) * test_fraction)
    n_val = round(len(words) * val_fraction)
    shuffled = [words[i] for i in order]
    return shuffled[n_test + n_val :], shuffled[n_test : n_test + n_val], shuffled[:n_test]


def check_fractions(val_fraction: float, test_fraction: float) -> None:
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= value < 1:
            raise DataError(f"{name} must be in [0, 1), got {value}")
    if val_fraction + test_fraction >= 1:
        raise DataError(
            f"val_fraction + test_fraction must be below 1 to leave training words, "
            f"got {val_fraction} + {test_fraction}"
        )


class NamesDataModule(LightningDataModule):
    """Character n-grams of a one-name-per-line file, split by word into train/val/test."""

    def __init__(
        self,
        path: str = "names.txt",
        context_size: int = 1,
        encoding: str = "index",
        batch_size: int | None = None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        seed: int = 42,
        dedupe: bool = False,
        aggregate: bool = True,
        predict_path: str | None = None,
    ) -> None:
        """
        Args:
            path: text file with one name per line (UTF-8), or with `name,count` lines, whose
                counts weigh each name's examples. A missing file named names.txt is
                downloaded from the makemore repository and checked against its sha256.
            context_size: characters of context: 1 = bigram, 2 = trigram, ...
            encoding: batch form the model sees: "index" (context ids) or "onehot" (one-hot rows
                of the joint context, expanded on the device).
            batch_size: examples per training batch; None = the whole split in one batch.
            val_fraction: share of words held out for validation.
            test_fraction: share of words held out for testing.
            seed: seed of the word split and of the minibatch order.
            dedupe: keep each distinct word once, so no name is in two splits (a name,count
                file already lists each name once).
            aggregate: feed full batches as the table of distinct (context, next) rows with
                their counts: the same loss and gradient as every example, hundreds of times
                cheaper. Minibatches (batch_size set) always hold examples.
            predict_path: names for `predict` to score, one per line; None = the test split.
        """
        super().__init__()
        if context_size < 1:
            raise DataError(f"context_size must be at least 1, got {context_size}")
        if encoding not in ("index", "onehot"):
            raise DataError(f"encoding must be 'index' or 'onehot', got {encoding!r}")
        if batch_size is not None and batch_size <= 0:
            raise DataError(f"batch_size must be positive or None (full batch), got {batch_size}")
        check_fractions(val_fraction, test_fraction)
        self.save_hyperparameters()
        self.path, self.context_size, self.encoding = Path(path), context_size, encoding
        self.batch_size, self.seed = batch_size, seed
        self._words: list[str] | None = None
        self._name_counts: list[int] | None = None
        self._vocab: Vocabulary | None = None
        self.splits: dict[str, tuple[Tensor, Tensor]] = {}  # (X, Y) of every example
        self.weights: dict[str, Tensor] = {}  # (N,) example weights, for a name,count file

    # the vocabulary is needed before setup (the CLI links vocab_size into the model), so words
    # are loaded lazily, on first use, by whichever comes first
    @property
    def words(self) -> list[str]:
        self._load()
        return self._words

    @property
    def name_counts(self) -> list[int] | None:
        """Each word's count, from a name,count file; None for a plain file."""
        self._load()
        return self._name_counts

    def _load(self) -> None:
        if self._words is None:
            self.prepare_data()
            self._words, self._name_counts = load_counted_words(self.path)

    @property
    def vocab(self) -> Vocabulary:
        if self._vocab is None:
            self._vocab = Vocabulary.from_words(self.words)
        return self._vocab

    @property
    def chars(self) -> list[str]:
        """The data's characters in index order: what the model keeps of the vocabulary."""
        return self.vocab.to_list()

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def prepare_data(self) -> None:
        if not self.path.exists() and self.path.name == "names.txt":
            download_names(self.path, NAMES_URL, NAMES_SHA256)

    def split(self) -> dict[str, list[str]]:
        """The words of each split."""
        return {name: [w for w, _ in part] for name, part in self.counted_split().items()}

    def counted_split(self) -> dict[str, list[tuple[str, int]]]:
        """(word, count) of each split: by word, a name,count file's names with their counts
        (a plain file's words with count 1)."""
        hp, counts = self.hparams, self.name_counts or [1] * len(self.words)
        entries = list(zip(self.words, counts, strict=True))
        parts = split_words(entries, hp.val_fraction, hp.test_fraction, hp.seed, hp.dedupe)
        return dict(zip(("train", "val", "test"), parts, strict=True))

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        vocab = self.vocab
        for name, part in self.counted_split().items():
            words = [w for w, _ in part]
            self.splits[name] = build_ngrams(words, vocab, self.context_size)
            if self.name_counts is not None:  # every example of a name weighs its count
                lengths = torch.tensor([len(w) + 1 for w in words], dtype=torch.long)
                counts = torch.tensor([n for _, n in part], dtype=torch.long)
                self.weights[name] = torch.repeat_interleave(counts, lengths)

    def examples(self, split: str) -> tuple[Tensor, Tensor, Tensor | None]:
        """X (N, c), Y (N,) and the (N,) int64 example weights of a split (None: all 1)."""
        return *self.splits[split], self.weights.get(split)

    def _loader(self, split: str, batch_size: int | None, aggregate: bool) -> DataLoader:
        x, y, weights = self.examples(split)
        if aggregate:
            table = count_table(x, y, self.vocab_size, weights)
        else:
            table = example_table(x, y, weights)
        sampler = BatchSlices(len(table[1]), batch_size, batch_size is not None, self.seed)
        return DataLoader(self._shard(table), sampler=sampler, batch_size=None)

    def _shard(self, table: Batch) -> TensorBatches:
        """Every process sees the same global batches and keeps its contexts' rows of each."""
        world = self.trainer.world_size if self.trainer is not None else 1
        if world == 1:
            return TensorBatches(table)
        owner = joint_context(table[0], self.vocab_size) % world
        return TensorBatches(table, owner, self.trainer.global_rank)

    def train_dataloader(self) -> DataLoader:
        aggregate = self.hparams.aggregate and self.batch_size is None
        return self._loader("train", self.batch_size, aggregate)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", None, self.hparams.aggregate)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", None, self.hparams.aggregate)

    def predict_words(self) -> list[str]:
        """The names `predict` scores: --data.predict_path's, or the test split's."""
        path = self.hparams.predict_path
        return load_words(path) if path else self.split()["test"]

    def predict_dataloader(self) -> DataLoader:
        """Every example of every name, in order, on every process (each scores all of them)."""
        words = self.predict_words()
        for number, word in enumerate(words, start=1):
            unknown = sorted(set(word) - set(self.vocab.chars))
            if unknown:
                where = self.hparams.predict_path or "the test split"
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
            rows = joint_context(x, self.vocab_size)
            x = one_hot_rows(rows, self.vocab_size**self.context_size, torch.float32)
        return x, *rest


def one_hot_rows(rows: Tensor, num_rows: int, dtype: torch.dtype) -> Tensor:
    """(B,) table rows -> (B, num_rows) one-hot, written straight in `dtype` (F.one_hot would
    first build an int64 copy, 8 bytes per cell: 1.3 GB for the trigram's full batch)."""
    out = torch.zeros(len(rows), num_rows, dtype=dtype, device=rows.device)
    return out.scatter_(1, rows[:, None], 1.0)


def joint_context(x: Tensor, vocab_size: int) -> Tensor:
    """(B, c) character ids -> (B,) row of the V**c table: sum(x[:, i] * V**(c-1-i))."""
    powers = vocab_size ** torch.arange(x.shape[1] - 1, -1, -1, device=x.device)
    return (x * powers).sum(1)
