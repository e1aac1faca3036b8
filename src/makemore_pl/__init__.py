"""makemore_pl: character-level n-gram language models, counted and trained with Lightning."""

import importlib

# public name -> its module; imported on first use, so that `makemore --help`, `sample` and
# `baseline` pay only for the modules they run (Lightning alone takes longer to import than torch)
EXPORTS = {
    "BigramLitModule": "makemore_pl.lit.dense",
    "CountingBaseline": "makemore_pl.models.counting",
    "DataError": "makemore_pl.core.errors",
    "DenseTable": "makemore_pl.models.dense",
    "UserError": "makemore_pl.core.errors",
    "NamesData": "makemore_pl.core.data",
    "NamesDataModule": "makemore_pl.lit.datamodule",
    "SuffixLitModule": "makemore_pl.lit.suffix",
    "SuffixModel": "makemore_pl.models.suffix_model",
    "Vocabulary": "makemore_pl.core.vocabulary",
    "build_ngrams": "makemore_pl.core.vocabulary",
    "split_words": "makemore_pl.core.data",
    "download_names": "makemore_pl.core.words",
    "load_counted_words": "makemore_pl.core.words",
    "load_words": "makemore_pl.core.words",
    "sample": "makemore_pl.core.sampling",
}
__all__ = sorted(EXPORTS)


def __getattr__(name: str):
    if name not in EXPORTS:
        raise AttributeError(f"module 'makemore_pl' has no attribute {name!r}")
    return getattr(importlib.import_module(EXPORTS[name]), name)
