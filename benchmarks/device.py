"""The CPU beside the GPU, measured in the same run: one table, for the day a GPU is at hand.

    python -m benchmarks.device                   # every row: the CPU rows alone take ~60 s
    python -m benchmarks.device --quick           # fewer steps, the suffix model at c = 3
    python -m benchmarks.device --data names.txt  # the data file (default: ./names.txt)

For each model, the training step inside the Lightning Trainer (the median over a fit's steps,
after the first) on the CPU and on the GPU, full batch (the count table) and minibatch; the
GPU's peak memory; the val NLL after the same fit on both (they must agree to 1e-5); the same
with bf16-mixed; and, with several GPUs, one against all of them (whole `fit` processes). On a
machine without a GPU, the GPU cells say "no GPU" and the command still exits 0 (a test keeps
it working: tests/test_device_benchmark.py). "ratio" is CPU / GPU (higher: the GPU is faster).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch

from makemore_pl import BigramLitModule, NamesDataModule
from makemore_pl.lit.suffix import SuffixLitModule

NO_GPU = "no GPU"
ROWS: list[tuple[str, str, str, str]] = []
MINIBATCH = 4096


@dataclass
class Model:
    name: str
    context_size: int
    suffix: bool = False
    precision: str = "32-true"

    def build(self, data: NamesDataModule) -> L.LightningModule:
        v, chars = data.data.vocab_size, data.data.chars
        if self.suffix:  # a few L-BFGS iterations per step: the step's cost, not the optimum
            return SuffixLitModule(v, self.context_size, max_iter=5, chars=chars)
        return BigramLitModule(v, self.context_size, chars=chars)


class StepTimer(L.Callback):
    """Wall time of each training step, the device's queue drained at both ends."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def sync(self, module: L.LightningModule) -> None:
        if module.device.type == "cuda":
            torch.cuda.synchronize(module.device)

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        self.sync(module)
        self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.sync(module)
        self.times.append(time.perf_counter() - self.start)


def fit(model: Model, data: Path, accelerator: str, steps: int, **options) -> dict:
    """A fit of `steps` steps (full batch unless `batch_size`); its median step time, val NLL
    and, on a GPU, peak memory."""
    batch_size = options.pop("batch_size", None)
    precision = options.pop("precision", model.precision)
    dm = NamesDataModule(str(data), context_size=model.context_size, batch_size=batch_size)
    L.seed_everything(42, verbose=False)
    module = model.build(dm)
    if accelerator == "gpu":
        torch.cuda.reset_peak_memory_stats()
    timer = StepTimer()
    trainer = L.Trainer(
        accelerator=accelerator,
        devices=1,
        precision=precision,
        max_steps=steps,
        max_epochs=-1,
        callbacks=[timer],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
        num_sanity_val_steps=0,
        check_val_every_n_epoch=10**6,  # no validation during the timed steps
    )
    trainer.fit(module, dm)
    val = trainer.validate(module, dm, verbose=False)[0]["val_nll"]
    peak = torch.cuda.max_memory_allocated() / 2**20 if accelerator == "gpu" else None
    return {"step": statistics.median(timer.times[1:] or timer.times), "val": val, "peak": peak}


def row(name: str, cpu: str, gpu: str, ratio: str = "") -> None:
    ROWS.append((name, cpu, gpu, ratio))
    print(f"  {name}: {cpu} | {gpu} {ratio}", file=sys.stderr, flush=True)


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.2f} ms"


def bench_model(model: Model, data: Path, gpu: bool, steps: int) -> None:
    paths = {"full batch, count table": {}}
    if not model.suffix:  # the suffix model trains full batch (L-BFGS)
        paths[f"minibatch of {MINIBATCH:,}"] = {"batch_size": MINIBATCH}
    full = {}
    for path, options in paths.items():
        cpu = fit(model, data, "cpu", steps, **options)
        on_gpu = fit(model, data, "gpu", steps, **options) if gpu else None
        full.setdefault("cpu", cpu)
        full.setdefault("gpu", on_gpu)
        row(
            f"{model.name}: training step, {path}",
            ms(cpu["step"]),
            ms(on_gpu["step"]) if on_gpu else NO_GPU,
            f"{cpu['step'] / on_gpu['step']:,.1f}×" if on_gpu else "",
        )
    cpu, on_gpu = full["cpu"], full["gpu"]
    if on_gpu:
        row(f"{model.name}: GPU peak memory (full batch)", "", f"{on_gpu['peak']:,.1f} MB")
    gap = f"Δ {abs(cpu['val'] - on_gpu['val']):.1e}" if on_gpu else NO_GPU
    row(f"{model.name}: val NLL after {steps} steps, CPU vs GPU", f"{cpu['val']:.6f}", gap)
    if model.suffix:  # float64 weights (64-true) are its configuration
        return
    bf16 = {"precision": "bf16-mixed"}
    cpu16 = fit(model, data, "cpu", steps, **bf16)
    gpu16 = fit(model, data, "gpu", steps, **bf16) if gpu else None
    row(
        f"{model.name}: bf16-mixed step (Δ val NLL against float32)",
        f"{ms(cpu16['step'])} (Δ {abs(cpu16['val'] - cpu['val']):.1e})",
        f"{ms(gpu16['step'])} (Δ {abs(gpu16['val'] - on_gpu['val']):.1e})" if gpu16 else NO_GPU,
        f"{cpu16['step'] / gpu16['step']:,.1f}×" if gpu16 else "",
    )


def bench_gpus(data: Path, epochs: int) -> None:
    """One GPU against all of them: whole `fit` processes of the trigram."""
    count = torch.cuda.device_count()
    if count < 2:
        row("trigram fit, 1 GPU vs N GPUs", "", NO_GPU if count == 0 else "one GPU only")
        return
    results = {n: cli_fit(data, epochs, n) for n in (1, count)}
    (t1, v1), (tn, vn) = results[1], results[count]
    gap = abs(v1 - vn)
    row(
        f"trigram `fit`, {epochs} epochs: 1 GPU vs {count} GPUs (Δ best val NLL {gap:.1e})",
        f"1 GPU: {t1:,.1f} s",
        f"{count} GPUs: {tn:,.1f} s",
        f"{t1 / tn:,.2f}×",
    )


def cli_fit(data: Path, epochs: int, devices: int) -> tuple[float, float]:
    """Wall time and best val NLL of one `fit` process on `devices` GPUs."""
    with tempfile.TemporaryDirectory() as folder:
        args = [sys.executable, "-m", "makemore_pl", "fit", "--data.path", str(data.resolve())]
        args += ["--data.context_size", "2", "--trainer.max_epochs", str(epochs)]
        args += ["--trainer.accelerator", "gpu", "--trainer.devices", str(devices)]
        args += ["--trainer.enable_progress_bar", "false", "--snapshots.every_n_epochs", "0"]
        start = time.perf_counter()
        out = subprocess.run(args, cwd=folder, capture_output=True, text=True, check=True)
        seconds = time.perf_counter() - start
    return seconds, float(re.search(r"best val_nll: (\S+)", out.stdout).group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps, a smaller suffix model")
    parser.add_argument("--data", type=Path, default=Path("names.txt"), help="one name per line")
    args = parser.parse_args()
    for name in ("lightning.pytorch", "lightning.fabric"):  # the table, not Lightning's notes
        logging.getLogger(name).setLevel(logging.WARNING)
    gpu = torch.cuda.is_available()
    steps = 6 if args.quick else 40
    models = [
        Model("bigram", 1),
        Model("trigram", 2),
        Model(f"suffix, c = {3 if args.quick else 5}", 3 if args.quick else 5, True, "64-true"),
    ]
    for model in models:
        bench_model(model, args.data, gpu, steps if not model.suffix else max(3, steps // 8))
    bench_gpus(args.data, 20 if args.quick else 100)
    print_table(gpu)


def print_table(gpu: bool) -> None:
    name = torch.cuda.get_device_name() if gpu else NO_GPU
    print(
        f"\nmachine: {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; GPU: {name}\n"
    )
    print("| benchmark | CPU | GPU | ratio |")
    print("|---|---|---|---|")
    for cells in ROWS:
        print(f"| {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
