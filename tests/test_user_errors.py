"""Every user error of docs/reliability.md's tables: one line, exit status 1, nothing written.

ROWS is the table: `python -m tests.test_user_errors` writes it into docs/reliability.md and a
test checks that the two agree. Our own messages are checked word for word; a message partly
worded by a dependency (the OS, a codec, jsonargparse) is checked by what it must name. The CLI
runs in this process (`cli.main`, as `python -m makemore_pl` calls it), so a row costs under a
second; the last tests repeat a few rows through a real process to see what a user sees.
"""

import copy
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from makemore_pl import DataError, NamesDataModule
from makemore_pl.cli.main import main
from tests.conftest import (
    QUIET,
    RELIABILITY_DOC,
    TINY_WORDS,
    documented_table,
    last_checkpoint,
    markdown_code,
    quiet,
)
from tests.test_config_files import bomb_lines

DOC = RELIABILITY_DOC
CHARS = "abehilmnoprsvy"  # the sorted characters of TINY_WORDS


class RunsCode:
    """Unpickling this runs a shell command that leaves code_ran.txt in the current folder."""

    def __reduce__(self):
        return os.system, ("echo code ran > code_ran.txt",)


def run_cli(*args: str) -> str | int:
    """Runs the CLI and returns what it exits with: the error message, or the exit status."""
    with pytest.raises(SystemExit) as exited:
        main([*args])
    return exited.value.code


def edited(checkpoint: dict, path: Path, weights=None, data=None, **settings) -> None:
    """Saves a copy of `checkpoint` with other model settings, weights or data settings."""
    copy = {**checkpoint, "hyper_parameters": {**checkpoint["hyper_parameters"], **settings}}
    if weights is not None:
        copy["state_dict"] = {**checkpoint["state_dict"], "model.W": weights}
    if data is not None:
        copy["datamodule_hyper_parameters"] = {**checkpoint["datamodule_hyper_parameters"], **data}
    torch.save(copy, path)


def write_checkpoints(folder: Path) -> None:
    """model.ckpt, trained on words.txt, and broken or foreign variations of it."""
    model = torch.load(folder / "model.ckpt", weights_only=True)
    data = (folder / "model.ckpt").read_bytes()
    (folder / "truncated.ckpt").write_bytes(data[: len(data) // 2])
    (folder / "empty.ckpt").write_bytes(b"")
    torch.save({"W": torch.zeros(3, 3)}, folder / "weights.pt")
    edited(model, folder / "other_model.ckpt", width=64)
    edited(model, folder / "bad_settings.ckpt", optimizer="rmsprop")
    edited(model, folder / "bad_weights.ckpt", weights=torch.zeros(5))
    edited(model, folder / "bad_data.ckpt", data={"context_size": "two"})
    edited(model, folder / "odd_builder.ckpt", _instantiator="os.system")
    edited(model, folder / "evil.ckpt", l2=RunsCode())
    damaged = folder / "damaged_run" / "lightning_logs" / "version_0" / "checkpoints"
    damaged.mkdir(parents=True)
    (damaged / "last.ckpt").write_bytes(data[: len(data) // 2])
    write_hostile_checkpoints(folder, model)


def changed(checkpoint: dict, path: Path, state=None, drop=(), **top) -> None:
    """Saves a copy of `checkpoint` with more weights, fewer top-level keys or other values."""
    copy_ = {**copy.deepcopy(checkpoint), **top}
    copy_["state_dict"].update(state or {})
    for key in drop:
        del copy_[key]
    torch.save(copy_, path)


def write_hostile_checkpoints(folder: Path, model: dict) -> None:
    """Checkpoints that look ordinary but claim what they do not hold."""
    weights = model["state_dict"]["model.W"]
    v = len(weights)
    huge = torch.zeros(v).as_strided((v**8, v), (0, 1))  # 15 floats posing as 154 GB
    edited(model, folder / "strided.ckpt", weights=huge, context_size=8)
    with (
        zipfile.ZipFile(folder / "model.ckpt") as src,
        zipfile.ZipFile(folder / "deflated.ckpt", "w", zipfile.ZIP_DEFLATED) as out,
    ):
        for record in src.infolist():
            out.writestr(record.filename, src.read(record.filename))
    edited(model, folder / "nan.ckpt", weights=weights.clone().fill_(float("nan")))
    no_data = ("datamodule_hyper_parameters", "datamodule_hparams_name")
    no_chars = {**model, "hyper_parameters": {**model["hyper_parameters"], "chars": None}}
    changed(no_chars, folder / "no_chars.ckpt", drop=no_data)
    edited(model, folder / "context_0.ckpt", weights=weights[:1].clone(), context_size=0)
    changed(model, folder / "extra_weights.ckpt", state={"bias": torch.zeros(v)})
    changed(model, folder / "weights_only.ckpt", drop=("optimizer_states", "lr_schedulers"))
    edited(model, folder / "huge_seed.ckpt", data={"seed": 2**70})
    changed(model, folder / "negative_step.ckpt", global_step=-5)
    ends = torch.full_like(weights, -30.0)
    ends[:, 0] = 30.0  # the boundary, at once, every time
    edited(model, folder / "ends_at_once.ckpt", weights=ends)


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_run) -> Path:
    """A folder holding the data files and checkpoints the rows use."""
    folder = tmp_path_factory.mktemp("files")
    shutil.copy(tiny_run / "words.txt", folder)
    shutil.copy(last_checkpoint(tiny_run), folder / "model.ckpt")
    (folder / "other.txt").write_text("zed\nquinn\nxu\n", encoding="utf-8")
    (folder / "empty.txt").write_bytes(b"")
    (folder / "blank.txt").write_bytes(b"  \n\t\n\r\n")
    (folder / "latin1.txt").write_bytes("emma\nzoë\n".encode("latin-1"))
    (folder / "folder").mkdir()
    (folder / "blocker").write_text("a file where a folder should be\n")
    write_checkpoints(folder)
    return folder


@pytest.fixture
def cwd(files, tmp_path, monkeypatch) -> Path:
    """A fresh copy of the files, as the current folder."""
    folder = tmp_path / "cwd"
    shutil.copytree(files, folder)
    monkeypatch.chdir(folder)
    monkeypatch.setattr(sys, "argv", ["makemore"])  # LightningCLI warns when both are given
    return folder


FIT = ["fit", "--data.path", "words.txt"]
TEST = ["test", "--data.path", "words.txt"]
SAMPLE = ["sample", "--ckpt_path", "model.ckpt"]

# (case, command, the message after "makemore_pl: error: "); the README's table lists them all
ROWS = [
    ("data file missing", ["fit", "--data.path", "missing.txt"],
     "data file 'missing.txt' does not exist"),
    ("data file empty", ["fit", "--data.path", "empty.txt"],
     "data file 'empty.txt' holds no words (it is empty or only whitespace)"),
    ("data file only whitespace", ["fit", "--data.path", "blank.txt"],
     "data file 'blank.txt' holds no words (it is empty or only whitespace)"),
    ("data file not UTF-8", ["fit", "--data.path", "latin1.txt"],
     "data file 'latin1.txt', line 2: bytes that are not UTF-8 (invalid continuation byte); "
     "save the file as UTF-8, one name per line", ("'latin1.txt', line 2", "not UTF-8")),
    ("data path is a folder", ["fit", "--data.path", "folder"],
     "cannot read data file 'folder': Is a directory", ("cannot read data file 'folder'",)),
    ("context size below 1", [*FIT, "--data.context_size", "0"],
     "--data.context_size must be at least 1, got 0"),
    ("a fraction of 1 or more", [*FIT, "--data.val_fraction", "1"],
     "--data.val_fraction must be in [0, 1), got 1.0"),
    ("a negative fraction", [*FIT, "--data.test_fraction", "-0.1"],
     "--data.test_fraction must be in [0, 1), got -0.1"),
    ("fractions summing to 1 or more", [*FIT, "--data.val_fraction", "0.5",
                                        "--data.test_fraction", "0.5"],
     "--data.val_fraction + test_fraction must be below 1 to leave training words, got 0.5 + 0.5"),
    ("batch size 0 or less", [*FIT, "--data.batch_size", "0"],
     "--data.batch_size must be positive or None (full batch), got 0"),
    ("negative number of samples", [*SAMPLE, "--num_samples", "-1"],
     "--num_samples must be 0 or more, got -1"),
    ("temperature 0 or less", [*SAMPLE, "--temperature", "0"],
     "--temperature must be positive, got 0.0"),
    ("prefix outside the vocabulary", [*SAMPLE, "--prefix", "zoë"],
     f"--prefix 'zoë': character 'z' in 'zoë' is not in the vocabulary '{CHARS}'"),
    ("sample without a checkpoint", ["sample"],
     "sample needs --ckpt_path PATH|best|last (or --counting true)"),
    ("checkpoint missing", [*TEST, "--ckpt_path", "missing.ckpt"],
     "--ckpt_path missing.ckpt: no such file"),
    ("no run to take best/last from", [*TEST, "--ckpt_path", "best"],
     "--ckpt_path best: no best.ckpt in the newest training run under lightning_logs; train one "
     "with `fit` or pass a checkpoint path"),
    ("checkpoint truncated", [*TEST, "--ckpt_path", "truncated.ckpt"],
     "--ckpt_path truncated.ckpt: the checkpoint is damaged (truncated or corrupted); use another "
     "checkpoint or train again"),
    ("resuming a run whose last.ckpt is damaged",
     [*FIT, "--trainer.default_root_dir", "damaged_run", "--ckpt_path", "last"],
     "--ckpt_path damaged_run/lightning_logs/version_0/checkpoints/last.ckpt: the checkpoint is "
     "damaged (truncated or corrupted); use another checkpoint or train again"),
    ("checkpoint empty", [*TEST, "--ckpt_path", "empty.ckpt"],
     "--ckpt_path empty.ckpt: the file is empty, not a checkpoint"),
    ("not a checkpoint at all", [*TEST, "--ckpt_path", "words.txt"],
     "--ckpt_path words.txt: not a checkpoint (expected a file written by torch.save)"),
    ("a torch file of something else", [*TEST, "--ckpt_path", "weights.pt"],
     "--ckpt_path weights.pt: not a makemore_pl model checkpoint (it has no model settings)"),
    ("checkpoint of another model", [*TEST, "--ckpt_path", "other_model.ckpt"],
     "--ckpt_path other_model.ckpt: not a makemore_pl model checkpoint (unknown model settings: "
     "width)"),
    ("checkpoint weights that do not fit its settings", [*TEST, "--ckpt_path", "bad_weights.ckpt"],
     "--ckpt_path bad_weights.ckpt: not a makemore_pl model checkpoint (its weights W, of shape "
     "(5,), do not fit vocab_size 15 and context_size 1)"),
    ("checkpoint settings of the wrong type", [*TEST, "--ckpt_path", "bad_settings.ckpt"],
     "--ckpt_path bad_settings.ckpt: its setting optimizer must be 'sgd', 'adam' or 'lbfgs', got "
     "'rmsprop'"),
    ("checkpoint data settings of the wrong type", [*TEST, "--ckpt_path", "bad_data.ckpt"],
     "--ckpt_path bad_data.ckpt: refused, its data setting context_size must be at least 1, got "
     "'two'"),
    ("checkpoint that names its own model builder", ["sample", "--ckpt_path", "odd_builder.ckpt"],
     "--ckpt_path odd_builder.ckpt: not a makemore_pl model checkpoint (it asks for its model to "
     "be built by 'os.system')"),
    ("checkpoint vocabulary differs from the data",
     ["test", "--data.path", "other.txt", "--ckpt_path", "model.ckpt"],
     f"--ckpt_path model.ckpt: the model knows the characters '{CHARS}' but data file "
     "'other.txt' has 'deinquxz'; pass the --data.path it was trained on"),
    ("checkpoint order differs from the data",
     [*TEST, "--data.context_size", "2", "--ckpt_path", "model.ckpt"],
     "--ckpt_path model.ckpt: the model has context_size 1 but --data.context_size is 2; use the "
     "context size it was trained with"),
    ("checkpoint whose pickle would run code", [*TEST, "--ckpt_path", "evil.ckpt"],
     "--ckpt_path evil.ckpt: refused, the file holds objects other than tensors and plain values, "
     "which could run code when loaded; use a checkpoint written by makemore_pl"),
    ("asking to load code", [*TEST, "--ckpt_path", "model.ckpt", "--weights_only", "false"],
     "--weights_only false: makemore_pl loads checkpoints with weights_only=True only, so that a "
     "checkpoint cannot run code; its own checkpoints need nothing more"),
    ("log/checkpoint folder not writable", [*FIT, "--trainer.default_root_dir", "blocker"],
     "cannot write the run's logs and checkpoints to 'blocker/lightning_logs/version_0' (Not a "
     "directory); set --trainer.default_root_dir to a folder you can write to",
     ("blocker/lightning_logs", "--trainer.default_root_dir")),
    # inputs nobody planned for
    ("checkpoint whose weights are a stride-0 view claiming 154 GB",
     ["sample", "--ckpt_path", "strided.ckpt"],
     "--ckpt_path strided.ckpt: refused, its tensor state_dict.model.W of shape (2562890625, 15) "
     "claims 154 GB but holds 60 bytes (the file 8.0 KB)",
     ("strided.ckpt: refused", "state_dict.model.W", "claims 154 GB but holds 60 bytes")),
    ("checkpoint archive compressed to claim more than the file holds",
     [*TEST, "--ckpt_path", "deflated.ckpt"],
     "--ckpt_path deflated.ckpt: refused, its records claim 6.5 KB but the file holds 3.9 KB "
     "(compressed or crafted; torch.save writes neither)",
     ("deflated.ckpt: refused, its records claim", "compressed or crafted")),
    ("checkpoint weights NaN or infinite", ["sample", "--ckpt_path", "nan.ckpt"],
     "--ckpt_path nan.ckpt: its weights W hold NaN or infinite values (the run that wrote it "
     "diverged); use an earlier checkpoint, or train again with a smaller --model.lr"),
    ("checkpoint without its characters, and no data file",
     ["sample", "--ckpt_path", "no_chars.ckpt"],
     "--ckpt_path no_chars.ckpt: the checkpoint does not say which 14 characters the model knows; "
     "pass the --data.path it was trained on"),
    ("checkpoint without its characters, data of another vocabulary",
     ["sample", "--ckpt_path", "no_chars.ckpt", "--data.path", "other.txt"],
     "--ckpt_path no_chars.ckpt: the model knows 14 characters but data file 'other.txt' has 8, "
     "'deinquxz'; pass the --data.path it was trained on"),
    ("checkpoint of context_size 0", [*TEST, "--ckpt_path", "context_0.ckpt"],
     "--ckpt_path context_0.ckpt: not a makemore_pl model checkpoint (vocab_size 15 and "
     "context_size 0; both must be whole numbers of 1 or more)"),
    ("checkpoint with weights the model does not have",
     [*TEST, "--ckpt_path", "extra_weights.ckpt"],
     "--ckpt_path extra_weights.ckpt: not a makemore_pl model checkpoint (unknown weights: bias)"),
    ("resuming from a weights-only checkpoint", [*FIT, "--ckpt_path", "weights_only.ckpt"],
     "--ckpt_path weights_only.ckpt: holds the weights only (no optimizer_states), so `fit` "
     "cannot resume from it; use it with validate, test, predict or sample, or resume from a full "
     "checkpoint such as last.ckpt"),
    ("checkpoint integer beyond 64 bits", [*TEST, "--ckpt_path", "huge_seed.ckpt"],
     "--ckpt_path huge_seed.ckpt: refused, its value datamodule_hyper_parameters.seed = "
     "1180591620717411303424 is out of range (a 64-bit integer)"),
    ("resuming a checkpoint whose step count is negative",
     [*FIT, "--ckpt_path", "negative_step.ckpt"],
     "--ckpt_path negative_step.ckpt: refused, its global_step is -5, not a count"),
    ("a model that ends every word at once", ["sample", "--ckpt_path", "ends_at_once.ckpt"],
     "the model ends almost every word at once: 100 blocks of 1024 draws gave 0 non-empty words; "
     "it cannot generate names (was it trained?)"),
    ("a weight table too large to build", [*FIT, "--data.context_size", "8"],
     "--data.context_size 8 with vocab_size 15 needs a 154 GB weight table (the limit is 537 MB); "
     "use the counting model (`baseline`, `sample --counting true`) with --smoothing kneser-ney, "
     "which stores only the n-grams seen"),
    ("a weight table beyond any integer type", [*FIT, "--data.context_size", "20"],
     "--data.context_size 20 with vocab_size 15 needs a 20 YB weight table (the limit is 537 MB); "
     "use the counting model (`baseline`, `sample --counting true`) with --smoothing kneser-ney, "
     "which stores only the n-grams seen"),
    ("learning rate below 0", [*FIT, "--model.lr", "-1"], "--model.lr must be 0 or more, got -1.0"),
    ("l2 below 0", [*FIT, "--model.l2", "-1"], "--model.l2 must be 0 or more, got -1.0"),
    ("figure path is a folder",
     ["sweep", "--data.path", "words.txt", "--models", "counting", "--plot", "folder"],
     "cannot write folder: it is a folder"),
]  # fmt: skip


PREFIX = "makemore_pl: error: "
WRONG_TYPE = (
    "an option of the wrong type",
    [*FIT, "--data.context_size", "two"],
    "the usage, then `error: Parser key \"data.context_size\": Expected a <class 'int'>. Got "
    "value: two` (exit status 2)",
)
TABLE_START = "| case | command | what you see |"


def assert_says(got: str | int, row: tuple) -> None:
    """One line with the row's message: word for word, or naming what it must name when a
    dependency words part of it."""
    case, _, message, *must_name = row
    assert isinstance(got, str) and got.startswith(PREFIX) and "\n" not in got, (case, got)
    if not must_name:
        assert got == PREFIX + message
    for part in must_name[0] if must_name else ():
        assert part in got, (case, part, got)


@pytest.mark.parametrize("row", ROWS, ids=[row[0] for row in ROWS])
def test_user_error(cwd, row):
    before = sorted(p.name for p in cwd.rglob("*"))
    assert_says(run_cli(*row[1], *quiet(row[1])), row)
    assert sorted(p.name for p in cwd.rglob("*")) == before  # nothing written or lost
    assert not (cwd / "code_ran.txt").exists()


def test_an_option_of_the_wrong_type_is_a_usage_error(cwd, capsys):
    assert run_cli(*WRONG_TYPE[1]) == 2
    error = capsys.readouterr().err.split("\nerror: ")[-1]  # after the usage; jsonargparse's words
    assert "data.context_size" in error and "two" in error


def render_table() -> str:
    """The table of docs/reliability.md, made from ROWS."""
    lines = [TABLE_START, "|---|---|---|"]
    for case, args, message, *_ in ROWS:
        lines.append(
            f"| {case} | {markdown_code(' '.join(args))} | {markdown_code(PREFIX + message)} |"
        )
    case, args, shown = WRONG_TYPE
    lines.append(f"| {case} | {markdown_code(' '.join(args))} | {shown} |")
    return "\n".join(lines) + "\n"


def test_the_doc_table_is_the_table_of_the_tests():
    assert documented_table(TABLE_START) == render_table(), "run: python -m tests.test_user_errors"


def test_a_run_folder_with_no_logger_is_checked_before_training(cwd, monkeypatch):
    def must_not_train(*args):
        raise AssertionError("training started")

    monkeypatch.setattr("makemore_pl.lit.dense.BigramLitModule.training_step", must_not_train)
    message = run_cli(*FIT, "--trainer.logger", "false", "--trainer.default_root_dir", "blocker")
    assert message == (
        "makemore_pl: error: cannot write the run's logs and checkpoints to "
        "'blocker/lightning_logs' (Not a directory); set --trainer.default_root_dir to a folder "
        "you can write to"
    )


def test_an_error_inside_a_lightning_hook_is_one_message(cwd, monkeypatch):
    def setup(self, stage=None):
        raise DataError("data file 'words.txt' changed while the run started")

    monkeypatch.setattr(NamesDataModule, "setup", setup)
    assert run_cli(*FIT, "--trainer.max_epochs", "1", *QUIET) == (
        "makemore_pl: error: data file 'words.txt' changed while the run started"
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "case", ["data file missing", "checkpoint vocabulary differs from the data"]
)
def test_a_user_sees_one_line_and_no_traceback(cwd, case):
    row = next(row for row in ROWS if row[0] == case)
    proc = subprocess.run(
        [sys.executable, "-m", "makemore_pl", *row[1], *quiet(row[1])],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert_says(proc.stderr.splitlines()[-1], row)
    assert "Traceback" not in proc.stderr and proc.stdout == ""


# -- round 3: bombs through any option, outputs over inputs, imports, wrong numbers ------------
# ROUND_3 is docs/reliability.md's round-3 table, written by `python -m tests.test_user_errors`.

ROUND_3_START = "| round-3 case | command | what you see |"


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
def round_3_folder(tiny_run, tmp_path, monkeypatch) -> Path:
    """A folder with the round-3 inputs, as the current folder."""
    last = next((tiny_run / "lightning_logs").glob("version_0*")) / "checkpoints" / "last.ckpt"
    write_inputs(tmp_path, last)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))  # as `python -m` has the current folder
    monkeypatch.setattr(sys, "argv", ["makemore"])  # LightningCLI warns when both are given
    return tmp_path


FIT_1 = ["fit", "--data.path", "words.txt", "--trainer.max_epochs", "1"]

ALIASES = "its YAML aliases expand to more than 100,000 values, more than a config can hold; "

ALIASES += "write the values out instead of aliasing them"

REFUSED = "is not one of makemore_pl's models or callbacks, nor Lightning's callbacks, loggers or "

REFUSED += "plugins; refused without importing it"

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


def in_a_deleted_folder(folder: Path, monkeypatch) -> None:
    gone = folder / "gone"
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
ROUND_3 = [
    ("a config of nested aliases", [*FIT_1, "--config", "bomb.yaml"],
     f"--config bomb.yaml: {ALIASES}"),
    ("a model file of nested aliases", [*FIT_1, "--model", "model_bomb.yaml"],
     f"--model model_bomb.yaml: {ALIASES}"),
    ("a trainer file of nested aliases", [*FIT_1, "--trainer", "trainer_bomb.yaml"],
     f"--trainer trainer_bomb.yaml: {ALIASES}"),
    ("inline config text of nested aliases", [*FIT_1, "--config", INLINE_BOMB],
     f"--config: {ALIASES}"),
    ("inline model JSON of nested aliases", [*FIT_1, "--model", INLINE_MODEL_BOMB],
     f"--model: {ALIASES}"),
    ("inline trainer YAML of nested aliases", [*FIT_1, "--trainer", INLINE_TRAINER_BOMB],
     f"--trainer: {ALIASES}"),
    ("a model file of aliases named inside a config", [*FIT_1, "--config", "outer.yaml"],
     f"outer.yaml → model_bomb.yaml: {ALIASES}"),
    ("a trainer file of aliases named inside a config", [*FIT_1, "--config", "outer_trainer.yaml"],
     f"outer_trainer.yaml → trainer_bomb.yaml: {ALIASES}"),
    ("a number's option given an alias of itself", [*FIT_1, "--model.lr", "&a [*a, *a]"],
     f"--model.lr: {ALIASES}"),
    ("a config nested 200 levels deep", [*FIT_1, "--config", "deep.yaml"],
     "--config deep.yaml: YAML nested more than 64 levels deep (a makemore_pl config nests a few)"),
    ("a 2 MB config", [*FIT_1, "--config", "big.yaml"],
     "--config big.yaml: more than the 1.0 MB a config can hold"),
    ("the same bomb for a plain command", ["baseline", "--config", "bomb.yaml"],
     f"--config bomb.yaml: {ALIASES}"),
    ("a config value of 300 bytes, neither file nor YAML", [*FIT_1, "--config", "x" * 300],
     f"--config {X40} [… 220 characters cut …] {X40}: neither a config file (File name too "
     f"long) nor {NOR_YAML}"),
    ("the same 300 bytes for a plain command", ["baseline", "--config", "x" * 300],
     f"--config {X40} [… 220 characters cut …] {X40}: neither a config file (File name too "
     f"long) nor {NOR_YAML}"),
    ("a config file of a 300-byte name", [*FIT_1, "--config", "x" * 300 + ".yaml"],
     f"--config {X40} [… 225 characters cut …] {X40[5:]}.yaml: cannot read it (File name too "
     "long)"),
    ("a config file that is missing", [*FIT_1, "--config", "missing.yaml"],
     "--config missing.yaml: cannot read it (No such file or directory)"),
    # classes that would be imported
    ("a model class from a module in the current folder",
     [*FIT_1, "--model", "payload_mod.Anything"],
     f"--model: class 'payload_mod.Anything' {REFUSED}"),
    ("a callback class from a module in the current folder",
     [*FIT_1, "--trainer.callbacks+=payload_mod.Anything"],
     f"--trainer.callbacks+: class 'payload_mod.Anything' {REFUSED}"),
    ("a logger class from a module in the current folder",
     [*FIT_1, "--trainer.logger", "payload_mod.Anything"],
     f"--trainer.logger: class 'payload_mod.Anything' {REFUSED}"),
    ("inline JSON naming a class", [*FIT_1, "--model", '{"class_path": "payload_mod.Anything"}'],
     f"--model: class 'payload_mod.Anything' {REFUSED}"),
    ("inline YAML naming a class under a key",
     [*FIT_1, "--trainer", "logger: payload_mod.Anything"],
     f"--trainer: class 'payload_mod.Anything' {REFUSED}"),
    ("a list of callback classes", [*FIT_1, "--trainer.callbacks", "[payload_mod.Anything]"],
     f"--trainer.callbacks: class 'payload_mod.Anything' {REFUSED}"),
    ("a class in a model file named inside a config", [*FIT_1, "--config", "outer_class.yaml"],
     f"outer_class.yaml → model_class.yaml: class 'payload_mod.Anything' {REFUSED}"),
    ("a config naming a model class", [*FIT_1, "--config", "model_payload.yaml"],
     f"model_payload.yaml: class 'payload_mod.Anything' {REFUSED}"),
    ("a config naming a callback class", [*FIT_1, "--config", "callback_payload.yaml"],
     f"callback_payload.yaml: class 'payload_mod.Anything' {REFUSED}"),
    ("a config naming a standard-library module's class", [*FIT_1, "--config", "zen.yaml"],
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
    ("accumulating over 0 batches", [*FIT_1, "--trainer.accumulate_grad_batches", "0"],
     "--trainer.accumulate_grad_batches must be above 0, got 0"),
    ("validating every 0 epochs", [*FIT_1, "--trainer.check_val_every_n_epoch", "0"],
     "--trainer.check_val_every_n_epoch must be above 0, got 0"),
    ("training for 0 epochs", [*FIT_1, "--trainer.max_epochs", "0"],
     "--trainer.max_epochs must be above 0 (or -1, no limit), got 0"),
    ("training for 0 steps", [*FIT_1, "--trainer.max_steps", "0"],
     "--trainer.max_steps must be above 0 (or -1, no limit), got 0"),
    ("training on 0 batches", [*FIT_1, "--trainer.limit_train_batches", "0"],
     "--trainer.limit_train_batches must be above 0, got 0"),
    ("a batch size beyond 64 bits", [*FIT_1, "--data.batch_size", "100000000000000000000000"],
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
    ("DDP by spawning processes", [*FIT_1, "--trainer.strategy", "ddp_spawn",
                                   "--trainer.devices", "2"],
     "--trainer.strategy ddp_spawn: not supported (a spawned process cannot be handed the run's "
     "open lock and data); use --trainer.strategy ddp"),
    ("float16 weights with Adam", [*FIT_1, "--trainer.precision", "16-true"],
     "--trainer.precision 16-true: Adam cannot train float16 weights (its eps, 1e-8, is 0 in "
     "float16, and the first step divides by it); use --trainer.precision 16-mixed (float32 "
     "weights) or --model.optimizer sgd"),
    ("a checkpoint that is a symlink loop", ["sample", "--ckpt_path", "loop.ckpt"],
     "--ckpt_path loop.ckpt: cannot read it (Too many levels of symbolic links)"),
    ("a learning rate of nan", [*FIT_1, "--model.lr", "nan"],
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


def shown_3(row: tuple) -> str:
    return PREFIX + row[2] if row[2] is not None else "a usage error naming the option (exit 2)"


@pytest.mark.parametrize("row", ROUND_3, ids=[row[0] for row in ROUND_3])
def test_round_3_case(round_3_folder, row, monkeypatch):
    write_bad_settings(round_3_folder, row[1])
    before = sorted(p.name for p in round_3_folder.rglob("*"))
    args = row[1]
    if args[0] in SETUPS:
        SETUPS[args[0]](round_3_folder, monkeypatch)
        args = args[1:]
    if args[-1] in REDIRECTS:  # the standard output the shell would hand the command
        args = args[:-1]
        monkeypatch.setattr(sys, "stdout", REDIRECTS[row[1][-1]]())
    training = args[0] in ("fit", "validate", "test", "predict") and "--model.help" not in args
    quiet = QUIET if training else []
    try:
        got = run_cli(*args, *quiet)
    finally:
        if sys.stdout is not None and sys.stdout.name == "/dev/full":
            sys.stdout.close()  # main has pointed it at /dev/null: nothing is left to fail
    if row[2] is None:
        assert got == 2
    else:
        assert got == PREFIX + row[2]
    assert sorted(p.name for p in round_3_folder.rglob("*")) == before  # nothing written or lost


def code80(text: str) -> str:
    return markdown_code(text, 80)


def render_round_3() -> str:
    lines = [ROUND_3_START, "|---|---|---|"]
    for row in ROUND_3:
        message = code80(shown_3(row)) if row[2] is not None else shown_3(row)
        lines.append(f"| {row[0]} | {code80(' '.join(row[1]))} | {message} |")
    return "\n".join(lines) + "\n"


def test_the_round_3_table_is_the_table_of_the_tests():
    assert documented_table(ROUND_3_START) == render_round_3(), (
        "run: python -m tests.test_user_errors"
    )


# -- round 4: a resume or a test never silently changes what it measures; no hang, no OOM and no
# traceback from the Trainer's own options. ROUND_4 is docs/reliability.md's round-4 table.

ROUND_4_START = "| round-4 case | command | what you see |"
MANY_CALLBACKS = "trainer:\n  callbacks:\n" + "    - lightning.pytorch.callbacks.Timer\n" * 100


def write_round_4_inputs(folder: Path, tiny_run: Path) -> None:
    """words.txt, model.ckpt, copies of a run (its lock a FIFO, its config damaged) and the
    files the rows name."""
    (folder / "words.txt").write_text("\n".join(TINY_WORDS) + "\n", encoding="utf-8")
    shutil.copy(last_checkpoint(tiny_run), folder / "model.ckpt")
    for root in ("locked", "damaged"):
        shutil.copytree(tiny_run / "lightning_logs", folder / root / "lightning_logs")
    run = next((folder / "locked" / "lightning_logs").glob("version_0*"))
    (run / ".training.lock").unlink(missing_ok=True)
    os.mkfifo(run / ".training.lock")
    run = next((folder / "damaged" / "lightning_logs").glob("version_0*"))
    (run / "config.yaml").write_bytes(b"\xff\xfe not text")
    os.mkfifo(folder / "pipe")
    fixtures = Path(__file__).parent / "fixtures"  # a suffix model and the words it was trained on
    shutil.copy(fixtures / "layered_suffix.ckpt", folder / "suffix.ckpt")
    shutil.copy(fixtures / "words.txt", folder / "suffix_words.txt")
    (folder / "many.yaml").write_text(MANY_CALLBACKS)
    (folder / "null.yaml").write_text("model: null\n")
    (folder / "counted.txt").write_text("emma,3\nava,2\n")
    (folder / "dup.txt").write_text("emma\nava\n" * 5)
    model = torch.load(folder / "model.ckpt", weights_only=True)
    adam = copy.deepcopy(model)
    adam["optimizer_states"][0]["state"][0]["exp_avg"] = torch.zeros(3, 3)
    torch.save(adam, folder / "bad_adam.ckpt")
    model["loops"]["fit_loop"]["epoch_progress"]["total"]["ready"] = "five"
    torch.save(model, folder / "bad_loop.ckpt")


@pytest.fixture
def round_4_folder(tiny_run, tmp_path, monkeypatch) -> Path:
    """A folder with the round-4 inputs, as the current folder."""
    write_round_4_inputs(tmp_path, tiny_run)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["makemore"])  # LightningCLI warns when both are given
    return tmp_path


RESUME = ["fit", "--ckpt_path", "model.ckpt", "--data.path", "words.txt"]
KEEPS = (
    "a resume keeps what its numbers mean (the split, the data, the model's shape); drop the "
    "option, or start a new run without --ckpt_path"
)
UNTRAINED = "needs --ckpt_path best|last|PATH: without a checkpoint the model is untrained (every "
UNTRAINED += "weight 0)"
NOT_REGULAR = "not a regular file (a pipe, device or socket); save the options to a file first"
LIGHTNING = "(Lightning refused the --trainer options)"

# (case, command, the message after PREFIX[, what a message Lightning words must name])
ROUND_4 = [
    # silent changes: refused, or said
    ("a resume on another split", [*RESUME, "--data.seed", "7"],
     f"--ckpt_path model.ckpt: --data.seed 7 (was 42): {KEEPS}"),
    ("a resume with other fractions", [*RESUME, "--data.test_fraction", "0.5"],
     f"--ckpt_path model.ckpt: --data.test_fraction 0.5 (was 0.1): {KEEPS}"),
    ("a resume of another order", [*RESUME, "--data.context_size", "2"],
     f"--ckpt_path model.ckpt: --data.context_size 2 (was 1): {KEEPS}"),
    ("testing a model of another shape",
     ["test", "--ckpt_path", "suffix.ckpt", "--data.path", "suffix_words.txt",
      "--model.init_args.shortest", "1"],
     "--ckpt_path suffix.ckpt: --model.shortest 1 (was 0): the model is the checkpoint's; drop "
     "the option"),
    ("testing without a checkpoint", ["test", "--data.path", "words.txt"], f"test {UNTRAINED}"),
    ("predicting without a checkpoint", ["predict", "--data.path", "words.txt"],
     f"predict {UNTRAINED}"),
    ("a smoothing of nan", ["baseline", "--data.path", "words.txt", "--smoothing", "nan"],
     "--smoothing must be 0 or more, 'auto', 'kneser-ney', 'kneser-ney-auto' or 'best', got nan"),
    ("an infinite smoothing in a grid", [*SWEEP, "--smoothing_grid", "[inf]"],
     "--smoothing_grid must list finite values of 0 or more, got [inf]"),
    ("an infinite l2 in a grid", ["sweep", "--data.path", "words.txt", "--l2_grid", "[inf, 0.01]"],
     "--l2_grid must list finite values of 0 or more, got [inf, 0.01]"),
    # hangs and memory
    ("a config that is a FIFO", ["fit", "--config", "pipe"], f"--config pipe: {NOT_REGULAR}"),
    ("a config that never ends", ["baseline", "--config", "/dev/zero"],
     f"--config /dev/zero: {NOT_REGULAR}"),
    ("a config that is a folder", ["fit", "--config", "."], "--config .: cannot read it (Is a "
     "directory)"),
    ("a snapshot of a billion names", [*FIT_1, "--snapshots.num_samples", "1000000000"],
     "--snapshots.num_samples must be from 0 to 1,000, got 1000000000"),
    ("a config of a hundred callbacks", ["fit", "--config", "many.yaml"],
     "many.yaml: names more than 64 classes to build, more than a run uses (a model, a few "
     "callbacks and loggers)"),
    ("two nodes on one machine", [*FIT_1, "--trainer.num_nodes", "2"],
     "--trainer.num_nodes 2: this process was not started by a launcher of several nodes (no "
     "NODE_RANK, GROUP_RANK or SLURM_NNODES in its environment), so it would wait for the other "
     "nodes forever; start it on every node with your cluster's launcher (torchrun, srun), or "
     "train on this machine with num_nodes 1"),
    ("a run whose lock file is a FIFO",
     ["fit", "--trainer.default_root_dir", "locked", "--ckpt_path", "last",
      "--trainer.max_epochs", "3"],
     "'…/locked/lightning_logs/version_0_bigram-adam/.training.lock': the run's lock file is not "
     "a regular file; remove it and run again",
     ("/locked/lightning_logs/version_0_bigram-adam/.training.lock': the run's lock file is not "
      "a regular file; remove it and run again",)),
    ("a search of a billion rounds",
     ["suffix_sweep", "--data.path", "words.txt", "--rounds", "1000000000"],
     "--rounds must be at most 20 (by then a move is a factor of 1), got 1000000000"),
    # options Lightning refuses, damaged inputs, a config section of null
    ("FSDP on the CPU", [*FIT_1, "--trainer.strategy", "fsdp"],
     "The strategy `fsdp` requires a GPU accelerator, but received `accelerator='cpu'`. Please "
     "set `accelerator='cuda'`, `accelerator='gpu'`, or pass a `CUDAAccelerator()` instance to "
     f"use FSDP. {LIGHTNING}", ("fsdp", LIGHTNING)),
    ("DeepSpeed, not installed", [*FIT_1, "--trainer.strategy", "deepspeed"],
     "To use the `DeepSpeedStrategy`, you must have DeepSpeed installed. Install it by running "
     f"`pip install -U deepspeed`. {LIGHTNING}", ("deepspeed", LIGHTNING)),
    ("a TPU", [*FIT_1, "--trainer.accelerator", "tpu"],
     "Requirement 'torch_xla>=1.13' not met. HINT: Try running `pip install -U "
     f"'torch_xla>=1.13'` {LIGHTNING}", ("torch_xla", LIGHTNING)),
    ("an HPU", [*FIT_1, "--trainer.accelerator", "hpu"],
     "You selected an invalid accelerator name: `accelerator='hpu'`. Available names are: auto, "
     f"cuda, tpu, cpu, mps. {LIGHTNING}", ("hpu", LIGHTNING)),
    ("devices as a list on the CPU", [*FIT_1, "--trainer.devices", "[0,1]"],
     f"`devices` selected with `CPUAccelerator` should be an int > 0. {LIGHTNING}",
     ("devices", LIGHTNING)),
    ("validating past the only batch", [*FIT_1, "--trainer.val_check_interval", "5"],
     "`val_check_interval` (5) must be less than or equal to the number of the training "
     "batches (1). If you want to disable validation set `limit_val_batches` to 0.0 instead. If "
     "you want to validate based on the total training batches, set "
     f"`check_val_every_n_epoch=None`. {LIGHTNING}", ("val_check_interval", LIGHTNING)),
    ("a gradient clip of nan", [*FIT_1, "--trainer.gradient_clip_val", "nan"],
     "--trainer.gradient_clip_val must be a finite number, got nan"),
    ("a config whose model section is null", ["fit", "--config", "null.yaml"],
     "--config null.yaml: its model: section is empty (null); give it options, or remove the "
     "line"),
    ("a checkpoint given as a config", ["fit", "--config", "model.ckpt"],
     "--config model.ckpt: not YAML text (its bytes are not UTF-8; a checkpoint goes to "
     "--ckpt_path)"),
    ("a resume whose run config is not text",
     ["fit", "--trainer.default_root_dir", "damaged", "--ckpt_path", "last"],
     "…/damaged/lightning_logs/version_0_bigram-adam/config.yaml: the run's config is damaged "
     "(not YAML text (its bytes are not UTF-8)); fix it, or remove it to resume with the "
     "checkpoint's own settings",
     ("/damaged/lightning_logs/version_0_bigram-adam/config.yaml: the run's config is damaged "
      "(not YAML text (its bytes are not UTF-8)); fix it, or remove it to resume with the "
      "checkpoint's own settings",)),
    ("a resume of Adam moments of another shape",
     ["fit", "--ckpt_path", "bad_adam.ckpt", "--data.path", "words.txt"],
     "--ckpt_path bad_adam.ckpt: refused, its optimizer state exp_avg of weight 0 does not fit "
     "the model's weights (of shapes [(15, 15)])"),
    ("a resume of loop progress that is text",
     ["fit", "--ckpt_path", "bad_loop.ckpt", "--data.path", "words.txt"],
     "--ckpt_path bad_loop.ckpt: refused, its loops.fit_loop.epoch_progress.total.ready is "
     "five, not a count"),
    # unclear messages made clear
    ("names to score that have counts", [*PREDICT, "--data.predict_path", "counted.txt"],
     "data file 'counted.txt' holds name,count lines where names, one per line, are expected "
     "(as --data.predict_path scores them): keep the names with `cut -d, -f1`, or read the file "
     "with load_counted_words"),
    ("dedupe leaving the val split empty", ["fit", "--data.path", "dup.txt", "--data.dedupe",
                                            "true"],
     "data file 'dup.txt': its 2 distinct names leave the val split empty (val_fraction 0.1, "
     "test_fraction 0.1); use more names or other fractions"),
]  # fmt: skip


@pytest.mark.parametrize("row", ROUND_4, ids=[row[0] for row in ROUND_4])
def test_round_4_case(round_4_folder, row):
    before = sorted(str(p) for p in round_4_folder.rglob("*"))
    assert_says(run_cli(*row[1], *quiet(row[1])), row)
    assert sorted(str(p) for p in round_4_folder.rglob("*")) == before  # nothing written or lost


def render_round_4() -> str:
    lines = [ROUND_4_START, "|---|---|---|"]
    for case, args, message, *_ in ROUND_4:
        lines.append(f"| {case} | {code80(' '.join(args))} | {code80(PREFIX + message)} |")
    return "\n".join(lines) + "\n"


def test_the_round_4_table_is_the_table_of_the_tests():
    assert documented_table(ROUND_4_START) == render_round_4(), (
        "run: python -m tests.test_user_errors"
    )


if __name__ == "__main__":  # python -m tests.test_user_errors: rewrite the doc's tables
    text = DOC.read_text(encoding="utf-8")
    text = text.replace(documented_table(TABLE_START), render_table())
    text = text.replace(documented_table(ROUND_3_START), render_round_3())
    text = text.replace(documented_table(ROUND_4_START), render_round_4())
    DOC.write_text(text, encoding="utf-8")
