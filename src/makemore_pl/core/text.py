"""Text from data or checkpoints, made safe for a terminal."""

import unicodedata

# controls and format characters (a terminal acts on them), surrogates (not UTF-8) and the
# line and paragraph separators (they split a line)
UNPRINTABLE = {"Cc", "Cf", "Cs", "Zl", "Zp"}


def printable(text: str) -> str:
    """`text` with every UNPRINTABLE character escaped (ESC -> \\x1b), other text as it is."""
    unsafe = {ch for ch in set(text) if unicodedata.category(ch) in UNPRINTABLE}
    return "".join(ch.encode("unicode_escape").decode() if ch in unsafe else ch for ch in text)


def human_bytes(n: float) -> str:
    """1.5e9 -> '1.5 GB' (decimal units, as disks and `free -h --si` count)."""
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"):
        if n < 999.5:
            return f"{n:.0f} {unit}" if unit == "bytes" or n >= 9.95 else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n * 1e24:.1e} bytes"


def shortened(text: str, limit: int = 2000) -> str:
    """`text`, or its start and end with the size of what was cut, so no message floods."""
    if len(text) <= limit:
        return text
    keep = limit // 2
    return f"{text[:keep]} [… {len(text) - 2 * keep:,} characters cut …] {text[-keep:]}"
