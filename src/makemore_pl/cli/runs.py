"""Run folders: `lightning_logs/version_<N>_<name>/`, claimed atomically, found again by best/last.

A run folder holds the TensorBoard events, `config.yaml` and `checkpoints/`. Its name carries a
number (newest = highest) and a run name, so that TensorBoard's run selector tells runs apart.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import tempfile
from pathlib import Path

from makemore_pl.core.errors import CheckpointError, CommandError

RUN_FOLDER = re.compile(r"version_(\d+)(_[^/]*)?")  # version_3 or version_3_trigram-adam
# set in the environment by the process that claimed the run, so that the processes a
# multi-device launch starts join that run instead of claiming new ones
RUN_ENV = "MAKEMORE_PL_RUN_FOLDER"


def run_number(folder: Path) -> int | None:
    match = RUN_FOLDER.fullmatch(folder.name)
    return int(match.group(1)) if match and folder.is_dir() else None


def runs(logs: Path) -> list[Path]:
    """The run folders under `logs`, oldest first; anything else there is left alone."""
    found = [(run_number(folder), folder) for folder in logs.glob("version_*")]
    return [folder for number, folder in sorted((n, f) for n, f in found if n is not None)]


def newest_training_run(logs: Path) -> Path | None:
    """The newest run with a checkpoints folder, which `fit` creates before its first step: a
    run killed before its first checkpoint is still the newest, so that `last` starts it afresh
    instead of continuing an older run with other options."""
    trained = [run for run in runs(logs) if (run / "checkpoints").is_dir()]
    return trained[-1] if trained else None


def find_run_checkpoint(logs: Path, which: str) -> Path | None:
    """`which`.ckpt ('best' or 'last') of the newest training run under `logs`, if it has one."""
    run = newest_training_run(logs)
    path = None if run is None else run / "checkpoints" / f"{which}.ckpt"
    return path if path is not None and path.is_file() else None


def find_named_checkpoint(ckpt_path: str, root: str | None, required: bool = True) -> str | None:
    """The one resolver of `--ckpt_path`: 'best' or 'last' -> that checkpoint of the newest
    training run under root/lightning_logs; any other value is a path, returned as it is.
    Without such a checkpoint: None, or with `required` a CommandError saying what to do."""
    if ckpt_path not in ("best", "last"):
        return ckpt_path
    logs = Path(root or ".", "lightning_logs")
    path = find_run_checkpoint(logs, ckpt_path)
    if path is not None:
        return str(path)
    if not required:
        return None
    raise CommandError(
        f"--ckpt_path {ckpt_path}: no {ckpt_path}.ckpt in the newest training run under {logs}; "
        "train one with `fit` or pass a checkpoint path"
    )


def run_of_checkpoint(path: str | Path) -> Path | None:
    """The run folder a checkpoint belongs to (`<run>/checkpoints/x.ckpt`), if any."""
    run = Path(path).resolve().parent.parent
    return (
        run
        if Path(path).resolve().parent.name == "checkpoints" and run_number(run) is not None
        else None
    )


def new_run_folder(logs: Path, name: str) -> Path:
    """Creates the next `version_<N>_<name>` folder. Claims are serialised by a lock on
    `logs/.claim.lock`, so two runs starting at the same moment get different numbers."""
    joined = os.environ.get(RUN_ENV)
    if joined:
        return Path(joined)
    if not first_process():  # the first process claims the run; Lightning tells the others
        return logs / name  # its folder (it broadcasts the log and checkpoint folders)
    try:
        logs.mkdir(parents=True, exist_ok=True)
        with open(logs / ".claim.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            number = max((run_number(run) for run in runs(logs)), default=-1) + 1
            folder = logs / (f"version_{number}_{name}" if name else f"version_{number}")
            folder.mkdir()
            return folder
    except OSError as err:
        raise CheckpointError(
            f"cannot write the run's logs and checkpoints to {str(logs)!r} ({err.strerror}); "
            "set --trainer.default_root_dir to a folder you can write to"
        ) from None


# how the launchers that start every process themselves (torchrun, SLURM, MPI, or one that sets
# Lightning's LOCAL_RANK and NODE_RANK) tell a process its place: a rank and the launch's size.
# A launch by Lightning itself passes the run folder in RUN_ENV instead.
RANK_AND_SIZE = (
    ("RANK", "WORLD_SIZE"),
    ("SLURM_PROCID", "SLURM_NTASKS"),
    ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"),
    ("PMI_RANK", "PMI_SIZE"),
    ("LOCAL_RANK", "WORLD_SIZE"),
    ("NODE_RANK", "WORLD_SIZE"),
)


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
    """Holds an exclusive lock on the run while this process trains it: a second `fit` of the
    same run (say, `--ckpt_path last` while it is still training) is refused instead of two
    writers taking turns at its checkpoints. The lock ends with the process."""
    handle = open(run / ".training.lock", "a")  # noqa: SIM115 (held for the whole run)
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
        with open(run / ".training.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False


def remove_if_unstarted(run: Path) -> None:
    """Removes a run folder that holds no checkpoint (its command failed or was stopped before
    the first): as the newest run, it would hide an older run's best.ckpt from `--ckpt_path
    best`, and its logs show nothing yet."""
    if not any((run / "checkpoints").glob("*.ckpt")):
        shutil.rmtree(run, ignore_errors=True)


def check_writable(folder: str | Path) -> None:
    """Creates `folder` and a file in it, so that a run fails before training, not at its first
    checkpoint, when it cannot write its logs or checkpoints."""
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise CheckpointError(
            f"cannot write the run's logs and checkpoints to {str(folder)!r} ({err.strerror}); "
            "set --trainer.default_root_dir to a folder you can write to"
        ) from None
