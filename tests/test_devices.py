"""One process or two (DDP on CPU, gloo), any precision: the same numbers."""

import shutil

import pytest
import torch

from tests.conftest import QUIET, checkpoint, events, makemore, run_cli, run_folder

pytestmark = pytest.mark.slow

DDP = ["--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp"]
ONE = ["--trainer.accelerator", "cpu", "--trainer.devices", "1"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, names_path):
    folder = tmp_path_factory.mktemp("devices")
    shutil.copy(names_path, folder / "names.txt")
    return folder


def fit_both(workdir, name: str, *args: str) -> dict:
    """Fits the same trigram model on one process and on two; returns their run folders."""
    runs = {}
    for devices, flags in (("one", ONE), ("two", DDP)):
        root = workdir / f"{name}-{devices}"
        fit = ["fit", "--data.context_size", "2", "--snapshots.every_n_epochs", "0", *QUIET]
        fit += [*flags, "--trainer.default_root_dir", str(root), *args]
        # one process in this one; DDP relaunches sys.argv, so two need a process of their own
        run_cli(*fit, cwd=workdir) if devices == "one" else makemore(*fit, cwd=workdir)
        runs[devices] = run_folder(root)
    return runs


def assert_same_training(runs: dict) -> None:
    one, two = (checkpoint(runs[d] / "checkpoints" / "last.ckpt") for d in ("one", "two"))
    assert one["global_step"] == two["global_step"] > 0
    assert torch.allclose(one["state_dict"]["W"], two["state_dict"]["W"], rtol=0, atol=1e-5)
    logged = {d: events(runs[d]) for d in runs}
    for tag in ("curves/train_loss", "curves/train_nll", "curves/val_nll"):
        series = {d: [(e.step, e.value) for e in logged[d].Scalars(tag)] for d in runs}
        assert [s for s, _ in series["one"]] == [s for s, _ in series["two"]], tag
        for (_, a), (_, b) in zip(series["one"], series["two"], strict=True):
            assert a == pytest.approx(b, abs=1e-6), tag


def test_full_batch_adam_trains_the_same_weights_on_two_processes(workdir):
    runs = fit_both(workdir, "adam", "--trainer.max_epochs", "20")
    assert_same_training(runs)
    one = checkpoint(runs["one"] / "checkpoints" / "last.ckpt")["state_dict"]["W"]
    two = checkpoint(runs["two"] / "checkpoints" / "last.ckpt")["state_dict"]["W"]
    assert torch.equal(one, two)  # contexts are owned by one process: not even rounding differs


def test_minibatches_are_global_batches_split_between_processes(workdir):
    runs = fit_both(workdir, "minibatch", "--data.batch_size", "50000", "--trainer.max_epochs", "2")
    assert_same_training(runs)


def test_lbfgs_line_searches_agree_across_processes(workdir):
    runs = fit_both(workdir, "lbfgs", "--model.optimizer", "lbfgs", "--trainer.max_epochs", "4")
    assert_same_training(runs)


def held_out(workdir, command: str, devices: list[str], *args: str) -> dict[str, float]:
    ckpt = run_folder(workdir / "adam-one") / "checkpoints" / "last.ckpt"
    out = makemore(
        command,
        "--ckpt_path",
        str(ckpt),
        *QUIET,
        *devices,
        *args,
        "--trainer.default_root_dir",
        str(workdir / f"{command}-runs"),
        cwd=workdir,
    )
    return {
        line.split()[0]: float(line.split()[1])
        for line in out.stdout.splitlines()
        if line.strip().split(" ")[0].endswith("_nll")
    }


# validation and test share one step and one loader: each path is checked through one of them
@pytest.mark.parametrize("command, aggregate", [("validate", "true"), ("test", "false")])
def test_held_out_nll_is_exact_on_two_processes(workdir, command, aggregate):
    if not (workdir / "adam-one").exists():
        pytest.skip("needs the Adam runs above")
    one = held_out(workdir, command, ONE, "--data.aggregate", aggregate)
    two = held_out(workdir, command, DDP, "--data.aggregate", aggregate)
    assert one.keys() == two.keys() and one
    for key in one:
        assert two[key] == pytest.approx(one[key], abs=1e-6), (command, key)


def test_bf16_mixed_precision_reports_float32_nlls(workdir):
    root = workdir / "bf16"
    makemore(
        "fit",
        "--data.encoding",
        "onehot",
        "--trainer.precision",
        "bf16-mixed",
        "--trainer.max_epochs",
        "3",
        "--snapshots.every_n_epochs",
        "0",
        *QUIET,
        "--trainer.default_root_dir",
        str(root),
        cwd=workdir,
    )
    run = run_folder(root)
    W = checkpoint(run / "checkpoints" / "last.ckpt")["state_dict"]["W"]
    assert W.dtype == torch.float32
    from makemore_pl import NamesDataModule

    dm = NamesDataModule(str(workdir / "names.txt"))
    dm.setup()
    x, y = dm.splits["val"]
    exact = torch.nn.functional.cross_entropy(W.double()[x[:, 0]], y).item()
    # bf16 logits would be off by ~1e-2; the reported NLL is the float32 one
    assert events(run).Scalars("curves/val_nll")[-1].value == pytest.approx(exact, abs=1e-5)


def test_asking_for_a_missing_gpu_is_a_clear_error(workdir):
    proc = makemore("fit", "--trainer.accelerator", "gpu", cwd=workdir, check=False)
    assert proc.returncode != 0
    assert "gpu" in proc.stderr.lower() and "Traceback" not in proc.stderr
