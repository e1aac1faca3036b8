"""Inputs nobody planned for: crafted checkpoints, sizes chosen by the input, hostile text,
divergence and full disks end in one line or just work; nothing allocates first."""

import errno
import io
import shutil
import unicodedata

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from makemore_pl.cli.plain.sweep import save_png
from makemore_pl.core.errors import CommandError, SettingError
from makemore_pl.core.sampling import inverse_cdf, iter_samples, sample
from makemore_pl.core.text import printable
from makemore_pl.core.vocabulary import Vocabulary
from makemore_pl.lit import heatmap as plots
from makemore_pl.lit.callbacks import StopOnNonFiniteLoss
from makemore_pl.lit.datamodule import NamesDataModule
from makemore_pl.lit.dense import BigramLitModule
from makemore_pl.lit.heatmap import probability_heatmap
from makemore_pl.models.saved import CheckpointError, read_checkpoint
from tests.conftest import QUIET, TINY_WORDS, last_checkpoint, quiet, run_cli

V = 15  # TINY_WORDS' vocabulary, the boundary included


@pytest.fixture
def model_ckpt(tiny_run, tmp_path) -> dict:
    """tiny_run's last checkpoint, loaded (tmp_path holds words.txt)."""
    shutil.copy(tiny_run / "words.txt", tmp_path)
    return torch.load(last_checkpoint(tiny_run), weights_only=True)


def checkpointing_trainer(**kwargs) -> L.Trainer:
    """A quiet CPU Trainer that keeps the checkpoints its callbacks save."""
    return L.Trainer(
        logger=False, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
        **kwargs,
    )  # fmt: skip


def saved(tmp_path, checkpoint: dict, name: str = "x.ckpt") -> str:
    torch.save(checkpoint, tmp_path / name)
    return str(tmp_path / name)


# checkpoints: the model-independent checks


def test_views_that_share_one_storage_cannot_add_up_to_more_than_the_file(model_ckpt, tmp_path):
    block = torch.zeros(64 * 1024)
    model_ckpt["callbacks"] = {"views": [block[:] for _ in range(100)]}  # 100 x 256 KB, stored once
    path = saved(tmp_path, model_ckpt)
    with pytest.raises(
        CheckpointError, match="its tensors claim 26 MB together but the file holds"
    ):
        read_checkpoint(path)


def test_a_transposed_view_is_refused(model_ckpt, tmp_path):
    model_ckpt["state_dict"]["model.W"] = model_ckpt["state_dict"]["model.W"].t()
    with pytest.raises(
        CheckpointError, match=r"state_dict.model.W of shape \(15, 15\) is a strided view"
    ):
        read_checkpoint(saved(tmp_path, model_ckpt))


def test_integers_out_of_range_are_named_wherever_they_are(model_ckpt, tmp_path):
    model_ckpt["loops"]["fit_loop"]["epoch_progress"] = {"total": {"ready": -(2**64)}}
    with pytest.raises(CheckpointError) as refused:
        read_checkpoint(saved(tmp_path, model_ckpt))
    assert "loops.fit_loop.epoch_progress.total.ready = -18446744073709551616" in str(refused.value)


def test_a_key_with_control_characters_is_shown_escaped(model_ckpt, tmp_path):
    model_ckpt["hyper_parameters"]["\x1b[2J\u202e"] = 1
    with pytest.raises(CheckpointError, match=r"unknown model settings: \\x1b\[2J\\u202e\)"):
        read_checkpoint(saved(tmp_path, model_ckpt))


def test_a_folder_is_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match=f"^--ckpt_path {tmp_path}: not a regular file$"):
        read_checkpoint(str(tmp_path))


def test_a_weights_only_checkpoint_reads_but_cannot_resume(model_ckpt, tmp_path):
    for key in ("optimizer_states", "lr_schedulers", "callbacks"):
        del model_ckpt[key]
    path = saved(tmp_path, model_ckpt)
    assert read_checkpoint(path).checkpoint["state_dict"].keys() == {"model.W"}
    with pytest.raises(CheckpointError, match="holds the weights only .* cannot resume"):
        read_checkpoint(path, resume=True)


@pytest.mark.parametrize("command", ["validate", "test", "predict", "sample"])
def test_a_lightning_weights_only_save_works_where_no_resume_is_needed(tmp_path, command):
    (tmp_path / "words.txt").write_text("\n".join(TINY_WORDS) + "\n", encoding="utf-8")
    dm = NamesDataModule(str(tmp_path / "words.txt"))
    save = ModelCheckpoint(dirpath=tmp_path, filename="weights", save_weights_only=True)
    checkpointing_trainer(max_epochs=1, callbacks=[save]).fit(
        BigramLitModule(dm.data.vocab_size, chars=dm.data.chars), dm
    )
    args = [command, "--ckpt_path", "weights.ckpt", "--data.path", "words.txt"]
    run_cli(*args, *quiet(args), cwd=tmp_path)


# checkpoints: the model's own checks


def test_a_checkpoint_is_checked_by_building_its_model(model_ckpt, tmp_path):
    hparams, state = model_ckpt["hyper_parameters"], model_ckpt["state_dict"]

    def problem(hparams: dict, state: dict) -> str | None:
        edited = {**model_ckpt, "hyper_parameters": hparams, "state_dict": state}
        try:
            read_checkpoint(saved(tmp_path, edited, "edited.ckpt"))
        except CheckpointError as err:
            return str(err)
        return None

    assert problem(hparams, state) is None
    assert problem({**hparams, "chars": list("abc")}, state).endswith(
        "not a makemore_pl model checkpoint (its characters ['a', 'b', 'c'] are not vocab_size "
        "- 1 = 14 distinct characters)"
    )
    int_weights = {"model.W": torch.zeros(V, V).long()}
    assert "its weights W are torch.int64, not floats" in problem(hparams, int_weights)
    assert "its setting context_size 1000000000000 with vocab_size 15 needs a" in problem(
        {**hparams, "context_size": 10**12}, state
    )  # decided before anything is allocated, without computing 15**10**12


def test_a_checkpoint_without_characters_samples_with_the_data(model_ckpt, tmp_path, capfd):
    model_ckpt["hyper_parameters"]["chars"] = None
    saved(tmp_path, model_ckpt, "no_chars.ckpt")
    args = ["--ckpt_path", "no_chars.ckpt", "--data.path", "words.txt"]
    run_cli("sample", "--num_samples", "5", *args, cwd=tmp_path)
    names = capfd.readouterr().out.split()
    assert len(names) == 5 and set("".join(names)) <= set("".join(TINY_WORDS))
    run_cli("test", *args, *QUIET, cwd=tmp_path)


# sizes chosen by the input


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


# sampling


def uniform(v: int):
    return lambda ctx: torch.full((len(ctx), v), -torch.log(torch.tensor(float(v))))


def test_chunks_make_up_the_words_of_sample(monkeypatch):
    monkeypatch.setattr("makemore_pl.core.sampling.CHUNK", 7)
    chunks = list(iter_samples(uniform(5), 2, 20, seed=3))
    assert [len(chunk) for chunk in chunks] == [7, 7, 6]
    assert [w for chunk in chunks for w in chunk] == sample(uniform(5), 2, 20, seed=3)
    assert chunks[0] == sample(uniform(5), 2, 7, seed=3)
    assert chunks[1] != chunks[0] and sample(uniform(5), 2, 20, seed=4) != sample(
        uniform(5), 2, 20, seed=3
    )


def test_the_first_names_do_not_depend_on_how_many_are_asked_for(monkeypatch):
    monkeypatch.setattr("makemore_pl.core.sampling.BLOCK", 4)  # several blocks, some empty words
    many = sample(uniform(3), 1, 40, seed=1)
    assert [sample(uniform(3), 1, n, seed=1) for n in (3, 8, 17)] == [many[:3], many[:8], many[:17]]
    assert all(many) and sample(uniform(3), 1, 40, seed=2) != many


def test_a_character_of_probability_zero_is_never_drawn():
    probs = torch.tensor([[0.5, 0.0, 0.5], [0.0, 0.0, 1.0]]).repeat_interleave(4, 0)
    uniform = torch.tensor([0.0, 0.4999, 0.5, 0.99] * 2, dtype=torch.float64)
    assert inverse_cdf(probs, uniform).tolist() == [0, 0, 2, 2, 2, 2, 2, 2]


def test_asking_for_a_hundred_million_names_starts_printing_at_once():
    first = next(iter_samples(uniform(5), 1, 10**8, seed=0))
    assert len(first) == 10_000 and all(first)


def test_a_vanishing_temperature_is_greedy():
    log_probs = torch.log(torch.tensor([[0.1, 0.2, 0.6, 0.1], [0.7, 0.1, 0.1, 0.1]]))

    def next_logprobs(ctx):  # after a 2, the boundary is likeliest
        return log_probs[(ctx[:, -1] == 2).long()]

    assert sample(next_logprobs, 1, 50, seed=0, temperature=1e-45) == [[2]] * 50
    assert sample(next_logprobs, 1, 5, seed=0, temperature=5e-324) == [[2]] * 5


def test_a_model_that_always_ends_at_once_is_one_line():
    ends = lambda ctx: torch.log(torch.tensor([[1.0, 0.0]])).expand(len(ctx), 2)  # noqa: E731
    with pytest.raises(CommandError, match="^the model ends almost every word at once: 100 "):
        sample(ends, 1, 3)


def test_printable_escapes_what_a_terminal_would_act_on():
    assert printable("émilie-zoë o'neil") == "émilie-zoë o'neil"
    assert printable("a\x1b[2Jb\nc\x7f\x85") == "a\\x1b[2Jb\\nc\\x7f\\x85"
    assert printable("evil\u202eman\u200dx\u2028") == "evil\\u202eman\\u200dx\\u2028"
    assert printable("\U000e0001\ud800") == "\\U000e0001\\ud800"
    every = "".join(map(chr, range(0x110000)))
    left = {unicodedata.category(ch) for ch in printable(every)}
    assert not left & {"Cc", "Cf", "Cs", "Zl", "Zp"}


# figures


def test_a_heatmap_of_names_with_dollars_and_nan_weights_renders():
    vocab = Vocabulary(list("$^_ab"))  # the context "$^$" (row 1·36 + 2·6 + 1) is no formula
    probs = torch.softmax(torch.randn(2, 6), -1)
    probs[1] = float("nan")
    fig = probability_heatmap(probs, [0, 49], vocab, 3, "step 0")
    fig.savefig(io.BytesIO(), format="png")
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["...", "$^$"]


def test_a_heatmap_stays_small_for_a_large_vocabulary():
    vocab = Vocabulary([chr(0x4E00 + i) for i in range(3920)])
    probs = torch.softmax(torch.randn(27, 3921), -1)
    fig = probability_heatmap(probs, list(range(27)), vocab, 1, annotate=False)
    assert max(fig.get_size_inches()) <= plots.MAX_INCHES
    assert len(fig.axes[0].get_xticklabels()) == plots.MAX_COLUMNS


def small_figure():
    return probability_heatmap(torch.eye(3), [0, 1, 2], Vocabulary(["a", "b"]), 1, annotate=False)


def test_save_png_writes_the_file_whole_and_nothing_else(tmp_path):
    path = save_png(small_figure(), tmp_path / "figs" / "heat.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in path.parent.iterdir()] == ["heat.png"]


@pytest.mark.parametrize(
    "err, message",
    [
        (OSError(errno.ENOSPC, "No space left on device"), "no space left on device writing {}"),
        (OSError(errno.EACCES, "Permission denied"), "cannot write {} (Permission denied)"),
    ],
)  # fmt: skip
def test_save_png_failures_are_one_line_and_keep_the_old_file(tmp_path, monkeypatch, err, message):
    path = save_png(small_figure(), tmp_path / "heat.png")
    before = path.read_bytes()
    fig = small_figure()

    def fails(file, **kwargs):
        file.write(b"\x89PNG half a figure")
        raise err

    monkeypatch.setattr(fig, "savefig", fails)
    with pytest.raises(CommandError) as failed:
        save_png(fig, path)
    assert str(failed.value) == message.format(path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["heat.png"]


def test_save_png_under_a_file_is_one_line(tmp_path):
    (tmp_path / "blocker").write_text("")
    with pytest.raises(CommandError) as failed:
        save_png(small_figure(), tmp_path / "blocker" / "x.png")
    assert str(failed.value) == (
        f"cannot write {tmp_path}/blocker/x.png ({tmp_path}/blocker is not a folder)"
    )


# divergence


def test_a_diverging_fit_stops_at_once_and_keeps_the_last_good_checkpoint(tmp_path):
    (tmp_path / "words.txt").write_text("\n".join(TINY_WORDS) + "\n", encoding="utf-8")
    dm = NamesDataModule(str(tmp_path / "words.txt"))
    model = BigramLitModule(dm.data.vocab_size, optimizer="sgd", lr=1e30, chars=dm.data.chars)
    last = ModelCheckpoint(dirpath=tmp_path / "ckpt", filename="last", every_n_epochs=1)
    trainer = checkpointing_trainer(max_epochs=10, callbacks=[StopOnNonFiniteLoss(), last])
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


@pytest.mark.slow
def test_a_bigram_of_a_3921_character_vocabulary_trains_with_its_snapshots(tmp_path):
    chars = [chr(0x4E00 + i) for i in range(3920)]
    words = ["".join(chars[i : i + 3]) for i in range(3918)]  # every character, in 3 places
    (tmp_path / "cjk.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    args = ["fit", "--data.path", "cjk.txt", "--trainer.max_epochs", "2", *QUIET]
    run_cli(*args, cwd=tmp_path)
    weights = read_checkpoint(str(last_checkpoint(tmp_path))).model.W
    assert weights.shape == (3921, 3921)
