"""Run folders: claimed atomically, one trainer at a time, found again by best/last."""

import multiprocessing
import shutil
from pathlib import Path

import pytest
import torch

from makemore_pl.cli.main import main
from makemore_pl.cli.runs import (
    RANK_AND_SIZE,
    RUN_ENV,
    find_run_checkpoint,
    lock_run,
    new_run_folder,
    runs,
)
from tests.conftest import (
    FIT_WORDS,
    PREFIX,
    QUIET,
    TINY_WORDS,
    checkpoint,
    exit_of,
    run_cli,
    run_folder,
)


def claim(logs: str) -> str:
    return new_run_folder(Path(logs), "race").name


@pytest.mark.parametrize(
    "launch, claims",
    [
        ({}, True),
        ({"RANK": "0", "WORLD_SIZE": "2"}, True),  # torchrun's first process
        ({"RANK": "1", "WORLD_SIZE": "2"}, False),
        ({"SLURM_PROCID": "3", "SLURM_NTASKS": "8"}, False),
        ({"LOCAL_RANK": "1", "NODE_RANK": "0", "WORLD_SIZE": "2"}, False),
        ({"NODE_RANK": "1", "LOCAL_RANK": "0", "WORLD_SIZE": "4"}, False),
        ({"RANK": "3"}, True),  # left over in a shell: no launch of several processes
    ],
)
def test_only_the_first_process_of_a_launch_claims_a_run_folder(
    tmp_path, monkeypatch, launch, claims
):
    for rank, size in RANK_AND_SIZE:
        monkeypatch.delenv(rank, raising=False)
        monkeypatch.delenv(size, raising=False)
    monkeypatch.delenv(RUN_ENV, raising=False)
    for name, value in launch.items():
        monkeypatch.setenv(name, value)
    folder = new_run_folder(tmp_path / "lightning_logs", "trigram-adam")
    assert folder.is_dir() == claims
    assert folder.name == ("version_0_trigram-adam" if claims else "trigram-adam")


def test_runs_started_at_the_same_moment_get_different_folders(tmp_path):
    with multiprocessing.get_context("fork").Pool(4) as pool:
        names = pool.map(claim, [str(tmp_path / "lightning_logs")] * 16)
    assert len(set(names)) == 16
    assert sorted(int(name.split("_")[1]) for name in names) == list(range(16))


def test_best_and_last_skip_folders_that_are_not_runs(tmp_path):
    logs = tmp_path / "lightning_logs"
    for name in ("version_0_bigram", "version_0.bak", "version_x", "notes"):
        (logs / name / "checkpoints").mkdir(parents=True)
        (logs / name / "checkpoints" / "last.ckpt").write_bytes(b"")
    assert [run.name for run in runs(logs)] == ["version_0_bigram"]
    assert find_run_checkpoint(logs, "last") == logs / "version_0_bigram/checkpoints/last.ckpt"


def test_a_run_being_trained_is_not_resumed_by_a_second_fit(tiny_run, tmp_path):
    shutil.copytree(tiny_run, tmp_path, dirs_exist_ok=True)
    held = lock_run(run_folder(tmp_path))  # as the process training it holds it
    try:
        with pytest.raises(SystemExit, match="is being trained by another process"):
            run_cli("fit", "--ckpt_path", "last", "--trainer.max_epochs", "4", cwd=tmp_path)
    finally:
        held.close()


def test_without_a_logger_a_resume_finds_the_checkpoints_of_its_run(tmp_path):
    (tmp_path / "words.txt").write_text("\n".join(TINY_WORDS) + "\n", encoding="utf-8")
    fit = ["fit", "--data.path", "words.txt", "--trainer.logger", "false", *QUIET]
    run_cli(*fit, "--trainer.max_epochs", "2", cwd=tmp_path)
    run_cli(*fit, "--trainer.max_epochs", "4", "--ckpt_path", "last", cwd=tmp_path)
    assert len(runs(tmp_path / "lightning_logs")) == 1  # continued, not a second run
    assert checkpoint(run_folder(tmp_path) / "checkpoints" / "last.ckpt")["global_step"] == 4
    assert not (tmp_path / "checkpoints").exists()  # nothing written beside the runs


@pytest.mark.parametrize("seed", ["-1", "4294967296"])
def test_a_seed_numpy_cannot_take_is_one_line(tmp_path, seed):
    (tmp_path / "words.txt").write_text("\n".join(TINY_WORDS) + "\n", encoding="utf-8")
    with pytest.raises(
        SystemExit, match=f"--seed_everything must be from 0 to 4294967295, got {seed}"
    ):
        run_cli("fit", "--data.path", "words.txt", "--seed_everything", seed, cwd=tmp_path)
    assert not (tmp_path / "lightning_logs").exists()


@pytest.mark.slow
def test_a_run_killed_before_its_first_checkpoint_starts_again_with_its_settings(cwd):
    main([*FIT_WORDS, "--data.context_size", "2", *QUIET])
    for ckpt in (cwd / "lightning_logs").glob("version_0*/checkpoints/*.ckpt"):
        ckpt.unlink()  # as if killed before its first save
    main(["fit", "--ckpt_path", "last", "--trainer.max_epochs", "1", *QUIET])
    again = run_folder(cwd, 1)
    assert again.name.endswith("trigram-adam")  # not a default bigram on names.txt
    settings = torch.load(again / "checkpoints" / "last.ckpt", weights_only=True)
    assert settings["datamodule_hyper_parameters"]["path"] == "words.txt"
    assert settings["hyper_parameters"]["context_size"] == 2


def test_resuming_a_run_another_process_is_starting_says_so(cwd):
    from makemore_pl.cli.runs import lock_run

    main([*FIT_WORDS, *QUIET])
    run = run_folder(cwd, 0)
    for ckpt in (run / "checkpoints").glob("*.ckpt"):
        ckpt.unlink()
    lock = lock_run(run)  # held as a fit in another process holds it
    try:
        message = exit_of("fit", "--ckpt_path", "last", *QUIET)
    finally:
        lock.close()
    assert message == (
        f"{PREFIX}--ckpt_path last: the newest run 'lightning_logs/{run.name}' is being trained "
        "by another process and has no checkpoint yet; wait for it to end or stop it"
    )
    assert not list((cwd / "lightning_logs").glob("version_1*"))


def test_config_yaml_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
    """A kill while config.yaml is written leaves none (a resume then starts afresh), never half
    of one (which a resume would refuse)."""
    from types import SimpleNamespace

    from jsonargparse import Namespace
    from lightning.pytorch.cli import LightningArgumentParser

    from makemore_pl.cli.training import SaveFitConfig

    trainer = SimpleNamespace(
        log_dir=str(tmp_path), is_global_zero=True, strategy=SimpleNamespace(broadcast=lambda x: x)
    )
    parser = LightningArgumentParser()
    parser.add_argument("--lr", type=float, default=0.5)

    def killed_mid_write(self, config, path, **kwargs):
        Path(path).write_text("lr: 0.")
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(LightningArgumentParser, "save", killed_mid_write)
        with pytest.raises(KeyboardInterrupt):
            SaveFitConfig(parser, Namespace(lr=0.5), overwrite=True).setup(trainer, None, "fit")
    assert not (tmp_path / "config.yaml").exists()

    SaveFitConfig(parser, Namespace(lr=0.25), overwrite=True).setup(trainer, None, "fit")
    assert (tmp_path / "config.yaml").read_text() == "lr: 0.25\n"
