"""Minibatch training against a plain PyTorch loop: the bigram W, 64-example batches in the same
seeded order over the train split of names.txt, Adam at the package's lr and l2, one thread.

    python -m benchmarks.minibatch     # the three, idle: steps per second

Three measures of the same training: the plain loop; Lightning's floor (the same step as a bare
LightningModule in a bare Trainer: no logger, checkpoints, callbacks or metrics); and the
package as users run it (`fit --data.batch_size 64`), timed by its own TensorBoard events from
the end of its first epoch to the end of its last, so that start-up and the first epoch's
warm-up are left out.
"""

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from benchmarks.measure import ROOT
from makemore_pl import NamesData
from makemore_pl.core.batches import BatchSlices, TensorBatches, example_table
from makemore_pl.core.contexts import context_rows
from makemore_pl.core.threads import one_thread
from makemore_pl.models.dense import DenseConfig

BATCH_SIZE = 64
NAMES = ROOT / "names.txt"


def train_split() -> tuple[torch.Tensor, torch.Tensor, DenseConfig, int]:
    """(X, Y) of the default split's train part, the package's default model settings, seed."""
    data = NamesData(str(NAMES))
    x, y, _ = data.examples("train")
    return x, y, DenseConfig(vocab_size=data.vocab_size), data.config.seed


def plain_loop(epochs: int) -> float:
    """Steps per second of `epochs` epochs of the plain loop (the data read before timing)."""
    x, y, config, seed = train_split()
    rows, lr, l2 = context_rows(x, config.vocab_size), config.learning_rate, config.l2
    W = torch.zeros(config.vocab_size, config.vocab_size, requires_grad=True)
    optimizer = torch.optim.Adam([W], lr=lr)
    order = BatchSlices(len(y), BATCH_SIZE, True, seed)
    with one_thread():
        start = time.perf_counter()
        for epoch in range(epochs):
            order.set_epoch(epoch)
            for batch in order:
                loss = F.cross_entropy(F.embedding(rows[batch], W), y[batch]) + l2 * (W**2).mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        seconds = time.perf_counter() - start
    return epochs * len(order) / seconds


def lightning_floor(epochs: int) -> float:
    """Steps per second of the plain loop's step as a bare LightningModule in a bare Trainer,
    from the end of the first epoch to the end of the last."""
    import lightning as L
    from torch.utils.data import DataLoader

    x, y, config, seed = train_split()
    v, lr, l2 = config.vocab_size, config.learning_rate, config.l2

    class Step(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.W = torch.nn.Parameter(torch.zeros(v, v))

        def training_step(self, batch, batch_idx: int) -> torch.Tensor:
            x, y, _ = batch
            return F.cross_entropy(F.embedding(x[:, 0], self.W), y) + l2 * (self.W**2).mean()

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.Adam(self.parameters(), lr=lr)

    ends: list[float] = []

    class EpochEnds(L.Callback):
        def on_train_epoch_end(self, *args) -> None:
            ends.append(time.perf_counter())

    order = BatchSlices(len(y), BATCH_SIZE, True, seed)
    loader = DataLoader(TensorBatches(example_table(x, y)), sampler=order, batch_size=None)
    trainer = L.Trainer(
        max_epochs=epochs, accelerator="cpu", devices=1, logger=False, callbacks=[EpochEnds()],
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    with one_thread():
        trainer.fit(Step(), loader)
    return (epochs - 1) * len(order) / (ends[-1] - ends[0])


def package_fit(epochs: int, workdir) -> float:
    """Steps per second of `python -m makemore_pl fit --data.batch_size 64`, from the train_nll
    event of its first epoch to that of its last (wall clock, as TensorBoard records them)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    subprocess.run(["rm", "-rf", str(workdir)], check=True)
    workdir.mkdir(parents=True)
    args = [sys.executable, "-m", "makemore_pl", "fit", "--data.path", str(NAMES)]
    args += ["--data.batch_size", str(BATCH_SIZE), "--trainer.max_epochs", str(epochs)]
    subprocess.run(args, cwd=workdir, check=True, capture_output=True)
    run = next((workdir / "lightning_logs").glob("version_0*"))
    events = EventAccumulator(str(run), size_guidance={"scalars": 0}).Reload()
    first, last = events.Scalars("curves/train_nll")[0], events.Scalars("curves/train_nll")[-1]
    return (last.step - first.step) / (last.wall_time - first.wall_time)


@contextmanager
def busy_processes(count: int) -> Iterator[None]:
    """`count` processes that spin on a core each while the block runs."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        time.sleep(1.0)  # under way before the timing starts
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


if __name__ == "__main__":
    print(f"plain loop: {plain_loop(2):,.0f} steps/s")
    print(f"Lightning's floor: {lightning_floor(3):,.0f} steps/s")
    print(f"fit: {package_fit(3, ROOT / 'benchmarks' / '_runs' / 'minibatch'):,.0f} steps/s")
