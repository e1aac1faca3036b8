"""Context keys: a context <-> its row of the V**c table, for any V and c, in one module."""

import pytest
import torch

from makemore_pl import DataError, Vocabulary
from makemore_pl.core.contexts import (
    check_keys_fit,
    context_rows,
    largest_context_size,
    ngram_keys,
    row_contexts,
    row_text,
    sliding_keys,
    split_keys,
    suffix,
)
from makemore_pl.lit.heatmap import context_label


@pytest.mark.parametrize("vocab_size, context_size", [(2, 1), (5, 3), (27, 6), (3921, 4)])
def test_rows_and_contexts_round_trip(vocab_size, context_size):
    generator = torch.Generator().manual_seed(vocab_size)
    x = torch.randint(vocab_size, (200, context_size), generator=generator)
    rows = context_rows(x, vocab_size)
    assert torch.equal(row_contexts(rows, vocab_size, context_size), x)
    assert int(rows.max()) < vocab_size**context_size
    y = torch.randint(vocab_size, (200,), generator=generator)
    contexts, next_ids = split_keys(ngram_keys(x, y, vocab_size), vocab_size, context_size)
    assert torch.equal(contexts, x) and torch.equal(next_ids, y)
    for k in range(context_size + 1):  # the last k characters are the k lowest digits
        assert torch.equal(
            suffix(rows, k, vocab_size), context_rows(x[:, context_size - k :], vocab_size)
        )


def test_rows_are_base_v_most_significant_first():
    x = torch.tensor([[0, 0], [1, 2], [4, 4]])
    assert context_rows(x, 5).tolist() == [0, 7, 24]
    assert ngram_keys(x, torch.tensor([1, 0, 3]), 5).tolist() == [1, 35, 123]


def test_row_text_and_heatmap_labels():
    vocab = Vocabulary(list("abcdefghijklmnopqrstuvwxyz"))
    assert row_text(1, vocab.itos, 2) == ".a" == context_label(1, vocab, 2)
    assert row_text(28, vocab.itos, 2) == "aa" == context_label(28, vocab, 2)
    assert row_text(0, vocab.itos, 3) == "..."


@pytest.mark.parametrize("vocab_size, largest", [(2, 61), (27, 12), (28, 12), (3921, 4)])
def test_the_largest_context_whose_keys_fit(vocab_size, largest):
    assert largest_context_size(vocab_size) == largest
    check_keys_fit(vocab_size, largest)
    with pytest.raises(DataError, match=f"at most {largest}"):
        check_keys_fit(vocab_size, largest + 1)


def test_sliding_keys_are_the_keys_of_every_window():
    stream = torch.tensor([0, 0, 2, 3, 3, 1, 0, 0, 1])
    windows = stream.unfold(0, 3, 1)
    expected = ngram_keys(windows[:, :2], windows[:, 2], 5)
    assert torch.equal(sliding_keys(stream, 5, 2), expected)
