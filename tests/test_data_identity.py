"""A checkpoint records its data file by resolved path and content: it works from any folder,
notices a different file of the same name, and needs no training file to score or sample."""

import shutil
from pathlib import Path

import pytest

from makemore_pl.core.data_identity import DataFile, locate
from tests.conftest import QUIET, TINY_WORDS, checkpoint, printed_nlls, run_cli, run_folder

OTHER_WORDS = ["noah", "liam", "oliver", "elijah", "james", "william", "benjamin", "lucas"]


def write(folder: Path, words: list[str], name: str = "words.txt") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("\n".join(words) + "\n", encoding="utf-8")
    return folder / name


@pytest.fixture
def trained(tmp_path: Path) -> tuple[Path, Path]:
    """(folder A with words.txt and its run, the run's best.ckpt), trained with the path typed
    relative to A."""
    folder = tmp_path / "A"
    write(folder, TINY_WORDS * 3)
    args = ["--data.path", "words.txt", "--data.val_fraction", "0.3", "--trainer.max_epochs", "3"]
    run_cli("fit", *args, *QUIET, cwd=folder)
    return folder, run_folder(folder) / "checkpoints" / "best.ckpt"


def test_a_data_file_is_known_by_its_content(tmp_path: Path):
    path = write(tmp_path, TINY_WORDS)
    record = DataFile.of(path)
    assert record.path == str(path.resolve()) and record.size == path.stat().st_size
    assert DataFile.from_saved(record.saved()) == record
    assert DataFile.from_saved(None) is None and DataFile.from_saved({"path": 1}) is None
    moved = tmp_path / "elsewhere" / "words.txt"
    moved.parent.mkdir()
    path.rename(moved)
    assert locate(record, moved) == (moved, True)
    write(tmp_path, OTHER_WORDS)  # the old place now holds other names
    assert not record.same_content(path) and locate(record, tmp_path / "nowhere") == (None, False)


def test_the_checkpoint_records_the_resolved_file(trained):
    folder, best = trained
    saved = checkpoint(best)["datamodule_hyper_parameters"]
    assert saved["path"] == "words.txt"  # as typed: the run's settings are unchanged
    assert DataFile.from_saved(saved["_data_file"]) == DataFile.of(folder / "words.txt")


def test_test_from_another_folder_tests_on_the_training_file(trained, tmp_path, capsys):
    folder, best = trained
    run_cli("test", "--ckpt_path", str(best), *QUIET, cwd=folder)
    at_home = printed_nlls(capsys.readouterr().out)
    elsewhere = tmp_path / "B"
    write(elsewhere, OTHER_WORDS)  # a different words.txt: never silently tested on
    run_cli("test", "--ckpt_path", str(best), *QUIET, cwd=elsewhere)
    assert printed_nlls(capsys.readouterr().out) == at_home


def test_another_file_is_used_only_when_asked_for_and_never_to_resume(trained, tmp_path, caplog):
    folder, best = trained
    elsewhere = tmp_path / "B"
    write(elsewhere, [w[::-1] for w in TINY_WORDS] * 3)  # the same letters, other names
    run_cli("test", "--ckpt_path", str(best), "--data.path", "words.txt", *QUIET, cwd=elsewhere)
    assert "note: test on --data.path words.txt, not the file the model was trained on" in (
        caplog.text
    )
    resume = ["--ckpt_path", str(best), "--data.path", "words.txt", "--trainer.max_epochs", "6"]
    with pytest.raises(SystemExit, match="holds other data, and a resume must train on the same"):
        run_cli("fit", *resume, *QUIET, cwd=elsewhere)


def test_a_moved_file_is_found_and_a_gone_one_is_one_line(trained, tmp_path, caplog):
    folder, best = trained
    elsewhere = tmp_path / "B"
    elsewhere.mkdir()
    shutil.move(folder / "words.txt", elsewhere / "words.txt")
    run_cli("test", "--ckpt_path", str(best), *QUIET, cwd=elsewhere)
    assert f"data file moved: {folder / 'words.txt'} is now {elsewhere / 'words.txt'}" in (
        caplog.text
    )
    (elsewhere / "words.txt").unlink()
    with pytest.raises(SystemExit, match=r"words.txt \(.* bytes, sha256 .*\), is gone"):
        run_cli("test", "--ckpt_path", str(best), *QUIET, cwd=elsewhere)


def test_predict_and_sample_need_no_training_file(trained, tmp_path, capsys):
    folder, best = trained
    (folder / "words.txt").unlink()
    elsewhere = tmp_path / "B"
    write(elsewhere, ["emma", "ava"], "score.txt")
    out = elsewhere / "scores.tsv"
    predict = ["--ckpt_path", str(best), "--data.predict_path", "score.txt", "--output", str(out)]
    run_cli("predict", *predict, *QUIET, cwd=elsewhere)
    assert [row.split("\t")[0] for row in out.read_text().splitlines()] == ["name", "emma", "ava"]
    assert not (elsewhere / "words.txt").exists()  # nothing downloaded or made up
    capsys.readouterr()
    run_cli("sample", "--ckpt_path", str(best), "--num_samples", "3", cwd=elsewhere)
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 3
    assert f"sampling from {best}" in captured.err
    assert "3 names (no training words at hand to compare with)" in captured.err


def test_sample_counts_new_names_against_the_checkpoints_own_data(trained, tmp_path, capsys):
    folder, best = trained
    elsewhere = tmp_path / "B"
    write(elsewhere, OTHER_WORDS, "other.txt")
    args = ["--ckpt_path", str(best), "--num_samples", "200", "--data.path", "other.txt"]
    run_cli("sample", *args, cwd=elsewhere)
    err = capsys.readouterr().err
    assert f"compared with the training words of {(folder / 'words.txt').resolve()}" in err
    assert ", 0 in the training words" not in err  # a bigram of 9 names repeats some of them


def test_every_command_spells_the_trainers_options_the_same_way(trained, tmp_path, capsys):
    folder, _ = trained
    root = ["--trainer.default_root_dir", str(folder), "--trainer.accelerator", "cpu"]
    run_cli("sample", *root, "--ckpt_path", "best", "--num_samples", "2", cwd=tmp_path)
    assert len(capsys.readouterr().out.splitlines()) == 2
    for option in ("--default_root_dir", "--accelerator"):
        with pytest.raises(SystemExit, match=f"{option} is spelled --trainer.{option[2:]}"):
            run_cli("sample", option, "cpu", "--ckpt_path", "best", cwd=tmp_path)
