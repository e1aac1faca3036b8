"""One process or two (DDP on CPU, gloo), any precision: the same numbers.

Every command runs on one process (in this one) and on two. The two-process runs but one share
a pair of processes started once, as torchrun starts them (tests/ddp_session.py); one fit is
launched by Lightning from the command line, as `--trainer.devices 2` alone launches it, and
must agree with them too.
"""

import contextlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
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
    run_cli,
    run_folder,
)

pytestmark = pytest.mark.slow

TWO = ["--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp"]
ONE = ["--trainer.accelerator", "cpu", "--trainer.devices", "1"]
TRIGRAM = ["--data.context_size", "2", "--snapshots.every_n_epochs", "0", *QUIET]
SUFFIX = "makemore_pl.lit.suffix.SuffixLitModule"
FITS = {  # trigram trainings compared between one process and two: their options
    "adam": ["--trainer.max_epochs", "20"],
    "minibatch": ["--data.batch_size", "50000", "--trainer.max_epochs", "2"],
    "lbfgs": ["--model.optimizer", "lbfgs", "--trainer.max_epochs", "4"],
    "suffix": [
        *("--model.class_path", SUFFIX, "--model.init_args.strengths", "[0.5, 1.0, 2.0]"),
        *("--model.init_args.l1", "[0, 0.2, 0.3]", "--model.init_args.smoothing", "0.2"),
        *("--model.init_args.l1_by_count", "[1.5, 0.5, 1.0, 2.0]"),  # counts of every process
        *("--model.init_args.l2_by_count", "[0.4, 1.3, 0.8, 1.0]"),
        *("--model.init_args.max_iter", "20", "--trainer.precision", "64-true"),
        *("--trainer.max_epochs", "3"),
    ],
}
# held-out NLLs of a saved model: validation and test share one step and one loader, so each
# path (distinct rows with counts, or every example) is checked through one of them
HELD_OUT = {
    "validate-aggregated": ("adam", ["validate", "--data.aggregate", "true"]),
    "test-examples": ("adam", ["test", "--data.aggregate", "false"]),
    "test-suffix": ("suffix", ["test"]),
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, names_path) -> Path:
    folder = tmp_path_factory.mktemp("devices")
    shutil.copy(names_path, folder / "names.txt")
    return folder


def fit_args(name: str, root: Path, devices: list[str]) -> list[str]:
    return ["fit", *TRIGRAM, *FITS[name], *devices, "--trainer.default_root_dir", str(root)]


def held_out_args(name: str, workdir: Path, root: Path, devices: list[str]) -> list[str]:
    """The command of HELD_OUT[name] on a copy of the one-process model, logged under root."""
    model, (command, *options) = HELD_OUT[name]
    saved = workdir / f"{model}.ckpt"  # outside its run: a held-out run of its own
    if not saved.exists():
        shutil.copy(run_folder(workdir / f"{model}-one") / "checkpoints" / "last.ckpt", saved)
    return [command, "--ckpt_path", str(saved), *QUIET, *devices, *options] + [
        "--trainer.default_root_dir",
        str(root),
    ]


@pytest.fixture(scope="module")
def one(workdir) -> dict:
    """Every fit and held-out command on one process: name -> run folder or printed NLLs."""
    results = {}
    for name in FITS:
        root = workdir / f"{name}-one"
        run_cli(*fit_args(name, root, ONE), cwd=workdir)
        results[name] = run_folder(root)
    for name in HELD_OUT:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            run_cli(*held_out_args(name, workdir, workdir / f"{name}-one", ONE), cwd=workdir)
        results[name] = printed_nlls(out.getvalue())
    return results


@pytest.fixture(scope="module")
def two(workdir, one) -> dict:
    """The same commands on two processes, started once for all of them."""
    plan = [command(fit_args(name, workdir / f"{name}-two", TWO), workdir, name) for name in FITS]
    for name in HELD_OUT:
        plan.append(
            command(held_out_args(name, workdir, workdir / f"{name}-two", TWO), workdir, name)
        )
    run_two_processes(workdir, plan)
    results = {name: only_run(workdir / f"{name}-two") for name in FITS}
    for name in HELD_OUT:
        only_run(workdir / f"{name}-two")
        results[name] = printed_nlls((workdir / f"{name}.0").read_text())
    return results


def command(args: list[str], cwd: Path, name: str) -> dict:
    return {"args": args, "cwd": str(cwd), "stdout": str(cwd / name)}


def only_run(root: Path) -> Path:
    """The one run folder under root: the second process claims none of its own."""
    logs = root / "lightning_logs"
    assert [p.name for p in logs.iterdir() if not p.name.startswith(".")] == [run_folder(root).name]
    return run_folder(root)


def run_two_processes(workdir: Path, plan: list[dict]) -> None:
    """Runs the plan in two processes of one DDP process group; fails with their stderr."""
    (workdir / "plan.json").write_text(json.dumps(plan))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    env.update(WORLD_SIZE="2", NODE_RANK="0")
    script = [sys.executable, str(Path(__file__).with_name("ddp_session.py")), "plan.json"]
    logs = [workdir / f"session.{rank}.log" for rank in (0, 1)]
    procs = [
        subprocess.Popen(
            script,
            cwd=workdir,
            env={**env, "LOCAL_RANK": str(rank)},
            stdout=subprocess.DEVNULL,
            stderr=logs[rank].open("w"),
        )
        for rank in (0, 1)
    ]
    deadline = time.monotonic() + 600
    while any(proc.poll() is None for proc in procs):
        failed = any(proc.returncode not in (None, 0) for proc in procs)
        if failed or time.monotonic() > deadline:  # the other would wait for it forever
            for proc in procs:
                proc.kill()
        time.sleep(0.05)
    if any(proc.returncode != 0 for proc in procs):
        pytest.fail("\n".join(log.read_text()[-3000:] for log in logs))


def assert_same_training(
    one: Path, two: Path, weights: str = "model.W", atol: float = 1e-5
) -> None:
    """Same steps, same weights to `atol`, same logged curves to 1e-6."""
    first, second = (checkpoint(run / "checkpoints" / "last.ckpt") for run in (one, two))
    assert first["global_step"] == second["global_step"] > 0
    a, b = first["state_dict"][weights], second["state_dict"][weights]
    assert torch.allclose(a, b, rtol=0, atol=atol)
    logged = [events(run) for run in (one, two)]
    for tag in ("curves/train_loss", "curves/train_nll", "curves/val_nll"):
        series = [[(e.step, e.value) for e in log.Scalars(tag)] for log in logged]
        assert [s for s, _ in series[0]] == [s for s, _ in series[1]], tag
        for (_, x), (_, y) in zip(*series, strict=True):
            assert x == pytest.approx(y, abs=1e-6), tag


def test_full_batch_adam_trains_the_same_weights_on_two_processes(one, two):
    assert_same_training(one["adam"], two["adam"])
    runs = (one["adam"], two["adam"])
    W = [checkpoint(run / "checkpoints" / "last.ckpt")["state_dict"]["model.W"] for run in runs]
    assert torch.equal(*W)  # contexts are owned by one process: not even rounding differs


def test_minibatches_are_global_batches_split_between_processes(one, two):
    assert_same_training(one["minibatch"], two["minibatch"])


def test_lbfgs_line_searches_agree_across_processes(one, two):
    assert_same_training(one["lbfgs"], two["lbfgs"])


def test_the_suffix_model_fits_the_same_on_two_processes(one, two):
    # 60 iterations, short of the optimum: the all-reduce's order of summation moves the
    # weights by round-off (up to 1.2e-9 measured, depending on the CPU)
    assert_same_training(one["suffix"], two["suffix"], weights="model.U", atol=1e-8)


@pytest.mark.parametrize("name", HELD_OUT)
def test_held_out_nll_is_exact_on_two_processes(one, two, name):
    assert one[name].keys() == two[name].keys() and one[name]
    for key in one[name]:
        assert two[name][key] == pytest.approx(one[name][key], abs=1e-9), (name, key)


def test_a_launch_from_the_command_line_trains_what_the_session_does(workdir, one):
    """`fit --trainer.devices 2` as typed: Lightning starts the second process itself."""
    root = workdir / "adam-launched"
    launched = makemore(*fit_args("adam", root, TWO), cwd=workdir)
    assert "Traceback" not in launched.stderr  # the second process writes to it too
    assert_same_training(one["adam"], only_run(root))
    runs = (one["adam"], run_folder(root))
    W = [checkpoint(run / "checkpoints" / "last.ckpt")["state_dict"]["model.W"] for run in runs]
    assert torch.equal(*W)


def test_bf16_mixed_precision_reports_float32_nlls(workdir):
    root = workdir / "bf16"
    fit = ["fit", "--data.encoding", "onehot", "--trainer.precision", "bf16-mixed"]
    fit += ["--trainer.max_epochs", "3", "--snapshots.every_n_epochs", "0", *QUIET]
    run_cli(*fit, "--trainer.default_root_dir", str(root), cwd=workdir)
    run = run_folder(root)
    W = checkpoint(run / "checkpoints" / "last.ckpt")["state_dict"]["model.W"]
    assert W.dtype == torch.float32
    exact = exact_val_nll(workdir / "names.txt", W)
    assert events(run).Scalars("curves/val_nll")[-1].value == pytest.approx(exact, abs=1e-5)
