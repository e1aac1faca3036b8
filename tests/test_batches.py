import pytest
import torch

from makemore_pl import (
    BigramLitModule,
    DataError,
    NamesDataModule,
    Vocabulary,
    build_ngrams,
    load_words,
)
from makemore_pl.core.batches import BatchSlices, count_table, one_hot_rows


def epoch(loader, number):
    loader.sampler.set_epoch(number)
    return list(loader)


def test_count_table_is_exact_on_a_tiny_corpus():
    words = ["emma", "ava", "ava"]
    vocab = Vocabulary.from_words(words)
    x, y, counts = count_table(*build_ngrams(words, vocab, 1), len(vocab))
    rows = {
        (vocab.itos[a], vocab.itos[b]): n
        for (a,), b, n in zip(x.tolist(), y.tolist(), counts.tolist(), strict=True)
    }
    assert rows == {
        (".", "e"): 1,
        ("e", "m"): 1,
        ("m", "m"): 1,
        ("m", "a"): 1,
        ("a", "."): 3,
        (".", "a"): 2,
        ("a", "v"): 2,
        ("v", "a"): 2,
    }
    assert counts.dtype == torch.float32


@pytest.mark.parametrize("context_size", [1, 2])
@pytest.mark.parametrize("encoding", ["index", "onehot"])
def test_count_table_gives_the_full_batch_loss_and_gradient(names_path, context_size, encoding):
    words = load_words(names_path)
    vocab = Vocabulary.from_words(words)
    x, y = build_ngrams(words, vocab, context_size)
    table = count_table(x, y, len(vocab))
    assert len(table[1]) < len(y) / 30  # the point: far fewer rows
    results = []
    # the reference is every example in float64: a float32 full batch is itself off by ~1e-5
    # in the gradient (sums over 228k terms), the count table by ~1e-8
    for batch, dtype in (((x, y, None), torch.float64), (table, torch.float32)):
        model = BigramLitModule(len(vocab), context_size, encoding, l2=0.01)
        model = model.model  # the plain model's loss, which training calls
        torch.nn.init.normal_(model.W, generator=torch.Generator().manual_seed(0))
        model = model.to(dtype)
        loss, nll = model.objective(*batch)
        loss.backward()
        results.append((loss.item(), nll.item(), model.W.grad.double()))
    (full_loss, full_nll, full_grad), (table_loss, table_nll, table_grad) = results
    assert table_loss == pytest.approx(full_loss, abs=1e-6)
    assert table_nll == pytest.approx(full_nll, abs=1e-6)
    assert torch.allclose(table_grad, full_grad, rtol=0, atol=1e-7)


def test_aggregated_loaders_carry_every_example(tiny_file):
    words = ["anna", "bob", "anna", "cy", "bob", "anna"] * 5
    dm = NamesDataModule(str(tiny_file(words)), val_fraction=0.2, test_fraction=0.2)
    for split, loader in (
        ("train", dm.train_dataloader()),
        ("val", dm.val_dataloader()),
        ("test", dm.test_dataloader()),
    ):
        ((x, y, counts),) = list(loader)
        assert counts.sum().item() == len(dm.data.splits[split][1])
        assert len(y) < len(dm.data.splits[split][1])


def test_full_batch_without_aggregation_is_one_slice_of_the_split(tiny_file):
    dm = NamesDataModule(
        str(tiny_file([f"n{i}" for i in range(50)])), val_fraction=0.2, aggregate=False
    )
    for loader, split in ((dm.train_dataloader(), "train"), (dm.val_dataloader(), "val")):
        ((x, y, counts),) = list(loader)
        expected_x, expected_y = dm.data.splits[split]
        assert torch.equal(x, expected_x) and torch.equal(y, expected_y)
        assert x.data_ptr() == expected_x.data_ptr()  # a view: no copy, no collate
        assert torch.equal(counts, torch.ones(len(y)))


def test_minibatches_cover_the_split_and_replay_by_seed_and_epoch(tiny_file):
    path = str(tiny_file([f"name{i}" for i in range(40)]))
    dm = NamesDataModule(path, batch_size=7, seed=5)
    x_all, _ = dm.data.splits["train"]
    loader = dm.train_dataloader()
    first = epoch(loader, 0)
    assert [len(y) for _, y, _ in first][:-1] == [7] * (len(first) - 1)
    rows = torch.cat([x for x, _, _ in first]).squeeze(1)
    assert sorted(rows.tolist()) == sorted(x_all.squeeze(1).tolist())  # examples, not the table
    again = NamesDataModule(path, batch_size=7, seed=5)
    replay = epoch(again.train_dataloader(), 0)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first, replay, strict=True))
    second = epoch(loader, 1)
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(first, second, strict=True))


def test_batch_slices_length():
    assert len(BatchSlices(10, 3, shuffle=True, seed=0)) == 4
    assert len(BatchSlices(10, None, shuffle=True, seed=0)) == 1


def test_a_one_hot_batch_too_large_is_refused_before_it_is_built():
    rows = torch.zeros(50_219, dtype=torch.long)  # the c=4 count table of names.txt
    with pytest.raises(DataError) as err:
        one_hot_rows(rows, 27**4, torch.float32)
    assert str(err.value) == (
        "a one-hot batch of 50,219 rows × 531,441 contexts would take 99.4 GiB, above the 4 GiB "
        "limit; use --data.encoding index (the same model and numbers) or a smaller "
        "--data.batch_size"
    )
    assert one_hot_rows(torch.tensor([2, 0]), 3, torch.float32).tolist() == [[0, 0, 1], [1, 0, 0]]


def test_any_seed_the_data_accepts_shuffles():
    batches = list(BatchSlices(10, 3, shuffle=True, seed=2**63 - 1))
    assert sorted(torch.cat(batches).tolist()) == list(range(10))
