"""End to end: the `python -m makemore_pl` commands, run as a user runs them, in temp folders."""

import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch

from makemore_pl import CountingBaseline, NamesData
from tests.conftest import QUIET, checkpoint, events, makemore, printed_nlls, run_cli, run_folder

pytestmark = pytest.mark.slow


def fit(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return makemore(
        "fit", "--data.context_size", "2", "--snapshots.every_n_epochs", "2", *QUIET, *args, cwd=cwd
    )


def printed(capsys, *args: str, cwd: Path) -> str:
    """What the command prints to stdout, run in this process."""
    run_cli(*args, cwd=cwd)
    return capsys.readouterr().out


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, names_path) -> Path:
    """A folder holding names.txt and one trigram run of 5 epochs."""
    folder = tmp_path_factory.mktemp("run")
    shutil.copy(names_path, folder / "names.txt")
    fit(folder, "--trainer.max_epochs", "5")
    return folder


def test_fit_writes_checkpoints_and_tensorboard_logs(workdir):
    run = run_folder(workdir)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    assert checkpoint(run / "checkpoints" / "last.ckpt")["global_step"] == 5
    logged = events(run)
    tags = logged.Tags()
    assert {"curves/train_loss", "curves/train_nll", "curves/val_nll", "hp_metric"} <= set(
        tags["scalars"]
    )
    assert [e.step for e in logged.Scalars("curves/val_nll")] == [0, 1, 2, 3, 4]  # after each epoch
    assert "next_char_probs" in tags["images"]
    assert "samples/text_summary" in tags["tensors"]
    text = logged.Tensors("samples/text_summary")[-1].tensor_proto.string_val[0].decode()
    assert len([name for name in text.split("  \n") if name]) == 20
    val = [e.value for e in logged.Scalars("curves/val_nll")]
    assert val[-1] < val[0]  # it learns


def test_logged_val_nll_is_the_exact_nll_of_the_val_split(workdir):
    run = run_folder(workdir)
    ckpt = checkpoint(run / "checkpoints" / "last.ckpt")
    dm = NamesData(str(workdir / "names.txt"), context_size=2)
    x, y = dm.splits["val"]
    logits = torch.nn.functional.embedding(x[:, 0] * 27 + x[:, 1], ckpt["state_dict"]["model.W"])
    exact = torch.nn.functional.cross_entropy(logits.double(), y).item()
    logged = events(run).Scalars("curves/val_nll")[-1].value
    assert logged == pytest.approx(exact, abs=1e-5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_tensorboard_serves_the_run(workdir):
    port = free_port()
    binary = Path(sys.executable).with_name("tensorboard")
    server = subprocess.Popen(
        [
            str(binary),
            "--logdir",
            str(workdir / "lightning_logs"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}/data/plugin/scalars/tags"
        deadline = time.monotonic() + 90
        while True:
            try:
                body = urllib.request.urlopen(url, timeout=5).read().decode()
                if "val_nll" in body:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("tensorboard did not list the run's scalars within 90 s")
            time.sleep(0.5)
        assert "version_0_" in body and "train_loss" in body and "train_nll" in body
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_test_prints_test_nll_beside_the_counting_model(workdir, capsys):
    out = printed(capsys, "test", "--ckpt_path", "best", *QUIET, cwd=workdir)
    assert "test_nll" in out and "counting_test_nll" in out
    dm = NamesData(str(workdir / "names.txt"), context_size=2)
    from makemore_pl.models.counting import tune_best

    counting = tune_best(CountingBaseline(27, 2).fit(*dm.splits["train"]), dm.splits["val"])
    shown = printed_nlls(out)["counting_test_nll"]
    assert shown == pytest.approx(counting.nll(*dm.splits["test"]), abs=1e-9)


def test_resume_equals_an_uninterrupted_run(tmp_path, names_path):
    shutil.copy(names_path, tmp_path / "names.txt")
    common = ["fit", "--data.context_size", "2", "--snapshots.every_n_epochs", "2", *QUIET]
    common += ["--data.batch_size", "30000", "--trainer.default_root_dir"]
    run_cli(*common, "stopped", "--trainer.max_epochs", "2", cwd=tmp_path)  # in this process:
    run_cli(*common, "stopped", "--trainer.max_epochs", "4", "--ckpt_path", "last", cwd=tmp_path)
    run_cli(*common, "straight", "--trainer.max_epochs", "4", cwd=tmp_path)  # no start-up
    runs = {name: tmp_path / name / "lightning_logs" for name in ("stopped", "straight")}
    assert len(list(runs["stopped"].glob("version_*"))) == 1  # resumed in place
    resumed = checkpoint(run_folder(runs["stopped"].parent) / "checkpoints" / "last.ckpt")
    straight = checkpoint(run_folder(runs["straight"].parent) / "checkpoints" / "last.ckpt")
    assert resumed["global_step"] == straight["global_step"] == 4 * 7  # 7 batches per epoch
    assert torch.allclose(
        resumed["state_dict"]["model.W"], straight["state_dict"]["model.W"], atol=1e-5
    )
    steps = [e.step for e in events(run_folder(runs["stopped"].parent)).Scalars("curves/val_nll")]
    assert steps == [
        e.step for e in events(run_folder(runs["straight"].parent)).Scalars("curves/val_nll")
    ]


def test_sample_is_deterministic_and_needs_no_data_file(workdir, tmp_path, capsys):
    ckpt = run_folder(workdir) / "checkpoints" / "last.ckpt"
    args = ["sample", "--ckpt_path", str(ckpt), "--num_samples", "25", "--seed", "3"]
    first = makemore(*args, cwd=tmp_path)  # no names.txt here
    names = first.stdout.splitlines()
    assert len(names) == 25 and all(names)
    assert all(set(name) <= set("abcdefghijklmnopqrstuvwxyz") for name in names)
    assert "25 names" in first.stderr
    assert printed(capsys, *args, cwd=tmp_path) == first.stdout  # the same in any process
    assert printed(capsys, *args[:-1], "4", cwd=tmp_path) != first.stdout
    prefixed = printed(capsys, *args, "--prefix", "ma", cwd=tmp_path).splitlines()
    assert len(prefixed) == 25 and all(name.startswith("ma") for name in prefixed)


def test_sample_reports_novelty_and_samples_the_counting_model(workdir):
    from_ckpt = makemore("sample", "--ckpt_path", "last", "--num_samples", "10", cwd=workdir)
    assert "new" in from_ckpt.stderr and "in the training words" in from_ckpt.stderr
    counted = makemore(
        "sample",
        "--counting",
        "true",
        "--data.context_size",
        "2",
        "--num_samples",
        "30",
        cwd=workdir,
    )
    assert len(counted.stdout.splitlines()) == 30


def test_baseline_matches_the_counting_model(workdir):
    out = makemore("baseline", "--data.context_size", "2", "--smoothing", "0.5", cwd=workdir).stdout
    printed = {
        line.split()[0]: float(line.split()[1]) for line in out.splitlines() if "_nll" in line
    }
    dm = NamesData(str(workdir / "names.txt"), context_size=2)
    counting = CountingBaseline(27, 2, 0.5).fit(*dm.splits["train"])
    for split in ("train", "val", "test"):
        assert printed[f"{split}_nll"] == pytest.approx(counting.nll(*dm.splits[split]), abs=1e-5)
    auto = makemore("baseline", "--data.context_size", "2", cwd=workdir).stdout
    assert "smoothing 0.2 (lowest val_nll on the grid)" in auto


def test_baseline_and_sample_with_kneser_ney(workdir):
    args = ["--data.context_size", "6", "--smoothing", "kneser-ney"]  # no W: 42 GB at c = 6
    out = makemore("baseline", *args, cwd=workdir).stdout
    assert "smoothing kneser-ney (discounts from the counts of counts)" in out
    printed = {line.split()[0]: float(line.split()[1]) for line in out.splitlines()[1:]}
    dm = NamesData(str(workdir / "names.txt"), context_size=6)
    counting = CountingBaseline(27, 6, "kneser-ney").fit(*dm.splits["train"])
    for split in ("train", "val", "test"):
        assert printed[f"{split}_nll"] == pytest.approx(counting.nll(*dm.splits[split]), abs=1e-5)
    assert printed["test_nll"] <= 2.0
    sampled = makemore("sample", "--counting", "true", *args, "--seed", "2", cwd=workdir).stdout
    expected = [dm.vocab.decode(w) for w in counting.sample(20, seed=2)]
    assert sampled.splitlines() == expected


def printed_config(cwd: Path, config: Path, capsys) -> str:
    """What `fit --config CONFIG --print_config` prints (and exits with status 0)."""
    with pytest.raises(SystemExit) as exited:
        run_cli("fit", "--config", str(config), "--print_config", cwd=cwd)
    assert exited.value.code in (None, 0)
    return capsys.readouterr().out


def test_print_config_round_trips(tmp_path, capsys):
    printed = printed_config(
        tmp_path, Path(__file__).parents[1] / "configs" / "trigram.yaml", capsys
    )
    (tmp_path / "config.yaml").write_text(printed)
    assert printed_config(tmp_path, tmp_path / "config.yaml", capsys) == printed
    assert "context_size: 2" in printed
