"""Files the package writes (checkpoints, predictions, figures): whole or not at all, never in
place of something that is not a regular file, with one message for each way a write fails."""

from __future__ import annotations

import errno
import os
import stat
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

from makemore_pl.core.errors import CommandError, UserError


def write_atomically(
    path: str | Path,
    write: Callable[[BinaryIO], None],
    error: type[UserError] = CommandError,
    inputs: Iterable[str | Path] = (),
) -> Path:
    """Calls `write(file)` on a temporary file beside `path`, then renames it into place, so
    readers see the old file or the new one. Refused before anything is written: a `path` that
    is a folder, a device, a FIFO or any other non-regular file, and one that is the same file
    as one of the command's `inputs`. Failures raise `error` naming the path; no partial file
    is left behind."""
    path = Path(path)
    check_writable_target(path, error, inputs)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise error(f"cannot write {path} ({path.parent} is not a folder)") from None
    except OSError as err:
        raise error(write_failure(path, err)) from None
    # beside the target, so the rename never crosses file systems
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.partial")
    try:
        with open(partial, "wb") as file:
            write(file)
            file.flush()
        os.replace(partial, path)
    except OSError as err:
        raise error(write_failure(path, err)) from None
    finally:
        partial.unlink(missing_ok=True)
    return path


def check_writable_target(
    path: Path, error: type[UserError] = CommandError, inputs: Iterable[str | Path] = ()
) -> None:
    """A path the package may replace: new, or a regular file that is none of `inputs`."""
    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError):  # new: the folder is made (or refused) next
        return
    except OSError as err:
        raise error(write_failure(path, err)) from None
    if stat.S_ISDIR(info.st_mode):
        raise error(f"cannot write {path}: it is a folder")
    if not stat.S_ISREG(info.st_mode):
        raise error(f"cannot write {path}: it is not a regular file (a device, FIFO or socket)")
    for source in inputs:
        if same_file(path, Path(source)):
            raise error(f"cannot write {path}: it is {source}, which this command reads")


def same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def write_failure(path: Path, err: OSError) -> str:
    """The one message for a write that failed."""
    if err.errno == errno.ENOSPC:
        return f"no space left on device writing {path}"
    return f"cannot write {path} ({err.strerror or err})"
