"""makemore_pl: character-level n-gram language models, counted and trained with Lightning.

The names below are imported on first use, so that `import makemore_pl.data` (and the counting
commands) load neither Lightning nor matplotlib.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_HOMES = {
    "BigramLitModule": "model",
    "CountingBaseline": "baseline",
    "DataError": "errors",
    "NamesData": "data",
    "NamesDataModule": "datamodule",
    "Vocabulary": "data",
    "build_ngrams": "data",
    "download_names": "words",
    "load_counted_words": "words",
    "load_words": "words",
    "sample": "sampling",
    "split_words": "data",
}

__all__ = [
    "BigramLitModule",
    "CountingBaseline",
    "DataError",
    "NamesData",
    "NamesDataModule",
    "Vocabulary",
    "build_ngrams",
    "download_names",
    "load_counted_words",
    "load_words",
    "sample",
    "split_words",
]

if TYPE_CHECKING:
    from makemore_pl.baseline import CountingBaseline
    from makemore_pl.data import NamesData, Vocabulary, build_ngrams, split_words
    from makemore_pl.datamodule import NamesDataModule
    from makemore_pl.errors import DataError
    from makemore_pl.model import BigramLitModule
    from makemore_pl.sampling import sample
    from makemore_pl.words import download_names, load_counted_words, load_words


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'makemore_pl' has no attribute {name!r}")
    return getattr(importlib.import_module(f"makemore_pl.{_HOMES[name]}"), name)
