"""Streaming counts: the file read in chunks gives the counts of the examples, at any chunking."""

import subprocess
import sys

import pytest
import torch

from makemore_pl import DataError, NamesData, NamesDataModule, split_words
from makemore_pl.core import data as data_module
from makemore_pl.core import words as words_module
from makemore_pl.core.data import DataConfig, split_of_words
from makemore_pl.core.ngrams import NgramCounter, NgramCounts, count_keys

WORDS = ["emma", "olivia", "ava", "isabella", "sophia", "mia", "amelia", "harper", "evelyn"]
WORDS = WORDS + ["ava", "mia", "emma", "zoë", "st.john", "mary ann"]


def write(tmp_path, lines, name="words.txt"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def same(a: NgramCounts, b: NgramCounts) -> bool:
    return torch.equal(a.keys, b.keys) and torch.equal(a.counts, b.counts)


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 16 bytes of file and 3 names in memory: every path crosses many chunks."""
    monkeypatch.setattr(words_module, "CHUNK_BYTES", 16)
    monkeypatch.setattr(data_module, "ENTRY_CHUNK", 3)


@pytest.mark.parametrize("context_size", [1, 3])
@pytest.mark.parametrize("kind", ["plain", "dedupe", "counted"])
def test_counts_equal_the_examples_counts(tmp_path, small_chunks, context_size, kind):
    lines = [f"{w},{1 + i % 4}" for i, w in enumerate(dict.fromkeys(WORDS))]
    path = write(tmp_path, lines if kind == "counted" else WORDS * 3)
    options = {"context_size": context_size, "val_fraction": 0.2, "test_fraction": 0.2}
    data = NamesData(path, dedupe=kind == "dedupe", **options)
    for split in ("train", "val", "test"):
        x, y, weights = data.examples(split)
        assert same(
            data.ngram_counts(split), NgramCounts.from_examples(x, y, data.vocab_size, weights)
        )
    assert sum(data.ngram_counts(s).total() for s in ("train", "val", "test")) > 0


def test_split_of_words_is_split_words(tmp_path):
    words = [f"w{i}" for i in range(101)]
    split = split_of_words(DataConfig(val_fraction=0.1, test_fraction=0.2, seed=3), len(words))
    parts = split_words(words, 0.1, 0.2, seed=3)
    for number, part in enumerate(parts):
        assert sorted(part) == sorted(
            w for w, s in zip(words, split.tolist(), strict=True) if s == number
        )


def test_names_txt_split_and_counts_are_unchanged(names_path):
    data = NamesData(str(names_path), context_size=2)
    assert [data.ngram_counts(s).total() for s in ("train", "val", "test")] == [
        182449,
        22774,
        22923,
    ]
    x, y, _ = data.examples("test")
    assert same(data.ngram_counts("test"), NgramCounts.from_examples(x, y, 27))


def test_counter_merges_runs_into_the_counts_of_everything():
    generator = torch.Generator().manual_seed(0)
    chunks = [torch.randint(0, 50, (n,), generator=generator) for n in (30, 7, 7, 100, 1, 0, 64)]
    counter = NgramCounter(5, 1)
    for chunk in chunks:
        counter.add(chunk, torch.full_like(chunk, 3))
    keys, counts = count_keys(torch.cat(chunks))
    result = counter.result()
    assert torch.equal(result.keys, keys) and torch.equal(result.counts, 3 * counts)


def test_the_count_table_fit_trains_on_comes_from_the_counts(tmp_path):
    dm = NamesDataModule(write(tmp_path, WORDS), context_size=2, val_fraction=0.2)
    ((x, y, counts),) = list(dm.train_dataloader())
    assert not dm.data._examples  # no example tensors were built for it
    assert counts.sum().item() == dm.data.ngram_counts("train").total()


@pytest.mark.slow
def test_memory_grows_with_distinct_ngrams_not_with_tokens(tmp_path):
    """Counting 3M lines of a few names peaks at about what 30 lines of them do."""
    peaks = []
    for repeat in (10, 1_000_000):
        path = write(tmp_path, ["emma", "ava", "olivia"] * repeat, f"words{repeat}.txt")
        code = (
            "import resource, sys; from makemore_pl.core.data import NamesData; "
            f"d = NamesData({path!r}, context_size=5); d.ngram_counts('train'); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True)
        peaks.append(int(out.stdout) / 1024)
    # the examples alone would take 3M lines x 5.3 examples x 6 ids x 8 bytes = 770 MB
    assert peaks[1] - peaks[0] < 150, peaks


def test_a_file_changed_between_its_two_passes_is_an_error(tmp_path):
    path = write(tmp_path, WORDS)
    data = NamesData(path)
    assert data.vocab_size == len(set("".join(WORDS))) + 1  # the first pass
    with open(path, "a", encoding="utf-8") as file:
        file.write("emma\n")
    with pytest.raises(DataError, match="changed while it was read"):
        data.ngram_counts("train")
