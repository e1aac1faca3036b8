"""Threads chosen by the work: one for small steps, torch's count for large ones, the user's
count whenever the user chose one; said once in the run's header, restored after the run."""

import lightning as L
import pytest
import torch

from makemore_pl import BigramLitModule, NamesDataModule
from makemore_pl.core import threads
from makemore_pl.core.threads import SMALL_STEP_CELLS, step_threads
from tests.conftest import TINY_WORDS, quiet_trainer, run_cli

LINE = "threads: 1, not torch's default 2: a step's tensors hold "


@pytest.fixture
def two_by_default(monkeypatch):
    """torch on 2 threads by default, as on a 2-core machine, whatever this one has."""
    before = torch.get_num_threads()
    monkeypatch.setattr(threads, "TORCH_DEFAULT", 2)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


class ThreadsSeen(L.Callback):
    def __init__(self) -> None:
        self.seen: set[int] = set()

    def on_train_batch_end(self, *args) -> None:
        self.seen.add(torch.get_num_threads())


def fit(tiny_file, context_size: int = 1, batch_size: int | None = 4) -> set[int]:
    """The threads each training step of a fit on TINY_WORDS ran on."""
    dm = NamesDataModule(str(tiny_file(TINY_WORDS)), context_size, batch_size=batch_size)
    seen = ThreadsSeen()
    model = BigramLitModule(dm.data.vocab_size, context_size)
    quiet_trainer(max_epochs=1, callbacks=[seen]).fit(model, dm)
    return seen.seen


def test_small_steps_take_one_thread_large_ones_torchs(two_by_default):
    assert step_threads(64 * 27) == 1
    assert step_threads(SMALL_STEP_CELLS) == 2


def test_a_count_the_user_chose_wins(two_by_default, monkeypatch):
    torch.set_num_threads(3)  # torch.set_num_threads before the run
    assert step_threads(64 * 27) == 3
    torch.set_num_threads(2)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # the default count, but chosen
    assert step_threads(64 * 27) == 2


def test_a_minibatch_fit_runs_on_one_thread_and_says_so_once(two_by_default, tiny_file, caplog):
    assert fit(tiny_file) == {1}
    assert torch.get_num_threads() == 2  # restored after the run
    assert caplog.text.count(LINE) == 1


def test_a_large_table_keeps_torchs_threads_and_says_nothing(two_by_default, tiny_file, caplog):
    assert fit(tiny_file, context_size=4, batch_size=None) == {2}  # W: 15**4 rows of 15
    assert "threads:" not in caplog.text


def test_omp_num_threads_wins_over_the_choice(two_by_default, tiny_file, monkeypatch, caplog):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert fit(tiny_file) == {2}
    assert "threads:" not in caplog.text


def test_the_fit_command_says_it_in_the_header(two_by_default, tmp_path, caplog):
    (tmp_path / "words.txt").write_text("\n".join(TINY_WORDS) + "\n", encoding="utf-8")
    args = ["--data.path", "words.txt", "--data.batch_size", "4", "--trainer.max_epochs", "2"]
    run_cli("fit", *args, "--trainer.enable_progress_bar", "false", cwd=tmp_path)
    header = "\n".join(caplog.messages[1:3]).splitlines()  # after "Seed set to 42"
    assert header[0] == "run: version_0_bigram-adam" and header[2].startswith(LINE)
    assert caplog.text.count("threads:") == 1
