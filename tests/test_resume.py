"""What a command given a checkpoint may change: a resume applies and records a new optimizer
setting or penalty (and refuses a new split: tests/test_user_errors.py), a held-out command uses
the checkpoint's model and says how its split differs; a run that saved nothing leaves no folder.
"""

import logging
import shutil

import pytest
import torch
import yaml

from makemore_pl.cli import runs
from tests.conftest import QUIET, TINY_WORDS, checkpoint, exit_of, printed_nlls, run_cli, run_folder


@pytest.fixture(scope="module")
def trained_once(tmp_path_factory):
    """A folder with words.txt and a bigram run of 3 epochs, checkpoints every epoch."""
    folder = tmp_path_factory.mktemp("trained")
    (folder / "words.txt").write_text("\n".join(TINY_WORDS * 3) + "\n", encoding="utf-8")
    every = ["--last_checkpoint.every_n_epochs", "1", "--best_checkpoint.every_n_epochs", "1"]
    run_cli("fit", "--data.path", "words.txt", "--trainer.max_epochs", "3", *every, *QUIET,
            cwd=folder)  # fmt: skip
    return folder


@pytest.fixture
def trained(trained_once, tmp_path):
    """A copy of that folder for each test: a test's resume must not change another's run."""
    shutil.copytree(trained_once, tmp_path, dirs_exist_ok=True)
    return tmp_path


def last(folder) -> dict:
    return checkpoint(run_folder(folder) / "checkpoints" / "last.ckpt")


def resume(folder, *options: str) -> None:
    run_cli("fit", "--ckpt_path", "last", "--trainer.max_epochs", "5", *options, *QUIET, cwd=folder)


def test_a_new_lr_takes_effect_and_is_recorded(trained, caplog):
    caplog.set_level(logging.INFO)
    before = last(trained)["state_dict"]["model.W"]
    resume(trained, "--model.lr", "0")  # lr 0 freezes W: Adam's saved lr (0.5) would not
    after = last(trained)
    assert after["global_step"] == 5 and torch.equal(after["state_dict"]["model.W"], before)
    assert after["hyper_parameters"]["lr"] == 0.0
    assert after["optimizer_states"][0]["param_groups"][0]["lr"] == 0.0
    config = yaml.safe_load((run_folder(trained) / "config.yaml").read_text())
    assert config["model"]["init_args"]["lr"] == 0.0
    assert "resume: --model.lr 0.0 (was None): in effect, recorded in the run" in caplog.text


def test_another_optimizer_and_penalty_take_effect_and_are_recorded(trained, caplog):
    caplog.set_level(logging.INFO)
    resume(trained, "--model.optimizer", "sgd", "--model.l2", "0.5")
    after = last(trained)
    assert after["global_step"] == 5
    assert (after["hyper_parameters"]["optimizer"], after["hyper_parameters"]["l2"]) == ("sgd", 0.5)
    state = after["optimizer_states"][0]
    assert "exp_avg" not in str(state) and state["param_groups"][0]["lr"] == 50.0  # SGD's own
    assert "--model.l2 0.5 (was 0.001), --model.optimizer sgd (was adam): in effect" in caplog.text


def test_a_test_on_another_split_says_so_and_a_model_option_has_no_effect(trained, capsys, caplog):
    caplog.set_level(logging.INFO)
    args = ["--ckpt_path", "best", "--data.test_fraction", "0.3", "--model.l2", "5", *QUIET]
    run_cli("test", *args, cwd=trained)
    assert "test_nll" in printed_nlls(capsys.readouterr().out)
    said = caplog.text
    assert "note: --model.l2 5.0 (was 0.001): no effect, the model is the checkpoint's" in said
    assert (
        "note: test on a split other than the model's: --data.test_fraction 0.3 (was 0.1)" in said
    )


@pytest.mark.slow
def test_print_config_of_a_checkpoint_shows_what_the_command_will_use(tmp_path, capsys):
    (tmp_path / "words.txt").write_text("\n".join(TINY_WORDS * 3) + "\n", encoding="utf-8")
    fit = ["fit", "--data.path", "words.txt", "--data.context_size", "2", "--trainer.max_epochs"]
    run_cli(*fit, "1", *QUIET, cwd=tmp_path)
    capsys.readouterr()
    ckpt = str(run_folder(tmp_path) / "checkpoints" / "last.ckpt")
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    with pytest.raises(SystemExit):
        run_cli("test", "--ckpt_path", ckpt, "--print_config", cwd=moved)
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["data"]["context_size"] == 2
    assert config["data"]["path"] == str(tmp_path / "words.txt")  # found from the other folder


@pytest.mark.parametrize("ending", [["--trainer.max_time", "00:00:00:00"],
                                    ["--trainer.fast_dev_run", "true"]])  # fmt: skip
def test_a_fit_that_saves_nothing_leaves_no_run_to_hide_an_older_one(trained, caplog, ending):
    caplog.set_level(logging.INFO)
    best = runs.find_named_checkpoint("best", str(trained))
    run_cli("fit", "--data.path", "words.txt", *ending, *QUIET, cwd=trained)
    assert [p.name for p in (trained / "lightning_logs").glob("version_*")] == [
        run_folder(trained).name
    ]
    assert runs.find_named_checkpoint("best", str(trained)) == best
    assert "no checkpoint saved (" in caplog.text and "the run folder" in caplog.text


def test_a_run_it_cannot_write_to_is_tested_into_a_new_run(trained, monkeypatch, capsys):
    original = run_folder(trained)
    monkeypatch.setattr(runs, "writable", lambda folder: folder != original)
    run_cli("test", "--ckpt_path", "best", *QUIET, cwd=trained)
    assert "test_nll" in printed_nlls(capsys.readouterr().out)
    assert run_folder(trained, 1).name.startswith("version_1_test-")


def test_memory_that_cannot_be_allocated_is_one_line_and_leaves_nothing(trained, monkeypatch):
    from makemore_pl.lit.dense import BigramLitModule

    def out_of_memory(self, batch, batch_idx):
        raise RuntimeError(
            "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
            "memory: you tried to allocate 532021284 bytes. Error code 12"
        )

    monkeypatch.setattr(BigramLitModule, "training_step", out_of_memory)
    shutil.rmtree(trained / "lightning_logs")
    monkeypatch.chdir(trained)
    message = exit_of("fit", "--data.path", "words.txt", *QUIET)
    assert message.startswith("makemore_pl: error: out of memory ([enforce fail at alloc_cpu")
    assert message.endswith(
        "use a smaller --data.batch_size or --data.context_size, or a machine with more memory"
    )
    assert not (trained / "lightning_logs").exists()
