"""The console as users read it: the losses on an 80-column bar, short log files, a fit that
says when it is worse than counting, a summary that says what to run next, and one bounded error
line whatever happens to the output."""

import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
from tqdm import tqdm

from makemore_pl.cli.console import fit_check
from makemore_pl.cli.main import main
from makemore_pl.lit.progress import ReadableProgressBar
from tests.conftest import (
    FIT_WORDS,
    PREFIX,
    QUIET,
    TINY_WORDS,
    events,
    printed_nlls,
    run_cli,
    run_folder,
)


def test_the_bar_shows_the_losses_within_80_columns():
    postfix = "train_loss=2.4595, val_nll=2.4504"
    # a bar over 3000 full-batch epochs, and over the minibatches of names.txt at 64
    for total, form in ((3000, "EPOCHS_FORMAT"), (2852, "BAR_FORMAT")):
        line = tqdm.format_meter(
            591, total, 12.5, ncols=80, prefix="Epoch 3/10", postfix=postfix,
            bar_format=getattr(ReadableProgressBar, form),
        )  # fmt: skip
        head = "Epoch 591/3000" if total == 3000 else "Epoch 3/10"
        assert line.startswith(f"{head}, train_loss=2.4595, val_nll=2.4504 |")
        assert len(line) <= 80 and re.search(r"\[00:12<00:\d\d\]$", line)  # elapsed<remaining


@pytest.mark.slow
def test_a_fit_to_a_file_writes_one_line_per_tenth_of_the_epochs(tmp_path: Path, capsys):
    (tmp_path / "words.txt").write_text("\n".join(TINY_WORDS * 3) + "\n", encoding="utf-8")
    args = ["--data.path", "words.txt", "--trainer.max_epochs", "50"]
    run_cli("fit", *args, "--trainer.enable_model_summary", "false", cwd=tmp_path)
    out = capsys.readouterr().out  # not a terminal: plain lines, no bar
    lines = [line for line in out.splitlines() if line.startswith("Epoch")]
    assert [line.split(":")[0] for line in lines] == [f"Epoch {e}/50" for e in range(5, 51, 5)]
    assert all("train_loss=" in line and "val_nll=" in line for line in lines)
    assert "\r" not in out and "it/s" not in out
    assert len(out.encode()) < 2_000


def test_the_run_name_is_printed_once_before_training(tmp_path: Path, capsys, caplog):
    (tmp_path / "words.txt").write_text("\n".join(TINY_WORDS) + "\n", encoding="utf-8")
    run_cli("fit", "--data.path", "words.txt", "--trainer.max_epochs", "2", cwd=tmp_path)
    assert "run: version_0_bigram-adam\nmodel: BigramLitModule" in caplog.text
    assert "version_0_bigram-adam" not in capsys.readouterr().out  # not in every progress line
    # 2 epochs of a bigram: worse than counting because it stopped early, and it says so
    assert "val_nll was still falling: train longer" in caplog.text


def test_a_fit_worse_than_counting_says_so_with_the_way_out():
    sweep = "makemore sweep --data.path n.txt --data.context_size 2"
    line = fit_check(3.78, 2.94, 27, minibatch=False, sweep=sweep)
    assert line.startswith("warning: best val_nll 3.7800 is worse than uniform guessing")
    assert f"uniform ln 27 = {math.log(27):.4f}" in line and sweep in line
    line = fit_check(2.69, 2.45, 27, minibatch=True, sweep=sweep, improving=True)
    assert "worse than the counting model" in line and "--model.lr" in line
    # the bigram config ends 1e-4 above the counting model: that is learnt, not a failure
    assert fit_check(2.45054, 2.45044, 27, minibatch=False, sweep=sweep) is None


@pytest.mark.slow
def test_an_overfit_trigram_prints_the_warning(tmp_path: Path, caplog):
    words = [w + s for w in TINY_WORDS for s in ("", "a", "lee", "ine")]
    (tmp_path / "words.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    args = ["--data.path", "words.txt", "--data.context_size", "2", "--data.val_fraction", "0.3"]
    over = ["--model.l2", "0", "--model.lr", "5", "--trainer.max_epochs", "30"]
    run_cli("fit", *args, *over, "--trainer.enable_progress_bar", "false", cwd=tmp_path)
    assert "warning: best val_nll" in caplog.text
    assert "choose it on val with `makemore sweep --data.path words.txt" in caplog.text


def test_fit_help_lists_the_default_models_options(capsys):
    with pytest.raises(SystemExit):
        run_cli("fit", "--help", cwd=Path.cwd())
    out = capsys.readouterr().out
    tail = out[out.index("the default model's options") :]
    assert all(f"--model.{name} " in tail for name in ("lr", "l2", "optimizer"))
    with pytest.raises(SystemExit):
        run_cli("fit", "--model.help", "BigramLitModule", cwd=Path.cwd())
    usage = capsys.readouterr().out.splitlines()[0]
    assert usage.startswith("usage: ") and "__main__" not in usage and " fit " in usage


@pytest.mark.slow
def test_tensorboard_and_the_summary_as_read(tmp_path: Path, capsys, caplog):
    (tmp_path / "words.txt").write_text("\n".join(TINY_WORDS * 3) + "\n", encoding="utf-8")
    every = ["--snapshots.every_n_epochs", "2", "--best_checkpoint.every_n_epochs", "10"]
    args = ["--data.path", "words.txt", "--trainer.max_epochs", "4", *every, *QUIET]
    run_cli("fit", *args, cwd=tmp_path)
    run = run_folder(tmp_path)
    logged = events(run)
    assert [e.step for e in logged.Images("next_char_probs")] == [2, 4]  # the final one once
    # best.ckpt is written at the end, after epoch 4 (counted from 1, as the bar counts)
    assert re.search(r"best val_nll: \d\.\d{5} \(epoch 4\)", caplog.text)
    capsys.readouterr()
    run_cli("validate", "--ckpt_path", "best", *QUIET, cwd=tmp_path)
    assert list(printed_nlls(capsys.readouterr().out)) == ["val_nll"]
    # one per epoch, no placeholder with the settings; none of validate
    assert len(events(run).Scalars("hp_metric")) == 4


@pytest.mark.slow
def test_a_full_batch_lbfgs_run_draws_a_curve(tmp_path: Path):
    (tmp_path / "words.txt").write_text("\n".join(TINY_WORDS * 3) + "\n", encoding="utf-8")
    args = ["--data.path", "words.txt", "--model", "SuffixLitModule", "--trainer.max_epochs", "2"]
    run_cli("fit", *args, *QUIET, cwd=tmp_path)
    logged = events(run_folder(tmp_path))
    curve = [e.value for e in logged.Scalars("curves/lbfgs_loss")]
    assert len(logged.Scalars("curves/train_loss")) == 2 and len(curve) > 5  # 2 steps, many points
    assert [e.step for e in logged.Scalars("curves/lbfgs_loss")] == list(range(1, len(curve) + 1))
    assert curve[-1] < curve[0]


def test_the_fit_summary_names_only_files_that_are_there(tmp_path):
    from types import SimpleNamespace

    from makemore_pl.cli.console import fit_summary

    run = tmp_path / "lightning_logs" / "version_0_bigram"
    (run / "checkpoints").mkdir(parents=True)
    best = SimpleNamespace(best_model_score=None, best_model_path="")
    trainer = SimpleNamespace(current_epoch=0, global_step=0, max_epochs=None, loggers=[])
    again = lambda command, ckpt: f"makemore {command} --ckpt_path {ckpt}"  # noqa: E731
    summary = fit_summary(run, best, trainer, again)
    assert "last:" not in summary and "--ckpt_path" not in summary
    (run / "checkpoints" / "last.ckpt").write_bytes(b"")
    summary = fit_summary(run, best, trainer, again)
    assert "makemore test --ckpt_path last" in summary and "best" not in summary


def test_next_steps_under_a_root_folder_put_the_option_after_the_command(cwd, caplog):
    import logging

    caplog.set_level(logging.INFO)
    main([*FIT_WORDS, "--trainer.default_root_dir", "elsewhere", *QUIET])
    printed = caplog.text
    assert "makemore test --trainer.default_root_dir elsewhere --ckpt_path best" in printed
    assert "makemore sample --trainer.default_root_dir elsewhere --ckpt_path best" in printed


@pytest.mark.slow
def test_an_error_message_is_bounded():
    from makemore_pl.cli.main import error_line

    line = error_line("x" * 50_000_000)
    assert len(line) < 2200 and "[… 49,998,000 characters cut …]" in line


@pytest.mark.slow
@pytest.mark.parametrize(
    "command",
    ["baseline --data.path words.txt", "--help", "sample --help", "sample --ckpt_path model.ckpt"],
)
@pytest.mark.parametrize("output", [">&-", ">/dev/full"])
def test_a_closed_or_full_output_is_one_line_and_a_failure(cwd, command, output):
    line = f"exec {sys.executable} -m makemore_pl {command} {output}"
    proc = subprocess.run(["sh", "-c", line], cwd=cwd, text=True, stderr=subprocess.PIPE)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(PREFIX), proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_deleted_current_folder_fails_before_torch_is_imported(tmp_path):
    # in-process, torch is already imported: its MKL's fatal error needs a fresh process
    line = f"mkdir gone && cd gone && rmdir ../gone && exec {sys.executable} -m makemore_pl fit"
    proc = subprocess.run(["sh", "-c", line], cwd=tmp_path, text=True, capture_output=True)
    gone = (
        "the current folder no longer exists (it was deleted or moved); cd to a folder that "
        "exists and run the command again"
    )
    assert (proc.returncode, proc.stderr) == (1, f"{PREFIX}{gone}\n")


def test_a_full_batch_bar_counts_epochs_with_the_time_left_and_no_validation_bar(tmp_path, capsys):
    import lightning as L

    from makemore_pl import BigramLitModule, NamesDataModule

    (tmp_path / "words.txt").write_text("\n".join(TINY_WORDS) + "\n", encoding="utf-8")
    trainer = L.Trainer(
        max_epochs=6, callbacks=[ReadableProgressBar()], logger=False, accelerator="cpu",
        enable_checkpointing=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(BigramLitModule(), NamesDataModule(str(tmp_path / "words.txt")))
    out = capsys.readouterr().out
    shown = [part for part in out.split("\r") if part.strip()]  # each redraw of the bar
    losses = r"train_loss=\d\.\d{4}, val_nll=\d\.\d{4}"
    assert re.fullmatch(rf"Epoch 6/6, {losses} \|.*\| \[\d\d:\d\d<00:00\]\n?", shown[-1])
    epochs = [int(re.match(r"Epoch (\d+)/6", part)[1]) for part in shown]
    assert epochs == sorted(epochs) and epochs[0] <= 1
    assert "Validation" not in out and "Sanity" not in out


def on_a_terminal(args: list[str], cwd: Path, interrupt_at: str | None = None) -> list[str]:
    """The lines an 80 x 24 terminal shows of `python -m makemore_pl ARGS` (stdout and stderr),
    with SIGINT sent once `interrupt_at` is shown."""
    import fcntl
    import os
    import pty
    import select
    import signal
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    command = [sys.executable, "-m", "makemore_pl", *args]
    proc = subprocess.Popen(command, cwd=cwd, stdin=follower, stdout=follower, stderr=follower)
    os.close(follower)
    raw = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 300)
        try:
            chunk = os.read(leader, 65536) if ready else b""
        except OSError:  # EIO: the command ended and closed the terminal
            chunk = b""
        if not chunk:
            break
        raw += chunk
        if interrupt_at is not None and interrupt_at.encode() in raw:
            proc.send_signal(signal.SIGINT)
            interrupt_at = None
    proc.wait(timeout=300)
    os.close(leader)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", raw.decode("utf-8", "replace"))
    lines = []
    for line in text.split("\n"):  # each redraw overwrites the line from its start
        shown = ""
        for part in line.split("\r"):
            shown = part + shown[len(part) :]
        lines.append(shown.rstrip())
    return lines


@pytest.mark.slow
def test_on_a_terminal_the_bar_shows_epochs_and_every_notice_is_a_whole_line(tmp_path):
    (tmp_path / "words.txt").write_text("\n".join(TINY_WORDS * 3) + "\n", encoding="utf-8")
    fit = ["fit", "--data.path", "words.txt", "--trainer.max_epochs", "100000"]
    lines = on_a_terminal(fit, tmp_path, interrupt_at="Epoch 5/100000")
    bars = [line for line in lines if line.startswith("Epoch ")]
    assert bars and all(len(line) <= 80 for line in bars)
    bar = r"Epoch \d+/100000, train_loss=.*\| \[\d\d:\d\d<[\d:]+\]"  # time spent < time left
    assert all(re.fullmatch(bar, line) for line in bars)
    notice = "SIGINT: stopping at the end of this epoch and saving last.ckpt"
    assert notice in lines and "(send SIGINT again to stop at once, without saving)" in lines
    assert not any("Validation" in line for line in lines)
    lines = on_a_terminal(["test", "--ckpt_path", "last"], tmp_path)
    (named,) = [line for line in lines if "counting_test_nll:" in line]  # a line of its own
    assert re.fullmatch(r"counting_test_nll: add-k, k = [\d.]+, c = 1, the best on val", named)


def test_a_run_stopped_by_a_callback_says_which_and_after_which_epoch(tmp_path, caplog):
    (tmp_path / "words.txt").write_text("\n".join(TINY_WORDS) + "\n", encoding="utf-8")
    early = ["--trainer.callbacks+=EarlyStopping", "--trainer.callbacks.monitor=val_nll"]
    early += ["--trainer.callbacks.patience=1", "--model.lr", "0"]  # val_nll never improves
    run_cli("fit", "--data.path", "words.txt", "--trainer.max_epochs", "50", *early, cwd=tmp_path)
    summary = next(message for message in caplog.messages if "trained:" in message)
    stopped = "stopped by EarlyStopping (val_nll) after epoch 2 of 50"
    assert f"trained: 2 epochs, step 2\n{stopped}" in summary
