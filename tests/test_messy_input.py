"""Messy but valid data is cleaned, not rejected; names in any script train and sample."""

import math
import os
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
import torch

from makemore_pl import NamesDataModule, load_words
from tests.conftest import QUIET, run_cli, run_folder

NAMES = ["emma", "åsa", "björn", "zoë", "søren", "łucja", "renée", "olivia", "ava", "mia"]
NAMES = NAMES * 3  # enough words for a train/val/test split of each


def nfd(word: str) -> str:
    """The same word with accents as separate combining characters (as some systems save it)."""
    return unicodedata.normalize("NFD", word)


def messy(words: list[str]) -> bytes:
    """The same words behind a byte-order mark, in CRLF, CR and LF lines, with blank lines,
    surrounding spaces and tabs, and every other word decomposed."""
    endings = ["\r\n", "\n\n", "\r", "  \t\r\n\r\n"]
    lines = [
        f"  {nfd(w) if i % 2 else w}\t{endings[i % len(endings)]}" for i, w in enumerate(words)
    ]
    return ("\ufeff" + "".join(lines) + "\n   \n").encode("utf-8")


def last_checkpoint(folder: Path) -> dict:
    path = run_folder(folder) / "checkpoints" / "last.ckpt"
    return torch.load(path, weights_only=True)


def test_a_messy_file_gives_the_words_split_and_model_of_the_clean_one(tmp_path):
    for name, content in (("clean", "\n".join(NAMES).encode()), ("messy", messy(NAMES))):
        (tmp_path / name).mkdir()
        (tmp_path / name / "words.txt").write_bytes(content)
    assert load_words(tmp_path / "messy" / "words.txt") == NAMES
    data = {}
    for name in ("clean", "messy"):
        data[name] = NamesDataModule(str(tmp_path / name / "words.txt"), context_size=2)
        data[name].setup()
    assert data["messy"].chars == data["clean"].chars
    for split in ("train", "val", "test"):
        (x, y), (mx, my) = data["clean"].splits[split], data["messy"].splits[split]
        assert torch.equal(x, mx) and torch.equal(y, my)
    fit = ["fit", "--data.path", "words.txt", "--data.context_size", "2", "--data.batch_size", "8"]
    for name in ("clean", "messy"):
        run_cli(*fit, "--trainer.max_epochs", "3", *QUIET, cwd=tmp_path / name)
    clean, messy_ = last_checkpoint(tmp_path / "clean"), last_checkpoint(tmp_path / "messy")
    batches = math.ceil(len(data["clean"].splits["train"][1]) / 8)
    assert clean["global_step"] == messy_["global_step"] == 3 * batches
    assert torch.equal(clean["state_dict"]["W"], messy_["state_dict"]["W"])
    assert clean["hyper_parameters"]["chars"] == messy_["hyper_parameters"]["chars"]


def makemore(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "makemore_pl", *args],
        cwd=cwd,
        capture_output=True,
        env={**os.environ, **(env or {})},
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-3000:]
    return proc


@pytest.mark.slow
def test_unicode_names_train_and_sample_as_utf8_under_any_locale(tmp_path):
    (tmp_path / "words.txt").write_bytes(messy(NAMES))
    makemore("fit", "--data.path", "words.txt", "--trainer.max_epochs", "20", *QUIET, cwd=tmp_path)
    chars = last_checkpoint(tmp_path)["hyper_parameters"]["chars"]
    assert chars == sorted(set("".join(NAMES)))  # å, é, ë, ł, ö, ø each one character
    # an ASCII stdout cannot encode these names; the prefix arrives decomposed
    sample = ["sample", "--ckpt_path", "last", "--num_samples", "30", "--prefix", nfd("é")]
    proc = makemore(*sample, cwd=tmp_path, env={"PYTHONIOENCODING": "ascii"})
    names = proc.stdout.decode("utf-8").splitlines()
    assert len(names) == 30 and all(name.startswith("é") for name in names)
    assert all(set(name) <= set(chars) for name in names)
    assert b"30 names" in proc.stderr
