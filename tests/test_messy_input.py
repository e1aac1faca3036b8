"""Messy but valid data is cleaned, not rejected; names in any script train and sample."""

import math
import os
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
import torch

from makemore_pl import DataError, NamesData, load_counted_words, load_words
from makemore_pl.core.text import printable
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


@pytest.mark.slow
def test_a_messy_file_gives_the_words_split_and_model_of_the_clean_one(tmp_path):
    for name, content in (("clean", "\n".join(NAMES).encode()), ("messy", messy(NAMES))):
        (tmp_path / name).mkdir()
        (tmp_path / name / "words.txt").write_bytes(content)
    assert load_words(tmp_path / "messy" / "words.txt") == NAMES
    data = {}
    for name in ("clean", "messy"):
        data[name] = NamesData(str(tmp_path / name / "words.txt"), context_size=2)
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
    assert torch.equal(clean["state_dict"]["model.W"], messy_["state_dict"]["model.W"])
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


def test_names_are_split_on_line_ends_only(tmp_path):
    path = tmp_path / "words.txt"
    path.write_bytes(b"emma\r\nava\rmia\n\nzoe")  # \r\n, \r and \n; no end on the last line
    assert load_words(path) == ["emma", "ava", "mia", "zoe"]
    # U+2028, U+0085, \x1c and \x0c are not line ends here (str.splitlines would split there):
    # they are refused, with the number of the line they are on
    for bad in ("\u2028", "\x85", "\x1c", "\x0c"):
        path.write_text(f"emma\r\nava\rmi{bad}a\nzoe\n", encoding="utf-8")
        with pytest.raises(DataError, match=r"line 3: character U\+"):
            load_words(path)


@pytest.mark.parametrize(
    "char, label",
    [
        ("\x1b", "U+001B (a control character)"),  # ESC: starts terminal escape sequences
        ("\x07", "U+0007 (a control character)"),  # BEL
        ("\u202e", "U+202E (RIGHT-TO-LEFT OVERRIDE)"),
        ("\u200b", "U+200B (ZERO WIDTH SPACE)"),
        ("\x9b", "U+009B (a control character)"),  # C1 CSI
    ],
)
def test_control_and_format_characters_are_refused_with_their_line(tmp_path, char, label):
    path = tmp_path / "words.txt"
    path.write_text(f"emma\n\nava\nsoph{char}ia\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        _ = NamesData(str(path)).vocab_size
    assert str(err.value) == (
        f"data file {str(path)!r}, line 4: character {label}, a control or format character: "
        "names may not hold it (a terminal would act on it); remove it"
    )


def test_joiners_spell_names_and_tabs_only_surround_them(tmp_path):
    path = tmp_path / "words.txt"
    path.write_text("\tمی\u200cخواهم \nक्\u200dष\n", encoding="utf-8")  # ZWNJ, ZWJ
    assert load_words(path) == ["می\u200cخواهم", "क्\u200dष"]
    path.write_text("emma\nmary\tann\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 2: a tab inside the name 'mary\\\\tann'"):
        load_words(path)


def test_only_a_regular_file_is_read(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # opening it would wait for a writer forever
    for path in (fifo, Path("/dev/zero")):
        with pytest.raises(DataError) as err:
            load_words(path)
        assert str(err.value) == (
            f"cannot read data file {str(path)!r}: not a regular file (a pipe, device or "
            "socket); save the names to a file first"
        )
    with pytest.raises(DataError, match="Is a directory"):
        load_words(tmp_path)


def test_a_file_without_line_ends_is_refused_a_chunk_in(tmp_path, monkeypatch):
    from makemore_pl.core import words

    monkeypatch.setattr(words, "CHUNK_BYTES", 64)
    path = tmp_path / "blob.txt"
    path.write_bytes(b"emma\n" + b"a" * 1000)
    with pytest.raises(DataError, match="line 2: longer than 64 bytes, not a name"):
        load_words(path)


def test_errors_quote_at_most_a_short_part_of_a_line(tmp_path):
    path = tmp_path / "counts.txt"
    secret = "x" * 30 + "-the-rest-of-a-long-line-is-not-shown"
    path.write_text(f"emma,3\n{secret},12,7\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 2") as err:
        load_counted_words(path)
    assert "not-shown" not in str(err.value) and "…" in str(err.value)


def test_printable_escapes_what_a_terminal_would_act_on():
    assert printable("émilie-zoë o'neil") == "émilie-zoë o'neil"
    assert printable("a\x1b[2Jb\nc\x7f\x85") == "a\\x1b[2Jb\\nc\\x7f\\x85"
    assert printable("evil\u202eman\u200dx\u2028") == "evil\\u202eman\\u200dx\\u2028"
    assert printable("\U000e0001\ud800") == "\\U000e0001\\ud800"
    every = "".join(map(chr, range(0x110000)))
    left = {unicodedata.category(ch) for ch in printable(every)}
    assert not left & {"Cc", "Cf", "Cs", "Zl", "Zp"}
