import pytest
import torch

from makemore_pl import CountingBaseline, Vocabulary, build_ngrams, load_words


def fitted(words, context_size=1, smoothing=0.0):
    vocab = Vocabulary.from_words(words)
    x, y = build_ngrams(words, vocab, context_size)
    return vocab, CountingBaseline(len(vocab), context_size, smoothing).fit(x, y), x, y


def test_counts_are_exact_on_a_tiny_corpus():
    vocab, model, _, _ = fitted(["emma", "ava"])
    s = vocab.stoi
    expected = torch.zeros(5, 5, dtype=torch.long)
    for a, b in [
        (".", "e"),
        ("e", "m"),
        ("m", "m"),
        ("m", "a"),
        ("a", "."),
        (".", "a"),
        ("a", "v"),
        ("v", "a"),
        ("a", "."),
    ]:
        expected[s.get(a, 0), s.get(b, 0)] += 1
    assert torch.equal(model.counts, expected)


def test_probs_are_distributions_even_for_unseen_contexts():
    _, model, _, _ = fitted(["emma", "ava"], context_size=2, smoothing=0.0)
    probs = model.probs
    assert probs.shape == (25, 5) and probs.dtype == torch.float64
    assert torch.allclose(probs.sum(1), torch.ones(25, dtype=torch.float64))
    assert torch.equal(probs[24], torch.full((5,), 0.2, dtype=torch.float64))  # "vv" never seen


def test_smoothing_adds_k_to_every_count():
    _, model, _, _ = fitted(["ab"], smoothing=2.0)
    # row "a": one "a->b", so P(b|a) = (1 + 2) / (1 + 2 * 3)
    assert model.probs[1, 2].item() == pytest.approx(3 / 7)


@pytest.mark.parametrize(
    "context_size, smoothing, expected",
    [(1, 0.0, 2.45401), (1, 1.0, 2.45458), (2, 0.0, 2.18574)],
)
def test_reference_figures_on_names(names_path, context_size, smoothing, expected):
    words = load_words(names_path)
    _, model, x, y = fitted(words, context_size, smoothing)
    assert model.nll(x, y) == pytest.approx(expected, abs=1e-5)


def test_fit_is_deterministic(names_path):
    _, a, x, y = fitted(load_words(names_path)[:2000], 2, 0.5)
    b = CountingBaseline(a.vocab_size, 2, 0.5).fit(x, y)
    assert torch.equal(a.counts, b.counts) and a.nll(x, y) == b.nll(x, y)


def test_sampling_is_deterministic_and_well_formed(names_path):
    words = load_words(names_path)
    vocab, model, _, _ = fitted(words, 2, 1.0)
    first = model.sample(50, seed=7)
    assert first == model.sample(50, seed=7)
    assert first != model.sample(50, seed=8)
    assert len(first) == 50 and all(first) and all(0 not in w for w in first)


def test_sampling_follows_the_distribution():
    # after the start, "a" and "b" are equally likely; both words then end
    vocab, model, _, _ = fitted(["a", "b"])
    drawn = [vocab.decode(w) for w in model.sample(4000, seed=0)]
    assert set(drawn) == {"a", "b"}
    assert drawn.count("a") / len(drawn) == pytest.approx(0.5, abs=0.03)


def test_sampling_prefix_and_temperature():
    vocab, model, _, _ = fitted(["ab", "ac", "ab", "ab"])
    drawn = [vocab.decode(w) for w in model.sample(2000, seed=1, prefix=vocab.encode("a"))]
    assert set(drawn) == {"ab", "ac"}
    assert drawn.count("ab") / 2000 == pytest.approx(0.75, abs=0.03)
    cold = [vocab.decode(w) for w in model.sample(500, seed=1, temperature=0.05)]
    assert set(cold) == {"ab"}  # a low temperature picks the most likely path


@pytest.mark.parametrize("kwargs", [{"context_size": 0}, {"smoothing": -1.0}])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        CountingBaseline(5, **kwargs)


def test_test_compares_with_the_best_counting_model_on_val_and_names_it(tmp_path, caplog):
    from makemore_pl import BigramLitModule, NamesDataModule
    from makemore_pl.lit.callbacks import CountingReference
    from makemore_pl.models.counting import tune_best, tune_smoothing
    from tests.conftest import TINY_WORDS, quiet_trainer

    path = tmp_path / "words.txt"
    path.write_text("\n".join(TINY_WORDS * 3) + "\n", encoding="utf-8")
    dm = NamesDataModule(str(path), context_size=2, val_fraction=0.2, test_fraction=0.2)
    trainer = quiet_trainer(max_epochs=1, callbacks=[CountingReference()])
    trainer.fit(model := BigramLitModule(), dm)
    logged = trainer.test(model, dm, verbose=False)[0]["counting_test_nll"]
    data = dm.data
    fitted = CountingBaseline(data.vocab_size, 2).fit_counts(data.ngram_counts("train"))
    best, add_k = (tune(fitted, data.ngram_counts("val")) for tune in (tune_best, tune_smoothing))
    assert best.is_kneser_ney  # on this data: add-k's best is 0.05 nats worse on val
    assert logged == pytest.approx(best.counts_nll(data.ngram_counts("test")), abs=1e-9)
    assert logged != pytest.approx(add_k.counts_nll(data.ngram_counts("test")), abs=1e-3)
    assert f"counting_test_nll: {best.describe()}, the best on val" in caplog.messages
    assert best.describe().startswith("Kneser-Ney, discounts scaled by")
