"""`sample` reads a checkpoint without the training stack, to the same numbers as the model."""

import inspect
import subprocess
import sys

import pytest
import torch

from makemore_pl import BigramLitModule, NamesDataModule, SuffixLitModule
from makemore_pl.dense_table import DENSE_SETTINGS
from makemore_pl.scoring import load_saved_model
from makemore_pl.suffixes import SUFFIX_SETTINGS
from tests.conftest import TINY_WORDS, quiet_trainer, run_folder


def settings_of(cls) -> dict:
    params = inspect.signature(cls.__init__).parameters.values()
    return {p.name: p.default for p in params if p.name != "self"}


def test_the_saved_settings_lists_match_the_model_classes():
    assert DENSE_SETTINGS == settings_of(BigramLitModule)
    assert set(SUFFIX_SETTINGS) == set(settings_of(SuffixLitModule))


def contexts(vocab_size: int, context_size: int, count: int = 200) -> torch.Tensor:
    return torch.randint(
        0, vocab_size, (count, context_size), generator=torch.Generator().manual_seed(0)
    )


def test_a_dense_checkpoint_scores_as_its_model(tiny_run):
    path = run_folder(tiny_run) / "checkpoints" / "last.ckpt"
    model = BigramLitModule.load_from_checkpoint(path, weights_only=True)
    saved = load_saved_model(str(path), torch.device("cpu"))
    x = contexts(model.hparams.vocab_size, 1)
    assert torch.equal(saved.log_probs(x), model.log_probs(x))
    assert saved.context_size == 1 and saved.hparams["chars"] == model.hparams.chars


def test_a_suffix_checkpoint_scores_as_its_model(tmp_path):
    (tmp_path / "words.txt").write_text("\n".join(TINY_WORDS * 2) + "\n", encoding="utf-8")
    data = NamesDataModule(str(tmp_path / "words.txt"), context_size=3)
    model = SuffixLitModule(data.vocab_size, 3, chars=data.chars, max_iter=5)
    trainer = quiet_trainer(max_epochs=2, precision="64-true")
    trainer.fit(model, data)
    trainer.save_checkpoint(tmp_path / "suffix.ckpt")
    saved = load_saved_model(str(tmp_path / "suffix.ckpt"), torch.device("cpu"))
    x = contexts(data.vocab_size, 3)
    assert torch.equal(saved.log_probs(x), model.log_probs(x))


def test_sampling_a_checkpoint_imports_no_training_stack():
    code = (
        "import sys, makemore_pl.commands, makemore_pl.scoring\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in "
        "('lightning', 'torchmetrics', 'matplotlib', 'tensorboard')]\n"
        "assert not heavy, heavy[:5]\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("kind", ["dense", "suffix"])
def test_the_saved_form_is_checked_like_any_checkpoint(tiny_run, tmp_path, kind):
    path = run_folder(tiny_run) / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(path, weights_only=True)
    if kind == "dense":
        checkpoint["state_dict"]["W"][0, 0] = float("nan")
        expected = "NaN or infinite"
    else:
        checkpoint["hyper_parameters"]["_class_path"] = "somewhere.SuffixLitModule"
        expected = "is none of BigramLitModule, SuffixLitModule"
    torch.save(checkpoint, tmp_path / "bad.ckpt")
    with pytest.raises(ValueError, match=expected):
        load_saved_model(str(tmp_path / "bad.ckpt"), torch.device("cpu"))
