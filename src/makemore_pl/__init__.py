"""makemore_pl: character-level n-gram language models, counted and trained with Lightning."""

from makemore_pl.baseline import CountingBaseline
from makemore_pl.data import (
    DataError,
    NamesDataModule,
    Vocabulary,
    build_ngrams,
    download_names,
    load_counted_words,
    load_words,
    split_words,
)
from makemore_pl.model import BigramLitModule
from makemore_pl.sampling import sample

__all__ = [
    "BigramLitModule",
    "CountingBaseline",
    "DataError",
    "NamesDataModule",
    "Vocabulary",
    "build_ngrams",
    "download_names",
    "load_counted_words",
    "load_words",
    "sample",
    "split_words",
]
