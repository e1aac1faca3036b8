"""Every user error of docs/reliability.md's table: one line, exit status 1, nothing written.

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
    documented_table,
    last_checkpoint,
    markdown_code,
    quiet,
)

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


if __name__ == "__main__":  # python -m tests.test_user_errors: rewrite the doc's table
    text = DOC.read_text(encoding="utf-8")
    DOC.write_text(text.replace(documented_table(TABLE_START), render_table()), encoding="utf-8")
