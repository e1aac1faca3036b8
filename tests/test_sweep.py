"""The lecture's exercises: tuning on val, the optimum solver, and the results' acceptance."""

import pytest
import torch
import torch.nn.functional as F

from makemore_pl import NamesData
from makemore_pl.cli.plain.sweep import best_on_val, sweep_counting, sweep_neural
from makemore_pl.core.batches import count_table
from makemore_pl.models.ngram import mean_nll
from makemore_pl.models.optimum import fit_optimum
from tests.conftest import events, makemore, run_folder


@pytest.fixture(scope="module")
def sweeps(names_path):
    """Both sweeps for the bigram and the trigram on the default 80/10/10 split."""
    results = {}
    for c in (1, 2):
        dm = NamesData(str(names_path), context_size=c)
        examples = {split: dm.examples(split) for split in ("train", "val", "test")}
        results[c] = (dm, sweep_counting(27, c, examples) + sweep_neural(27, c, examples))
    return results


@pytest.mark.parametrize("context_size, l2", [(1, 0.001), (2, 0.01), (2, 0.0)])
def test_fit_optimum_is_the_minimum_of_the_model_objective(names_path, context_size, l2):
    dm = NamesData(str(names_path), context_size=context_size)
    table = count_table(*dm.splits["train"], 27)
    model = fit_optimum(27, context_size, l2, table)
    loss, _ = model.objective(*table)
    loss.backward()
    assert model.W.grad.abs().max() < (1e-7 if l2 else 1e-6)  # stationary: the optimum


def test_tuned_neural_model_matches_tuned_counting_on_val(sweeps):
    for c, (_, points) in sweeps.items():
        counting = best_on_val([p for p in points if p.model == "counting"])
        neural = best_on_val([p for p in points if p.model == "neural"])
        assert neural.val_nll < counting.val_nll + 0.01, c


def test_trigram_beats_bigram_on_test_by_a_margin(sweeps):
    test = {}
    for c, (dm, points) in sweeps.items():
        best = best_on_val([p for p in points if p.model == "neural"])
        train, held_out = (count_table(*dm.splits[s], 27) for s in ("train", "test"))
        test[c] = mean_nll(fit_optimum(27, c, best.strength, train), held_out)
    assert test[1] - test[2] >= 0.15


@pytest.mark.parametrize("kind", ["counting", "neural"])
def test_train_nll_rises_with_regularisation(sweeps, kind):
    for _, points in sweeps.values():
        train = [p.train_nll for p in sorted(points, key=lambda p: p.strength) if p.model == kind]
        assert all(a <= b + 1e-9 for a, b in zip(train, train[1:], strict=False))
        assert train[-1] > train[0]


def test_cross_entropy_equals_manual_softmax_and_stays_finite():
    logits = torch.randn(500, 27, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 27, (500,), generator=torch.Generator().manual_seed(1))

    def manual(logits):  # the lecture: exponentiate, normalise, pick, log, average
        counts = logits.exp()
        probs = counts / counts.sum(1, keepdims=True)
        return -probs[torch.arange(len(y)), y].log().mean()

    assert F.cross_entropy(logits, y).item() == pytest.approx(manual(logits).item(), abs=1e-6)
    big = logits * 100  # exp(>88) overflows float32
    assert not torch.isfinite(manual(big))
    assert torch.isfinite(F.cross_entropy(big, y))
    # it works in log space (log-sum-exp), where even the probabilities that underflow count
    exact = -(big.double() - big.double().logsumexp(1, keepdim=True))[torch.arange(500), y].mean()
    assert F.cross_entropy(big, y).item() == pytest.approx(exact.item(), rel=1e-6)


@pytest.mark.slow
def test_sweep_command_prints_plots_and_logs(tmp_path, names_path):
    (tmp_path / "names.txt").write_bytes(names_path.read_bytes())
    out = makemore("sweep", "--models", "counting", "--plot", "out/sweep.png", cwd=tmp_path).stdout
    lines = out.splitlines()
    assert lines[0].split() == ["model", "strength", "train_nll", "val_nll"]
    assert sum(line.startswith("counting ") for line in lines) == 11
    assert sum("test_nll" in line for line in lines) == 1  # the test split is looked at once
    assert "best counting: strength 0.5, val_nll 2.45044" in out
    assert (tmp_path / "out" / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    run = run_folder(tmp_path)
    assert "sweep" in events(run).Tags()["images"]
