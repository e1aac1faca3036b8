"""Text from data or checkpoints, made safe for a terminal."""

from __future__ import annotations

import unicodedata

# controls (C0, C1) and format characters (bidi overrides, zero-width joiners): a terminal acts
# on them, so a name or a message holding one could retitle the window or reorder the line;
# surrogates (a checkpoint's characters may hold one) cannot be written as UTF-8 at all, and
# the line and paragraph separators U+2028/U+2029 split a line for str.splitlines and editors
UNPRINTABLE = {"Cc", "Cf", "Cs", "Zl", "Zp"}


def printable(text: str) -> str:
    """`text` with every control, format, surrogate or separator character escaped, e.g.
    ESC -> \\x1b, RLO -> \\u202e; other text, backslashes included, is left as it is."""
    if not any(unicodedata.category(ch) in UNPRINTABLE for ch in text):
        return text
    return "".join(
        ch.encode("unicode_escape").decode("ascii")
        if unicodedata.category(ch) in UNPRINTABLE
        else ch
        for ch in text
    )


def human_bytes(n: float) -> str:
    """1.5e9 -> '1.5 GB' (decimal units, as disks and `free -h --si` count)."""
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"):
        if n < 999.5:
            return f"{n:.0f} {unit}" if unit == "bytes" or n >= 9.95 else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n * 1e24:.1e} bytes"


def shortened(text: str, limit: int = 2000) -> str:
    """`text`, or its start and end with the size of what was cut between them, so that no
    message (a value from a file can be 50 MB long) floods the terminal."""
    if len(text) <= limit:
        return text
    keep = limit // 2
    return f"{text[:keep]} [… {len(text) - 2 * keep:,} characters cut …] {text[-keep:]}"
