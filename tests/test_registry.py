"""The model registry: one entry per model that every layer reads; saved models read without the
training stack, to the same numbers as the LightningModule; checkpoints from before the layered
layout still work."""

import dataclasses
import importlib
import inspect
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from makemore_pl import BigramLitModule, NamesDataModule, SuffixLitModule
from makemore_pl.lit.module import NgramLitModule
from makemore_pl.models.registry import MODELS, kind_of_class_path
from makemore_pl.models.saved import read_checkpoint
from tests.conftest import QUIET, TINY_WORDS, printed_nlls, quiet_trainer, run_cli, run_folder

FIXTURES = Path(__file__).parent / "fixtures"


def settings_of(cls) -> dict:
    params = inspect.signature(cls.__init__).parameters.values()
    return {p.name: p.default for p in params if p.name != "self"}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_each_entry_names_its_lightning_module_and_its_plain_math(name):
    kind = MODELS[name]
    cls = getattr(importlib.import_module(kind.lit_module), name)
    assert issubclass(cls, NgramLitModule) and not issubclass(cls, kind.plain)
    assert cls.model_class is kind.plain  # held, not inherited
    # the signature LightningCLI reads is the config's: each setting written once
    defaults = {f.name: f.default for f in dataclasses.fields(kind.config)}
    assert settings_of(cls) == defaults
    assert dict(cls().hparams) == {**defaults, **cls().config.saved()}
    assert kind_of_class_path(kind.class_path) is kind
    assert kind_of_class_path(f"makemore_pl.{name}") is kind
    assert kind_of_class_path(f"elsewhere.{name}") is None


def contexts(vocab_size: int, context_size: int, count: int = 200) -> torch.Tensor:
    return torch.randint(
        0, vocab_size, (count, context_size), generator=torch.Generator().manual_seed(0)
    )


def saved(path: Path):
    saved = read_checkpoint(str(path))
    return saved.model.config.saved(), saved.model_on(torch.device("cpu"))


def test_a_dense_checkpoint_scores_as_its_model(tiny_run):
    path = run_folder(tiny_run) / "checkpoints" / "last.ckpt"
    model = BigramLitModule.load_from_checkpoint(path, weights_only=True)
    settings, plain = saved(path)
    x = contexts(model.hparams.vocab_size, 1)
    assert torch.equal(plain.log_probs(x), model.log_probs(x))
    assert plain.context_size == 1 and settings["chars"] == model.hparams.chars


def test_a_suffix_checkpoint_scores_as_its_model(tmp_path):
    (tmp_path / "words.txt").write_text("\n".join(TINY_WORDS * 2) + "\n", encoding="utf-8")
    data = NamesDataModule(str(tmp_path / "words.txt"), context_size=3)
    model = SuffixLitModule(data.data.vocab_size, 3, chars=data.data.chars, max_iter=5)
    trainer = quiet_trainer(max_epochs=2, precision="64-true")
    trainer.fit(model, data)
    trainer.save_checkpoint(tmp_path / "suffix.ckpt")
    _, plain = saved(tmp_path / "suffix.ckpt")
    x = contexts(data.data.vocab_size, 3)
    assert torch.equal(plain.log_probs(x), model.log_probs(x))


@pytest.mark.parametrize("kind", ["dense", "suffix"])
def test_the_saved_form_is_checked_like_any_checkpoint(tiny_run, tmp_path, kind):
    path = run_folder(tiny_run) / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(path, weights_only=True)
    if kind == "dense":
        checkpoint["state_dict"]["model.W"][0, 0] = float("nan")
        expected = "NaN or infinite"
    else:
        checkpoint["hyper_parameters"]["_class_path"] = "somewhere.SuffixLitModule"
        expected = "is none of BigramLitModule, SuffixLitModule"
    torch.save(checkpoint, tmp_path / "bad.ckpt")
    with pytest.raises(ValueError, match=expected):
        saved(tmp_path / "bad.ckpt")


def legacy_nlls() -> dict[tuple[str, str], float]:
    """(model, metric) -> the NLL the package computed before the layered layout."""
    rows = (line.split() for line in (FIXTURES / "legacy_nlls.txt").read_text().splitlines())
    return {(kind, metric): float(value) for kind, metric, value in rows}


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["dense", "suffix", "layered_dense", "layered_suffix"])
def test_checkpoints_from_before_the_layers_give_the_same_nlls(tmp_path, capsys, kind):
    """Written before the layered layout (legacy_*) and before the LightningModule held its
    model (layered_*): the same NLLs to 1e-7, from any of the commands."""
    shutil.copy(FIXTURES / "words.txt", tmp_path)
    name = kind if kind.startswith("layered") else f"legacy_{kind}"
    ckpt = shutil.copy(FIXTURES / f"{name}.ckpt", tmp_path)
    args = ["--ckpt_path", ckpt, "--data.path", "words.txt", "--trainer.logger", "false", *QUIET]
    run_cli("validate", *args, cwd=tmp_path)
    run_cli("test", *args, cwd=tmp_path)
    printed = printed_nlls(capsys.readouterr().out)
    for (model, metric), value in legacy_nlls().items():
        if model == kind:
            assert printed[metric] == pytest.approx(value, abs=1e-7)
    run_cli("sample", "--ckpt_path", ckpt, "--num_samples", "3", cwd=tmp_path)
    run_cli("predict", *args, "--output", "scores.tsv", cwd=tmp_path)
    assert len((tmp_path / "scores.tsv").read_text().splitlines()) > 1


# the fixture was written in another folder, saving last.ckpt every epoch: Lightning says so
@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:The dirpath has changed", "ignore:Be aware that when using")
def test_a_legacy_run_resumes_with_its_config(tmp_path):
    """A run folder written before the layered layout: its config.yaml names the old class."""
    shutil.copy(FIXTURES / "words.txt", tmp_path)
    run = tmp_path / "lightning_logs" / "version_0_suffix"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copy(FIXTURES / "legacy_suffix.ckpt", run / "checkpoints" / "last.ckpt")
    (run / "config.yaml").write_text(
        "model:\n  class_path: makemore_pl.suffix_model.SuffixLitModule\n"
        "  init_args: {max_iter: 5}\n"
        "data: {path: words.txt, context_size: 2}\n"
        "trainer: {max_epochs: 2, precision: 64-true}\n"
    )
    run_cli("fit", "--ckpt_path", "last", "--trainer.max_epochs", "3", *QUIET, cwd=tmp_path)
    resumed = read_checkpoint(str(run / "checkpoints" / "last.ckpt"))
    assert resumed.checkpoint["global_step"] == 3 and resumed.kind.name == "SuffixLitModule"
    config = (run / "config.yaml").read_text()
    assert "class_path: makemore_pl.lit.suffix.SuffixLitModule" in config


@pytest.mark.slow
def test_the_plain_commands_import_no_lightning(tiny_run, tmp_path):
    """sample, baseline and sweep (its neural path too) run without the training stack."""
    shutil.copy(tiny_run / "words.txt", tmp_path)
    ckpt = str(run_folder(tiny_run) / "checkpoints" / "last.ckpt")
    code = (
        "import sys\n"
        "from makemore_pl.cli.main import main\n"
        "data = ['--data.path', 'words.txt']\n"
        f"main(['sample', '--ckpt_path', {ckpt!r}, '--num_samples', '2'])\n"
        "main(['baseline', *data])\n"
        "main(['sweep', *data, '--l2_grid', '[0.01]', '--smoothing_grid', '[1]'])\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('lightning', 'torchmetrics')]\n"
        "assert not heavy, heavy[:5]\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("command", ["test", "validate", "predict"])
def test_a_held_out_command_reads_its_checkpoint_twice_at_most(tiny_run, tmp_path, command):
    """Once checked by the package, once restored by Lightning: never again for its settings,
    its step or its fit to the data."""
    shutil.copy(tiny_run / "words.txt", tmp_path)
    ckpt = str(shutil.copy(run_folder(tiny_run) / "checkpoints" / "last.ckpt", tmp_path))
    reads, load = [], torch.load

    def counted(f, *args, **kwargs):
        reads.append(str(f))
        return load(f, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch, "load", counted)
        run_cli(command, "--ckpt_path", ckpt, "--data.path", "words.txt", *QUIET, cwd=tmp_path)
    assert len(reads) == 2 and reads[0] == ckpt, reads  # the second: Lightning's own file object
