"""The counting path of `baseline --smoothing kneser-ney`, without the command line around it.

    python -m benchmarks.counting DATA_FILE CONTEXT_SIZE

Prints the Kneser-Ney model's NLL on each split and the examples counted: what a command that
imports neither Lightning nor the CLI costs, start-up included, as one process.
"""

from __future__ import annotations

import argparse

from makemore_pl.core.data import SPLITS, NamesData
from makemore_pl.models.counting import CountingBaseline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path")
    parser.add_argument("context_size", type=int)
    args = parser.parse_args()
    data = NamesData(args.path, context_size=args.context_size)
    model = CountingBaseline(data.vocab_size, data.context_size, "kneser-ney")
    model.fit_counts(data.ngram_counts("train"))
    for split in SPLITS:
        counts = data.ngram_counts(split)
        print(f"{split}_nll {model.counts_nll(counts):.5f} ({counts.total():,} examples)")


if __name__ == "__main__":
    main()
