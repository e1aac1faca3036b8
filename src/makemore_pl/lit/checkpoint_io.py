"""Checkpoint files written atomically: a Lightning CheckpointIO plugin every Trainer gets."""

from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import torch
from fsspec.implementations.local import LocalFileSystem
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.pytorch.plugins.io import CheckpointIO, TorchCheckpointIO

from makemore_pl.core.errors import CheckpointError
from makemore_pl.core.files import write_atomically


class AtomicCheckpointIO(TorchCheckpointIO):
    """Saves to a temporary file renamed into place (a run killed mid-save keeps the previous
    checkpoint whole), never over one of `inputs`; loads weights only unless told otherwise."""

    def __init__(self, inputs: tuple[str | Path, ...] = ()) -> None:
        super().__init__()
        self.inputs = inputs

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None or not isinstance(get_filesystem(path), LocalFileSystem):
            return super().save_checkpoint(checkpoint, path, storage_options)

        def write(file: BinaryIO) -> None:  # torch.save; a failed write raises its OSError
            keeper = _KeepsWriteErrors(file)
            try:
                torch.save(checkpoint, keeper)
            except RuntimeError:
                if keeper.error is None:
                    raise
                raise keeper.error from None
            file.flush()

        # beside the target, so the rename never crosses file systems (Lightning's own saver
        # writes to the system temp folder and moves, which turns into a copy across devices)
        write_atomically(path, write, CheckpointError, self.inputs)

    def load_checkpoint(
        self,
        path: str | Path,
        map_location: Callable | None = lambda storage, loc: storage,
        weights_only: bool | None = None,
    ) -> dict[str, Any]:
        # Lightning passes None through to torch.load, whose default is False before torch 2.6
        # and under TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1: a crafted pickle could then run code
        safe = True if weights_only is None else weights_only
        return super().load_checkpoint(path, map_location, weights_only=safe)


class _KeepsWriteErrors:
    """A file for torch.save that keeps the OSError of a failed write: torch replaces it (and its
    errno) with a RuntimeError of its own, such as "basic_ios::clear: iostream error"."""

    def __init__(self, file: BinaryIO) -> None:
        self.file, self.error = file, None

    def write(self, data: bytes) -> int:
        try:
            return self.file.write(data)
        except OSError as err:
            self.error = err
            raise

    def flush(self) -> None:
        self.file.flush()


def with_atomic_checkpoints(plugins: Any, inputs: tuple[str | Path, ...] = ()) -> list:
    """The Trainer's plugins, plus AtomicCheckpointIO unless a CheckpointIO is already given."""
    plugins = [] if plugins is None else list(plugins) if isinstance(plugins, list) else [plugins]
    if not any(isinstance(plugin, CheckpointIO) for plugin in plugins):
        plugins.append(AtomicCheckpointIO(inputs))
    return plugins
