"""Figures: the next-character heatmap draws any names, any vocabulary size and NaN weights,
bounded in size; TensorBoard snapshots of a large vocabulary."""

import io

import pytest
import torch

from makemore_pl.core.vocabulary import Vocabulary
from makemore_pl.lit import heatmap as plots
from makemore_pl.lit.heatmap import probability_heatmap
from makemore_pl.models.saved import read_checkpoint
from tests.conftest import QUIET, last_checkpoint, run_cli


def test_a_heatmap_of_names_with_dollars_and_nan_weights_renders():
    vocab = Vocabulary(list("$^_ab"))  # the context "$^$" (row 1·36 + 2·6 + 1) is no formula
    probs = torch.softmax(torch.randn(2, 6), -1)
    probs[1] = float("nan")
    fig = probability_heatmap(probs, [0, 49], vocab, 3, "step 0")
    fig.savefig(io.BytesIO(), format="png")
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["...", "$^$"]


def test_a_heatmap_stays_small_for_a_large_vocabulary():
    vocab = Vocabulary([chr(0x4E00 + i) for i in range(3920)])
    probs = torch.softmax(torch.randn(27, 3921), -1)
    fig = probability_heatmap(probs, list(range(27)), vocab, 1, annotate=False)
    assert max(fig.get_size_inches()) <= plots.MAX_INCHES
    assert len(fig.axes[0].get_xticklabels()) == plots.MAX_COLUMNS


@pytest.mark.slow
def test_a_bigram_of_a_3921_character_vocabulary_trains_with_its_snapshots(tmp_path):
    chars = [chr(0x4E00 + i) for i in range(3920)]
    words = ["".join(chars[i : i + 3]) for i in range(3918)]  # every character, in 3 places
    (tmp_path / "cjk.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    args = ["fit", "--data.path", "cjk.txt", "--trainer.max_epochs", "2", *QUIET]
    run_cli(*args, cwd=tmp_path)
    weights = read_checkpoint(str(last_checkpoint(tmp_path))).model.W
    assert weights.shape == (3921, 3921)
