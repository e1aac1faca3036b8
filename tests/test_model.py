"""The dense model W: one table of logits, cross-entropy plus L2, trained to the counting
optimum; sizes refused before they allocate; a diverging fit stopped before it saves."""

import re
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger

from makemore_pl import (
    BigramLitModule,
    CountingBaseline,
    NamesDataModule,
    Vocabulary,
    build_ngrams,
    load_words,
)
from makemore_pl.core.batches import count_table
from makemore_pl.core.errors import CommandError, SettingError
from makemore_pl.lit.callbacks import StopOnNonFiniteLoss
from makemore_pl.models.dense import DenseTable
from tests.conftest import TINY_WORDS, events, quiet_trainer

WORDS = ["emma", "olivia", "ava", "isabella", "sophia", "mia", "amelia", "harper"]


def data(words=WORDS, context_size=1):
    vocab = Vocabulary.from_words(words)
    return vocab, *build_ngrams(words, vocab, context_size)


@pytest.mark.parametrize("context_size", [1, 2, 3])
def test_one_parameter_table(context_size):
    model = BigramLitModule(vocab_size=6, context_size=context_size)
    params = dict(model.named_parameters())  # all in the plain model it holds
    assert list(params) == ["model.W"] and params["model.W"].shape == (6**context_size, 6)
    assert not issubclass(BigramLitModule, DenseTable) and isinstance(model.model, DenseTable)


@pytest.mark.parametrize("context_size", [1, 2])
def test_onehot_and_index_give_identical_logits_and_gradients(context_size):
    vocab, x, y = data(context_size=context_size)
    grads, logits = {}, {}
    for encoding in ("index", "onehot"):
        torch.manual_seed(0)
        model = BigramLitModule(len(vocab), context_size, encoding, l2=0.1).model
        torch.nn.init.normal_(model.W)
        loss, _ = model.objective(x, y)
        loss.backward()
        logits[encoding], grads[encoding] = model(x), model.W.grad
    assert torch.allclose(logits["index"], logits["onehot"], atol=1e-6)
    assert torch.allclose(grads["index"], grads["onehot"], atol=1e-7)
    # the data module's device-side expansion feeds the same numbers
    onehot_rows = torch.nn.functional.one_hot(
        x @ torch.tensor([len(vocab) ** (context_size - 1 - i) for i in range(context_size)]),
        len(vocab) ** context_size,
    ).float()
    assert torch.allclose(model(onehot_rows), logits["index"], atol=1e-6)


def test_loss_is_cross_entropy_plus_l2():
    vocab, x, y = data()
    model = BigramLitModule(len(vocab), 1, l2=0.3).model
    torch.nn.init.normal_(model.W, generator=torch.Generator().manual_seed(1))
    loss, nll = model.objective(x, y)
    manual = -torch.log_softmax(model.W[x[:, 0]], 1)[torch.arange(len(y)), y].mean()
    assert nll.item() == pytest.approx(manual.item(), abs=1e-6)
    assert loss.item() == pytest.approx(manual.item() + 0.3 * (model.W**2).mean().item(), abs=1e-6)


def test_log_counts_as_weights_reproduce_the_counting_model(names_path):
    words = load_words(names_path)
    for context_size in (1, 2):
        vocab, x, y = data(words, context_size)
        counting = CountingBaseline(len(vocab), context_size, smoothing=1.0).fit(x, y)
        model = BigramLitModule(len(vocab), context_size).model
        model.W.data = counting.probs.log().float()
        _, nll = model.objective(x, y)
        assert nll.item() == pytest.approx(counting.nll(x, y), abs=1e-5)


def test_lecture_gradient_descent_approaches_the_counting_optimum(names_path):
    vocab, x, y = data(load_words(names_path))
    optimum = CountingBaseline(len(vocab), smoothing=0.0).fit(x, y).nll(x, y)
    lit = BigramLitModule(len(vocab), 1, l2=0.0, optimizer="sgd")
    optimizer, model = lit.configure_optimizers(), lit.model  # SGD, lr 50: the lecture's loop

    # the same loss and gradient (tests/test_batches.py), 400 times cheaper
    table = count_table(x, y, len(vocab))
    for _ in range(200):
        optimizer.zero_grad()
        loss, _ = model.objective(*table)
        loss.backward()
        optimizer.step()
    assert model.objective(x, y)[1].item() - optimum < 0.01


@pytest.mark.parametrize("optimizer, steps", [("adam", 100), ("lbfgs", 60)])
def test_trainer_fit_reaches_the_optimum(names_path, tiny_file, optimizer, steps):
    words = load_words(names_path)[:3000]
    dm = NamesDataModule(str(tiny_file(words)), val_fraction=0, test_fraction=0)
    data = dm.data
    model = BigramLitModule(data.vocab_size, l2=0.0, optimizer=optimizer, chars=data.chars)
    quiet_trainer(max_epochs=steps).fit(model, dm)
    optimum = CountingBaseline(data.vocab_size, smoothing=0.0).fit(*data.splits["train"])
    assert model.model.objective(*data.splits["train"])[1].item() == pytest.approx(
        optimum.nll(*data.splits["train"]), abs=0.01
    )


def test_train_nll_is_an_example_weighted_mean(tiny_file):
    # lr 0 freezes W: the epoch's train_nll must equal the NLL of the whole split, although
    # the batches are uneven (a mean of batch means would differ)
    dm = NamesDataModule(str(tiny_file(WORDS)), batch_size=7, val_fraction=0, test_fraction=0)
    lit = BigramLitModule(dm.data.vocab_size, 1, optimizer="sgd", lr=0.0)
    model = lit.model
    torch.nn.init.normal_(model.W, generator=torch.Generator().manual_seed(0))
    trainer = quiet_trainer(max_epochs=1)
    trainer.fit(lit, dm)
    x, y = dm.data.splits["train"]
    batch_means = [
        model.objective(x[i : i + 7], y[i : i + 7])[1].item() for i in range(0, len(y), 7)
    ]
    exact = model.objective(x, y)[1].item()
    assert trainer.callback_metrics["train_nll"].item() == pytest.approx(exact, abs=1e-6)
    assert abs(sum(batch_means) / len(batch_means) - exact) > 1e-3


def test_minibatch_losses_are_logged_at_lightnings_cadence_the_epoch_nll_exactly(
    names_path, tiny_file, tmp_path
):
    # 190 uneven minibatches an epoch, W frozen (lr 0): train_loss every 50 steps, as the Trainer
    # writes its logs, and train_nll once an epoch: the NLL of the whole split
    dm = NamesDataModule(
        str(tiny_file(load_words(names_path)[:1000])), batch_size=37, val_fraction=0,
        test_fraction=0,
    )  # fmt: skip
    lit = BigramLitModule(dm.data.vocab_size, 1, optimizer="sgd", lr=0.0)
    torch.nn.init.normal_(lit.model.W, generator=torch.Generator().manual_seed(0))
    trainer = L.Trainer(
        logger=TensorBoardLogger(tmp_path), max_epochs=2, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
    )  # fmt: skip
    trainer.fit(lit, dm)
    assert trainer.global_step == 2 * dm.steps_per_epoch() == 380
    logged = events(Path(trainer.logger.log_dir))
    assert [e.step for e in logged.Scalars("train_loss")] == list(range(49, 380, 50))
    assert [e.step for e in logged.Scalars("train_nll")] == [189, 379]
    exact = lit.model.objective(*dm.data.splits["train"])[1].item()
    assert trainer.callback_metrics["train_nll"].item() == pytest.approx(exact, abs=1e-6)


def test_checkpoint_carries_the_vocabulary(tmp_path, tiny_file):
    dm = NamesDataModule(str(tiny_file(WORDS)), context_size=2)
    model = BigramLitModule(dm.data.vocab_size, 2, optimizer="adam", chars=dm.data.chars)
    trainer = quiet_trainer(max_epochs=2)
    trainer.fit(model, dm)
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    loaded = BigramLitModule.load_from_checkpoint(tmp_path / "m.ckpt", weights_only=True)
    assert loaded.vocab == dm.data.vocab
    assert torch.equal(loaded.model.W, model.model.W)
    names = [loaded.vocab.decode(w) for w in loaded.sample(20, seed=3)]
    assert names == [model.vocab.decode(w) for w in model.sample(20, seed=3)]
    assert all(names)


def test_chars_must_match_vocab_size():
    with pytest.raises(ValueError, match="vocab_size"):
        BigramLitModule(vocab_size=5, chars=["a", "b"])


# sizes chosen by the input, and divergence


@pytest.mark.parametrize(
    "v, c, size",
    [(27, 5, "1.5 GB"), (27, 6, "42 GB"), (27, 8, "31 TB"), (3921, 2, "241 GB"), (27, 10**9, "")],
)
def test_a_weight_table_too_large_is_refused_before_allocating(v, c, size):
    with pytest.raises(SettingError) as refused:
        BigramLitModule(v, c)
    message = str(refused.value)
    assert message.startswith(f"context_size {c} with vocab_size {v} needs a {size}")
    assert "(the limit is 537 MB); use the counting model" in message
    assert "--smoothing kneser-ney" in message


def test_a_large_vocabulary_bigram_and_names_up_to_context_size_4_build():
    assert BigramLitModule(3921, 1).model.W.shape == (3921, 3921)  # 61 MB
    assert BigramLitModule(27, 4).model.W.shape == (27**4, 27)  # 57 MB


def test_a_diverging_fit_stops_at_once_and_keeps_the_last_good_checkpoint(tmp_path):
    (tmp_path / "words.txt").write_text("\n".join(TINY_WORDS) + "\n", encoding="utf-8")
    dm = NamesDataModule(str(tmp_path / "words.txt"))
    model = BigramLitModule(dm.data.vocab_size, optimizer="sgd", lr=1e30, chars=dm.data.chars)
    last = ModelCheckpoint(dirpath=tmp_path / "ckpt", filename="last", every_n_epochs=1)
    trainer = L.Trainer(
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        max_epochs=10,
        callbacks=[StopOnNonFiniteLoss(), last],
    )
    with pytest.raises(CommandError) as stopped:
        trainer.fit(model, dm)
    # the first step already throws W far past any trained model's: stopped before any save,
    # since every reader would refuse a checkpoint of those weights
    message = str(stopped.value)
    assert message.startswith("training diverged at step 0: the weights reach ")
    assert message.endswith(
        "beyond 1e+06; stopped before saving it (the last checkpoint holds the last good "
        "weights); train again with a --model.lr below 1e+30"
    )
    assert not list((tmp_path / "ckpt").glob("*.ckpt")) if (tmp_path / "ckpt").exists() else True


def test_a_diverging_minibatch_fit_stops_before_a_checkpoint_of_any_step(tmp_path):
    (tmp_path / "words.txt").write_text("\n".join(TINY_WORDS * 3) + "\n", encoding="utf-8")
    dm = NamesDataModule(str(tmp_path / "words.txt"), batch_size=8)
    # lr 3e5: the L2 term multiplies W by about -1.7 a step, past 1e6 after a few steps
    model = BigramLitModule(dm.data.vocab_size, optimizer="sgd", lr=3e5, chars=dm.data.chars)
    every_step = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=1, save_top_k=-1)
    trainer = L.Trainer(
        logger=False, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
        max_epochs=5, callbacks=[StopOnNonFiniteLoss(), every_step],
    )  # fmt: skip
    with pytest.raises(CommandError) as stopped:
        trainer.fit(model, dm)
    step = int(re.match(r"training diverged at step (\d+): ", str(stopped.value)).group(1))
    assert 0 < step == trainer.global_step - 1  # named: the step whose update went too far
    # a checkpoint after every step before it (step=N: N updates done), none of its own weights
    saved = sorted(int(p.stem.split("step=")[1]) for p in (tmp_path / "ckpt").glob("*.ckpt"))
    assert saved == list(range(1, step + 1))
