"""name,count data files: parsing, the split by name, and weights equal to repeated names."""

import itertools

import pytest
import torch

from makemore_pl import (
    BigramLitModule,
    CountingBaseline,
    DataError,
    NamesData,
    NamesDataModule,
    load_counted_words,
    load_words,
)
from makemore_pl.cli.plain.baseline import baseline
from makemore_pl.lit.callbacks import CountingReference
from makemore_pl.models.counting import tune_best
from tests.conftest import quiet_trainer

COUNTED = {"emma": 3, "olivia": 1, "ava": 5, "mia": 2, "sophia": 4, "isabella": 1, "amelia": 2}


def write(tmp_path, text: str, name: str = "counts.txt"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def counted_file(tmp_path, counted=COUNTED):
    return write(tmp_path, "".join(f"{name},{n}\n" for name, n in counted.items()))


def repeated_file(tmp_path, counted=COUNTED):
    lines = [name for name, n in counted.items() for _ in range(n)]
    return write(tmp_path, "\n".join(lines) + "\n", "repeated.txt")


def test_counted_file_is_read_with_its_counts(tmp_path):
    path = write(tmp_path, "\ufeffOlivia,17728\r\n\r\n  Emma , 5 \nMary Ann,3\nEmma,2\n")
    assert load_counted_words(path) == (["Olivia", "Emma", "Mary Ann"], [17728, 7, 3])
    with pytest.raises(DataError, match="load_counted_words"):
        load_words(path)


def test_plain_file_has_no_counts(tmp_path):
    path = write(tmp_path, "emma\nava\nemma\nst. john, jr\n")  # a comma after line 1 is a name
    assert load_counted_words(path) == (["emma", "ava", "emma", "st. john, jr"], None)
    assert load_words(path) == ["emma", "ava", "emma", "st. john, jr"]


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("Emma,5\nOlivia,abc\n", 2, "'abc' is not a whole number"),
        ("Emma,5\n\nAva,-3\n", 3, "'-3' is not a whole number"),
        ("Emma,5\nAva,2.5\n", 2, "'2.5' is not a whole number"),
        ("Emma,5\n,5\n", 2, "the name is empty"),
        ("Emma,5\nAva,0\n", 2, "not between 1 and"),
        ("Emma,5\nAva\n", 2, "no comma"),
        ("Emma,5\nAva,3,1\n", 2, "3 comma-separated fields"),
        ("Olivia,F,17728\n", 1, "drop the sex column"),
        ("Emma\nAva,3\n", 2, "is a name,count line, but line 1 is a plain name"),
        ("\n\nEmma\n,7\n", 4, "is a name,count line, but line 3 is a plain name"),
    ],
)
def test_malformed_lines_are_errors_naming_file_and_line(tmp_path, text, line, message):
    path = write(tmp_path, text)
    with pytest.raises(DataError, match=message) as err:
        load_counted_words(path)
    assert f"{str(path)!r}, line {line}:" in str(err.value)


def test_split_is_by_name_and_keeps_the_counts(tmp_path):
    counted = {f"name{i}": 1 + i % 5 for i in range(40)}
    dm = NamesData(str(counted_file(tmp_path, counted)), val_fraction=0.2, test_fraction=0.2)
    parts = dm.counted_split()
    assert sorted(e for part in parts.values() for e in part) == sorted(counted.items())
    assert [len(part) for part in parts.values()] == [24, 8, 8]
    for split, part in parts.items():
        x, y, weights = dm.examples(split)
        expected = [n for name, n in part for _ in range(len(name) + 1)]
        assert weights.tolist() == expected and len(y) == len(expected)
    deduped = NamesData(dm.config.path, val_fraction=0.2, test_fraction=0.2, dedupe=True)
    assert deduped.counted_split() == parts  # each name is on one line already


def test_plain_file_has_no_weights(tmp_path):
    dm = NamesData(str(repeated_file(tmp_path)))
    assert dm.name_counts is None and dm.examples("train")[2] is None


@pytest.fixture
def both(tmp_path):
    """The data module of a name,count file and of the same names repeated `count` times."""
    options = {"context_size": 2, "val_fraction": 0, "test_fraction": 0}
    weighted = NamesDataModule(str(counted_file(tmp_path)), **options)
    repeated = NamesDataModule(str(repeated_file(tmp_path)), **options)
    return weighted, repeated


@pytest.mark.parametrize("smoothing", [0.0, 0.5, "kneser-ney"])
def test_counting_model_equals_repeated_names(both, smoothing):
    weighted, repeated = (dm.data for dm in both)
    w = CountingBaseline(weighted.vocab_size, 2, smoothing).fit(*weighted.examples("train"))
    r = CountingBaseline(repeated.vocab_size, 2, smoothing).fit(*repeated.examples("train"))
    assert torch.equal(w.counts, r.counts)
    nll = w.nll(*weighted.examples("train"))
    assert nll == pytest.approx(r.nll(*repeated.examples("train")), abs=1e-12)
    x, y, weights = weighted.examples("train")
    assert nll != pytest.approx(w.nll(x, y), abs=1e-3)  # the weights matter


def test_count_table_equals_repeated_names(both):
    weighted, repeated = both
    (w_batch,), (r_batch,) = list(weighted.train_dataloader()), list(repeated.train_dataloader())
    assert all(torch.equal(a, b) for a, b in zip(w_batch, r_batch, strict=True))
    assert w_batch[2].sum().item() == sum(n * (len(name) + 1) for name, n in COUNTED.items())


@pytest.mark.parametrize(
    "options", [{}, {"aggregate": False}, {"batch_size": 7}], ids=["table", "examples", "minibatch"]
)
def test_neural_train_nll_equals_repeated_names(tmp_path, options):
    # lr 0 freezes W: train_nll is then the exact NLL of the split, whatever the batching
    nlls = []
    for path in (counted_file(tmp_path), repeated_file(tmp_path)):
        dm = NamesDataModule(str(path), val_fraction=0, test_fraction=0, **options)
        model = BigramLitModule(dm.data.vocab_size, 1, optimizer="sgd", lr=0.0)
        torch.nn.init.normal_(model.model.W, generator=torch.Generator().manual_seed(0))
        trainer = quiet_trainer(max_epochs=1)
        trainer.fit(model, dm)
        nlls.append(trainer.callback_metrics["train_nll"].item())
    x, y = dm.data.splits["train"]  # the repeated names, one example each
    exact = torch.nn.functional.cross_entropy(model(x).double(), y).item()
    assert nlls[0] == pytest.approx(exact, abs=1e-6) and nlls[1] == pytest.approx(exact, abs=1e-6)


def test_counting_reference_and_baseline_use_the_weights(tmp_path, capsys):
    pairs = itertools.product("abcde", repeat=2)
    counted = {a + b: 1 + (i * 7) % 9 for i, (a, b) in enumerate(pairs)}
    dm = NamesDataModule(str(counted_file(tmp_path, counted)), val_fraction=0.2, test_fraction=0.2)
    model = BigramLitModule(dm.data.vocab_size, chars=dm.data.chars)
    trainer = quiet_trainer(max_epochs=1, callbacks=[CountingReference()])
    trainer.fit(model, dm)
    logged = trainer.test(model, dm, verbose=False)[0]["counting_test_nll"]
    data = dm.data
    fitted = CountingBaseline(data.vocab_size, 1).fit(*data.examples("train"))
    expected = tune_best(fitted, data.examples("val")).nll(*data.examples("test"))
    assert logged == pytest.approx(expected, abs=1e-6)
    baseline(data, smoothing="kneser-ney")
    out = capsys.readouterr().out
    kneser_ney = CountingBaseline(data.vocab_size, 1, "kneser-ney").fit(*data.examples("train"))
    weights = data.examples("test")[2]
    printed = f"test_nll {kneser_ney.nll(*data.examples('test')):.5f} ({weights.sum():,} examples)"
    assert printed in out


def test_counts_adding_up_beyond_int64_are_refused_naming_the_file(tmp_path):
    # 923 names of 9,999 characters, each counted 10**12 times: 9.23e18 examples > 2**63 - 1
    path = write(tmp_path, "".join(f"{'a' * 9999},{10**12}\n" for _ in range(923)))
    with pytest.raises(DataError) as err:
        load_counted_words(path)
    assert str(err.value) == (
        f"data file {str(path)!r}: its counts add up to 9,230,000,000,000,000,000 examples by "
        "line 923, more than int64 sums hold (9,223,372,036,854,775,807); scale the counts down"
    )


def test_large_counts_are_summed_exactly(tmp_path, capsys):
    # 9.2e15 examples, above 2**53 where float64 sums drop units: every total is exact
    path = write(tmp_path, "".join(f"{'ab' * 2300},{10**12}\n" for _ in range(2)) + "ba,7\n")
    dm = NamesData(str(path), val_fraction=0, test_fraction=0)
    baseline(dm, smoothing=0.5)
    assert "(9,202,000,000,000,021 examples)" in capsys.readouterr().out
    assert dm.ngram_counts("train").total() == 2 * 10**12 * 4601 + 7 * 3
