"""Ctrl-C at any moment of any command: one line, exit status 130, nothing half-written and no
run folder left to hide an older run's checkpoints."""

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FIT_WORDS, QUIET, exit_of


def makemore_process(*args: str, cwd: Path, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "makemore_pl", *args], cwd=cwd, text=True, **kwargs
    )


@pytest.mark.slow
def test_ctrl_c_in_a_plain_command_is_one_line_and_130(cwd):
    proc = makemore_process(
        "sample",
        "--ckpt_path",
        "model.ckpt",
        "--num_samples",
        "100000000",
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout.readline()  # sampling has started
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 130 and err.strip().splitlines()[-1] == "makemore_pl: interrupted"
    assert "Traceback" not in err


def test_ctrl_c_while_fit_starts_is_one_line_130_and_leaves_no_run(
    cwd, tiny_run, monkeypatch, capsys
):
    from makemore_pl.cli.runs import find_named_checkpoint
    from makemore_pl.lit.datamodule import NamesDataModule

    shutil.copytree(tiny_run / "lightning_logs", cwd / "lightning_logs")  # an older run
    best = find_named_checkpoint("best", None)

    def ctrl_c(self, stage: str | None = None) -> None:  # in the run's folder, before a batch
        assert any((cwd / "lightning_logs").glob("version_1*"))
        os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(NamesDataModule, "setup", ctrl_c)
    assert exit_of(*FIT_WORDS, *QUIET) == 130
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == "makemore_pl: interrupted" and "Detected" not in err
    assert not any((cwd / "lightning_logs").glob("version_1*"))  # nothing hides the older run
    assert find_named_checkpoint("best", None) == best
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # as it was


# Ctrl-C as numpy starts to load (under torch), in a process of its own: raised there, the
# interrupt used to be swallowed (the command went on) or to leave numpy half-imported
CTRL_C_AS_NUMPY_LOADS = """
import builtins, os, signal, sys
from makemore_pl.cli.main import main
load = builtins.__import__
def ctrl_c(name, *args, **kwargs):
    if name.startswith("numpy"):
        builtins.__import__ = load
        os.kill(os.getpid(), signal.SIGINT)
    return load(name, *args, **kwargs)
builtins.__import__ = ctrl_c
main(sys.argv[1:])
"""


@pytest.mark.parametrize("command", ["fit --data.path missing.txt", "sample"])
def test_ctrl_c_while_modules_load_is_one_line_and_130(tmp_path, command):
    argv = [sys.executable, "-c", CTRL_C_AS_NUMPY_LOADS, *command.split()]
    proc = subprocess.run(argv, cwd=tmp_path, text=True, capture_output=True)
    assert (proc.returncode, proc.stderr, proc.stdout) == (130, "makemore_pl: interrupted\n", "")
    assert not list(tmp_path.iterdir())
