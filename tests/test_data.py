import pytest
import torch
import torch.nn.functional as F

from makemore_pl import (
    DataError,
    NamesDataModule,
    Vocabulary,
    build_ngrams,
    load_words,
    split_words,
)
from makemore_pl.core.contexts import context_rows
from makemore_pl.core.errors import SettingError

EMMA_AVA = ["emma", "ava"]


def test_load_words_cleans_lines(tmp_path):
    path = tmp_path / "w.txt"
    path.write_bytes("\ufeffemma\r\n\r\n  Ava \t\r\nemma\n\n".encode())
    assert load_words(path) == ["emma", "Ava", "emma"]


@pytest.mark.parametrize(
    "content, message",
    [(b"", "holds no words"), (b"  \n\t\n\r\n", "holds no words"), (b"ok\nbad\xff\n", "line 2")],
)
def test_load_words_errors_name_the_file(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message) as err:
        load_words(path)
    assert str(path) in str(err.value)


def test_load_words_missing_file(tmp_path):
    with pytest.raises(DataError, match="does not exist") as err:
        load_words(tmp_path / "nope.txt")
    assert "nope.txt" in str(err.value)
    assert isinstance(err.value, ValueError)


def test_vocabulary_layout_and_round_trip():
    vocab = Vocabulary.from_words(EMMA_AVA)
    assert vocab.itos == [".", "a", "e", "m", "v"]
    assert len(vocab) == 5
    assert vocab.stoi == {"a": 1, "e": 2, "m": 3, "v": 4}
    assert vocab.encode("emma") == [2, 3, 3, 1]
    assert vocab.decode([2, 3, 3, 1]) == "emma"
    assert Vocabulary(vocab.to_list()) == vocab
    assert vocab.to_list() == ["a", "e", "m", "v"]


def test_boundary_character_in_data_is_a_distinct_token():
    vocab = Vocabulary.from_words(["st.john", "al"])
    dot = vocab.stoi["."]
    assert dot != 0
    x, y = build_ngrams(["st.john"], vocab, 1)
    assert (y == 0).sum() == 1  # only the real end of the word is the boundary
    assert (y == dot).sum() == 1


def test_unknown_character_is_a_clear_error():
    with pytest.raises(DataError, match="'z'"):
        Vocabulary.from_words(EMMA_AVA).encode("zoe")


def test_bigram_framing_is_exact():
    vocab = Vocabulary.from_words(EMMA_AVA)
    x, y = build_ngrams(EMMA_AVA, vocab, 1)
    # .e em mm ma a.  .a av va a.
    assert x.squeeze(1).tolist() == [0, 2, 3, 3, 1, 0, 1, 4, 1]
    assert y.tolist() == [2, 3, 3, 1, 0, 1, 4, 1, 0]
    assert x.dtype == y.dtype == torch.long


def test_trigram_framing_is_exact():
    vocab = Vocabulary.from_words(EMMA_AVA)
    x, y = build_ngrams(EMMA_AVA, vocab, 2)
    contexts = ["".join(vocab.itos[i] for i in row) for row in x.tolist()]
    assert contexts == ["..", ".e", "em", "mm", "ma", "..", ".a", "av", "va"]
    assert vocab.decode(y.tolist()) == "emma.ava."


@pytest.mark.parametrize("context_size", [1, 2, 3, 4])
def test_every_order_has_the_same_examples_on_names(names_path, context_size):
    words = load_words(names_path)
    assert len(words) == 32033
    vocab = Vocabulary.from_words(words)
    assert len(vocab) == 27
    x, y = build_ngrams(words, vocab, context_size)
    assert x.shape == (228146, context_size) and y.shape == (228146,)
    assert (x == 0).all(1).sum() == len(words)  # one all-boundary context starts each word


def test_split_is_by_word_deterministic_and_complete():
    words = [f"w{i}" for i in range(100)] + ["dup"] * 10
    train, val, test = split_words(words, 0.1, 0.2, seed=3)
    assert (train, val, test) == split_words(words, 0.1, 0.2, seed=3)
    assert split_words(words, 0.1, 0.2, seed=4) != (train, val, test)
    assert (len(train), len(val), len(test)) == (77, 11, 22)
    assert sorted(train + val + test) == sorted(words)


def test_dedupe_keeps_names_out_of_two_splits():
    words = ["anna", "bob", "cy", "dan", "eve"] * 20
    train, val, test = split_words(words, 0.2, 0.2, seed=0, dedupe=True)
    assert sorted(train + val + test) == sorted(set(words))
    assert not (set(train) & set(val) or set(train) & set(test) or set(val) & set(test))


@pytest.mark.parametrize("val, test", [(-0.1, 0.1), (1.0, 0.0), (0.5, 0.5), (0.1, 1.2)])
def test_bad_fractions_are_named(val, test):
    with pytest.raises(SettingError, match="fraction"):
        split_words(["a", "b"], val, test, seed=0)


def test_datamodule_knows_its_vocabulary_before_setup(tiny_file):
    dm = NamesDataModule(str(tiny_file(EMMA_AVA)), context_size=2)
    assert dm.data.vocab_size == 5 and dm.data.context_size == 2
    assert dm.data.vocab.itos == [".", "a", "e", "m", "v"]


@pytest.mark.parametrize(
    "kwargs, option",
    [
        ({"context_size": 0}, "context_size"),
        ({"batch_size": 0}, "batch_size"),
        ({"encoding": "dense"}, "encoding"),
        ({"val_fraction": 1.5}, "val_fraction"),
        ({"seed": 10**20}, r"seed must be a whole number in \[0, 2\*\*63\), got 1000"),
        ({"seed": -1}, "seed"),
    ],
)
def test_datamodule_rejects_bad_options(kwargs, option):
    with pytest.raises(SettingError, match=option):
        NamesDataModule("x.txt", **kwargs)


def test_onehot_expands_after_transfer(tiny_file):
    dm = NamesDataModule(
        str(tiny_file(EMMA_AVA)), context_size=2, encoding="onehot", val_fraction=0, test_fraction=0
    )
    x, y, counts = next(iter(dm.train_dataloader()))
    assert x.dtype == torch.long and x.shape[1] == 2  # the host holds ids only
    onehot, y2, _ = dm.on_after_batch_transfer((x, y, counts), 0)
    assert onehot.shape == (len(y), 25) and onehot.dtype == torch.float32
    assert torch.equal(onehot, F.one_hot(context_rows(x, 5), 25).float())
    assert torch.equal(y, y2)


def test_context_rows_are_base_v():
    x = torch.tensor([[0, 0], [1, 2], [4, 4]])
    assert context_rows(x, 5).tolist() == [0, 7, 24]
