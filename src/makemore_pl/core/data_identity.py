"""Which data file a run was trained on: absolute path, size and sha256."""

import hashlib
from dataclasses import dataclass
from pathlib import Path

READ_BYTES = 1 << 20


@dataclass(frozen=True)
class DataFile:
    """A data file as a run knew it: where it was (absolute) and what it held."""

    path: str
    size: int
    sha256: str

    @classmethod
    def of(cls, path: str | Path) -> "DataFile":
        """Reads the file once (about a second per GB) for its sha256."""
        path = Path(path).resolve()
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            while block := f.read(READ_BYTES):
                digest.update(block)
        return cls(str(path), path.stat().st_size, digest.hexdigest())

    @classmethod
    def from_saved(cls, saved: object) -> "DataFile | None":
        """The record a checkpoint holds, or None (none, or of the wrong shape)."""
        if not isinstance(saved, dict):
            return None
        path, size, sha = saved.get("path"), saved.get("size"), saved.get("sha256")
        fits = isinstance(path, str) and isinstance(size, int) and isinstance(sha, str)
        return cls(path, size, sha) if fits else None

    def saved(self) -> dict:
        return {"path": self.path, "size": self.size, "sha256": self.sha256}

    def same_content(self, path: str | Path) -> bool:
        """Whether `path` holds this file's bytes (the size is compared first: no read)."""
        path = Path(path)
        if not path.is_file() or path.stat().st_size != self.size:
            return False
        return DataFile.of(path).sha256 == self.sha256

    def describe(self) -> str:
        return f"{self.path} ({self.size:,} bytes, sha256 {self.sha256[:12]})"


def locate(recorded: DataFile, typed: str | Path) -> tuple[Path | None, bool]:
    """(the file holding the recorded content, whether it moved): the recorded path, else the
    path as typed at fit time from the current folder; (None, False) if neither holds it."""
    if recorded.same_content(recorded.path):
        return Path(recorded.path), False
    here = Path(typed).resolve()
    if str(here) != recorded.path and recorded.same_content(here):
        return here, True
    return None, False
