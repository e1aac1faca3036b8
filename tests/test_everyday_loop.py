"""The everyday loop: fit, stop, resume, test, predict, sample, as a user lives it."""

import hashlib
import re
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch

from makemore_pl import Vocabulary, build_ngrams
from tests.conftest import QUIET, TINY_WORDS, checkpoint, events, makemore, run_cli, run_folder

TRIGRAM = ["--data.path", "words.txt", "--data.context_size", "2", "--data.val_fraction", "0.3"]


def tree_digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def words_folder(tmp_path) -> Path:
    (tmp_path / "words.txt").write_text("\n".join(TINY_WORDS * 3) + "\n", encoding="utf-8")
    return tmp_path


def fit_in_process(folder: Path, *args: str) -> None:
    run_cli("fit", *TRIGRAM, *QUIET, *args, cwd=folder)


def test_a_complete_run_says_so_and_changes_nothing(tiny_run, tmp_path, capsys):
    shutil.copytree(tiny_run, tmp_path, dirs_exist_ok=True)
    before = tree_digest(tmp_path)
    run_cli("fit", "--ckpt_path", "last", *QUIET, cwd=tmp_path)
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert "the run is complete (2 epochs, step 2, max_epochs 2)" in message
    assert "--trainer.max_epochs 4" in message  # how to train further
    assert tree_digest(tmp_path) == before


@pytest.mark.slow
def test_resume_takes_the_runs_own_settings_and_options_still_win(words_folder):
    fit_in_process(words_folder, "--trainer.max_epochs", "3", "--model.l2", "0.05")
    run_cli("fit", "--ckpt_path", "last", "--trainer.max_epochs", "5", *QUIET, cwd=words_folder)
    run = run_folder(words_folder)
    last = checkpoint(run / "checkpoints" / "last.ckpt")
    assert last["global_step"] == 5
    assert last["hyper_parameters"]["l2"] == 0.05 and last["hyper_parameters"]["context_size"] == 2
    config = (run / "config.yaml").read_text()
    assert "max_epochs: 5" in config and "l2: 0.05" in config
    assert not list(words_folder.glob("lightning_logs/version_1*"))  # resumed in place


@pytest.mark.slow
def test_one_best_and_one_last_across_resumes(words_folder, recwarn):
    every = ["--best_checkpoint.every_n_epochs", "1", "--last_checkpoint.every_n_epochs", "1"]
    fit_in_process(words_folder, "--trainer.max_epochs", "3", "--model.lr", "2", *every)
    for epochs in ("6", "9"):
        run_cli(
            "fit", "--ckpt_path", "last", "--trainer.max_epochs", epochs, *QUIET, cwd=words_folder
        )
    run = run_folder(words_folder)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    logged = {e.step: e.value for e in events(run).Scalars("curves/val_nll")}
    best = checkpoint(run / "checkpoints" / "best.ckpt")
    best_state = next(v for k, v in best["callbacks"].items() if "best" in k or "val_nll" in k)
    assert float(best_state["best_model_score"]) == pytest.approx(min(logged.values()), abs=1e-6)
    assert not [w for w in recwarn if "dirpath has changed" in str(w.message)]


def test_predict_writes_the_models_own_log_probabilities(tiny_run, tmp_path, caplog):
    shutil.copytree(tiny_run, tmp_path, dirs_exist_ok=True)
    names = ["emma", "ava", "mia", "isabella"]
    (tmp_path / "score.txt").write_text("\n".join(names) + "\n", encoding="utf-8")
    run_cli(
        "predict", "--ckpt_path", "last", "--data.predict_path", "score.txt", *QUIET, cwd=tmp_path
    )
    run = run_folder(tmp_path)
    assert f"predictions: {run / 'predictions.tsv'} (4 names)" in caplog.text
    rows = [line.split("\t") for line in (run / "predictions.tsv").read_text().splitlines()]
    assert rows[0] == ["name", "tokens", "nll", "nll_per_token"]
    ckpt = checkpoint(run / "checkpoints" / "last.ckpt")
    W, vocab = ckpt["state_dict"]["model.W"].double(), Vocabulary(ckpt["hyper_parameters"]["chars"])
    log_p = torch.log_softmax(W, dim=1)  # bigram: row = previous character
    for (name, tokens, nll, per_token), word in zip(rows[1:], names, strict=True):
        x, y = build_ngrams([word], vocab, 1)
        expected = -log_p[x[:, 0], y].sum().item()
        assert name == word and int(tokens) == len(word) + 1
        assert float(nll) == pytest.approx(expected, abs=1e-5)
        assert float(per_token) == pytest.approx(expected / (len(word) + 1), abs=1e-5)


def test_predict_names_the_name_it_cannot_score(tiny_run, tmp_path):
    shutil.copytree(tiny_run, tmp_path, dirs_exist_ok=True)
    (tmp_path / "score.txt").write_text("emma\nzoë\n", encoding="utf-8")
    with pytest.raises(SystemExit, match=r"score.txt, name 2: 'zoë' has characters"):
        run_cli("predict", "--ckpt_path", "last", "--data.predict_path", "score.txt", cwd=tmp_path)


def test_test_logs_into_the_run_at_the_checkpoint_step(tiny_run, tmp_path):
    shutil.copytree(tiny_run, tmp_path, dirs_exist_ok=True)
    config = (run_folder(tmp_path) / "config.yaml").read_text()
    run_cli("test", "--ckpt_path", "last", *QUIET, cwd=tmp_path)
    run = run_folder(tmp_path)
    assert (run / "config.yaml").read_text() == config  # still the training run's
    assert [p.name for p in (tmp_path / "lightning_logs").glob("version_*")] == [run.name]
    logged = events(run)
    assert [e.step for e in logged.Scalars("held_out/test_nll")] == [2]  # the checkpoint's step
    assert "epoch" not in logged.Tags()["scalars"]


@pytest.mark.slow
def test_fit_and_sample_print_no_dependency_chatter(words_folder):
    fit = makemore("fit", *TRIGRAM, "--trainer.max_epochs", "2", cwd=words_folder)
    sample = ["--ckpt_path", "last", "--num_samples", "3", "--data.path", "words.txt"]
    err = fit.stderr + makemore("sample", *sample, cwd=words_folder).stderr
    ours = [line for line in err.splitlines() if line.startswith("warning: best val_nll")]
    assert len(ours) == 1 and "still falling: train longer" in ours[0]  # 2 epochs: our own check
    err = err.replace(ours[0], "")
    for chatter in ("GPU available", "TPU available", "HPU available", "Tip", "Warning", "warn"):
        assert chatter not in err
    assert "model: BigramLitModule, W 225×15 (3,375 parameters)" in err  # 15 = 14 letters + "."
    summary = err[err.index("\nrun: ") :]
    assert "best val_nll: " in summary and "test --ckpt_path best" in summary


@pytest.mark.slow
def test_a_checkpoint_moved_out_of_its_run_is_tested_without_warnings(words_folder):
    """A shared checkpoint has no run around it; its callbacks' state is of no use to `test`."""
    fit_in_process(words_folder, "--trainer.max_epochs", "1")
    shutil.copy(run_folder(words_folder) / "checkpoints" / "last.ckpt", words_folder / "a.ckpt")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_cli("test", "--ckpt_path", "a.ckpt", *TRIGRAM, *QUIET, cwd=words_folder)
    assert not [w for w in caught if "dirpath" in str(w.message)]


TRAINING = ("fit", "validate", "test", "predict")


def test_help_names_the_program_and_every_command(capsys):
    run_cli("--help", cwd=Path("."))
    out = capsys.readouterr().out
    assert out.startswith("usage: makemore COMMAND")
    assert max(len(line) for line in out.splitlines()) <= 80  # as an 80-column terminal shows it
    listing = out.split("commands:\n")[1].split("\n\n")[0]
    summaries = dict(entry.split(None, 1) for entry in re.split(r"\n(?=  \S)", listing))
    assert set(summaries) == {*TRAINING, "sample", "baseline", "sweep", "suffix_sweep"}
    for summary in summaries.values():
        assert " ".join(summary.split()).endswith(".")  # a whole sentence


@pytest.mark.parametrize("command", ["sample", "baseline", "sweep"])
def test_plain_commands_list_only_their_own_options(command, capsys):
    with pytest.raises(SystemExit):
        run_cli(command, "--help", cwd=Path("."))
    out = capsys.readouterr().out
    assert "--model." not in out and "--data.path" in out
    # the Trainer's options a plain command honours, spelled as for fit; none of the others
    shared = {"sample": {"accelerator", "default_root_dir"}, "sweep": {"default_root_dir"}}
    listed = set(re.findall(r"--trainer\.(\w+)", out))
    assert listed == shared.get(command, set())


# --- real processes, real signals -------------------------------------------------------------

LONG = [*TRIGRAM, *QUIET, "--trainer.max_epochs", "300", "--model.lr", "0.05"]


def saved_step(folder: Path) -> int:
    saved = list(folder.glob("lightning_logs/version_*/checkpoints/last.ckpt"))
    return checkpoint(saved[0])["global_step"] if saved else -1


def interrupted_fit(folder: Path, sig: signal.Signals, *args: str) -> subprocess.CompletedProcess:
    """`fit ARGS` in a real process, sent `sig` once it has saved a new last.ckpt."""
    start = saved_step(folder)
    proc = subprocess.Popen(
        [sys.executable, "-m", "makemore_pl", "fit", *args],
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while saved_step(folder) <= start:
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.05)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("uninterrupted")
    (folder / "words.txt").write_text("\n".join(TINY_WORDS * 3) + "\n", encoding="utf-8")
    run_cli("fit", *LONG, cwd=folder)
    return checkpoint(run_folder(folder) / "checkpoints" / "last.ckpt")


def assert_stopped(proc: subprocess.CompletedProcess, sig: signal.Signals, status: int) -> None:
    """Exit status 128 + the signal, and the last two lines say what was saved and what next."""
    assert proc.returncode == status, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert lines[-2].startswith(f"stopped by {sig.name}; saved ") and lines[-2].endswith(
        "last.ckpt"
    )
    assert lines[-1] == "resume with: python -m makemore_pl fit --ckpt_path last"


@pytest.mark.slow
def test_a_stopped_fit_saves_and_a_bare_resume_ends_where_an_uninterrupted_one_does(
    words_folder, uninterrupted
):
    """Ctrl-C stops the fit, SIGTERM stops its resume; a bare resume then ends where a run
    that was never interrupted ends."""
    stopped = interrupted_fit(words_folder, signal.SIGINT, *LONG)
    assert_stopped(stopped, signal.SIGINT, 130)
    last = run_folder(words_folder) / "checkpoints" / "last.ckpt"
    first_stop = checkpoint(last)["global_step"]
    assert first_stop < uninterrupted["global_step"]
    again = interrupted_fit(words_folder, signal.SIGTERM, "--ckpt_path", "last")
    assert_stopped(again, signal.SIGTERM, 143)
    assert first_stop < checkpoint(last)["global_step"] < uninterrupted["global_step"]
    run_cli("fit", "--ckpt_path", "last", cwd=words_folder)  # the bare resume
    resumed = checkpoint(last)
    assert resumed["global_step"] == uninterrupted["global_step"]
    W, expected = resumed["state_dict"]["model.W"], uninterrupted["state_dict"]["model.W"]
    assert torch.allclose(W, expected, atol=1e-6)
    assert sorted(p.name for p in last.parent.iterdir()) == ["best.ckpt", "last.ckpt"]
