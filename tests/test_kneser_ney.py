import itertools
from collections import Counter, defaultdict

import pytest
import torch

from makemore_pl import (
    CountingBaseline,
    DataError,
    NamesData,
    Vocabulary,
    build_ngrams,
    load_words,
    split_words,
)
from makemore_pl.cli.plain.baseline import baseline, counting_model
from makemore_pl.cli.plain.sample import sample
from makemore_pl.core.contexts import context_rows
from makemore_pl.core.errors import CommandError
from makemore_pl.models.counting import tune_discounts, tune_smoothing

TINY = ["emma", "ava", "anna", "ann", "eve", "mae", "emma", "ma", "van", "nan", "anne", "ava"]
TINY += ["emmanuel", "nev", "manu", "ema", "mave", "vera", "nev", "ava", "ana", "mae"]


class ReferenceKneserNey:
    """Interpolated modified Kneser-Ney written out from its definition, one n-gram at a time."""

    def __init__(self, words: list[str], vocab: Vocabulary, c: int) -> None:
        self.v, self.c = len(vocab), c
        windows = []  # every (c + 1)-token window: c boundaries (0) + word + one boundary
        for word in words:
            tokens = [0] * c + vocab.encode(word) + [0]
            windows += [tuple(tokens[i : i + c + 1]) for i in range(len(tokens) - c)]
        self.adjusted = [self.adjusted_counts(windows, k) for k in range(c + 1)]
        self.discounts = [self.estimate(counts) for counts in self.adjusted]
        self.tables = [defaultdict(dict) for _ in range(c + 1)]  # order -> context -> {w: a}
        for k, adjusted in enumerate(self.adjusted):
            for gram, a in adjusted.items():
                self.tables[k][gram[:-1]][gram[-1]] = a

    def adjusted_counts(self, windows: list[tuple], k: int) -> dict[tuple, int]:
        """(k + 1)-gram -> raw count at the top order or after a word start, else the number of
        distinct tokens seen before it; contexts starting with two boundaries are left out."""
        raw = Counter(w[self.c - k :] for w in windows)
        before = defaultdict(set)
        for w in windows:
            if k < self.c:
                before[w[self.c - k :]].add(w[self.c - k - 1])
        adjusted = {}
        for gram, count in raw.items():
            if k >= 2 and gram[0] == 0 and gram[1] == 0:
                continue
            starts_word = k >= 1 and gram[0] == 0
            adjusted[gram] = count if k == self.c or starts_word else len(before[gram])
        return adjusted

    @staticmethod
    def estimate(adjusted: dict[tuple, int]) -> list[float]:
        t = Counter(adjusted.values())
        y = t[1] / (t[1] + 2 * t[2]) if t[1] else 0.0
        discounts = []
        for j in (1, 2, 3):
            d = j - (j + 1) * y * t[j + 1] / t[j] if t[j] and y else float("nan")
            discounts.append(d if 0 < d <= j else (y or 0.5))
        return discounts

    def prob(self, context: tuple, w: int, k: int | None = None) -> float:
        """p_k(w | last k tokens of context), recursively down to the uniform 1/V."""
        k = self.c if k is None else k
        if k < 0:
            return 1 / self.v
        lower = self.prob(context, w, k - 1)
        h = context[len(context) - k :] if k else ()
        counts = self.tables[k].get(h)
        if not counts:  # context never seen at this order
            return lower
        total = sum(counts.values())
        d = self.discounts[k]
        discount = lambda a: d[min(a, 3) - 1]  # noqa: E731
        gamma = sum(discount(a) for a in counts.values()) / total
        a = counts.get(w, 0)
        return (a - discount(a) if a else 0.0) / total + gamma * lower


def fitted(words, c, smoothing="kneser-ney"):
    vocab = Vocabulary.from_words(words)
    x, y = build_ngrams(words, vocab, c)
    return vocab, CountingBaseline(len(vocab), c, smoothing).fit(x, y), x, y


@pytest.fixture(scope="module")
def corpora(names_path) -> dict[str, list[str]]:
    # TINY's counts of counts lack some t_j, so discounts fall back; the names use the formula
    return {"tiny": TINY, "names": load_words(names_path)[:500]}


@pytest.mark.parametrize("corpus", ["tiny", "names"])
@pytest.mark.parametrize("c", [1, 2, 3, 4])
def test_agrees_with_the_reference_on_seen_and_unseen_contexts(corpora, corpus, c):
    words = corpora[corpus]
    vocab, model, x, _ = fitted(words, c)
    reference = ReferenceKneserNey(words, vocab, c)
    discounts = torch.tensor(reference.discounts, dtype=torch.float64)
    assert torch.allclose(model.kneser_ney.discounts, discounts, rtol=0, atol=1e-12)
    unseen = torch.randint(len(vocab), (40, c), generator=torch.Generator().manual_seed(c))
    contexts = torch.cat([x.unique(dim=0), unseen])
    probs = model.next_probs(contexts)
    expected = [[reference.prob(tuple(h), w) for w in range(len(vocab))] for h in contexts.tolist()]
    assert torch.allclose(probs, torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-12)


def test_the_reference_corpora_exercise_every_branch(corpora):
    counts_of_counts = {}
    for name, words in corpora.items():
        reference = ReferenceKneserNey(words, Vocabulary.from_words(words), 4)
        counts_of_counts[name] = [Counter(a.values()) for a in reference.adjusted]
        grams = set(reference.adjusted[2])  # word starts (raw counts) and continuation counts
        assert any(g[0] == 0 for g in grams) and any(g[0] != 0 for g in grams)
    assert all(t[1] and t[2] and t[3] and t[4] for t in counts_of_counts["names"])  # formula
    assert not all(t[1] and t[2] and t[3] and t[4] for t in counts_of_counts["tiny"])  # fallback


@pytest.mark.parametrize("c", [1, 2, 3, 4, 5, 6])
def test_rows_are_distributions_for_seen_and_unseen_contexts(names_path, c):
    words = load_words(names_path)[:3000]
    vocab, model, x, _ = fitted(words, c)
    unseen = torch.randint(len(vocab), (500, c), generator=torch.Generator().manual_seed(0))
    for contexts in (x[::7], unseen):
        probs = model.next_probs(contexts)
        assert probs.dtype == torch.float64 and (probs > 0).all()
        assert (probs.sum(1) - 1).abs().max().item() < 1e-9


def test_dense_tables_only_where_they_fit():
    vocab, model, x, y = fitted(TINY, 2)
    rows = [0, 1 * len(vocab) + 2]
    assert torch.equal(model.probs[rows], model.next_probs(torch.tensor([[0, 0], [1, 2]])))
    _, big, _, _ = fitted(["ab"] * 3, 6)
    assert big.nll(*build_ngrams(["ab"], Vocabulary.from_words(["ab"]), 6)) > 0  # works sparse
    wide = CountingBaseline(27, 5, "kneser-ney")
    for table in ("probs", "counts"):
        with pytest.raises(ValueError, match="too many"):
            getattr(wide, table)


def test_nll_is_the_mean_negative_log_of_the_rows():
    _, model, x, y = fitted(TINY, 3)
    rows = model.next_probs(x)[torch.arange(len(y)), y]
    assert model.nll(x, y) == pytest.approx(-rows.log().mean().item(), abs=1e-12)


def test_smoothings_share_the_counts():
    _, model, x, y = fitted(TINY, 2, smoothing=0.5)
    kneser_ney = model.with_smoothing("kneser-ney")
    assert kneser_ney.is_kneser_ney and kneser_ney.table is model.table
    assert kneser_ney.nll(x, y) == fitted(TINY, 2)[1].nll(x, y)
    assert kneser_ney.with_smoothing(0.5).nll(x, y) == model.nll(x, y)


def test_discount_scale_scales_the_estimates_within_their_range():
    vocab, model, x, y = fitted(TINY, 2)
    scaled = model.with_discount_scale(1.5)
    limits = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    expected = (model.kneser_ney.discounts * 1.5).minimum(limits)
    assert torch.equal(scaled.kneser_ney.discounts, expected)
    assert scaled.nll(x, y) != model.nll(x, y)
    direct = CountingBaseline(len(vocab), 2, "kneser-ney", discount_scale=1.5).fit(x, y)
    assert direct.nll(x, y) == scaled.nll(x, y)


# val and test NLL of names.txt, default 80/10/10 split by word (seed 42): context_size ->
# (add-k k chosen on val, its val, its test; Kneser-Ney val, test). The README table shows these.
NAMES_RESULTS = {
    1: (0.5, 2.45044, 2.45249, 2.45045, 2.45248),
    2: (0.2, 2.21697, 2.22295, 2.21248, 2.21808),
    3: (0.1, 2.09461, 2.09854, 2.05363, 2.05504),
    4: (0.05, 2.14039, 2.15473, 1.97958, 1.98238),
    5: (0.05, 2.30081, 2.31185, 1.96923, 1.97171),
    6: (0.1, 2.45413, 2.46684, 1.97204, 1.97530),
}


def test_kneser_ney_order_chosen_on_val_reaches_2_nats_on_test(names_path):
    words = load_words(names_path)
    vocab = Vocabulary.from_words(words)
    train, val, test = split_words(words, 0.1, 0.1, seed=42)
    results = {}
    for c in NAMES_RESULTS:
        (xt, yt), (xv, yv), (xe, ye) = (build_ngrams(w, vocab, c) for w in (train, val, test))
        add_k = tune_smoothing(CountingBaseline(len(vocab), c).fit(xt, yt), (xv, yv))
        kneser_ney = CountingBaseline(len(vocab), c, "kneser-ney").fit(xt, yt)
        results[c] = (add_k.smoothing, add_k.nll(xv, yv), add_k.nll(xe, ye))
        results[c] += (kneser_ney.nll(xv, yv), kneser_ney.nll(xe, ye))
    for c, expected in NAMES_RESULTS.items():
        assert results[c] == pytest.approx(expected, abs=1e-5)
    best = min(results, key=lambda c: results[c][3])
    assert best == 5 and results[best][4] <= 2.0
    assert all(results[c][3] < results[c][1] for c in range(2, 7))  # beats add-k on val


def test_tuned_discounts_are_no_worse_on_val(names_path):
    words = load_words(names_path)
    vocab = Vocabulary.from_words(words)
    train, val, _ = split_words(words, 0.1, 0.1, seed=42)
    (xt, yt), (xv, yv) = (build_ngrams(w, vocab, 3) for w in (train, val))
    model = CountingBaseline(len(vocab), 3, "kneser-ney").fit(xt, yt)
    tuned = tune_discounts(model, (xv, yv))
    grid_values = [model.with_discount_scale(s).nll(xv, yv) for s in (0.6, 0.9, 1.0, 1.4)]
    assert tuned.nll(xv, yv) <= min(grid_values)
    assert tuned.discount_scale == 0.9


def test_sampling_is_deterministic_and_follows_the_distribution(names_path):
    _, model, _, _ = fitted(load_words(names_path)[:3000], 5)
    drawn = model.sample(200, seed=0)
    assert drawn == model.sample(200, seed=0) and drawn != model.sample(200, seed=1)
    assert all(drawn) and all(0 not in w for w in drawn)
    first = Counter(w[0] for w in model.sample(4000, seed=0, max_length=1))
    start = model.next_probs(torch.zeros(1, 5, dtype=torch.long))[0]
    start = start[1:] / start[1:].sum()  # empty words are drawn again
    for char, p in enumerate(start.tolist(), start=1):
        assert first[char] / 4000 == pytest.approx(p, abs=0.025)


@pytest.mark.parametrize("smoothing", [0.0, "kneser-ney"])
def test_weights_equal_repeated_examples(smoothing):
    vocab = Vocabulary.from_words(TINY)
    counts = [1 + i % 4 for i in range(len(TINY))]
    x, y = build_ngrams(TINY, vocab, 3)
    weights = torch.repeat_interleave(
        torch.tensor(counts), torch.tensor([len(w) + 1 for w in TINY])
    )
    repeated = list(
        itertools.chain.from_iterable([w] * n for w, n in zip(TINY, counts, strict=True))
    )
    xr, yr = build_ngrams(repeated, vocab, 3)
    weighted = CountingBaseline(len(vocab), 3, smoothing).fit(x, y, weights)
    plain = CountingBaseline(len(vocab), 3, smoothing).fit(xr, yr)
    assert torch.equal(weighted.counts, plain.counts)
    assert torch.equal(weighted.next_probs(x), plain.next_probs(x))
    assert weighted.nll(x, y, weights) == pytest.approx(plain.nll(xr, yr), abs=1e-12)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"smoothing": "kneser"}, "smoothing"),
        ({"smoothing": -0.5}, "smoothing"),
        ({"discount_scale": 0.0}, "discount_scale"),
        ({"context_size": 20}, "overflows"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CountingBaseline(27, **kwargs)


def test_bad_weights():
    x, y = torch.zeros(3, 1, dtype=torch.long), torch.ones(3, dtype=torch.long)
    with pytest.raises(ValueError, match="whole numbers"):
        CountingBaseline(2).fit(x, y, torch.ones(3))
    with pytest.raises(ValueError, match="shape"):
        CountingBaseline(2).fit(x, y, torch.ones(2, dtype=torch.long))


def test_command_smoothing_options(tiny_file, capsys):
    dm = NamesData(str(tiny_file(TINY * 3)), context_size=2, val_fraction=0.3)
    results = baseline(dm, smoothing="kneser-ney-auto")
    tuned = tune_discounts(
        CountingBaseline(dm.vocab_size, 2, "kneser-ney").fit(*dm.splits["train"]), dm.splits["val"]
    )
    assert results["val_nll"] == pytest.approx(tuned.nll(*dm.splits["val"]), abs=1e-12)
    out = capsys.readouterr().out
    assert f"discounts scaled by {tuned.discount_scale:g} (lowest val_nll on the grid)" in out
    assert sample(dm, counting=True, smoothing="kneser-ney", num_samples=7) == 7
    with pytest.raises(CommandError, match="needs --counting true"):
        sample(dm, ckpt_path="x.ckpt", smoothing="kneser-ney")
    with pytest.raises(CommandError, match="0 or more"):
        baseline(dm, smoothing=-1.0)
    empty_val = NamesData(str(tiny_file(TINY)), val_fraction=0)
    with pytest.raises(CommandError, match="val split"):
        baseline(empty_val, smoothing="kneser-ney-auto")


def test_keys_beyond_int64_are_one_error_saying_the_size_and_the_way_out(tiny_file):
    with pytest.raises(DataError) as err:
        CountingBaseline(3921, 6)
    assert str(err.value) == (
        "context_size 6 with 3921 tokens needs n-gram keys up to 3921**7 = 1.42e+25, which "
        "overflows int64 keys (limit 2**63 = 9.22e+18); use a context_size of at most 4 for "
        "this data, or data with fewer distinct characters"
    )
    dm = NamesData(str(tiny_file(TINY)), context_size=13)  # V = 8: 8**14 = 2**42 fits
    assert CountingBaseline(dm.vocab_size, 13, "kneser-ney").fit_counts(dm.ngram_counts("train"))
    dm = NamesData(str(tiny_file([chr(ord("a") + i) for i in range(26)])), context_size=13)
    with pytest.raises(DataError, match="context_size 13 with 27 tokens .* at most 12"):
        counting_model(dm, smoothing="kneser-ney")


@pytest.mark.parametrize("c", [1, 3, 5])
def test_streaming_counts_give_the_published_figures(names_path, c):
    data = NamesData(str(names_path), context_size=c)
    model = CountingBaseline(data.vocab_size, c, "kneser-ney").fit_counts(
        data.ngram_counts("train")
    )
    figures = (
        model.counts_nll(data.ngram_counts("val")),
        model.counts_nll(data.ngram_counts("test")),
    )
    assert figures == pytest.approx(NAMES_RESULTS[c][3:], abs=1e-5)


@pytest.mark.parametrize("c", [1, 3])
def test_key_probs_are_row_probs(c):
    vocab, model, x, y = fitted(TINY, c)
    unseen = torch.randint(len(vocab), (40, c + 1), generator=torch.Generator().manual_seed(c))
    grams = torch.cat([torch.cat([x, y[:, None]], 1), unseen])
    keys = context_rows(grams, len(vocab))
    expected = model.kneser_ney.row_probs(keys // len(vocab), (keys % len(vocab))[:, None])[:, 0]
    assert torch.equal(model.kneser_ney.key_probs(keys), expected)
