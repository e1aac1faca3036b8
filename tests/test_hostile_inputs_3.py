"""Round 3 of hostile inputs: config bombs through any option or nested file, outputs that would
overwrite their own inputs or a device, class paths that would import code, checkpoints that
load wrong numbers, options out of range. Each ends in one line with nothing written, or works.

ROWS is docs/reliability.md's round-3 table: `python -m tests.test_hostile_inputs_3` writes it
there and a test checks that the two agree.
"""

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from makemore_pl.cli.main import main
from tests.conftest import (
    QUIET,
    RELIABILITY_DOC,
    TINY_WORDS,
    documented_table,
    markdown_code,
    run_folder,
)

DOC = RELIABILITY_DOC
PREFIX = "makemore_pl: error: "
TABLE_START = "| round-3 case | command | what you see |"


def bomb_lines() -> list[str]:
    """Ten levels of ten aliases each: 10**10 values once expanded, from under 500 bytes."""
    lines = ['a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for level in "bcdefghij":
        lines.append(f"{level}: &{level} [{', '.join([f'*{chr(ord(level) - 1)}'] * 10)}]")
    return lines


def indented(lines: list[str], prefix: str) -> str:
    return "\n".join(prefix + line for line in lines)


# a module in the current folder whose import leaves a file behind
PAYLOAD = 'open("code_ran.txt", "w").write("ran")\n\nclass Anything:\n    pass\n'


def write_inputs(folder: Path, checkpoint: Path) -> None:
    """words.txt, model.ckpt and the hostile files the rows name."""
    (folder / "words.txt").write_text("\n".join(TINY_WORDS) + "\n", encoding="utf-8")
    shutil.copy(checkpoint, folder / "model.ckpt")
    bomb = bomb_lines()
    (folder / "bomb.yaml").write_text("\n".join(bomb) + "\n")
    model = "class_path: makemore_pl.lit.dense.BigramLitModule\ninit_args:\n  lr: 0.1\n  junk:\n"
    (folder / "model_bomb.yaml").write_text(model + indented(bomb, "    ") + "\n")
    (folder / "trainer_bomb.yaml").write_text("max_epochs: 1\nplugins:\n" + indented(bomb, "  "))
    (folder / "outer.yaml").write_text("model: model_bomb.yaml\n")
    (folder / "outer_trainer.yaml").write_text("trainer: trainer_bomb.yaml\n")
    (folder / "outer_class.yaml").write_text("model: model_class.yaml\n")
    (folder / "model_class.yaml").write_text("class_path: payload_mod.Anything\n")
    (folder / "deep.yaml").write_text("a: " + "[" * 200 + "]" * 200 + "\n")
    (folder / "big.yaml").write_text("# padding\n" * 200_000)
    os.symlink("loop.ckpt", folder / "loop.ckpt")
    (folder / "two.txt").write_text("emma\nava\n", encoding="utf-8")
    (folder / "names2.txt").write_text("zoe\nmia\n", encoding="utf-8")
    words = "\n".join(TINY_WORDS)
    for encoding in ("utf-16-le", "utf-16-be"):
        (folder / f"{encoding}.txt").write_text(words, encoding=encoding)
    (folder / "utf-16.txt").write_bytes(b"\xff\xfe" + words.encode("utf-16-le"))  # with a BOM
    os.mkfifo(folder / "pipe")
    write_bad_checkpoints(folder)
    (folder / "payload_mod.py").write_text(PAYLOAD)
    (folder / "model_payload.yaml").write_text("model: payload_mod.Anything\n")
    callback = "trainer:\n  callbacks:\n    - class_path: payload_mod.Anything\n"
    (folder / "callback_payload.yaml").write_text(callback)
    (folder / "zen.yaml").write_text("model:\n  class_path: this.Nothing\n")


def write_bad_checkpoints(folder: Path) -> None:
    """flipped.ckpt: model.ckpt with one exponent bit of W flipped (its CRC no longer fits);
    huge.ckpt: a W entry of 3.9e37 saved whole (its CRC fits)."""
    model = torch.load(folder / "model.ckpt", weights_only=True)
    weights = model["state_dict"]["model.W"]
    data = bytearray((folder / "model.ckpt").read_bytes())
    at = data.find(weights.numpy().tobytes())
    data[at + 3] ^= 0x40  # float32, little-endian: the top exponent bit, x 2**128
    (folder / "flipped.ckpt").write_bytes(bytes(data))
    model["state_dict"]["model.W"] = weights.clone()
    model["state_dict"]["model.W"][0, 0] = 3.9e37
    torch.save(model, folder / "huge.ckpt")
    model["state_dict"]["model.W"] = weights
    deep: dict = {}
    for _ in range(150):
        deep = {"a": deep}
    torch.save(
        {**model, "hyper_parameters": {**model["hyper_parameters"], "l2": deep}},
        folder / "deep.ckpt",
    )


# checkpoints with one saved setting replaced, (section, setting, value): written by the rows
# that name them
BAD_SETTINGS = {
    "long.ckpt": ("hyper_parameters", "optimizer", "x" * 3_000_000),
    "context_2_70.ckpt": ("hyper_parameters", "context_size", 2**70),
    "vocab_10mb.ckpt": ("hyper_parameters", "vocab_size", "x" * 10_000_000),
    "l2_nan.ckpt": ("hyper_parameters", "l2", float("nan")),
    "l2_negative.ckpt": ("hyper_parameters", "l2", -1.0),
    "val_nan.ckpt": ("datamodule_hyper_parameters", "val_fraction", float("nan")),
    "val_5.ckpt": ("datamodule_hyper_parameters", "val_fraction", 5.0),
}


def write_bad_settings(folder: Path, names: list[str]) -> None:
    """The BAD_SETTINGS checkpoints among `names`, made from model.ckpt."""
    model = torch.load(folder / "model.ckpt", weights_only=True)
    for name in set(names) & set(BAD_SETTINGS):
        section, setting, value = BAD_SETTINGS[name]
        torch.save({**model, section: {**model[section], setting: value}}, folder / name)


@pytest.fixture
def cwd(tiny_run, tmp_path, monkeypatch) -> Path:
    """A folder with the inputs, as the current folder."""
    last = next((tiny_run / "lightning_logs").glob("version_0*")) / "checkpoints" / "last.ckpt"
    write_inputs(tmp_path, last)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))  # as `python -m` has the current folder
    monkeypatch.setattr(sys, "argv", ["makemore"])  # LightningCLI warns when both are given
    return tmp_path


def exit_of(*args: str) -> str | int:
    """What the CLI exits with: the error message, or the exit status."""
    with pytest.raises(SystemExit) as exited:
        main([*args])
    return exited.value.code


FIT = ["fit", "--data.path", "words.txt", "--trainer.max_epochs", "1"]
ALIASES = "its YAML aliases expand to more than 100,000 values, more than a config can hold; "
ALIASES += "write the values out instead of aliasing them"
REFUSED = "is not one of makemore_pl's models or callbacks, nor Lightning's callbacks, loggers or "
REFUSED += "plugins; refused without importing it"
TEST = ["test", "--data.path", "words.txt"]
PREDICT = ["predict", "--ckpt_path", "model.ckpt", "--data.path", "words.txt"]
SWEEP = ["sweep", "--data.path", "words.txt", "--models", "counting"]
X40 = "x" * 40
KEPT = "so it is kept; remove it or choose another name"
NOR_YAML = "YAML text of options; give a file's path, or text such as 'trainer: {max_epochs: 5}'"
INLINE_BOMB = "{" + ", ".join(bomb_lines()) + "}"
INLINE_MODEL_BOMB = (
    '{"class_path": "makemore_pl.lit.dense.BigramLitModule", "init_args": {"junk": '
    + INLINE_BOMB
    + "}}"
)
INLINE_TRAINER_BOMB = "max_epochs: 1\nplugins:\n" + indented(bomb_lines(), "  ")

# a row's command ending in one of these runs with that standard output
# (line-buffered: each line fails as it is written, not at the exit's flush)
REDIRECTS = {">/dev/full": lambda: open("/dev/full", "w", buffering=1), ">&-": lambda: None}
FULL = "cannot write the output (No space left on device)"


def in_a_deleted_folder(cwd: Path, monkeypatch) -> None:
    gone = cwd / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()


# a row's command starting with one of these runs where it says
SETUPS = {"(in a deleted folder)": in_a_deleted_folder}
GONE = (
    "the current folder no longer exists (it was deleted or moved); cd to a folder that exists "
    "and run the command again"
)

# (case, command, the message after PREFIX)
ROWS = [
    ("a config of nested aliases", [*FIT, "--config", "bomb.yaml"],
     f"--config bomb.yaml: {ALIASES}"),
    ("a model file of nested aliases", [*FIT, "--model", "model_bomb.yaml"],
     f"--model model_bomb.yaml: {ALIASES}"),
    ("a trainer file of nested aliases", [*FIT, "--trainer", "trainer_bomb.yaml"],
     f"--trainer trainer_bomb.yaml: {ALIASES}"),
    ("inline config text of nested aliases", [*FIT, "--config", INLINE_BOMB],
     f"--config: {ALIASES}"),
    ("inline model JSON of nested aliases", [*FIT, "--model", INLINE_MODEL_BOMB],
     f"--model: {ALIASES}"),
    ("inline trainer YAML of nested aliases", [*FIT, "--trainer", INLINE_TRAINER_BOMB],
     f"--trainer: {ALIASES}"),
    ("a model file of aliases named inside a config", [*FIT, "--config", "outer.yaml"],
     f"outer.yaml → model_bomb.yaml: {ALIASES}"),
    ("a trainer file of aliases named inside a config", [*FIT, "--config", "outer_trainer.yaml"],
     f"outer_trainer.yaml → trainer_bomb.yaml: {ALIASES}"),
    ("a number's option given an alias of itself", [*FIT, "--model.lr", "&a [*a, *a]"],
     f"--model.lr: {ALIASES}"),
    ("a config nested 200 levels deep", [*FIT, "--config", "deep.yaml"],
     "--config deep.yaml: YAML nested more than 64 levels deep (a makemore_pl config nests a few)"),
    ("a 2 MB config", [*FIT, "--config", "big.yaml"],
     "--config big.yaml: more than the 1.0 MB a config can hold"),
    ("the same bomb for a plain command", ["baseline", "--config", "bomb.yaml"],
     f"--config bomb.yaml: {ALIASES}"),
    ("a config value of 300 bytes, neither file nor YAML", [*FIT, "--config", "x" * 300],
     f"--config {X40} [… 220 characters cut …] {X40}: neither a config file (File name too "
     f"long) nor {NOR_YAML}"),
    ("the same 300 bytes for a plain command", ["baseline", "--config", "x" * 300],
     f"--config {X40} [… 220 characters cut …] {X40}: neither a config file (File name too "
     f"long) nor {NOR_YAML}"),
    ("a config file of a 300-byte name", [*FIT, "--config", "x" * 300 + ".yaml"],
     f"--config {X40} [… 225 characters cut …] {X40[5:]}.yaml: cannot read it (File name too "
     "long)"),
    ("a config file that is missing", [*FIT, "--config", "missing.yaml"],
     "--config missing.yaml: cannot read it (No such file or directory)"),
    # classes that would be imported
    ("a model class from a module in the current folder", [*FIT, "--model", "payload_mod.Anything"],
     f"--model: class 'payload_mod.Anything' {REFUSED}"),
    ("a callback class from a module in the current folder",
     [*FIT, "--trainer.callbacks+=payload_mod.Anything"],
     f"--trainer.callbacks+: class 'payload_mod.Anything' {REFUSED}"),
    ("a logger class from a module in the current folder",
     [*FIT, "--trainer.logger", "payload_mod.Anything"],
     f"--trainer.logger: class 'payload_mod.Anything' {REFUSED}"),
    ("inline JSON naming a class", [*FIT, "--model", '{"class_path": "payload_mod.Anything"}'],
     f"--model: class 'payload_mod.Anything' {REFUSED}"),
    ("inline YAML naming a class under a key", [*FIT, "--trainer", "logger: payload_mod.Anything"],
     f"--trainer: class 'payload_mod.Anything' {REFUSED}"),
    ("a list of callback classes", [*FIT, "--trainer.callbacks", "[payload_mod.Anything]"],
     f"--trainer.callbacks: class 'payload_mod.Anything' {REFUSED}"),
    ("a class in a model file named inside a config", [*FIT, "--config", "outer_class.yaml"],
     f"outer_class.yaml → model_class.yaml: class 'payload_mod.Anything' {REFUSED}"),
    ("a config naming a model class", [*FIT, "--config", "model_payload.yaml"],
     f"model_payload.yaml: class 'payload_mod.Anything' {REFUSED}"),
    ("a config naming a callback class", [*FIT, "--config", "callback_payload.yaml"],
     f"callback_payload.yaml: class 'payload_mod.Anything' {REFUSED}"),
    ("a config naming a standard-library module's class", [*FIT, "--config", "zen.yaml"],
     f"zen.yaml: class 'this.Nothing' {REFUSED}"),
    ("the same for a plain command", ["baseline", "--config", "model_payload.yaml"],
     f"--config model_payload.yaml: class 'payload_mod.Anything' {REFUSED}"),
    # checkpoints that would load wrong numbers
    ("a checkpoint with one bit flipped", [*TEST, "--ckpt_path", "flipped.ckpt"],
     "--ckpt_path flipped.ckpt: the checkpoint is damaged (its record archive/data/0 fails its "
     "checksum); use another checkpoint or train again"),
    ("a checkpoint whose weights are finite but absurd", ["sample", "--ckpt_path", "huge.ckpt"],
     "--ckpt_path huge.ckpt: its weights W reach 3.9e+37, far beyond any trained model's (at "
     "most 1e+06): the file is corrupted or the run diverged; use an earlier checkpoint"),
    # options out of range: one line before any run folder is made
    ("accumulating over 0 batches", [*FIT, "--trainer.accumulate_grad_batches", "0"],
     "--trainer.accumulate_grad_batches must be above 0, got 0"),
    ("validating every 0 epochs", [*FIT, "--trainer.check_val_every_n_epoch", "0"],
     "--trainer.check_val_every_n_epoch must be above 0, got 0"),
    ("training for 0 epochs", [*FIT, "--trainer.max_epochs", "0"],
     "--trainer.max_epochs must be above 0 (or -1, no limit), got 0"),
    ("training for 0 steps", [*FIT, "--trainer.max_steps", "0"],
     "--trainer.max_steps must be above 0 (or -1, no limit), got 0"),
    ("training on 0 batches", [*FIT, "--trainer.limit_train_batches", "0"],
     "--trainer.limit_train_batches must be above 0, got 0"),
    ("a batch size beyond 64 bits", [*FIT, "--data.batch_size", "100000000000000000000000"],
     "--data.batch_size must be below 2**63 (None: full batch), got 100000000000000000000000"),
    ("two names: an empty val split", ["fit", "--data.path", "two.txt"],
     "data file 'two.txt': its 2 names leave the val split empty (val_fraction 0.1, "
     "test_fraction 0.1); use more names or other fractions"),
    ("testing on an empty test split",
     ["test", "--data.path", "two.txt", "--data.val_fraction", "0.5"],
     "data file 'two.txt': its 2 names leave the test split empty (val_fraction 0.5, "
     "test_fraction 0.1); use more names or other fractions"),
    ("a checkpoint whose settings nest 150 levels", [*TEST, "--ckpt_path", "deep.ckpt"],
     "--ckpt_path deep.ckpt: refused, its value hyper_parameters.l2.a.a.a.a.a.a.a.a.a.a.a.a.a.a."
     "a.a.a.a.a... nests deeper than 100 levels (makemore_pl writes a few)"),
    ("a checkpoint setting of 3 MB", [*TEST, "--ckpt_path", "long.ckpt"],
     "--ckpt_path long.ckpt: refused, its setting hyper_parameters.optimizer is a text of "
     "3,000,000 characters (a setting holds at most 4,096)"),
    ("a saved context_size of 2**70", ["sample", "--ckpt_path", "context_2_70.ckpt"],
     "--ckpt_path context_2_70.ckpt: refused, its value hyper_parameters.context_size = "
     "1180591620717411303424 is out of range (a 64-bit integer)"),
    ("a saved vocab_size that is 10 MB of text", [*TEST, "--ckpt_path", "vocab_10mb.ckpt"],
     "--ckpt_path vocab_10mb.ckpt: refused, its setting hyper_parameters.vocab_size is a text "
     "of 10,000,000 characters (a setting holds at most 4,096)"),
    ("a saved l2 of nan", ["sample", "--ckpt_path", "l2_nan.ckpt"],
     "--ckpt_path l2_nan.ckpt: refused, its setting hyper_parameters.l2 is nan, not a finite "
     "number"),
    ("a saved l2 below 0", [*TEST, "--ckpt_path", "l2_negative.ckpt"],
     "--ckpt_path l2_negative.ckpt: its setting l2 must be 0 or more, got -1.0"),
    ("a saved val_fraction of nan", [*TEST, "--ckpt_path", "val_nan.ckpt"],
     "--ckpt_path val_nan.ckpt: refused, its setting datamodule_hyper_parameters.val_fraction "
     "is nan, not a finite number"),
    ("a saved val_fraction of 5", ["sample", "--ckpt_path", "val_5.ckpt"],
     "--ckpt_path val_5.ckpt: refused, its data setting val_fraction must be in [0, 1), got 5.0"),
    # sizes and reads that used to end in a traceback
    ("a counting model of context size 215", ["baseline", "--data.path", "words.txt",
                                                 "--data.context_size", "215"],
     "context_size 215 with 15 tokens needs n-gram keys up to 15**216 = 1.09e+254, which "
     "overflows int64 keys (limit 2**63 = 9.22e+18); use a context_size of at most 15 for this "
     "data, or data with fewer distinct characters"),
    ("a seed of 2**64", ["sample", "--ckpt_path", "model.ckpt", "--seed", str(2**64)],
     "--seed must be from -2**63 to 2**64 - 1, got 18446744073709551616"),
    ("a seed below -2**63", ["sample", "--ckpt_path", "model.ckpt", "--seed", str(-(2**63) - 1)],
     "--seed must be from -2**63 to 2**64 - 1, got -9223372036854775809"),
    ("a data file in UTF-16LE without a byte-order mark",
     ["baseline", "--data.path", "utf-16-le.txt"],
     "data file 'utf-16-le.txt', line 1: the file looks like UTF-16 (little endian, without a "
     "byte-order mark), not UTF-8; save it as UTF-8, one name per line"),
    ("a data file in UTF-16BE without a byte-order mark", ["fit", "--data.path", "utf-16-be.txt"],
     "data file 'utf-16-be.txt', line 1: the file looks like UTF-16 (big endian, without a "
     "byte-order mark), not UTF-8; save it as UTF-8, one name per line"),
    ("a data file in UTF-16 with a byte-order mark", ["baseline", "--data.path", "utf-16.txt"],
     "data file 'utf-16.txt', line 1: the file looks like UTF-16 (little endian, with a "
     "byte-order mark), not UTF-8; save it as UTF-8, one name per line"),
    ("a data file that fails to read (EIO)", ["baseline", "--data.path", "/proc/self/mem"],
     "cannot read data file '/proc/self/mem': Input/output error"),
    ("DDP by spawning processes", [*FIT, "--trainer.strategy", "ddp_spawn",
                                   "--trainer.devices", "2"],
     "--trainer.strategy ddp_spawn: not supported (a spawned process cannot be handed the run's "
     "open lock and data); use --trainer.strategy ddp"),
    ("float16 weights with Adam", [*FIT, "--trainer.precision", "16-true"],
     "--trainer.precision 16-true: Adam cannot train float16 weights (its eps, 1e-8, is 0 in "
     "float16, and the first step divides by it); use --trainer.precision 16-mixed (float32 "
     "weights) or --model.optimizer sgd"),
    ("a checkpoint that is a symlink loop", ["sample", "--ckpt_path", "loop.ckpt"],
     "--ckpt_path loop.ckpt: cannot read it (Too many levels of symbolic links)"),
    ("a learning rate of nan", [*FIT, "--model.lr", "nan"],
     "--model.lr must be 0 or more, got nan"),
    ("a temperature of -inf", ["sample", "--ckpt_path", "model.ckpt", "--temperature", "-inf"],
     "--temperature must be positive, got -inf"),
    ("a data file named nan stays a file", ["fit", "--data.path", "nan"],
     "data file 'nan' does not exist"),
    # help that cannot be written: one line and a failure, as for any other output
    *[(f"{command} --help to a full device", [command, "--help", ">/dev/full"], FULL)
      for command in ("sample", "baseline", "sweep", "suffix_sweep", "fit")],
    ("a model's help to a full device", ["test", "--model.help", "BigramLitModule", ">/dev/full"],
     FULL),
    ("sample --help with the output closed", ["sample", "--help", ">&-"],
     "the standard output is closed; redirect it to a file or /dev/null"),
    *[(f"{command} from a deleted current folder", ["(in a deleted folder)", command], GONE)
      for command in ("fit", "sample", "baseline")],
    # outputs over inputs or devices
    ("predictions written over the data file", [*PREDICT, "--output", "words.txt"],
     "cannot write words.txt: it is words.txt, which this command reads"),
    ("predictions written over the checkpoint read",
     [*PREDICT, "--output", "model.ckpt"],
     "cannot write model.ckpt: it is model.ckpt, which this command reads"),
    ("predictions written over the names scored",
     [*PREDICT, "--data.predict_path", "names2.txt", "--output", "./names2.txt"],
     "cannot write names2.txt: it is names2.txt, which this command reads"),
    ("predictions written to a FIFO or device", [*PREDICT, "--output", "pipe"],
     "cannot write pipe: it is not a regular file (a device, FIFO or socket)"),
    ("predictions written to a folder", [*PREDICT, "--output", "."],
     "cannot write .: it is a folder"),
    ("a sweep figure written over the data file", [*SWEEP, "--plot", "words.txt"],
     "cannot write words.txt: it is words.txt, which this command reads"),
    ("a sweep figure written to a FIFO or device", [*SWEEP, "--plot", "pipe"],
     "cannot write pipe: it is not a regular file (a device, FIFO or socket)"),
    # outputs over files of another kind: only a previous output (or an empty file) is replaced
    ("a sweep figure written over a checkpoint", [*SWEEP, "--plot", "model.ckpt"],
     f"cannot write model.ckpt: it exists and is not a PNG image, {KEPT}"),
    ("a sweep figure written over another text file", [*SWEEP, "--plot", "names2.txt"],
     f"cannot write names2.txt: it exists and is not a PNG image, {KEPT}"),
    ("predictions written over another checkpoint", [*PREDICT, "--output", "huge.ckpt"],
     f"cannot write huge.ckpt: it exists and is not a predictions file (a TSV of `predict`), "
     f"{KEPT}"),
    ("predictions written over another text file", [*PREDICT, "--output", "names2.txt"],
     f"cannot write names2.txt: it exists and is not a predictions file (a TSV of `predict`), "
     f"{KEPT}"),
]  # fmt: skip


def shown(row: tuple) -> str:
    return PREFIX + row[2] if row[2] is not None else "a usage error naming the option (exit 2)"


@pytest.mark.parametrize("row", ROWS, ids=[row[0] for row in ROWS])
def test_round_3_case(cwd, row, monkeypatch):
    write_bad_settings(cwd, row[1])
    before = sorted(p.name for p in cwd.rglob("*"))
    args = row[1]
    if args[0] in SETUPS:
        SETUPS[args[0]](cwd, monkeypatch)
        args = args[1:]
    if args[-1] in REDIRECTS:  # the standard output the shell would hand the command
        args = args[:-1]
        monkeypatch.setattr(sys, "stdout", REDIRECTS[row[1][-1]]())
    training = args[0] in ("fit", "validate", "test", "predict") and "--model.help" not in args
    quiet = QUIET if training else []
    try:
        got = exit_of(*args, *quiet)
    finally:
        if sys.stdout is not None and sys.stdout.name == "/dev/full":
            sys.stdout.close()  # main has pointed it at /dev/null: nothing is left to fail
    if row[2] is None:
        assert got == 2
    else:
        assert got == PREFIX + row[2]
    assert sorted(p.name for p in cwd.rglob("*")) == before  # nothing written or lost


def test_lightning_s_own_callbacks_are_still_allowed(cwd):
    from makemore_pl.cli.class_paths import allowed

    assert allowed("lightning.pytorch.callbacks.EarlyStopping")
    assert allowed("makemore_pl.model.BigramLitModule")  # a legacy class path
    assert allowed("ModelCheckpoint")  # a bare name: looked up among classes imported
    assert not allowed("lightning.pytorch.callbacksx.Evil")
    assert not allowed("os.system")


def test_the_fit_summary_names_only_files_that_are_there(tmp_path):
    from types import SimpleNamespace

    from makemore_pl.cli.console import fit_summary

    run = tmp_path / "lightning_logs" / "version_0_bigram"
    (run / "checkpoints").mkdir(parents=True)
    best = SimpleNamespace(best_model_score=None, best_model_path="")
    trainer = SimpleNamespace(current_epoch=0, global_step=0)
    again = lambda command, ckpt: f"makemore {command} --ckpt_path {ckpt}"  # noqa: E731
    summary = fit_summary(run, best, trainer, again)
    assert "last:" not in summary and "--ckpt_path" not in summary
    (run / "checkpoints" / "last.ckpt").write_bytes(b"")
    summary = fit_summary(run, best, trainer, again)
    assert "makemore test --ckpt_path last" in summary and "best" not in summary


def test_next_steps_under_a_root_folder_put_the_option_after_the_command(cwd, caplog):
    import logging

    caplog.set_level(logging.INFO)
    main([*FIT, "--trainer.default_root_dir", "elsewhere", *QUIET])
    printed = caplog.text
    assert "makemore test --trainer.default_root_dir elsewhere --ckpt_path best" in printed
    assert "makemore sample --trainer.default_root_dir elsewhere --ckpt_path best" in printed


@pytest.mark.slow
def test_an_error_message_is_bounded():
    from makemore_pl.cli.main import error_line

    line = error_line("x" * 50_000_000)
    assert len(line) < 2200 and "[… 49,998,000 characters cut …]" in line


def makemore_process(*args: str, cwd: Path, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "makemore_pl", *args], cwd=cwd, text=True, **kwargs
    )


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
    assert (proc.returncode, proc.stderr) == (1, f"{PREFIX}{GONE}\n")


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
    assert exit_of(*FIT, *QUIET) == 130
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


@pytest.mark.slow
def test_a_run_killed_before_its_first_checkpoint_starts_again_with_its_settings(cwd):
    main([*FIT, "--data.context_size", "2", *QUIET])
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

    main([*FIT, *QUIET])
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


def test_a_run_config_and_a_plain_config_are_loaded_bounded(cwd):
    from makemore_pl.cli.config_files import ConfigTooLarge
    from makemore_pl.cli.plain.command import data_sections_only
    from makemore_pl.cli.resume import run_config

    with pytest.raises(ConfigTooLarge, match=ALIASES):
        run_config(cwd / "bomb.yaml")
    with pytest.raises(ConfigTooLarge, match=ALIASES):
        data_sections_only(["--config", "bomb.yaml"])


def test_a_previous_output_of_the_same_kind_or_an_empty_file_is_replaced(tmp_path):
    from makemore_pl.core.files import PNG, write_atomically
    from makemore_pl.lit.predictions import PREDICTIONS

    for kind, old in ((PNG, PNG.magic + b"an old figure"), (PREDICTIONS, PREDICTIONS.magic)):
        new = kind.magic + b"new"
        for before in (old, b""):
            path = tmp_path / "output"
            path.write_bytes(before)
            write_atomically(path, lambda file, new=new: file.write(new), kind=kind)
            assert path.read_bytes() == new


def test_a_checkpoint_is_never_written_over_a_file_the_command_reads(tmp_path):
    from makemore_pl.core.errors import CheckpointError
    from makemore_pl.lit.checkpoint_io import AtomicCheckpointIO

    data = tmp_path / "words.txt"
    data.write_text("emma\n")
    with pytest.raises(CheckpointError, match="it is .*words.txt, which this command reads"):
        AtomicCheckpointIO(inputs=(str(data),)).save_checkpoint({"a": 1}, data)
    assert data.read_text() == "emma\n"


def code80(text: str) -> str:
    return markdown_code(text, 80)


def render_table() -> str:
    lines = [TABLE_START, "|---|---|---|"]
    for row in ROWS:
        message = code80(shown(row)) if row[2] is not None else shown(row)
        lines.append(f"| {row[0]} | {code80(' '.join(row[1]))} | {message} |")
    return "\n".join(lines) + "\n"


def test_the_doc_table_is_the_table_of_the_tests():
    assert documented_table(TABLE_START) == render_table(), (
        "run: python -m tests.test_hostile_inputs_3"
    )


if __name__ == "__main__":  # python -m tests.test_hostile_inputs_3: rewrite the doc's table
    text = DOC.read_text(encoding="utf-8")
    DOC.write_text(text.replace(documented_table(TABLE_START), render_table()), encoding="utf-8")
