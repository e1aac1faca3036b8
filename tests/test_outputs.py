"""Files the commands write (figures, predictions, checkpoints): whole or not at all, never
over an input, a device or a file of another kind, one line when a write fails."""

import errno

import pytest
import torch

from makemore_pl.cli.plain.sweep import save_png
from makemore_pl.core.errors import CommandError
from makemore_pl.core.vocabulary import Vocabulary
from makemore_pl.lit.heatmap import probability_heatmap


def small_figure():
    return probability_heatmap(torch.eye(3), [0, 1, 2], Vocabulary(["a", "b"]), 1, annotate=False)


def test_save_png_writes_the_file_whole_and_nothing_else(tmp_path):
    path = save_png(small_figure(), tmp_path / "figs" / "heat.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in path.parent.iterdir()] == ["heat.png"]


@pytest.mark.parametrize(
    "err, message",
    [
        (OSError(errno.ENOSPC, "No space left on device"), "no space left on device writing {}"),
        (OSError(errno.EACCES, "Permission denied"), "cannot write {} (Permission denied)"),
    ],
)  # fmt: skip
def test_save_png_failures_are_one_line_and_keep_the_old_file(tmp_path, monkeypatch, err, message):
    path = save_png(small_figure(), tmp_path / "heat.png")
    before = path.read_bytes()
    fig = small_figure()

    def fails(file, **kwargs):
        file.write(b"\x89PNG half a figure")
        raise err

    monkeypatch.setattr(fig, "savefig", fails)
    with pytest.raises(CommandError) as failed:
        save_png(fig, path)
    assert str(failed.value) == message.format(path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["heat.png"]


def test_save_png_under_a_file_is_one_line(tmp_path):
    (tmp_path / "blocker").write_text("")
    with pytest.raises(CommandError) as failed:
        save_png(small_figure(), tmp_path / "blocker" / "x.png")
    assert str(failed.value) == (
        f"cannot write {tmp_path}/blocker/x.png ({tmp_path}/blocker is not a folder)"
    )


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
