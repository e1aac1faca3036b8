"""KenLM (`lmplz` + `query`) as a peer: found by --kenlm DIR or $KENLM_DIR, run on our split.

KenLM reads one sentence per line, tokens separated by spaces (`e m m a`), and scores `</s>` as
a token: the same examples as makemore_pl's framing (every character and the end of the word).
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

from makemore_pl.core.data import name_chunks, split_of_words
from makemore_pl.core.words import scan_names

GNU_TIME = "/usr/bin/time"  # GNU time: reports a process's peak memory (%M, KB)


def find_kenlm(folder: str | None = None) -> Path | None:
    """The KenLM folder (holding `run`, or `bin/lmplz`) given, or in $KENLM_DIR, if usable."""
    folder = folder or os.environ.get("KENLM_DIR")
    if not folder:
        return None
    path = Path(folder)
    return path if (path / "run").is_file() or (path / "bin" / "lmplz").is_file() else None


def program(kenlm: Path, name: str) -> list[str]:
    return [str(kenlm / "run"), name] if (kenlm / "run").is_file() else [str(kenlm / "bin" / name)]


def write_split(data_file: Path, folder: Path, seed: int = 42) -> tuple[Path, Path]:
    """train.txt and test.txt in KenLM's form: makemore_pl's default split, streamed."""
    split_of = split_of_words(scan_names(data_file).num_names, 0.1, 0.1, seed)
    files = {0: folder / "train.txt", 2: folder / "test.txt"}
    handles = {k: open(p, "w", encoding="utf-8") for k, p in files.items()}  # noqa: SIM115
    start = 0
    for words in name_chunks(data_file):
        for word, split in zip(words, split_of[start : start + len(words)].tolist(), strict=True):
            if split in handles:
                handles[split].write(" ".join(word) + "\n")
        start += len(words)
    for handle in handles.values():
        handle.close()
    return files[0], files[2]


def measured(args: list[str], stdin: Path | None = None, stdout: Path | None = None):
    """Wall seconds and peak resident memory (MB) of one process, by GNU time: a forked child's
    own rusage would count the pages of this (much larger) Python process it was forked from."""
    with tempfile.NamedTemporaryFile("r") as report:
        timed = [GNU_TIME, "-f", "%M", "-o", report.name, *args]
        with open(stdin or os.devnull, "rb") as src, open(stdout or os.devnull, "wb") as dst:
            start = time.perf_counter()
            proc = subprocess.run(timed, stdin=src, stdout=dst, stderr=subprocess.PIPE)
            seconds = time.perf_counter() - start
        if proc.returncode:
            stderr = proc.stderr.decode(errors="replace")
            raise RuntimeError(f"{' '.join(args)} failed: {stderr[-2000:]}")
        return seconds, int(report.read().split()[-1]) / 1024


def kenlm_fit_and_test(kenlm: Path, train: Path, test: Path, order: int) -> dict:
    """lmplz then query, each timed and measured: their time, peak memory and test NLL."""
    with tempfile.TemporaryDirectory() as folder:
        arpa, scores = Path(folder, "lm.arpa"), Path(folder, "scores.txt")
        lmplz = [*program(kenlm, "lmplz"), "-o", str(order), "--discount_fallback"]
        fit_s, fit_mb = measured([*lmplz, "-S", "64M", "-T", folder], train, arpa)
        query = [*program(kenlm, "query"), "-v", "summary", str(arpa)]
        test_s, test_mb = measured(query, test, scores)
        text = scores.read_text()
    perplexity = float(re.search(r"Perplexity including OOVs:\s*(\S+)", text).group(1))
    return {"seconds": fit_s + test_s, "peak_mb": max(fit_mb, test_mb), "nll": math.log(perplexity)}
