import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

ROOT = Path(__file__).resolve().parents[1]

# The Ctrl-C tests need SIGINT to reach this process and the ones it starts: a shell that runs the
# suite in the background starts it with SIGINT ignored, and an ignored signal stays ignored in
# every child process
signal.signal(signal.SIGINT, signal.default_int_handler)

# The suite runs on as many processes as cores (pytest-xdist, `-n auto` in pyproject.toml): one
# thread each, so that they do not wait for each other's cores (the thread tests set their own)
if "PYTEST_XDIST_WORKER" in os.environ:
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def names_path() -> Path:
    """The real names.txt, copied to the project root by .ci/run (or by hand)."""
    path = ROOT / "names.txt"
    if not path.exists():
        pytest.fail(f"{path} is missing: copy the canonical names.txt there (as .ci/run does)")
    return path


@pytest.fixture
def tiny_file(tmp_path: Path):
    """Writes a small word list to a file and returns its path."""

    def write(words: list[str], name: str = "words.txt") -> Path:
        path = tmp_path / name
        path.write_text("\n".join(words) + "\n", encoding="utf-8")
        return path

    return write


TINY_WORDS = ["emma", "olivia", "ava", "isabella", "sophia", "mia", "amelia", "harper", "evelyn"]
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def makemore(
    *args: str, cwd: Path, check: bool = True, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Runs `python -m makemore_pl ARGS` in a subprocess, in `cwd`, as a user would."""
    proc = subprocess.run(
        [sys.executable, "-m", "makemore_pl", *args],
        cwd=cwd,
        text=True,
        capture_output=True,
        timeout=600,
        env=env,
    )
    if check and proc.returncode != 0:
        pytest.fail(f"makemore_pl {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return proc


def printed_nlls(stdout: str) -> dict[str, float]:
    """{'test_nll': 2.1, ...}: the NLL rows of the results table a held-out command prints,
    plain or drawn with box characters (when `rich` is installed)."""
    rows = [line.replace("│", " ").split() for line in stdout.splitlines()]
    return {row[0]: float(row[1]) for row in rows if len(row) > 1 and row[0].endswith("_nll")}


def events(run: Path) -> EventAccumulator:
    """Every event TensorBoard would show of a run folder (size_guidance 0 keeps them all)."""
    accumulator = EventAccumulator(
        str(run), size_guidance={"scalars": 0, "images": 0, "tensors": 0}
    )
    return accumulator.Reload()


PREFIX = "makemore_pl: error: "  # how every one-line error begins
FIT_WORDS = ["fit", "--data.path", "words.txt", "--trainer.max_epochs", "1"]


def exit_of(*args: str) -> str | int:
    """What `python -m makemore_pl ARGS` exits with, run in this process: the error line, or the
    exit status."""
    from makemore_pl.cli.main import main

    with pytest.raises(SystemExit) as exited:
        main([*args])
    return exited.value.code


@pytest.fixture
def cwd(tiny_run, tmp_path, monkeypatch) -> Path:
    """A folder holding words.txt (TINY_WORDS) and model.ckpt (a bigram trained on it), as the
    current folder, with the command line a user's would be."""
    (tmp_path / "words.txt").write_text("\n".join(TINY_WORDS) + "\n", encoding="utf-8")
    shutil.copy(last_checkpoint(tiny_run), tmp_path / "model.ckpt")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["makemore"])  # LightningCLI warns when both are given
    return tmp_path


def checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def run_cli(*args: str, cwd: Path) -> None:
    """Runs `python -m makemore_pl ARGS` inside this process, in `cwd`."""
    from makemore_pl.cli.main import main

    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(cwd)
        patch.setattr(sys, "argv", ["makemore"])  # LightningCLI warns when both are given
        main([*args])


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A folder with words.txt (TINY_WORDS) and its run folder lightning_logs/version_0_*: a
    bigram trained on it for 2 epochs."""
    folder = tmp_path_factory.mktemp("tiny_run")
    (folder / "words.txt").write_text("\n".join(TINY_WORDS) + "\n", encoding="utf-8")
    run_cli("fit", "--data.path", "words.txt", "--trainer.max_epochs", "2", *QUIET, cwd=folder)
    return folder


def last_checkpoint(run_root: Path) -> Path:
    """last.ckpt of the first run under run_root (its folder is version_0, or version_0_<name>)."""
    return next((run_root / "lightning_logs").glob("version_0*")) / "checkpoints" / "last.ckpt"


def quiet(args: list[str]) -> list[str]:
    """QUIET for the commands that run a Trainer; the others take no Trainer options."""
    return QUIET if args[0] in ("fit", "validate", "test", "predict") else []


def run_folder(root: Path, number: int = 0) -> Path:
    """The run folder `version_<number>_<name>` under root/lightning_logs."""
    found = sorted((Path(root) / "lightning_logs").glob(f"version_{number}_*"))
    assert len(found) == 1, f"expected one run {number} under {root}, found {found}"
    return found[0]


def quiet_trainer(**kwargs) -> L.Trainer:
    """A Trainer for in-process tests: CPU, no logger, checkpoints, progress bar or summary."""
    return L.Trainer(
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        **kwargs,
    )


RELIABILITY_DOC = ROOT / "docs" / "reliability.md"


def markdown_code(text: str, limit: int | None = None) -> str:
    """`text` as Markdown inline code inside a table cell; with `limit`, long values cut."""
    if limit is not None and len(text) > limit:
        text = text[: limit - 20] + f"… ({len(text)} characters)"
    text = text.replace("|", "\\|").replace("\n", " ")
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def documented_table(start_line: str) -> str:
    """The table of docs/reliability.md that starts with `start_line`, as the file holds it."""
    doc = RELIABILITY_DOC.read_text(encoding="utf-8")
    start = doc.index(start_line)
    return doc[start : doc.index("\n\n", start) + 1]


def exact_val_nll(names: Path, W: torch.Tensor) -> float:
    """The float64 val NLL of a bigram table W on names.txt's default split: what a 16-bit
    mixed-precision run must report (16-bit logits would be off by ~1e-2)."""
    from makemore_pl import NamesDataModule

    x, y = NamesDataModule(str(names)).data.splits["val"]
    return torch.nn.functional.cross_entropy(W.double()[x[:, 0]], y).item()
