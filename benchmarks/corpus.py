"""Larger corpora made reproducibly from names.txt: names sampled from its Kneser-Ney model.

    python -m benchmarks.corpus 50      # writes benchmarks/_runs/corpora/names-50x.txt

The model is order 5 (context_size 4), fitted on every name of names.txt; `times` × 32,033 names
are drawn in batches with fixed seeds (the rare empty one left out): one torch version makes the
same file every time (seeded sampling may differ across versions).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch
from torch import Tensor

from makemore_pl import CountingBaseline, Vocabulary, build_ngrams, load_words

ROOT = Path(__file__).resolve().parents[1]
CORPORA = ROOT / "benchmarks" / "_runs" / "corpora"
BATCH = 100_000  # names drawn at a time


def corpus_path(times: int) -> Path:
    """names.txt itself for 1×, else the sampled corpus, made on first use."""
    if times == 1:
        return ROOT / "names.txt"
    path = CORPORA / f"names-{times}x.txt"
    if not path.exists():
        make_corpus(times, path)
    return path


def make_corpus(times: int, path: Path) -> None:
    words = load_words(ROOT / "names.txt")
    vocab = Vocabulary.from_words(words)
    model = CountingBaseline(len(vocab), 4, "kneser-ney").fit(*build_ngrams(words, vocab, 4))
    cdf = model.probs.cumsum(1)  # (V**4, V) float64: one lookup and one search per character
    cdf[:, -1] = 1.0
    codes = torch.tensor([ord("\n"), *map(ord, vocab.chars)], dtype=torch.int32)  # 0 ends a line
    total = times * len(words)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with open(partial, "w", encoding="utf-8") as out:
        for number, start in enumerate(range(0, total, BATCH)):
            drawn = draw(cdf, len(vocab), min(BATCH, total - start), seed=number)
            out.write(as_lines(drawn, codes))
    os.replace(partial, path)


def draw(cdf: Tensor, vocab_size: int, num: int, seed: int, max_length: int = 50) -> Tensor:
    """(num, max_length + 1) character ids of words drawn by inverse CDF, 0 after each word."""
    generator = torch.Generator().manual_seed(seed)
    rows = torch.zeros(num, dtype=torch.long)  # the all-boundary context
    drawn = torch.zeros(num, max_length + 1, dtype=torch.long)  # the last column ends every word
    active = torch.arange(num)  # the words not ended yet
    for step in range(max_length):
        u = torch.rand(len(active), 1, generator=generator, dtype=torch.float64)
        nxt = torch.searchsorted(cdf[rows], u).squeeze(1).clamp_max_(vocab_size - 1)
        drawn[active, step] = nxt
        going = nxt != 0
        active, rows, nxt = active[going], rows[going], nxt[going]
        rows = rows % vocab_size**3 * vocab_size + nxt  # slide the context by one character
        if not len(active):
            break
    return drawn


def as_lines(drawn: Tensor, codes: Tensor) -> str:
    """One word per line, up to its first 0; empty words are left out."""
    before_end = torch.cumprod(drawn != 0, 1).bool()
    at_end = torch.cat([torch.ones_like(before_end[:, :1]), before_end[:, :-1]], 1) & ~before_end
    keep = (before_end | at_end) & (drawn[:, :1] != 0)
    return codes[drawn[keep]].numpy().tobytes().decode("utf-32-le")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("times", type=int)
    print(corpus_path(parser.parse_args().times))
