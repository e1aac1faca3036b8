"""What the pages say is true: every command line they show parses; the version; data files named
and downloaded at most once."""

import re
import shlex
import shutil
import sys

import pytest
from jsonargparse import ArgumentParser

from makemore_pl.cli.main import main
from tests.conftest import PREFIX, QUIET, ROOT, TINY_WORDS, exit_of, last_checkpoint, run_cli

# reliability.md shows refused input on purpose
PAGES = [
    ROOT / "README.md",
    *sorted(set((ROOT / "docs").glob("*.md")) - {ROOT / "docs" / "reliability.md"}),
]
COMMANDS = "fit|validate|test|predict|sample|baseline|sweep|suffix_sweep"
LAUNCHED = re.compile(r"-m makemore_pl\b ?([^`#\n]*)")  # `python -m`, `srun python -m`, torchrun
INLINE = re.compile(rf"`((?:{COMMANDS}) [^`]*)`")  # `test --ckpt_path best` in a sentence


def command_lines() -> list[str]:
    found = set()
    for page in PAGES:
        text = page.read_text(encoding="utf-8").replace("\\\n", " ")
        found |= {m.group(1).strip() for m in LAUNCHED.finditer(text)}
        found |= {m.group(1).strip() for m in INLINE.finditer(text)}
    return sorted(line for line in found if line)


class Parsed(Exception):
    """Raised once a command line is parsed: nothing runs."""


@pytest.mark.slow  # a parser per command line: about 5 s
def test_every_command_line_the_pages_show_parses(tiny_run, tmp_path, monkeypatch, capsys):
    shutil.copytree(tiny_run, tmp_path, dirs_exist_ok=True)  # a run for --ckpt_path best|last
    shutil.copy(last_checkpoint(tiny_run), tmp_path / "last.ckpt")
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    parse = ArgumentParser.parse_args

    def parse_only(self, *args, **kwargs):
        parse(self, *args, **kwargs)
        raise Parsed

    monkeypatch.setattr(ArgumentParser, "parse_args", parse_only)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["makemore"])
    refused = {}
    lines = command_lines()
    for line in lines:
        try:
            main(shlex.split(line))
        except Parsed:
            continue
        except SystemExit as done:
            if done.code not in (0, None):  # 0: --help
                refused[line] = str(done.code) + capsys.readouterr().err[-300:]
    assert refused == {}
    assert len(lines) > 40 and "sample --trainer.accelerator gpu" in lines


def test_version(capsys):
    main(["--version"])
    assert re.fullmatch(r"makemore_pl \d+\.\d+\.\d+\S*\n", capsys.readouterr().out)


def test_a_data_file_from_elsewhere_is_named(tiny_run, tmp_path, caplog):
    shutil.copy(last_checkpoint(tiny_run), tmp_path / "model.ckpt")  # no words.txt here
    run_cli("test", "--ckpt_path", "model.ckpt", *QUIET, cwd=tmp_path)
    assert f"data: {(tiny_run / 'words.txt').resolve()}" in caplog.messages


@pytest.mark.slow
def test_a_missing_names_file_is_downloaded_once_per_command(tmp_path, monkeypatch):
    trained = tmp_path / "trained"
    trained.mkdir()
    (trained / "names.txt").write_text("\n".join(TINY_WORDS) + "\n", encoding="utf-8")
    run_cli("fit", "--trainer.max_epochs", "1", *QUIET, cwd=trained)
    shutil.copy(last_checkpoint(trained), tmp_path / "model.ckpt")
    # as if it were the canonical names.txt, which is downloaded where it was when missing
    from makemore_pl.cli import resume
    from makemore_pl.core import data, data_identity

    sha = data_identity.DataFile.of(trained / "names.txt").sha256
    monkeypatch.setattr(resume, "NAMES_SHA256", sha)
    (trained / "names.txt").unlink()
    tries = []

    def no_network(path, *args):
        tries.append(path)
        raise data.DataError(f"data file {str(path)!r} is missing and could not be downloaded")

    monkeypatch.setattr(data, "download_names", no_network)
    monkeypatch.chdir(tmp_path)
    message = exit_of("test", "--ckpt_path", "model.ckpt", *QUIET)
    missing = f"data file {str(trained / 'names.txt')!r} is missing"
    assert message == f"{PREFIX}{missing} and could not be downloaded"
    assert tries == [trained / "names.txt"]
