"""Word files: one name per line or name,count lines, read strictly; names.txt downloaded."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import torch
from lightning.pytorch.utilities import rank_zero_info

from makemore_pl.errors import DataError

NAMES_URL = "https://raw.githubusercontent.com/karpathy/makemore/master/names.txt"
NAMES_SHA256 = "0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d"


COUNTED_LINE = re.compile(r"([^,]*),\s*([0-9]+)")  # name,count: the count a whole number
MAX_COUNT = 10**12  # far above any real name count; keeps sums of counts well inside int64


def load_words(path: str | Path) -> list[str]:
    """One word per line, UTF-8; surrounding whitespace and blank lines dropped; order, case and
    duplicates kept; characters in NFC form (an "é" written as e + combining accent is "é").
    A `name,count` file is refused: `load_counted_words` reads it."""
    words, counts = load_counted_words(path)
    if counts is not None:
        raise DataError(
            f"data file {str(path)!r} holds name,count lines: read it with load_counted_words"
        )
    return words


def load_counted_words(path: str | Path) -> tuple[list[str], list[int] | None]:
    """The words of a data file, and their counts if it is a `name,count` file (else None).

    A file whose first non-blank line holds a comma is a `name,count` file (`Olivia,17728`): every
    non-blank line must then be a name, a comma and a whole count of at least 1, and the lines
    of one name are merged, their counts added. Otherwise it holds one word per line, and a line
    of the `name,count` form among them is an error (a mixed file).
    """
    lines = read_lines(path)
    if "," in lines[0][1]:
        return parse_counted_lines(str(path), lines)
    for number, line in lines:
        if COUNTED_LINE.fullmatch(line):
            raise DataError(
                f"data file {str(path)!r}, line {number}: {line!r} is a name,count line, but "
                f"line {lines[0][0]} is a plain name; a file holds either one name per line or "
                "name,count on every line"
            )
    return [line for _, line in lines], None


def read_lines(path: str | Path) -> list[tuple[int, str]]:
    """(line number, text) of the non-blank lines of a UTF-8 file, surrounding whitespace
    dropped."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"data file {str(path)!r} does not exist") from None
    except OSError as err:
        raise DataError(f"cannot read data file {str(path)!r}: {err.strerror}") from None
    try:
        text = raw.decode("utf-8-sig")  # -sig: tolerate the byte-order mark some editors write
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DataError(
            f"data file {str(path)!r}, line {line}: bytes that are not UTF-8 ({err.reason}); "
            "save the file as UTF-8, one name per line"
        ) from None
    lines = [
        (number, line.strip())
        for number, line in enumerate(unicodedata.normalize("NFC", text).splitlines(), start=1)
    ]
    lines = [(number, line) for number, line in lines if line]
    if not lines:
        raise DataError(f"data file {str(path)!r} holds no words (it is empty or only whitespace)")
    return lines


def parse_counted_lines(path: str, lines: list[tuple[int, str]]) -> tuple[list[str], list[int]]:
    """(line number, text) of a name,count file -> names in order of first line, summed counts."""
    counts: dict[str, int] = {}
    for number, line in lines:
        fields = [field.strip() for field in line.split(",")]
        problem = counted_line_problem(fields)
        if problem:
            raise DataError(
                f"data file {path!r}, line {number}: {line!r}: {problem}; a name,count file "
                "(its first line holds a comma) has `name,count` on every line, e.g. Olivia,17728"
            )
        counts[fields[0]] = counts.get(fields[0], 0) + int(fields[1])
    return list(counts), list(counts.values())


def counted_line_problem(fields: list[str]) -> str | None:
    """What is wrong with the comma-separated fields of a name,count line, if anything."""
    if len(fields) == 1:
        return "no comma, so no count"
    if len(fields) > 2:
        hint = " (for name,sex,count files drop the sex column: cut -d, -f1,3)"
        return f"{len(fields)} comma-separated fields, not 2" + (hint if len(fields) == 3 else "")
    name, count = fields
    if not name:
        return "the name is empty"
    if not (count.isascii() and count.isdigit()):
        return f"the count {count!r} is not a whole number"
    if not 1 <= int(count) <= MAX_COUNT:
        return f"the count {count} is not between 1 and {MAX_COUNT:,}"
    return None


def download_names(path: str | Path, url: str = NAMES_URL, sha256: str = NAMES_SHA256) -> None:
    """Fetch names.txt to `path`, checking its sha256; the file appears whole or not at all."""
    path = Path(path)
    rank_zero_info(f"{path} not found: downloading it from {url}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # writes to a temporary file beside `path`, checks the hash, then renames it into place
        torch.hub.download_url_to_file(url, str(path), hash_prefix=sha256, progress=False)
    except Exception as err:  # any network, disk or checksum failure means the same to the user
        raise DataError(
            f"data file {str(path)!r} is missing and could not be downloaded from {url} ({err}); "
            f"download names.txt yourself and put it at {str(path)!r}, or pass --data.path"
        ) from None
