"""Files the package writes: whole or not at all, never over a file it must keep."""

import contextlib
import errno
import os
import stat
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from makemore_pl.core.errors import CommandError, UserError


@dataclass(frozen=True)
class FileKind:
    """What a command writes, known by how its files begin."""

    name: str  # as a message says it: "a PNG image"
    magic: bytes  # the first bytes of every such file

    def holds(self, path: Path) -> bool:
        """Whether the regular file at `path` is empty or begins as this kind does."""
        with open(path, "rb") as file:
            head = file.read(len(self.magic))
        return head in (b"", self.magic)


PNG = FileKind("a PNG image", b"\x89PNG\r\n\x1a\n")


def write_atomically(
    path: str | Path,
    write: Callable[[BinaryIO], None],
    error: type[UserError] = CommandError,
    inputs: Iterable[str | Path] = (),
    kind: FileKind | None = None,
) -> Path:
    """Calls `write(file)` on a temporary file beside `path`, then renames it into place; what
    `check_writable_target` refuses is refused first, and a failure raises `error`."""
    path = Path(path)
    check_writable_target(path, error, inputs, kind)
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
    path: Path,
    error: type[UserError] = CommandError,
    inputs: Iterable[str | Path] = (),
    kind: FileKind | None = None,
) -> None:
    """A path the package may replace: new, or a regular file that is none of `inputs` and,
    given a `kind`, is empty or of that kind (else, e.g. the data named as --plot, it is kept)."""
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
    for source in filter(None, inputs):  # None: an input the command does not have
        with contextlib.suppress(OSError):  # an input that is not there is not this file
            if os.path.samefile(path, source):
                raise error(f"cannot write {path}: it is {source}, which this command reads")
    if kind is None:
        return
    try:
        ours = kind.holds(path)
    except OSError as err:
        raise error(
            f"cannot write {path}: it exists and cannot be read to see what it holds "
            f"({err.strerror}); remove it or choose another name"
        ) from None
    if not ours:
        raise error(
            f"cannot write {path}: it exists and is not {kind.name}, so it is kept; remove it or "
            "choose another name"
        )


def write_failure(path: Path, err: OSError) -> str:
    if err.errno == errno.ENOSPC:
        return f"no space left on device writing {path}"
    return f"cannot write {path} ({err.strerror or err})"
