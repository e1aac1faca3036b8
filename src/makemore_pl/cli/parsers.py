"""What every parser of the command line shares: its output errors are not swallowed."""

from __future__ import annotations

import sys
from typing import IO


class ReportsWriteFailures:
    """A parser mixin. argparse ignores an OSError while it prints help or usage, so that
    `sample --help >/dev/full` would exit 0 with the help lost; here the error reaches the
    command line's one-line message and its exit status."""

    def _print_message(self, message: str, file: IO[str] | None = None) -> None:
        file = file or sys.stderr
        if message and file is not None:  # None: the stream was closed at start
            file.write(message)
