"""Checkpoints: written atomically, loaded without running code on every path, and read as
untrusted input, checked by building the model they hold."""

import errno
import io
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from jsonargparse import Namespace
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.strategies import Strategy

from makemore_pl.cli.resume import require_weights_only
from makemore_pl.cli.runs import find_run_checkpoint
from makemore_pl.cli.training import MakemoreCLI, MakemoreTrainer
from makemore_pl.core import files
from makemore_pl.core.errors import CheckpointError
from makemore_pl.lit import checkpoint_io
from makemore_pl.lit.checkpoint_io import AtomicCheckpointIO, with_atomic_checkpoints
from makemore_pl.lit.datamodule import NamesDataModule
from makemore_pl.lit.dense import BigramLitModule
from makemore_pl.lit.module import NgramLitModule
from makemore_pl.models.saved import read_checkpoint
from tests.conftest import QUIET, TINY_WORDS, last_checkpoint, quiet, run_cli, run_folder

MARKER = "code_ran.txt"


class RunsCode:
    """Unpickling this runs a shell command that leaves code_ran.txt in the current folder."""

    def __reduce__(self):
        return os.system, (f"echo code ran > {MARKER}",)


def folder_names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_save_replaces_the_file_whole_and_leaves_nothing_else(tmp_path):
    path = tmp_path / "checkpoints" / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"step": 1}, path)
    io.save_checkpoint({"step": 2, "W": torch.ones(2)}, path)
    assert io.load_checkpoint(path)["step"] == 2
    assert folder_names(path.parent) == ["last.ckpt"]


class FillsUp(io.FileIO):
    """A file on a disk that is full after `room` bytes."""

    room = 200

    def write(self, data) -> int:
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(data)
        return super().write(data)


def test_a_full_disk_is_one_line_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    io_ = AtomicCheckpointIO()
    io_.save_checkpoint({"step": 1}, path)
    # torch.save itself writes into the file, as on a real full disk
    monkeypatch.setattr(files, "open", lambda file, mode: FillsUp(file, "w"), raising=False)
    with pytest.raises(CheckpointError) as failed:
        io_.save_checkpoint({"step": 2, "W": torch.ones(1000)}, path)
    assert str(failed.value) == f"no space left on device writing {path}"
    assert torch.load(path, weights_only=True) == {"step": 1}
    assert folder_names(tmp_path) == ["last.ckpt"]  # the partial file is gone


def test_another_failed_write_names_the_file(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"

    def read_only(obj, file):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(checkpoint_io.torch, "save", read_only)
    with pytest.raises(CheckpointError) as failed:
        AtomicCheckpointIO().save_checkpoint({"step": 2}, path)
    assert str(failed.value) == f"cannot write {path} (Read-only file system)"
    assert folder_names(tmp_path) == []


KILLED_MIDWAY = """
import os, signal, sys, torch
from makemore_pl.lit import checkpoint_io
io, path = checkpoint_io.AtomicCheckpointIO(), sys.argv[1]
io.save_checkpoint({"step": 1, "W": torch.ones(3)}, path)
def killed_midway(obj, file):
    file.write(b"PK\\x03\\x04 the first bytes of a checkpoint")
    file.flush()
    os.kill(os.getpid(), signal.SIGKILL)
checkpoint_io.torch.save = killed_midway
io.save_checkpoint({"step": 2, "W": torch.zeros(3)}, path)
"""


@pytest.mark.slow
def test_a_save_killed_midway_leaves_the_previous_checkpoint_whole(tmp_path):
    logs = tmp_path / "lightning_logs"
    path = logs / "version_0_bigram" / "checkpoints" / "last.ckpt"
    proc = subprocess.run([sys.executable, "-c", KILLED_MIDWAY, str(path)], capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    left = folder_names(path.parent)
    partial = [name for name in left if name != "last.ckpt"]
    assert "last.ckpt" in left and len(partial) == 1 and partial[0].endswith(".partial")
    assert find_run_checkpoint(logs, "last") == path  # the partial file is never taken
    assert torch.load(path, weights_only=True)["step"] == 1
    AtomicCheckpointIO().save_checkpoint({"step": 3}, path)  # and the next save is unhindered
    assert torch.load(path, weights_only=True)["step"] == 3


def test_the_trainer_gets_atomic_checkpoints_unless_it_has_its_own(tiny_file, monkeypatch):
    assert [type(p) for p in with_atomic_checkpoints(None)] == [AtomicCheckpointIO]
    own = TorchCheckpointIO()
    assert with_atomic_checkpoints(own) == [own]
    path = str(tiny_file(["emma", "ava"]))
    monkeypatch.setattr(sys, "argv", ["makemore"])  # LightningCLI warns when both are given
    cli = MakemoreCLI(
        NgramLitModule,
        NamesDataModule,
        subclass_mode_model=True,
        trainer_class=MakemoreTrainer,
        seed_everything_default=42,
        run=False,
        args=["--data.path", path, "--trainer.logger", "false"],
    )
    assert isinstance(cli.trainer.strategy.checkpoint_io, AtomicCheckpointIO)


def test_weights_only_defaults_to_true_and_false_is_refused():
    config = Namespace(weights_only=None)
    require_weights_only(config)
    assert config.weights_only is True
    with pytest.raises(CheckpointError, match="--weights_only false"):
        require_weights_only(Namespace(weights_only=False))


@pytest.fixture
def evil_checkpoint(tiny_run, tmp_path, monkeypatch) -> Path:
    """tiny_run's checkpoint with a setting whose unpickling runs code; tmp_path is the cwd."""
    checkpoint = torch.load(run_folder(tiny_run) / "checkpoints" / "last.ckpt", weights_only=True)
    checkpoint["hyper_parameters"]["l2"] = RunsCode()
    torch.save(checkpoint, tmp_path / "evil.ckpt")
    shutil.copy(tiny_run / "words.txt", tmp_path)
    monkeypatch.chdir(tmp_path)
    # the switch that turns torch.load's default to weights_only=False must change nothing
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    return tmp_path / "evil.ckpt"


def test_the_crafted_checkpoint_does_run_code_when_loaded_unsafely(evil_checkpoint):
    torch.load(evil_checkpoint, weights_only=False)
    assert Path(MARKER).read_text() == "code ran\n"


def test_the_checkpoint_plugin_refuses_code(evil_checkpoint):
    with pytest.raises(Exception, match="Weights only load failed"):
        AtomicCheckpointIO().load_checkpoint(evil_checkpoint)
    assert not Path(MARKER).exists()


@pytest.mark.parametrize("command", ["fit", "validate", "test", "predict", "sample"])
def test_every_command_refuses_a_checkpoint_that_would_run_code(evil_checkpoint, command):
    quiet = [] if command == "sample" else QUIET  # sample has no Trainer options
    args = [command, "--ckpt_path", "evil.ckpt", "--data.path", "words.txt", *quiet]
    with pytest.raises(SystemExit, match="refused, the file holds objects other than tensors"):
        run_cli(*args, cwd=evil_checkpoint.parent)
    assert not Path(MARKER).exists()


@pytest.mark.parametrize("command", ["fit", "validate", "test", "predict", "sample"])
def test_every_checkpoint_load_is_weights_only(tiny_run, tmp_path, monkeypatch, command):
    shutil.copytree(tiny_run, tmp_path, dirs_exist_ok=True)
    asked, loaded = [], []  # what Lightning is asked for, what torch.load gets
    lightning_load, torch_load = Strategy.load_checkpoint, torch.load

    def recording_lightning_load(self, path, weights_only=None):
        asked.append(weights_only)
        return lightning_load(self, path, weights_only=weights_only)

    def recording_torch_load(*args, **kwargs):
        loaded.append(kwargs.get("weights_only"))
        return torch_load(*args, **kwargs)

    monkeypatch.setattr(Strategy, "load_checkpoint", recording_lightning_load)
    monkeypatch.setattr(torch, "load", recording_torch_load)
    more = ["--trainer.max_epochs", "3"] if command == "fit" else []
    quiet = [] if command == "sample" else QUIET  # sample has no Trainer options
    run_cli(command, "--ckpt_path", "last", "--data.path", "words.txt", *quiet, *more, cwd=tmp_path)
    assert asked == ([] if command == "sample" else [True])  # sample loads the model itself
    # our check, then Lightning's own loads (sample reads the checkpoint once, itself)
    assert len(loaded) >= (1 if command == "sample" else 2) and set(loaded) == {True}


# reading: every checkpoint is untrusted input, checked by building it

V = 15  # TINY_WORDS' vocabulary, the boundary included


@pytest.fixture
def model_ckpt(tiny_run, tmp_path) -> dict:
    """tiny_run's last checkpoint, loaded (tmp_path holds words.txt)."""
    shutil.copy(tiny_run / "words.txt", tmp_path)
    return torch.load(last_checkpoint(tiny_run), weights_only=True)


def checkpointing_trainer(**kwargs) -> L.Trainer:
    """A quiet CPU Trainer that keeps the checkpoints its callbacks save."""
    return L.Trainer(
        logger=False, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
        **kwargs,
    )  # fmt: skip


def saved(tmp_path, checkpoint: dict, name: str = "x.ckpt") -> str:
    torch.save(checkpoint, tmp_path / name)
    return str(tmp_path / name)


def test_views_that_share_one_storage_cannot_add_up_to_more_than_the_file(model_ckpt, tmp_path):
    block = torch.zeros(64 * 1024)
    model_ckpt["callbacks"] = {"views": [block[:] for _ in range(100)]}  # 100 x 256 KB, stored once
    path = saved(tmp_path, model_ckpt)
    with pytest.raises(
        CheckpointError, match="its tensors claim 26 MB together but the file holds"
    ):
        read_checkpoint(path)


def test_a_transposed_view_is_refused(model_ckpt, tmp_path):
    model_ckpt["state_dict"]["model.W"] = model_ckpt["state_dict"]["model.W"].t()
    with pytest.raises(
        CheckpointError, match=r"state_dict.model.W of shape \(15, 15\) is a strided view"
    ):
        read_checkpoint(saved(tmp_path, model_ckpt))


def test_integers_out_of_range_are_named_wherever_they_are(model_ckpt, tmp_path):
    model_ckpt["loops"]["fit_loop"]["epoch_progress"] = {"total": {"ready": -(2**64)}}
    with pytest.raises(CheckpointError) as refused:
        read_checkpoint(saved(tmp_path, model_ckpt))
    assert "loops.fit_loop.epoch_progress.total.ready = -18446744073709551616" in str(refused.value)


def test_a_key_with_control_characters_is_shown_escaped(model_ckpt, tmp_path):
    model_ckpt["hyper_parameters"]["\x1b[2J\u202e"] = 1
    with pytest.raises(CheckpointError, match=r"unknown model settings: \\x1b\[2J\\u202e\)"):
        read_checkpoint(saved(tmp_path, model_ckpt))


def test_a_folder_is_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match=f"^--ckpt_path {tmp_path}: not a regular file$"):
        read_checkpoint(str(tmp_path))


def test_a_weights_only_checkpoint_reads_but_cannot_resume(model_ckpt, tmp_path):
    for key in ("optimizer_states", "lr_schedulers", "callbacks"):
        del model_ckpt[key]
    path = saved(tmp_path, model_ckpt)
    assert read_checkpoint(path).checkpoint["state_dict"].keys() == {"model.W"}
    with pytest.raises(CheckpointError, match="holds the weights only .* cannot resume"):
        read_checkpoint(path, resume=True)


@pytest.mark.parametrize("command", ["validate", "test", "predict", "sample"])
def test_a_lightning_weights_only_save_works_where_no_resume_is_needed(tmp_path, command):
    (tmp_path / "words.txt").write_text("\n".join(TINY_WORDS) + "\n", encoding="utf-8")
    dm = NamesDataModule(str(tmp_path / "words.txt"))
    save = ModelCheckpoint(dirpath=tmp_path, filename="weights", save_weights_only=True)
    checkpointing_trainer(max_epochs=1, callbacks=[save]).fit(
        BigramLitModule(dm.data.vocab_size, chars=dm.data.chars), dm
    )
    args = [command, "--ckpt_path", "weights.ckpt", "--data.path", "words.txt"]
    run_cli(*args, *quiet(args), cwd=tmp_path)


def test_a_checkpoint_is_checked_by_building_its_model(model_ckpt, tmp_path):
    hparams, state = model_ckpt["hyper_parameters"], model_ckpt["state_dict"]

    def problem(hparams: dict, state: dict) -> str | None:
        edited = {**model_ckpt, "hyper_parameters": hparams, "state_dict": state}
        try:
            read_checkpoint(saved(tmp_path, edited, "edited.ckpt"))
        except CheckpointError as err:
            return str(err)
        return None

    assert problem(hparams, state) is None
    assert problem({**hparams, "chars": list("abc")}, state).endswith(
        "not a makemore_pl model checkpoint (its characters ['a', 'b', 'c'] are not vocab_size "
        "- 1 = 14 distinct characters)"
    )
    int_weights = {"model.W": torch.zeros(V, V).long()}
    assert "its weights W are torch.int64, not floats" in problem(hparams, int_weights)
    assert "its setting context_size 1000000000000 with vocab_size 15 needs a" in problem(
        {**hparams, "context_size": 10**12}, state
    )  # decided before anything is allocated, without computing 15**10**12


def test_a_checkpoint_without_characters_samples_with_the_data(model_ckpt, tmp_path, capfd):
    model_ckpt["hyper_parameters"]["chars"] = None
    saved(tmp_path, model_ckpt, "no_chars.ckpt")
    args = ["--ckpt_path", "no_chars.ckpt", "--data.path", "words.txt"]
    run_cli("sample", "--num_samples", "5", *args, cwd=tmp_path)
    names = capfd.readouterr().out.split()
    assert len(names) == 5 and set("".join(names)) <= set("".join(TINY_WORDS))
    run_cli("test", *args, *QUIET, cwd=tmp_path)


def test_a_checkpoint_is_never_written_over_a_file_the_command_reads(tmp_path):
    from makemore_pl.core.errors import CheckpointError
    from makemore_pl.lit.checkpoint_io import AtomicCheckpointIO

    data = tmp_path / "words.txt"
    data.write_text("emma\n")
    with pytest.raises(CheckpointError, match="it is .*words.txt, which this command reads"):
        AtomicCheckpointIO(inputs=(str(data),)).save_checkpoint({"a": 1}, data)
    assert data.read_text() == "emma\n"
