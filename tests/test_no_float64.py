"""A device without float64 (Apple's MPS), simulated on the CPU, and a missing GPU.

`MAKEMORE_NO_FLOAT64=cpu` declares the CPU a device without float64 (`core/devices.py`): a run
then takes the path it takes on MPS. A dispatch mode watches every tensor the run makes; only
the host's exact sums may be float64, and the NLLs must be those of the normal path.
"""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from makemore_pl.core.devices import NO_FLOAT64_ENV, available, has_float64
from tests.conftest import QUIET, TINY_WORDS, checkpoint, events, printed_nlls, run_cli, run_folder

PACKAGE = str(Path(__file__).resolve().parents[1] / "src" / "makemore_pl")
# the package's code that makes float64 on the host by design: the host's copies of the NLL
# sums, the counting reference (counted on the CPU), the heatmap's figure, checkpoints read to
# the CPU, the CLI's summary and end-of-fit check, the sampler's draws, the best val_nll so far
HOST_SITES = {
    "on_validation_epoch_end",
    "float64_of",
    "host_uniforms",
    "inverse_cdf",
    "compare_with_counting",
    "host_nll",
    "_log_nll",
    "_add_train_nll",
    "_exact_nll",
    "on_test_epoch_end",
    "probability_heatmap",
    "read_checkpoint",
    "fit_summary",
}
# Lightning and torchmetrics handle the logged values (host tensors, as the metrics live there)
LIBRARIES = ("site-packages/lightning/", "site-packages/torchmetrics/")
TRIGRAM = ["--data.context_size", "2", "--snapshots.every_n_epochs", "0", *QUIET]
SUFFIX = ["--model.class_path", "makemore_pl.lit.suffix.SuffixLitModule"]
SUFFIX += ["--model.init_args.max_iter", "10", "--trainer.precision", "64-true"]


class Float64Watch(TorchDispatchMode):
    """Records every op that makes a float64 tensor from the package's own code outside the
    host sites: (file, function) of the package's innermost frame."""

    def __init__(self) -> None:
        super().__init__()
        self.made: list[tuple[str, str]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        flat, _ = tree_flatten(out)
        if any(isinstance(t, torch.Tensor) and t.dtype == torch.float64 for t in flat):
            site = package_site(sys._getframe(1))
            if site is not None:
                self.made.append(site)
        return out


def package_site(frame) -> tuple[str, str] | None:
    """(file, function) of the package's innermost frame when the package itself made the
    tensor: None under a host site, or when Lightning or torchmetrics made it."""
    site = None
    while frame is not None:
        name, function = frame.f_code.co_filename, frame.f_code.co_name
        if function in HOST_SITES and name.startswith(PACKAGE):
            return None
        if site is None and any(library in name for library in LIBRARIES):
            return None
        if site is None and name.startswith(PACKAGE):
            site = name.removeprefix(PACKAGE + "/"), function
        frame = frame.f_back
    return site


@pytest.fixture
def words(tmp_path) -> Path:
    (tmp_path / "words.txt").write_text("\n".join(TINY_WORDS * 3) + "\n", encoding="utf-8")
    return tmp_path


def fit_and_test(folder: Path, root: str, *options: str) -> dict[str, float]:
    """Fits in folder/root, then tests the last checkpoint; the test's printed NLLs."""
    common = ["--data.path", "words.txt", "--trainer.default_root_dir", root, *TRIGRAM]
    run_cli("fit", *common, "--trainer.max_epochs", "4", *options, cwd=folder)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        run_cli("test", *common, "--ckpt_path", "last", cwd=folder)
    return printed_nlls(out.getvalue())


def test_has_float64_is_false_on_mps_and_where_declared(monkeypatch):
    assert has_float64("cpu") and has_float64(torch.device("cuda")) and not has_float64("mps")
    monkeypatch.setenv(NO_FLOAT64_ENV, "meta, cpu")
    assert not has_float64("cpu") and not has_float64("meta") and has_float64("cuda")


@pytest.mark.slow
def test_no_float64_tensor_is_made_on_a_device_without_it(words, monkeypatch):
    watch = Float64Watch()
    with watch:  # the normal path: the watch sees the model's float64 sums
        fit_and_test(words, "normal")
    assert ("models/ngram.py", "nll_sum") in watch.made
    monkeypatch.setenv(NO_FLOAT64_ENV, "cpu")
    watch = Float64Watch()
    with watch:
        fit_and_test(words, "without")
    assert watch.made == []
    W = checkpoint(run_folder(words / "without") / "checkpoints" / "last.ckpt")["state_dict"][
        "model.W"
    ]
    assert W.dtype == torch.float32


@pytest.mark.slow
def test_nlls_without_float64_are_those_of_the_normal_path(words, monkeypatch):
    normal = fit_and_test(words, "normal")
    monkeypatch.setenv(NO_FLOAT64_ENV, "cpu")
    without = fit_and_test(words, "without")
    assert normal.keys() == without.keys() == {"test_nll", "counting_test_nll"}
    for key in normal:  # the float32 loss steers Adam a hair differently
        assert without[key] == pytest.approx(normal[key], abs=1e-6)
    curves = [
        events(run_folder(words / root)).Scalars("curves/val_nll") for root in ("normal", "without")
    ]
    assert len(curves[0]) == len(curves[1]) == 4
    for a, b in zip(*curves, strict=True):
        assert a.step == b.step and a.value == pytest.approx(b.value, abs=1e-6)
    # the same weights: the host's sums are the normal path's, to the last bit
    out = io.StringIO()
    saved = run_folder(words / "normal") / "checkpoints" / "last.ckpt"
    with contextlib.redirect_stdout(out):
        run_cli(
            "test",
            "--ckpt_path",
            str(saved),
            "--trainer.default_root_dir",
            "again",
            *QUIET,
            cwd=words,
        )
    assert printed_nlls(out.getvalue()) == normal


@pytest.mark.slow
def test_the_suffix_model_trains_in_float32_without_float64(words, monkeypatch, caplog):
    normal = fit_and_test(words, "normal", *SUFFIX, "--trainer.precision", "32-true")
    monkeypatch.setenv(NO_FLOAT64_ENV, "cpu")
    watch = Float64Watch()
    with watch:
        without = fit_and_test(words, "without", *SUFFIX)  # 64-true asked for
    assert watch.made == []
    said = [line for line in caplog.messages if "float64" in line]
    assert said == [
        "cpu has no float64: training in float32 (--trainer.precision 32-true), its NLLs summed "
        "exactly on the host; for float64 weights, --trainer.accelerator cpu"
    ]
    state = checkpoint(run_folder(words / "without") / "checkpoints" / "last.ckpt")["state_dict"]
    assert state["model.U"].dtype == torch.float32
    for key in normal:  # the same float32 fit; the host sums each example in float64
        assert without[key] == pytest.approx(normal[key], abs=1e-6)


def test_metrics_live_on_the_host_of_a_device_without_float64(monkeypatch):
    from makemore_pl.lit.dense import BigramLitModule

    model = BigramLitModule(5, 1)
    model._device = torch.device("meta")  # where the model's tensors would be
    monkeypatch.setenv(NO_FLOAT64_ENV, "meta")
    metric = model._metric("val")
    assert metric.device.type == "cpu" and metric.dtype == torch.float64


def no_gpu(accelerator: str) -> bool:
    kinds = {"gpu": ("cuda", "mps"), "cuda": ("cuda",), "mps": ("mps",)}[accelerator]
    return not any(available(kind) for kind in kinds)


@pytest.mark.parametrize("accelerator", ["gpu", "cuda", "mps"])
def test_a_missing_gpu_is_one_line_and_leaves_no_run_folder(words, accelerator, capsys):
    if not no_gpu(accelerator):
        pytest.skip(f"this machine has a {accelerator}")
    with pytest.raises(SystemExit) as exited:
        run_cli("fit", "--data.path", "words.txt", "--trainer.accelerator", accelerator, cwd=words)
    message = str(exited.value.code)
    looked = {"gpu": "Apple MPS device or CUDA GPU", "cuda": "CUDA GPU", "mps": "Apple MPS device"}
    assert message.startswith(
        f"makemore_pl: error: --trainer.accelerator {accelerator}: found no {looked[accelerator]} "
    )
    assert message.endswith("run on the CPU with --trainer.accelerator cpu")
    assert len(message.splitlines()) == 1
    assert not (words / "lightning_logs").exists()
    assert capsys.readouterr().out == ""  # not even Lightning's seed line


def test_sample_on_a_missing_gpu_is_one_line(tiny_run):
    if not no_gpu("gpu"):
        pytest.skip("this machine has a GPU")
    with pytest.raises(SystemExit) as exited:
        run_cli("sample", "--ckpt_path", "last", "--trainer.accelerator", "gpu", cwd=tiny_run)
    message = str(exited.value.code)
    assert "--trainer.accelerator gpu: found no" in message and message.endswith(
        "--trainer.accelerator cpu"
    )
