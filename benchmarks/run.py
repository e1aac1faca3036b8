"""Benchmarks beside their references, measured in the same run; prints one table per part.

    python -m benchmarks.run                      # every part: several minutes on 2 cores
    python -m benchmarks.run --quick              # fewer repeats and sizes: checks every row runs
    python -m benchmarks.run --parts kenlm startup --kenlm /path/to/kenlm [--large]
    python -m benchmarks.run --parts suffix       # the every-suffix fit beside the dense one
    python -m benchmarks.run --parts minibatch    # minibatch `fit` beside a plain PyTorch loop

Parts: `lecture` (against the lecture's code), `kenlm` (Kneser-Ney against KenLM's lmplz +
query, found by --kenlm DIR or $KENLM_DIR; skipped with a note when absent), `startup` (commands
against `import torch`), `suffix` (the whole `fit --config configs/suffix.yaml` process: wall
and CPU time, peak memory, beside the dense model's configs/trigram.yaml), `minibatch` (`fit
--data.batch_size 64` against a plain PyTorch loop, steps per second, idle and beside two
busy-looping processes the benchmark starts). Every figure is a median over repeats, or one
whole process; "ratio" is reference / package (higher is better for the package), for steps
per second package / reference.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from functools import partial
from pathlib import Path

import torch

from benchmarks.corpus import corpus_path
from benchmarks.kenlm import find_kenlm, kenlm_fit_and_test, measured, write_split
from benchmarks.lecture import lecture_counts, lecture_step, steps_to_optimum
from benchmarks.measure import ROOT, child_peak_rss, epoch_times, median_time, trainer_step_time
from benchmarks.minibatch import busy_processes, lightning_floor, package_fit, plain_loop
from makemore_pl import BigramLitModule, CountingBaseline, Vocabulary, build_ngrams, load_words
from makemore_pl.core.batches import count_table

ROWS: dict[str, list[tuple[str, str, str, str]]] = defaultdict(list)
PART = ["lecture"]  # the part rows are added to
REFERENCES = {
    "lecture": "reference (lecture)",
    "kenlm": "KenLM",
    "startup": "`import torch`",
    "suffix": "dense model (configs/trigram.yaml)",
    "minibatch": "plain PyTorch loop (benchmarks/minibatch.py)",
}
NOTES: list[str] = []


def row(name: str, package: float | str, reference: float | str = "", unit: str = "ms") -> None:
    """Adds a table row; numbers are seconds, shown in `unit`."""
    scale = {"ms": 1e3, "s": 1.0}[unit] if unit in ("ms", "s") else 1.0

    def show(v):
        return v if isinstance(v, str) else f"{v * scale:,.2f} {unit}"

    ratio = (
        ""
        if isinstance(reference, str) or isinstance(package, str)
        else f"{reference / package:,.0f}×"
    )
    ROWS[PART[0]].append((name, show(package), show(reference), ratio))
    print(f"  {name}: {show(package)} | {show(reference)} {ratio}", file=sys.stderr, flush=True)


def process_row(name: str, package: tuple[float, float], reference: tuple[float, float] | None):
    """A whole-process row: time and peak memory, beside the reference's, with both ratios."""

    def show(result):
        return f"{result[0]:,.2f} s, {result[1]:,.0f} MB"

    ratio = ""
    if reference is not None:
        ratio = f"time {reference[0] / package[0]:.2f}×, memory {reference[1] / package[1]:.2f}×"
    ROWS[PART[0]].append((name, show(package), show(reference) if reference else "", ratio))
    print(f"  {name}: {show(package)} | {ratio}", file=sys.stderr, flush=True)


def bench_counting(words: list[str], repeats: int) -> None:
    def package():
        vocab = Vocabulary.from_words(words)
        CountingBaseline(len(vocab), 1).fit(*build_ngrams(words, vocab, 1))

    lecture = median_time(lambda: lecture_counts(words), max(1, repeats // 3))
    row("names.txt → bigram counts (encode + bincount)", median_time(package, repeats), lecture)
    vocab = Vocabulary.from_words(words)
    row(
        "names.txt → n-gram tensors, build_ngrams c=2",
        median_time(lambda: build_ngrams(words, vocab, 2), repeats),
    )


def raw_step(model: BigramLitModule, batch, optimizer) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss, _ = model.model.objective(*batch)
    loss.backward()
    optimizer.step()


def bench_steps(words: list[str], repeats: int) -> None:
    vocab = Vocabulary.from_words(words)
    for c in (1, 2):
        x, y = build_ngrams(words, vocab, c)
        lecture = median_time(lecture_step(x, y, len(vocab)), repeats)
        raw = {}
        for label, batch in (
            ("index full batch", (x, y, None)),
            ("count table", count_table(x, y, len(vocab))),
        ):
            model = BigramLitModule(len(vocab), c, optimizer="sgd", l2=0.01)
            step = partial(raw_step, model, batch, model.configure_optimizers())
            raw[label] = median_time(step, repeats)
            row(
                f"c={c} one step, {label} ({len(batch[1]):,} rows), raw PyTorch",
                raw[label],
                lecture,
            )
        in_trainer = trainer_step_time(c, repeats)
        row(f"c={c} one step, count table, inside Lightning Trainer", in_trainer, lecture)
        row(f"c={c} Lightning overhead per step (Trainer − raw)", in_trainer - raw["count table"])


def bench_epoch_parts(repeats: int) -> None:
    """What an epoch of the CLI's default fit costs, adding one part at a time (trigram)."""
    import tempfile

    from lightning.pytorch.loggers import TensorBoardLogger

    from makemore_pl.lit.callbacks import BestCheckpoint, LastCheckpoint, LogSnapshots

    def checkpoints(every: int, *others) -> dict:
        return {
            "enable_checkpointing": True,
            "callbacks": [BestCheckpoint(every), LastCheckpoint(every), *others],
        }

    epochs, folder = 20 + 20 * repeats, tempfile.mkdtemp()
    logged = {"limit_val_batches": 1.0, "logger": TensorBoardLogger(folder)}
    parts = {
        "bare Trainer": {},
        "+ validation every epoch": {"limit_val_batches": 1.0},
        "+ TensorBoard logging": logged,
        "+ best and last checkpoints every epoch": {**logged, **checkpoints(1)},
        "+ best and last checkpoints every 10 epochs (default)": {**logged, **checkpoints(10)},
        "+ snapshots every 100 epochs (the CLI's defaults)": {
            **logged,
            **checkpoints(10, LogSnapshots(every_n_epochs=100)),
        },
    }
    for label, options in parts.items():
        times = epoch_times(2, epochs, default_root_dir=tempfile.mkdtemp(), **options)
        row(f"c=2 fit epoch, {label} (mean)", statistics.mean(times[5:]))


def bench_time_to_optimum(words: list[str], quick: bool) -> None:
    """Whole `fit` processes with the shipped configs and l2 = 0, against the lecture loop."""
    vocab = Vocabulary.from_words(words)
    for c, config, lecture_steps in ((1, "bigram", None), (2, "trigram", 12_000)):
        x, y = build_ngrams(words, vocab, c)
        per_step = median_time(lecture_step(x, y, len(vocab)), 3)
        if lecture_steps is None:  # cheap enough to count for real
            lecture_steps = steps_to_optimum(x, y, len(vocab), limit=100 if quick else 2_000)
        seconds, gap = fit_to_optimum(config, c)
        row(
            f"c={c} time to within 0.005 nats of the optimum, whole `fit` process (gap {gap:.4f})",
            seconds,
            per_step * lecture_steps,
            unit="s",
        )
        row(
            f"c={c} lecture loop: {lecture_steps:,} SGD steps × one-hot step time",
            per_step * lecture_steps,
            unit="s",
        )


def fit_to_optimum(config: str, context_size: int) -> tuple[float, float]:
    """Wall time of `python -m makemore_pl fit --config configs/<config>.yaml --model.l2 0`, and
    the final model's train NLL minus the counting optimum (add-0) on the same split."""
    workdir = ROOT / "benchmarks" / "_runs" / config
    subprocess.run(["rm", "-rf", str(workdir)], check=True)
    workdir.mkdir(parents=True)
    args = [
        sys.executable,
        "-m",
        "makemore_pl",
        "fit",
        "--config",
        str(ROOT / "configs" / f"{config}.yaml"),
        "--model.l2",
        "0",
        "--data.path",
        str(ROOT / "names.txt"),
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.enable_model_summary",
        "false",
    ]
    start = time.perf_counter()
    subprocess.run(args, cwd=workdir, check=True, capture_output=True)
    seconds = time.perf_counter() - start
    return seconds, optimum_gap(workdir, context_size)


def optimum_gap(workdir: Path, context_size: int) -> float:
    from makemore_pl import NamesData

    run = next((workdir / "lightning_logs").glob("version_0*"))  # version_0_<run name>
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    data = NamesData(str(ROOT / "names.txt"), context_size=context_size)
    x, y = data.splits["train"]
    model = BigramLitModule(data.vocab_size, context_size, l2=0.0)
    model.load_state_dict(ckpt["state_dict"])
    with torch.no_grad():
        nll = model.model.objective(x, y)[1].item()
    return nll - CountingBaseline(data.vocab_size, context_size, 0.0).fit(x, y).nll(x, y)


def bench_scaling(quick: bool) -> None:
    """Per-step time and peak memory, each in a fresh process, as data and order grow."""
    cases = [
        (1, 2, "index"),
        (4, 2, "index"),
        (16, 2, "index"),
        (1, 2, "table"),
        (4, 2, "table"),
        (16, 2, "table"),
        (1, 2, "onehot"),
        (1, 2, "onehot-table"),
    ]
    cases += [(1, c, "table") for c in (1, 3, 4)]
    if quick:
        cases = cases[:2] + cases[3:5]
    for times, c, path in cases:
        result = child_peak_rss(ROOT / "names.txt", times, c, path)
        row(
            f"scaling: {times}× data, c={c}, {path}: step time / peak memory "
            f"({result['rows']:,} rows)",
            result["step"],
            f"{result['peak_mb']:,.0f} MB",
        )


def bench_startup(repeats: int) -> None:
    """Whole processes, each the median of `repeats`, beside `import torch` alone."""
    folder = ROOT / "benchmarks" / "_runs" / "startup"
    ckpt = tiny_checkpoint(folder)
    python = [sys.executable]
    torch_only = median_process([*python, "-c", "import torch"], repeats)
    process_row("`python -c 'import torch'`", torch_only, None)
    commands = {
        "`python -m makemore_pl --help`": ["--help"],
        "`python -m makemore_pl sample --ckpt_path last.ckpt --num_samples 10`": [
            "sample",
            "--ckpt_path",
            str(ckpt),
            "--num_samples",
            "10",
        ],
        "`python -m makemore_pl baseline` (bigram, names.txt)": [
            "baseline",
            "--data.path",
            str(ROOT / "names.txt"),
        ],
    }
    for label, args in commands.items():
        result = median_process([*python, "-m", "makemore_pl", *args], repeats)
        goal = "yes" if result[0] <= torch_only[0] + 1.0 else "no"
        process_row(f"{label}; within `import torch` + 1.0 s: {goal}", result, torch_only)
    counting = [*python, "-m", "benchmarks.counting", str(ROOT / "names.txt"), "1"]
    result = median_process(counting, repeats)
    process_row(
        "`python -m benchmarks.counting names.txt 1` (bigram Kneser-Ney, no CLI)",
        result,
        torch_only,
    )
    args = [sys.executable, "-X", "importtime", "-m", "makemore_pl", "--help"]
    proc = subprocess.run(args, capture_output=True, text=True, check=True)
    spent = defaultdict(int)
    for line in proc.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+\d+ \|\s*([\w.]+)", line)
        if match:
            spent[match.group(2).split(".")[0]] += int(match.group(1))
    top = sorted(spent.items(), key=lambda kv: -kv[1])[:6]
    row(
        "start-up of --help: imports by package (self time)",
        ", ".join(f"{name} {us / 1e6:.2f} s" for name, us in top),
    )


def median_process(args: list[str], repeats: int) -> tuple[float, float]:
    """The median wall time and peak memory of `repeats` runs of one command."""
    runs = [measured(args) for _ in range(repeats)]
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def tiny_checkpoint(folder: Path) -> Path:
    """last.ckpt of a one-epoch bigram on names.txt, trained once."""
    saved = sorted(folder.glob("lightning_logs/version_*/checkpoints/last.ckpt"))
    if not saved:
        folder.mkdir(parents=True, exist_ok=True)
        fit = ["fit", "--data.path", str(ROOT / "names.txt"), "--trainer.max_epochs", "1"]
        subprocess.run(
            [sys.executable, "-m", "makemore_pl", *fit], cwd=folder, check=True, capture_output=True
        )
        saved = sorted(folder.glob("lightning_logs/version_*/checkpoints/last.ckpt"))
    return saved[-1]


def bench_kenlm(kenlm: Path | None, large: bool) -> None:
    """Kneser-Ney c=5 (order 6) fit + NLL, whole processes, on names.txt and larger corpora."""
    sizes = (1, 10, 50, 500) if large else (1, 10, 50)
    if kenlm is None:
        NOTES.append("KenLM not found (--kenlm DIR or $KENLM_DIR): its rows are left out.")
    for times in sizes:
        data_file = corpus_path(times)
        baseline = ["baseline", "--data.path", str(data_file), "--data.context_size", "5"]
        with tempfile.TemporaryDirectory() as folder:
            peer = None
            if kenlm is not None:
                train, test = write_split(data_file, Path(folder))
                peer = kenlm_fit_and_test(kenlm, train, test, order=6)
            out = Path(folder, "out.txt")
            command = [sys.executable, "-m", "makemore_pl", *baseline, "--smoothing", "kneser-ney"]
            ours = measured(command, stdout=out)
            nll = re.search(r"test_nll (\S+)", out.read_text()).group(1)
            counting = [sys.executable, "-m", "benchmarks.counting", str(data_file), "5"]
            alone = measured(counting, stdout=out)
        agree = f", KenLM {peer['nll']:.5f}" if peer else ""
        name = f"{times}× names.txt: `baseline --data.context_size 5 --smoothing kneser-ney`"
        reference = (peer["seconds"], peer["peak_mb"]) if peer else None
        process_row(f"{name} (test NLL {nll}{agree})", ours, reference)
        label = f"{times}× names.txt: `python -m benchmarks.counting` (the same, no CLI)"
        process_row(label, alone, reference)


def fit_process(config: str) -> tuple[float, float, float]:
    """(wall s, CPU s, peak resident MB) of one whole `fit --config configs/<config>.yaml`."""
    workdir = ROOT / "benchmarks" / "_runs" / f"fit-{config}"
    subprocess.run(["rm", "-rf", str(workdir)], check=True)
    workdir.mkdir(parents=True)
    args = [sys.executable, "-m", "makemore_pl", "fit", "--config"]
    args += [str(ROOT / "configs" / f"{config}.yaml"), "--data.path", str(ROOT / "names.txt")]
    args += ["--trainer.enable_progress_bar", "false"]
    start = time.perf_counter()
    child = subprocess.Popen(args, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)  # this child's own usage, not every child's
    seconds = time.perf_counter() - start
    if status != 0:
        raise RuntimeError(f"fit --config {config} failed: {child.stderr.read().decode()[-500:]}")
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def bench_suffix() -> None:
    """The every-suffix model's whole fit (c = 5, 1.6 M weights, to its optimum) beside the dense
    trigram's (19,683 weights), each one process."""
    shown, measured = {}, {}
    for config in ("suffix", "trigram"):
        measured[config] = wall, cpu, peak = fit_process(config)
        shown[config] = f"{wall:,.1f} s wall, {cpu:,.1f} s CPU, {peak:,.0f} MB"
        print(f"  {config}: {shown[config]}", file=sys.stderr, flush=True)
    (wall, cpu, peak), (wall_ref, cpu_ref, peak_ref) = measured["suffix"], measured["trigram"]
    ratio = f"{wall / wall_ref:.1f}x wall, {cpu / cpu_ref:.1f}x CPU, {peak / peak_ref:.2f}x memory"
    name = "whole `fit --config configs/<model>.yaml`: wall, CPU (user + system), peak memory"
    ROWS["suffix"].append((name, shown["suffix"], shown["trigram"], ratio))


def bench_minibatch(quick: bool) -> None:
    """Steps per second of bigram minibatch training (batch 64, Adam): `fit`, Lightning's floor
    and the plain loop, measured side by side, idle and beside two busy-looping processes."""
    epochs = 3 if quick else 5  # `fit` and the floor are timed over all epochs but the first
    workdir = ROOT / "benchmarks" / "_runs" / "minibatch"
    measured = {}
    for load, beside in (("idle", contextlib.nullcontext()), ("busy", busy_processes(2))):
        with beside:
            plain = plain_loop(epochs - 1)
            measured[load] = package_fit(epochs, workdir), lightning_floor(epochs), plain
        print(f"  {load}: fit, floor, plain loop {measured[load]} steps/s", file=sys.stderr)
    where = {"idle": "idle", "busy": "beside two busy-looping processes"}
    for load, (package, floor, plain) in measured.items():
        for name, value in (("`fit --data.batch_size 64`", package), ("Lightning's floor", floor)):
            shown, ratio = f"{value:,.0f} steps/s", f"{value / plain:.0%}"
            name = f"bigram, batch 64, Adam: {name}, {where[load]}"
            ROWS["minibatch"].append((name, shown, f"{plain:,.0f} steps/s", ratio))
    slower = [measured["idle"][i] / measured["busy"][i] for i in (0, 2)]
    name = "epoch time beside two busy-looping processes ÷ idle (goal: at most 2×)"
    ROWS["minibatch"].append((name, f"{slower[0]:.2f}×", f"{slower[1]:.2f}×", ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and cases")
    parser.add_argument("--parts", nargs="+", default=list(REFERENCES), choices=list(REFERENCES))
    parser.add_argument("--kenlm", help="KenLM folder (bin/lmplz, bin/query or run)")
    parser.add_argument("--large", action="store_true", help="add the 500× corpus (16M names)")
    args = parser.parse_args()
    repeats = 3 if args.quick else 15
    load = os.getloadavg()[0]
    if "lecture" in args.parts:
        words = load_words(ROOT / "names.txt")
        bench_counting(words, repeats)
        bench_steps(words, repeats)
        bench_epoch_parts(repeats)
        bench_time_to_optimum(words, args.quick)
        bench_scaling(args.quick)
    if "kenlm" in args.parts:
        PART[0] = "kenlm"
        bench_kenlm(find_kenlm(args.kenlm), args.large)
    if "startup" in args.parts:
        PART[0] = "startup"
        bench_startup(3 if args.quick else 5)
    if "suffix" in args.parts:
        bench_suffix()
    if "minibatch" in args.parts:
        bench_minibatch(args.quick)
    print_table(load, os.getloadavg()[0])


def print_table(load_before: float, load_after: float) -> None:
    models = [line.split(":")[1].strip() for line in open("/proc/cpuinfo") if "model name" in line]
    cpu = models[0] if models else "unknown CPU"
    threads = torch.get_num_threads()
    print(
        f"\nmachine: {os.cpu_count()} cores, {cpu}; torch {torch.__version__}, {threads} threads; "
        f"load average (1 min) {load_before:.1f} at the start, {load_after:.1f} at the end\n"
    )
    for note in NOTES:
        print(f"note: {note}\n")
    for part, rows in ROWS.items():
        print(f"| benchmark | makemore_pl | {REFERENCES[part]} | ratio |")
        print("|---|---|---|---|")
        for name, package, reference, ratio in rows:
            print(f"| {name} | {package} | {reference} | {ratio} |")
        print()


if __name__ == "__main__":
    main()
