"""Agreement with KenLM's lmplz + query, when KenLM is at hand ($KENLM_DIR: bin/lmplz, bin/query
or a `run` wrapper); skipped otherwise. The conventions that differ are adopted here from
KenLM's own output, so that what is left is rounding."""

import math
import os
import re
import subprocess
from pathlib import Path

import pytest
import torch

from makemore_pl import CountingBaseline, Vocabulary, build_ngrams, load_words
from makemore_pl.core.contexts import context_rows
from makemore_pl.models.kneser_ney import interpolation_table


def kenlm_folder() -> Path | None:
    folder = os.environ.get("KENLM_DIR")
    if folder and ((Path(folder) / "run").is_file() or (Path(folder) / "bin/lmplz").is_file()):
        return Path(folder)
    return None


pytestmark = pytest.mark.skipif(
    kenlm_folder() is None, reason="KenLM not found: set KENLM_DIR to its folder"
)


def kenlm(name: str, *args: str, stdin: str) -> subprocess.CompletedProcess:
    folder = kenlm_folder()
    program = (
        [str(folder / "run"), name] if (folder / "run").is_file() else [str(folder / "bin" / name)]
    )
    return subprocess.run(
        [*program, *args], input=stdin, capture_output=True, text=True, check=True
    )


def kenlm_model(train: list[str], order: int, folder: Path) -> tuple[Path, list[list[float]]]:
    """The ARPA file of lmplz on the words, and the discounts it printed for each order."""
    text = "".join(" ".join(w) + "\n" for w in train)
    fitted = kenlm(
        "lmplz", "-o", str(order), "--discount_fallback", "-S", "64M", "-T", str(folder), stdin=text
    )
    arpa = folder / "lm.arpa"
    arpa.write_text(fitted.stdout)
    found = re.findall(r"^\d+ \d+ D1=(\S+) D2=(\S+) D3\+=(\S+)$", fitted.stderr, re.MULTILINE)
    return arpa, [[float(d) for d in line] for line in found]


def kenlm_log10(arpa: Path, test: list[str]) -> list[float]:
    """log10 p of every token of the test words, `</s>` included, in order."""
    scored = kenlm(
        "query", "-v", "word", str(arpa), stdin="".join(" ".join(w) + "\n" for w in test)
    )
    return [float(m) for m in re.findall(r"=\d+ \d+ (\S+)", scored.stdout)]


@pytest.fixture(scope="module")
def corpus(names_path):
    words = load_words(names_path)
    return words[:3000], words[3000:3300]


@pytest.mark.parametrize("context_size", [1, 2, 4])
def test_agrees_with_kenlm_token_by_token(corpus, tmp_path, context_size):
    train, test = corpus
    vocab = Vocabulary.from_words(train + test)
    v = len(vocab)
    model = CountingBaseline(v, context_size, "kneser-ney").fit(
        *build_ngrams(train, vocab, context_size)
    )
    arpa, discounts = kenlm_model(train, context_size + 1, tmp_path)
    expected = torch.tensor(kenlm_log10(arpa, test), dtype=torch.float64)
    x, y = build_ngrams(test, vocab, context_size)
    assert len(expected) == len(y)

    # our own conventions: every row sums to 1 over V tokens, our fallback discounts
    ours = model.kneser_ney.row_probs(context_rows(x, v), y[:, None])[:, 0].log10()
    gap_nats = (ours - expected).mean().item() * math.log(10)
    # KenLM's: lowest level 1 / (V + 1) and the discounts lmplz printed (fallback 0.5, 1, 1.5,
    # and counts of counts with its end-of-stream quirk)
    kn = model.kneser_ney
    kn.discounts = torch.tensor(discounts, dtype=torch.float64)
    kn.orders = [
        interpolation_table(k, a, d, v) for (k, a), d in zip(kn.adjusted, kn.discounts, strict=True)
    ]
    adopted = kn.row_probs(context_rows(x, v), y[:, None], base=1 / (v + 1))[:, 0].log10()
    diff = (adopted - expected).abs()
    assert diff.max().item() < 1e-5 and diff.mean().item() < 1e-6  # the digits lmplz prints
    assert abs(gap_nats) < 2e-3  # the conventions alone, per token on average
