"""The GPU tier: `python -m pytest -m gpu` on a machine with CUDA (skipped without it).

Each run on the GPU is compared with the same run on the CPU: the NLLs agree to 1e-5 (the
float32 logits round differently there; the sums are float64 on both). Checkpoints cross
between a GPU process and a CPU-only one (CUDA_VISIBLE_DEVICES="") both ways. The multi-GPU
test needs two GPUs. docs/devices.md says what was run where.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from tests.conftest import (
    QUIET,
    checkpoint,
    events,
    exact_val_nll,
    makemore,
    printed_nlls,
    run_folder,
)

GPUS = torch.cuda.device_count()
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.slow,
    pytest.mark.skipif(GPUS == 0, reason="needs a CUDA GPU"),
]

GPU = ["--trainer.accelerator", "gpu", "--trainer.devices", "1"]
CPU = ["--trainer.accelerator", "cpu", "--trainer.devices", "1"]
BASE = ["--snapshots.every_n_epochs", "0", *QUIET]
SUFFIX = "makemore_pl.lit.suffix.SuffixLitModule"
MODELS = {  # fits compared between the CPU and the GPU
    "bigram": ["--trainer.max_epochs", "20"],
    "trigram": ["--data.context_size", "2", "--trainer.max_epochs", "20"],
    "trigram-minibatch": [
        *("--data.context_size", "2", "--data.batch_size", "50000", "--trainer.max_epochs", "2"),
    ],
    "suffix": [
        *("--model.class_path", SUFFIX, "--data.context_size", "3"),
        *("--model.init_args.max_iter", "20", "--trainer.max_epochs", "3"),
        *("--trainer.precision", "64-true"),
    ],
}
CPU_ONLY = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, names_path) -> Path:
    folder = tmp_path_factory.mktemp("gpu")
    shutil.copy(names_path, folder / "names.txt")
    return folder


def fit(workdir: Path, root: str, *options: str, env: dict | None = None) -> Path:
    makemore("fit", *BASE, *options, "--trainer.default_root_dir", root, cwd=workdir, env=env)
    return run_folder(workdir / root)


def held_out(workdir: Path, ckpt: Path, command: str, *options: str, env=None) -> dict:
    args = [command, "--ckpt_path", str(ckpt), *QUIET, *options]
    args += ["--trainer.default_root_dir", str(workdir / f"held-out-{command}")]
    return printed_nlls(makemore(*args, cwd=workdir, env=env).stdout)


def last(run: Path) -> Path:
    return run / "checkpoints" / "last.ckpt"


def assert_same_curves(a: Path, b: Path, tags=("curves/train_nll", "curves/val_nll")) -> None:
    logged = [events(run) for run in (a, b)]
    for tag in tags:
        series = [[(e.step, e.value) for e in log.Scalars(tag)] for log in logged]
        assert [s for s, _ in series[0]] == [s for s, _ in series[1]], tag
        for (_, x), (_, y) in zip(*series, strict=True):
            assert x == pytest.approx(y, abs=1e-5), tag


@pytest.mark.parametrize("model", MODELS)
def test_a_fit_on_the_gpu_gives_the_nlls_of_the_cpu(workdir, model):
    cpu = fit(workdir, f"{model}-cpu", *MODELS[model], *CPU)
    gpu = fit(workdir, f"{model}-gpu", *MODELS[model], *GPU)
    assert_same_curves(cpu, gpu)
    on_cpu, on_gpu = (held_out(workdir, last(run), "test", *CPU) for run in (cpu, gpu))
    assert on_cpu.keys() == on_gpu.keys() >= {"test_nll", "counting_test_nll"}
    for key in on_cpu:
        assert on_gpu[key] == pytest.approx(on_cpu[key], abs=1e-5), key
    # the GPU's own test of its checkpoint, against the CPU's test of it: the same weights,
    # float32 logits rounded by another device's kernels, float64 sums on both
    assert held_out(workdir, last(gpu), "test", *GPU) == pytest.approx(on_gpu, abs=1e-6)


@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed"])
def test_mixed_precision_keeps_the_nll_sums_exact(workdir, precision):
    run = fit(
        workdir, precision, "--trainer.max_epochs", "5", "--trainer.precision", precision, *GPU
    )
    W = checkpoint(last(run))["state_dict"]["model.W"]
    assert W.dtype == torch.float32
    exact = exact_val_nll(workdir / "names.txt", W)
    assert events(run).Scalars("curves/val_nll")[-1].value == pytest.approx(exact, abs=1e-5)
    printed = held_out(workdir, last(run), "validate", *GPU)
    assert printed["val_nll"] == pytest.approx(exact, abs=1e-6)


@pytest.mark.skipif(GPUS < 2, reason="needs two CUDA GPUs")
def test_two_gpus_give_the_nlls_of_one(workdir):
    trigram = MODELS["trigram"]
    one = fit(workdir, "trigram-1gpu", *trigram, *GPU)
    two = fit(workdir, "trigram-2gpu", *trigram, *GPU[:2], "--trainer.devices", "2")
    assert checkpoint(last(one))["global_step"] == checkpoint(last(two))["global_step"]
    assert_same_curves(one, two)
    single = held_out(workdir, last(one), "test", *GPU)
    double = held_out(workdir, last(one), "test", *GPU[:2], "--trainer.devices", "2")
    for key in single:  # float64 sums of the same per-example NLLs, split in two
        assert double[key] == pytest.approx(single[key], abs=1e-9), key


@pytest.mark.parametrize("saved_on", ["gpu", "cpu"])
def test_a_checkpoint_crosses_between_gpu_and_cpu(workdir, saved_on):
    """Saved on one side, then tested, sampled and resumed on the other."""
    where, other = (GPU, CPU) if saved_on == "gpu" else (CPU, GPU)
    env = CPU_ONLY if saved_on == "gpu" else None  # the other side: a process without CUDA
    run = fit(workdir, f"crossing-{saved_on}", "--trainer.max_epochs", "10", *where)
    assert held_out(workdir, last(run), "test", *other, env=env) == pytest.approx(
        held_out(workdir, last(run), "test", *where), abs=1e-5
    )
    sample = ["sample", "--ckpt_path", str(last(run)), "--num_samples", "50", "--seed", "3"]
    accelerator = ["--trainer.accelerator", other[1]]
    names = [makemore(*sample, *accelerator, cwd=workdir, env=env).stdout for _ in range(2)]
    assert names[0] == names[1] and len(names[0].split()) == 50
    resume = ["--ckpt_path", str(last(run)), "--trainer.max_epochs", "20", *other]
    makemore("fit", *BASE, *resume, cwd=workdir, env=env)
    assert checkpoint(last(run))["global_step"] == 20


def test_sample_on_the_gpu_is_deterministic_and_draws_from_the_model(workdir):
    run = fit(workdir, "sample-gpu", "--trainer.max_epochs", "20", *GPU)
    sample = ["sample", "--ckpt_path", str(last(run)), "--num_samples", "2000", "--seed", "1"]
    drawn = [
        makemore(*sample, "--trainer.accelerator", "gpu", cwd=workdir).stdout for _ in range(2)
    ]
    assert drawn[0] == drawn[1]
    on_cpu = makemore(*sample, "--trainer.accelerator", "cpu", cwd=workdir).stdout
    # different generators, the same model: mean name lengths agree to a few standard errors
    lengths = [[len(name) for name in text.split()] for text in (drawn[0], on_cpu)]
    means = [sum(x) / len(x) for x in lengths]
    assert len(lengths[0]) == len(lengths[1]) == 2000
    assert abs(means[0] - means[1]) < 0.4  # ~5 standard errors of a 2,000-name mean
