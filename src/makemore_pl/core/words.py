"""Word files (one name per line, or name,count lines) read strictly, a chunk at a time; lines
end at `\\n`, `\\r\\n` or `\\r` only (`str.splitlines` would also split at U+2028, U+0085, ...)."""

import logging
import os
import re
import stat
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from makemore_pl.core.errors import DataError
from makemore_pl.core.text import UNPRINTABLE

NAMES_URL = "https://raw.githubusercontent.com/karpathy/makemore/master/names.txt"
NAMES_SHA256 = "0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d"

# a line of the name,count form, in a chunk of lines joined by "\n"
COUNTED_IN_CHUNK = re.compile(r"^[^,\n]*,[^\S\n]*[0-9]+$", re.MULTILINE)
ASCII_REFUSED = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # the ASCII controls but tab, "\n"
MAX_COUNT = 10**12  # far above any real name count
MAX_TOTAL = 2**63 - 1  # examples of a name,count file, sum of count * (len + 1): int64 sums
CHUNK_BYTES = 1 << 20  # read at a time; a line longer than this is not a name
QUOTE_CHARS = 40  # at most this much of a line is quoted in an error
# tab and line end, and the joiners ZWNJ and ZWJ that some scripts (Persian, Indic) and emoji need
ALLOWED = {"\t", "\n", "\u200c", "\u200d"}

log = logging.getLogger("makemore_pl")


def open_data_file(path: str | Path):
    """The file opened in binary; a folder, pipe or device is refused (a FIFO would block)."""
    name = str(path)
    try:
        mode = os.stat(path).st_mode
        if stat.S_ISREG(mode):
            return open(path, "rb")  # noqa: SIM115  (the caller closes it)
    except FileNotFoundError:
        raise DataError(f"data file {name!r} does not exist") from None
    except OSError as err:
        raise DataError(f"cannot read data file {name!r}: {err.strerror}") from None
    if stat.S_ISDIR(mode):
        raise DataError(f"cannot read data file {name!r}: Is a directory")
    raise DataError(
        f"cannot read data file {name!r}: not a regular file (a pipe, device or socket); "
        "save the names to a file first"
    )


def line_chunks(path: str | Path) -> Iterator[tuple[int, list]]:
    """(first line number, lines) of chunks of about CHUNK_BYTES of a UTF-8 file: lines stripped
    and in NFC form, blank lines kept as "" so that line numbers stay right."""
    name, number, carry, first = str(path), 1, b"", True
    with open_data_file(path) as file:
        while True:
            try:
                block = file.read(CHUNK_BYTES)
            except OSError as err:  # EIO: a failing disk, or /proc/self/mem
                raise DataError(f"cannot read data file {name!r}: {err.strerror}") from None
            raw = carry + block
            # cut after the last line end; a final "\r" might be the start of "\r\n"
            cut = len(raw) if not block else max(raw.rfind(b"\n"), raw.rfind(b"\r", 0, -1)) + 1
            if cut == 0 and len(raw) > CHUNK_BYTES:
                raise DataError(
                    f"data file {name!r}, line {number}: longer than {CHUNK_BYTES:,} bytes, "
                    "not a name: a data file holds one name per line"
                )
            head, carry = raw[:cut], raw[cut:]
            if head:
                lines = chunk_lines(decode(head, name, number, first), name, number)
                yield number, lines
                number, first = number + len(lines), False
            if not block:
                return


def decode(raw: bytes, name: str, number: int, first: bool) -> str:
    """UTF-8 bytes of whole lines -> text with every line end as "\\n"."""
    if first and (encoding := utf16_guess(raw)):
        raise DataError(
            f"data file {name!r}, line 1: the file looks like UTF-16 ({encoding}), not UTF-8; "
            "save it as UTF-8, one name per line"
        )
    try:  # -sig: tolerate the byte-order mark some editors write at the start
        text = raw.decode("utf-8-sig" if first else "utf-8")
    except UnicodeDecodeError as err:
        before = raw[: err.start]
        line = number + before.count(b"\n") + before.count(b"\r") - before.count(b"\r\n")
        raise DataError(
            f"data file {name!r}, line {line}: bytes that are not UTF-8 ({err.reason}); "
            "save the file as UTF-8, one name per line"
        ) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def utf16_guess(raw: bytes) -> str | None:
    """How the file is UTF-16, if it is: a byte-order mark, or a zero byte at every other place."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        endian = "little" if raw.startswith(b"\xff\xfe") else "big"
        return f"{endian} endian, with a byte-order mark"
    sample = raw[:4096]
    pairs = len(sample) // 2
    if pairs < 2:
        return None
    even, odd = sample[0 : 2 * pairs : 2].count(0), sample[1 : 2 * pairs : 2].count(0)
    for zeros, others, endian in ((odd, even, "little"), (even, odd, "big")):
        if zeros >= pairs / 2 and others <= pairs / 10:
            return f"{endian} endian, without a byte-order mark"
    return None


def chunk_lines(text: str, name: str, number: int) -> list[str]:
    """Text of whole lines -> the lines, checked, in NFC form and stripped."""
    if text.isascii():  # the common case: one regular-expression scan
        match = ASCII_REFUSED.search(text)
        at = match.start() if match else -1
    else:
        refused = [ch for ch in set(text) - ALLOWED if unicodedata.category(ch) in UNPRINTABLE]
        at = min(text.find(ch) for ch in refused) if refused else -1
    if at >= 0:
        ch, line = text[at], number + text.count("\n", 0, at)
        raise DataError(
            f"data file {name!r}, line {line}: character U+{ord(ch):04X} "
            f"({unicodedata.name(ch, 'a control character')}), a control or format character: "
            "names may not hold it (a terminal would act on it); remove it"
        )
    text = unicodedata.normalize("NFC", text)
    lines = text.removesuffix("\n").split("\n")
    if not (text.isascii() and " " not in text and "\t" not in text):  # else nothing to strip
        lines = [line.strip() for line in lines]
    if "\t" in text:  # between the characters of a name, not around it
        for offset, line in enumerate(lines):
            if "\t" in line:
                raise DataError(
                    f"data file {name!r}, line {number + offset}: a tab inside the name "
                    f"{quote(line)}; a data file holds one name per line, or name,count lines"
                )
    return lines


def distinct_chars(text: str) -> set[str]:
    """The characters of `text`; a byte histogram for ASCII, faster than a set."""
    if not text.isascii():
        return set(text)
    present = np.bincount(np.frombuffer(text.encode("ascii"), dtype=np.uint8), minlength=128)
    return {chr(code) for code in np.flatnonzero(present).tolist()}


def quote(line: str) -> str:
    return repr(line) if len(line) <= QUOTE_CHARS else repr(line[:QUOTE_CHARS]) + "…"


def name_chunks(path: str | Path) -> Iterator[list[str]]:
    """The names of a one-name-per-line file, a chunk at a time; a name,count line is an error."""
    name, first = str(path), None
    for number, lines in line_chunks(path):
        if first is None:
            first = next((number + i for i, line in enumerate(lines) if line), None)
            if first is not None and "," in lines[first - number]:
                raise DataError(
                    f"data file {name!r} holds name,count lines where names, one per line, are "
                    "expected (as --data.predict_path scores them): keep the names with "
                    "`cut -d, -f1`, or read the file with load_counted_words"
                )
        joined = "\n".join(lines)
        match = COUNTED_IN_CHUNK.search(joined) if "," in joined else None
        if match:
            line = number + joined.count("\n", 0, match.start())
            raise DataError(
                f"data file {name!r}, line {line}: {quote(match.group())} is a name,count line, "
                f"but line {first} is a plain name; a file holds either one name per line or "
                "name,count on every line"
            )
        yield [line for line in lines if line] if "" in lines else lines
    if first is None:
        raise no_words(name)


def no_words(name: str) -> DataError:
    return DataError(f"data file {name!r} holds no words (it is empty or only whitespace)")


def is_counted_file(path: str | Path) -> bool:
    """Whether the first non-blank line holds a comma: a name,count file."""
    for _, lines in line_chunks(path):
        line = next((line for line in lines if line), None)
        if line is not None:
            return "," in line
    raise no_words(str(path))


def read_counted(path: str | Path) -> dict[str, int] | None:
    """name -> count of a name,count file (None: a plain file), its total checked for int64."""
    if not is_counted_file(path):
        return None
    name, counts, total = str(path), {}, 0
    for number, lines in line_chunks(path):
        for offset, line in enumerate(lines):
            if not line:
                continue
            fields = [field.strip() for field in line.split(",")]
            problem = counted_line_problem(fields)
            if problem:
                raise DataError(
                    f"data file {name!r}, line {number + offset}: {quote(line)}: {problem}; a "
                    "name,count file (its first line holds a comma) has `name,count` on every "
                    "line, e.g. Olivia,17728"
                )
            word, count = fields[0], int(fields[1])
            counts[word] = counts.get(word, 0) + count
            total += count * (len(word) + 1)  # its examples: every character and the end
        if total > MAX_TOTAL:
            raise DataError(
                f"data file {name!r}: its counts add up to {total:,} examples by line "
                f"{number + len(lines) - 1}, more than int64 sums hold ({MAX_TOTAL:,}); scale "
                "the counts down"
            )
    if not counts:
        raise no_words(name)
    return counts


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
        return f"the count {quote(count)} is not a whole number"
    if not 1 <= int(count) <= MAX_COUNT:
        return f"the count {count} is not between 1 and {MAX_COUNT:,}"
    return None


def load_words(path: str | Path) -> list[str]:
    """One word per line, UTF-8, stripped, blank lines dropped, in NFC form; order, case and
    duplicates kept. A `name,count` file is refused: `load_counted_words` reads it."""
    return [word for chunk in name_chunks(path) for word in chunk]


def load_counted_words(path: str | Path) -> tuple[list[str], list[int] | None]:
    """The words of a data file, and their counts (else None) if its first non-blank line holds
    a comma (`Olivia,17728`); the lines of one name are merged, their counts added."""
    counts = read_counted(path)
    return (load_words(path), None) if counts is None else (list(counts), list(counts.values()))


@dataclass
class NameScan:
    """What one pass over a data file tells before counting."""

    chars: list[str]  # the distinct characters of the names, sorted
    num_names: int  # non-blank lines of a plain file; distinct names of a name,count file
    counts: dict[str, int] | None  # name -> count of a name,count file (None: a plain file)


def scan_names(path: str | Path) -> NameScan:
    """One pass over the file, keeping only its characters (and a name,count file's names)."""
    if (counts := read_counted(path)) is not None:
        return NameScan(sorted(distinct_chars("".join(counts))), len(counts), counts)
    chars, num_names = set(), 0
    for names in name_chunks(path):
        chars |= distinct_chars("".join(names))
        num_names += len(names)
    return NameScan(sorted(chars), num_names, None)


def download_names(path: str | Path, url: str | None = None, sha256: str | None = None) -> None:
    """Fetch names.txt (checked against its sha256) to `path` in an existing folder, atomically."""
    path, url, sha256 = Path(path), url or NAMES_URL, sha256 or NAMES_SHA256
    if not path.parent.is_dir():  # a path taken from a checkpoint may name another machine's
        raise DataError(
            f"data file {str(path)!r} does not exist (nor its folder {str(path.parent)!r}); "
            "pass --data.path"
        )
    log.warning("%s not found: downloading it from %s", path, url)
    try:
        torch.hub.download_url_to_file(url, str(path), hash_prefix=sha256, progress=False)
    except Exception as err:  # any network, disk or checksum failure means the same to the user
        raise DataError(
            f"data file {str(path)!r} is missing and could not be downloaded from {url} ({err}); "
            f"download names.txt yourself and put it at {str(path)!r}, or pass --data.path"
        ) from None
