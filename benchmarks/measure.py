"""Timing and memory helpers for benchmarks.run; run as `python -m benchmarks.measure` it is one
scaling case."""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def median_time(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall time of `fn` in seconds over `repeats` calls, after `warmup` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def epoch_times(context_size: int, epochs: int, **trainer_options) -> list[float]:
    """Wall time between the starts of consecutive epochs of a full-batch count-table fit: the
    whole loop (fetch, step, validation, logging, checkpoints, callbacks)."""
    import lightning as L

    from makemore_pl import BigramLitModule, NamesDataModule

    starts: list[float] = []

    class Timer(L.Callback):
        def on_train_epoch_start(self, trainer, module) -> None:
            starts.append(time.perf_counter())

    dm = NamesDataModule(str(ROOT / "names.txt"), context_size=context_size)
    model = BigramLitModule(dm.data.vocab_size, context_size)
    options = {
        "logger": False,
        "enable_checkpointing": False,
        "limit_val_batches": 0,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        **trainer_options,
    }
    callbacks = [Timer(), *options.pop("callbacks", [])]
    trainer = L.Trainer(
        max_epochs=epochs, accelerator="cpu", devices=1, callbacks=callbacks, **options
    )
    trainer.fit(model, dm)
    return [b - a for a, b in zip(starts, starts[1:], strict=False)]


def trainer_step_time(context_size: int, repeats: int) -> float:
    """Median seconds per full-batch count-table epoch (one step) inside a bare Trainer."""
    times = epoch_times(context_size, 10 + 10 * repeats)
    return statistics.median(times[10:])  # past the first epochs' warm-up


def child_peak_rss(names: Path, times: int, context_size: int, path: str) -> dict:
    """Runs one scaling case in a fresh process; returns its rows, step time and peak memory."""
    args = [sys.executable, "-m", "benchmarks.measure", str(names), str(times), str(context_size)]
    out = subprocess.run([*args, path], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    return json.loads(out.splitlines()[-1])


def reset_peak_rss() -> float:
    """Resets the kernel's peak-RSS mark (Linux) and returns the current RSS in MB."""
    Path("/proc/self/clear_refs").write_text("5")
    return rss_mb("VmRSS")


def rss_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def scaling_case(names: str, times: int, context_size: int, path: str) -> dict:
    """One full-batch step on `times` copies of the names, by `path`: index | table | onehot |
    onehot-table. Peak memory is the process's peak above what imports took."""
    from makemore_pl import BigramLitModule, Vocabulary, build_ngrams, load_words
    from makemore_pl.core.batches import count_table

    words = load_words(names) * times
    baseline = reset_peak_rss()
    vocab = Vocabulary.from_words(words)
    x, y = build_ngrams(words, vocab, context_size)
    batch = count_table(x, y, len(vocab)) if path.endswith("table") else (x, y, None)
    encoding = "onehot" if path.startswith("onehot") else "index"
    model = BigramLitModule(len(vocab), context_size, encoding, optimizer="sgd")
    optimizer = model.configure_optimizers()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        model.model.objective(*batch)[0].backward()
        optimizer.step()

    seconds = median_time(step, repeats=5)
    return {"rows": len(batch[1]), "step": seconds, "peak_mb": rss_mb("VmHWM") - baseline}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("names")
    parser.add_argument("times", type=int)
    parser.add_argument("context_size", type=int)
    parser.add_argument("path")
    a = parser.parse_args()
    torch.manual_seed(0)
    print(json.dumps(scaling_case(a.names, a.times, a.context_size, a.path)))
