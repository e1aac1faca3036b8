"""makemore_pl: character-level n-gram language models, counted and trained with Lightning."""

from __future__ import annotations

import importlib

# public name -> its module; imported on first use, so that `makemore --help`, `sample` and
# `baseline` pay only for the modules they run (Lightning alone takes longer to import than torch)
EXPORTS = {
    "BigramLitModule": "makemore_pl.model",
    "CountingBaseline": "makemore_pl.baseline",
    "DataError": "makemore_pl.errors",
    "UserError": "makemore_pl.errors",
    "NamesData": "makemore_pl.data",
    "NamesDataModule": "makemore_pl.datamodule",
    "Vocabulary": "makemore_pl.data",
    "build_ngrams": "makemore_pl.data",
    "split_words": "makemore_pl.data",
    "download_names": "makemore_pl.words",
    "load_counted_words": "makemore_pl.words",
    "load_words": "makemore_pl.words",
    "sample": "makemore_pl.sampling",
    "SuffixLitModule": "makemore_pl.suffix_model",
}
__all__ = sorted(EXPORTS)


def __getattr__(name: str):
    if name not in EXPORTS:
        raise AttributeError(f"module 'makemore_pl' has no attribute {name!r}")
    return getattr(importlib.import_module(EXPORTS[name]), name)
