"""Run folders `lightning_logs/version_<N>_<name>/`, claimed atomically, found by best/last."""

import errno
import fcntl
import os
import re
import shutil
import stat
import tempfile
from pathlib import Path
from typing import IO

from makemore_pl.core.errors import CheckpointError, CommandError

RUN_FOLDER = re.compile(r"version_(\d+)(_[^/]*)?")  # version_3 or version_3_trigram-adam
# set by the process that claimed the run: the processes of a multi-device launch join it
RUN_ENV = "MAKEMORE_PL_RUN_FOLDER"
# how launchers that start every process themselves (torchrun, SLURM, MPI, or one that sets
# Lightning's LOCAL_RANK and NODE_RANK) tell a process its rank and the launch's size
RANK_AND_SIZE = (
    ("RANK", "WORLD_SIZE"),
    ("SLURM_PROCID", "SLURM_NTASKS"),
    ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"),
    ("PMI_RANK", "PMI_SIZE"),
    ("LOCAL_RANK", "WORLD_SIZE"),
    ("NODE_RANK", "WORLD_SIZE"),
)


def run_number(folder: Path) -> int | None:
    match = RUN_FOLDER.fullmatch(folder.name)
    return int(match.group(1)) if match and folder.is_dir() else None


def runs(logs: Path) -> list[Path]:
    """The run folders under `logs`, oldest first; anything else there is left alone."""
    found = [(run_number(folder), folder) for folder in logs.glob("version_*")]
    return [folder for number, folder in sorted((n, f) for n, f in found if n is not None)]


def newest_training_run(logs: Path) -> Path | None:
    """The newest run with a checkpoints folder (made before fit's first step): `last` starts a
    run killed before its first checkpoint afresh, not an older run with other options."""
    trained = [run for run in runs(logs) if (run / "checkpoints").is_dir()]
    return trained[-1] if trained else None


def find_run_checkpoint(logs: Path, which: str) -> Path | None:
    """`which`.ckpt ('best' or 'last') of the newest training run under `logs`, if it has one."""
    run = newest_training_run(logs)
    path = None if run is None else run / "checkpoints" / f"{which}.ckpt"
    return path if path is not None and path.is_file() else None


def find_named_checkpoint(ckpt_path: str, root: str | None, required: bool = True) -> str | None:
    """`--ckpt_path`: 'best' or 'last' of the newest training run under root/lightning_logs (or
    None, or with `required` an error), else a path as it is."""
    if ckpt_path not in ("best", "last"):
        return ckpt_path
    logs = Path(root or ".", "lightning_logs")
    path = find_run_checkpoint(logs, ckpt_path)
    if path is None and required:
        raise CommandError(
            f"--ckpt_path {ckpt_path}: no {ckpt_path}.ckpt in the newest training run under "
            f"{logs}; train one with `fit` or pass a checkpoint path"
        )
    return None if path is None else str(path)


def run_of_checkpoint(path: str | Path) -> Path | None:
    """The run folder a checkpoint belongs to (`<run>/checkpoints/x.ckpt`), if any."""
    folder = Path(path).resolve().parent
    in_run = folder.name == "checkpoints" and run_number(folder.parent) is not None
    return folder.parent if in_run else None


def new_run_folder(logs: Path, name: str) -> Path:
    """Creates the next `version_<N>_<name>` folder, numbered under a lock on `.claim.lock`."""
    joined = os.environ.get(RUN_ENV)
    if joined:
        return Path(joined)
    if not first_process():  # the first process claims the run; Lightning tells the others
        return logs / name  # its folder (it broadcasts the log and checkpoint folders)
    try:
        logs.mkdir(parents=True, exist_ok=True)
        with open_lock(logs / ".claim.lock") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            number = max((run_number(run) for run in runs(logs)), default=-1) + 1
            folder = logs / (f"version_{number}_{name}" if name else f"version_{number}")
            folder.mkdir()
            return folder
    except OSError as err:
        raise unwritable(logs, err) from None


def first_process() -> bool:
    """False in every process of a multi-process launch but its first (global rank 0); a rank
    variable left over in a shell, without a launch size above 1, does not count."""

    def number(name: str) -> int:
        value = os.environ.get(name, "").strip()
        return int(value) if value.isdigit() else 0

    return not any(number(rank) > 0 and number(size) > 1 for rank, size in RANK_AND_SIZE)


def safe_name(name: str) -> str:
    """A run name as a folder name: letters, digits and . - + only."""
    return re.sub(r"[^\w.+-]", "-", name, flags=re.ASCII).strip("-")[:60]


def lock_run(run: Path):
    """An exclusive lock on the run while this process trains it, so that a second `fit` of it
    is refused instead of taking turns at its checkpoints; it ends with the process."""
    handle = open_lock(run / ".training.lock")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise CheckpointError(
            f"run folder {str(run)!r} is being trained by another process; wait for it to end "
            "(or stop it) before resuming it"
        ) from None
    return handle


def is_being_trained(run: Path) -> bool:
    """Whether another process holds the run's training lock (see lock_run)."""
    try:
        with open_lock(run / ".training.lock") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        return isinstance(err, BlockingIOError)
    return False


def open_lock(path: Path) -> IO[bytes]:
    """A lock file opened without blocking (a FIFO in its place would wait for a reader
    forever), refused unless it is a regular file."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NONBLOCK, 0o644)
    except OSError as err:  # ENXIO: a FIFO that no process reads
        if err.errno != errno.ENXIO:
            raise
    else:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            return os.fdopen(fd, "ab")
        os.close(fd)
    raise CheckpointError(
        f"{str(path)!r}: the run's lock file is not a regular file; remove it and run again"
    )


def remove_if_unstarted(run: Path) -> None:
    """Removes a run without a checkpoint: as the newest, it would hide an older best.ckpt."""
    if not any((run / "checkpoints").glob("*.ckpt")):
        shutil.rmtree(run, ignore_errors=True)
        if {p.name for p in run.parent.iterdir()} <= {".claim.lock"}:  # the logs folder it made
            shutil.rmtree(run.parent, ignore_errors=True)


def writable(folder: Path) -> bool:
    try:
        check_writable(folder)
    except CheckpointError:
        return False
    return True


def check_writable(folder: str | Path) -> None:
    """Creates `folder` and a file in it: a run fails before training, not at its checkpoint."""
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise unwritable(folder, err) from None


def unwritable(folder: str | Path, err: OSError) -> CheckpointError:
    return CheckpointError(
        f"cannot write the run's logs and checkpoints to {str(folder)!r} ({err.strerror}); "
        "set --trainer.default_root_dir to a folder you can write to"
    )
