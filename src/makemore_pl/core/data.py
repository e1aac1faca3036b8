"""Words in, n-grams out: the data's settings, the split, and `NamesData` (no Lightning here)."""

from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

import torch
from torch import Tensor

from makemore_pl.core.contexts import INT64_LIMIT, check_keys_fit
from makemore_pl.core.errors import DataError, SettingError
from makemore_pl.core.ngrams import NgramCounter, NgramCounts, window_keys
from makemore_pl.core.settings import Settings, of_type, one_of, setting, takes_settings, whole
from makemore_pl.core.threads import one_thread
from makemore_pl.core.vocabulary import Vocabulary, build_ngrams
from makemore_pl.core.words import NameScan, download_names, load_words, name_chunks, scan_names

SPLITS = ("train", "val", "test")
ENTRY_CHUNK = 1 << 17  # names counted at a time, from a list in memory
Word = TypeVar("Word", bound=Hashable)


def fraction(value: object) -> str | None:
    fits = isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 1
    return None if fits else f"must be in [0, 1), got {value}"


def batch_size_problem(value: object) -> str | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value > 0):
        if value is None or value < INT64_LIMIT:  # a checkpoint holds 64-bit integers
            return None
        return f"must be below 2**63 (None: full batch), got {value}"
    return f"must be positive or None (full batch), got {value}"


@dataclass(frozen=True)
class DataConfig(Settings):
    """The data's settings (`--data.*`); checkpoints keep them as datamodule_hyper_parameters."""

    path: str = setting(
        "names.txt",
        "text file with one name per line (UTF-8), or with `name,count` lines, whose counts "
        "weigh each name's examples. A missing file named names.txt, in a folder that exists, "
        "is downloaded from the makemore repository and checked against its sha256.",
        of_type(str, "a file's path"),
    )
    context_size: int = setting(
        1, "characters of context: 1 = bigram, 2 = trigram, ...", whole(1), kept=True
    )
    encoding: Literal["index", "onehot"] = setting(
        "index",
        'batch form the model sees: "index" (context ids) or "onehot" (one-hot rows of the '
        "joint context, expanded on the device).",
        one_of("index", "onehot"),
    )
    batch_size: int | None = setting(
        None, "examples per training batch; None = the whole split in one batch.",
        batch_size_problem,
    )  # fmt: skip
    val_fraction: float = setting(
        0.1, "share of words held out for validation.", fraction, kept=True
    )
    test_fraction: float = setting(0.1, "share of words held out for testing.", fraction, kept=True)
    seed: int = setting(
        42,
        "seed of the word split and of the minibatch order, in [0, 2**63).",
        whole(0, INT64_LIMIT, "must be a whole number in [0, 2**63)"),
        kept=True,
    )
    dedupe: bool = setting(
        False,
        "keep each distinct word once, so no name is in two splits (a name,count file already "
        "lists each name once).",
        of_type(bool, "true or false"),
        kept=True,
    )
    aggregate: bool = setting(
        True,
        "feed full batches as the table of distinct (context, next) rows with their counts: the "
        "same loss and gradient as every example, hundreds of times cheaper. Minibatches "
        "(batch_size set) always hold examples.",
        of_type(bool, "true or false"),
    )
    predict_path: str | None = setting(
        None,
        "names for `predict` to score, one per line; None = the test split.",
        of_type((str, type(None)), "a file's path or None"),
    )

    def check(self) -> None:
        if self.val_fraction + self.test_fraction >= 1:
            raise SettingError(
                "val_fraction",
                f"+ test_fraction must be below 1 to leave training words, "
                f"got {self.val_fraction} + {self.test_fraction}",
            )

    def split_sizes(self, num_words: int) -> dict[str, int]:
        n_test, n_val = round(num_words * self.test_fraction), round(num_words * self.val_fraction)
        return {"train": num_words - n_test - n_val, "val": n_val, "test": n_test}

    def split_parts(self, num_words: int) -> list[Tensor]:
        """Train, val and test word indices: a seeded permutation, cut test first, then val."""
        order = torch.randperm(num_words, generator=torch.Generator().manual_seed(self.seed))
        sizes = self.split_sizes(num_words)
        n_test, n_val = sizes["test"], sizes["val"]
        return [order[n_test + n_val :], order[n_test : n_test + n_val], order[:n_test]]


def split_words(
    words: Sequence[Word],
    val_fraction: float,
    test_fraction: float,
    seed: int,
    dedupe: bool = False,
) -> tuple[list[Word], list[Word], list[Word]]:
    """A seeded split by word (or (name, count) pair) into (train, val, test)."""
    config = DataConfig(val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
    if dedupe:
        words = list(dict.fromkeys(words))
    return tuple([words[i] for i in part.tolist()] for part in config.split_parts(len(words)))


def split_of_words(config: DataConfig, num_words: int) -> Tensor:
    """(W,) int8 split of each word in file order (0 train, 1 val, 2 test), as `split_words`."""
    split = torch.zeros(num_words, dtype=torch.int8)
    for number, part in enumerate(config.split_parts(num_words)):
        split[part] = number
    return split


@takes_settings(DataConfig)
class NamesData:
    """Character n-grams of a names file, split by word: n-gram counts streamed from the file
    for the counting models, example tensors for the neural one."""

    def __init__(self, *args, **settings) -> None:
        self.config = DataConfig(*args, **settings)
        self._scan: NameScan | None = None
        self._words: list[str] | None = None
        self._vocab: Vocabulary | None = None
        self._adopted = False  # the vocabulary is a model's: the file may be absent
        self._failed: DataError | None = None  # the download that failed
        self._counts: dict[str, NgramCounts] = {}
        self._examples: dict[str, tuple[Tensor, Tensor, Tensor | None]] = {}

    @property
    def path(self) -> Path:
        return Path(self.config.path)

    @property
    def context_size(self) -> int:
        return self.config.context_size

    def adopt_vocabulary(self, chars: Sequence[str]) -> None:
        """A model's characters as the vocabulary: no training file needed, nor downloaded."""
        self._vocab, self._adopted = Vocabulary(list(chars)), True

    def ensure_file(self) -> None:
        """Downloads names.txt if it is the data file and missing; a failure is raised again."""
        if self._failed is not None:
            raise self._failed
        if self.path.name == "names.txt" and not self.path.exists() and not self._adopted:
            try:
                download_names(self.path)
            except DataError as err:
                self._failed = err
                raise

    # read on first use: the CLI links vocab_size into the model before setup
    @property
    def scan(self) -> NameScan:
        if self._scan is None:
            self.ensure_file()
            self._scan = scan_names(self.path)
        return self._scan

    @property
    def vocab(self) -> Vocabulary:
        if self._vocab is None:
            self._vocab = Vocabulary(self.scan.chars)
        return self._vocab

    @property
    def chars(self) -> list[str]:
        """The data's characters in index order: what the model keeps of the vocabulary."""
        return self.vocab.to_list()

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @property
    def words(self) -> list[str]:
        """Every word of the file, in memory (the counts need none of them)."""
        if self._words is None:
            counts = self.scan.counts
            self._words = list(counts) if counts is not None else load_words(self.path)
        return self._words

    @property
    def name_counts(self) -> list[int] | None:
        """Each word's count, from a name,count file; None for a plain file."""
        counts = self.scan.counts
        return None if counts is None else list(counts.values())

    @property
    def splits(self) -> dict[str, tuple[Tensor, Tensor]]:
        """split -> (X, Y) of `examples`, built when first looked up."""
        return {name: self.examples(name)[:2] for name in SPLITS}

    def split(self) -> dict[str, list[str]]:
        return {name: [w for w, _ in part] for name, part in self.counted_split().items()}

    def counted_split(self) -> dict[str, list[tuple[str, int]]]:
        """(word, count) of each split; a plain file's words count 1."""
        counts = self.name_counts or [1] * len(self.words)
        entries = list(zip(self.words, counts, strict=True))
        c = self.config
        parts = split_words(entries, c.val_fraction, c.test_fraction, c.seed, c.dedupe)
        return dict(zip(SPLITS, parts, strict=True))

    def predict_words(self) -> list[str]:
        """The names `predict` scores: --data.predict_path's, or the test split's."""
        path = self.config.predict_path
        return load_words(path) if path else self.split()["test"]

    def examples(self, split: str) -> tuple[Tensor, Tensor, Tensor | None]:
        """X (N, c), Y (N,) and the (N,) int64 example weights of a split (None: all 1)."""
        if split not in self._examples:
            for name, part in self.counted_split().items():
                words = [w for w, _ in part]
                x, y = build_ngrams(words, self.vocab, self.context_size)
                weights = None
                if self.name_counts is not None:  # every example of a name weighs its count
                    lengths = torch.tensor([len(w) + 1 for w in words], dtype=torch.long)
                    counts = torch.tensor([n for _, n in part], dtype=torch.long)
                    weights = torch.repeat_interleave(counts, lengths)
                self._examples[name] = (x, y, weights)
        return self._examples[split]

    def ngram_counts(self, split: str) -> NgramCounts:
        """The (weighted) n-gram counts of a split, streamed from the file: as `from_examples`."""
        if not self._counts:
            check_keys_fit(self.vocab_size, self.context_size)
            with one_thread():
                self._counts = self._count_splits()
        return self._counts[split]

    def _count_splits(self) -> dict[str, NgramCounts]:
        counters = [NgramCounter(self.vocab_size, self.context_size) for _ in SPLITS]
        for words, weights, split_of in self._word_chunks():
            stream = self.vocab.encode_framed(words, self.context_size)
            keys, word_of = window_keys(stream, self.vocab_size, self.context_size)
            split_of = split_of[word_of]
            weights = None if weights is None else weights[word_of]
            for number, counter in enumerate(counters):
                mine = split_of == number
                counter.add(keys[mine], None if weights is None else weights[mine])
        return {name: counter.result() for name, counter in zip(SPLITS, counters, strict=True)}

    def _word_chunks(self) -> Iterator[tuple[list[str], Tensor | None, Tensor]]:
        """(words, their counts or None, their splits) a chunk at a time, in file order."""
        counts = self.scan.counts
        if counts is None and not self.config.dedupe:
            split_of = split_of_words(self.config, self.scan.num_names)
            start = 0
            for words in name_chunks(self.path):  # the second pass over the file
                if start + len(words) > len(split_of):
                    break
                yield words, None, split_of[start : start + len(words)]
                start += len(words)
            if start != len(split_of):
                raise DataError(f"data file {str(self.path)!r} changed while it was read")
            return
        entries = list(counts) if counts is not None else list(dict.fromkeys(self.words))
        split_of = split_of_words(self.config, len(entries))
        for start in range(0, len(entries), ENTRY_CHUNK):
            words = entries[start : start + ENTRY_CHUNK]
            weights = None if counts is None else torch.tensor([counts[w] for w in words])
            yield words, weights, split_of[start : start + ENTRY_CHUNK]
