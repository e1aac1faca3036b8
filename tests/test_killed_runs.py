"""Runs and downloads killed with SIGKILL lose nothing: real processes, really killed."""

import hashlib
import http.server
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from makemore_pl import download_names
from tests.conftest import QUIET, run_cli

pytestmark = pytest.mark.slow

FIT = [
    "fit",
    "--data.path",
    "words.txt",
    "--data.context_size",
    "2",
    "--data.batch_size",
    "1024",  # 11 steps an epoch
    "--snapshots.every_n_epochs",
    "0",
    "--last_checkpoint.every_n_epochs",
    "1",  # so that a kill after any epoch has a checkpoint to resume from
    "--trainer.max_epochs",
    "12",
    *QUIET,
]


def synthetic_names(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choices("abcdefghij", k=rng.randint(3, 8))) for _ in range(count)]


def start_fit(folder: Path, *args: str) -> subprocess.Popen:
    log = (folder / "fit.log").open("ab")
    command = [sys.executable, "-m", "makemore_pl", *FIT, *args]
    return subprocess.Popen(command, cwd=folder, stdout=log, stderr=log)


def finish_fit(folder: Path, *args: str) -> None:
    """The whole fit, in this process: only the killed ones need a process of their own."""
    run_cli(*FIT, *args, cwd=folder)


def new_folder(parent: Path, name: str) -> Path:
    folder = parent / name
    folder.mkdir()
    (folder / "words.txt").write_text("\n".join(synthetic_names(2000)) + "\n")
    return folder


def last_ckpt(folder: Path, version: int = 0) -> Path:
    """last.ckpt of run `version`, whether or not it exists yet."""
    runs = list((folder / "lightning_logs").glob(f"version_{version}_*"))
    run = runs[0] if runs else folder / "lightning_logs" / f"version_{version}_older"
    return run / "checkpoints" / "last.ckpt"


def saved_epoch(path: Path) -> int:
    """The epoch last.ckpt was saved after, -1 before the first; it must always load whole."""
    return torch.load(path, weights_only=True)["epoch"] if path.exists() else -1


def kill_when(proc: subprocess.Popen, ready: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 120
    while not ready():
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "the run never reached the point to kill it at"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict:
    folder = new_folder(tmp_path_factory.mktemp("uninterrupted"), "run")
    finish_fit(folder)
    return torch.load(last_ckpt(folder), weights_only=True)


def older_run(folder: Path, checkpoint: dict) -> None:
    """An earlier, finished run in version_0 whose weights differ from this one's."""
    other = {
        **checkpoint,
        "state_dict": {"model.W": torch.zeros_like(checkpoint["state_dict"]["model.W"])},
    }
    last_ckpt(folder).parent.mkdir(parents=True)
    torch.save(other, last_ckpt(folder))


@pytest.mark.parametrize("moment", ["mid-run", "before the first checkpoint"])
def test_a_killed_fit_resumes_to_the_weights_of_an_uninterrupted_one(
    tmp_path, uninterrupted, moment
):
    folder = new_folder(tmp_path, "run")
    if moment == "mid-run":
        proc = start_fit(folder)
        kill_when(proc, lambda: saved_epoch(last_ckpt(folder)) >= 2)
        assert saved_epoch(last_ckpt(folder)) < 11  # killed before the end
        resumed_version = 0  # continued in its own folder
    else:  # and an older run is at hand, which `last` must not continue instead
        older_run(folder, uninterrupted)
        proc = start_fit(folder)
        kill_when(proc, lambda: last_ckpt(folder, 1).parent.is_dir())
        assert not last_ckpt(folder, 1).exists()
        resumed_version = 2  # nothing to resume in the newest run: a new one
    finish_fit(folder, "--ckpt_path", "last")
    resumed = torch.load(last_ckpt(folder, resumed_version), weights_only=True)
    assert resumed["epoch"] == uninterrupted["epoch"] == 11
    assert resumed["global_step"] == uninterrupted["global_step"]
    assert torch.allclose(
        resumed["state_dict"]["model.W"], uninterrupted["state_dict"]["model.W"], atol=1e-5
    )


CONTENT = ("\n".join(synthetic_names(100_000)) + "\n").encode()  # ~650 KB: five 128 KB reads
SHA = hashlib.sha256(CONTENT).hexdigest()


@pytest.fixture
def stalling_server():
    """Serves names.txt; the first response stops halfway and hangs until the test ends."""
    done = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        requests = 0

        def do_GET(self):
            Handler.requests += 1
            self.send_response(200)
            self.send_header("Content-Length", str(len(CONTENT)))
            self.end_headers()
            if Handler.requests == 1:
                self.wfile.write(CONTENT[: len(CONTENT) // 2])
                self.wfile.flush()
                done.wait(60)
                return
            self.wfile.write(CONTENT)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/names.txt"
    done.set()
    httpd.shutdown()
    httpd.server_close()


def test_a_killed_download_leaves_no_names_txt_and_the_next_one_succeeds(tmp_path, stalling_server):
    target = tmp_path / "names.txt"
    code = "import sys; from makemore_pl import download_names; download_names(*sys.argv[1:])"
    proc = subprocess.Popen([sys.executable, "-c", code, str(target), stalling_server, SHA])
    partial = lambda: [p for p in tmp_path.glob("names.txt.*.partial") if p.stat().st_size]  # noqa: E731
    kill_when(proc, lambda: bool(partial()))
    assert not target.exists() and len(partial()) == 1
    download_names(target, stalling_server, SHA)
    assert target.read_bytes() == CONTENT
