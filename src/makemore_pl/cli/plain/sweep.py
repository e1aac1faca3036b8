"""`sweep`: add-k (counting) and l2 (neural, fitted to its optimum) chosen on val, tested once."""

import math
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from torch import Tensor

from makemore_pl.cli.runs import new_run_folder
from makemore_pl.core.batches import count_table
from makemore_pl.core.data import NamesData
from makemore_pl.core.errors import CommandError
from makemore_pl.core.files import PNG, check_writable_target, write_atomically
from makemore_pl.models.counting import SMOOTHING_GRID, CountingBaseline
from makemore_pl.models.ngram import mean_nll
from makemore_pl.models.optimum import fit_optimum

# l2 weights the mean over all V**c * V cells, so higher orders want larger values
L2_GRID = (0.0, 1e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)


@dataclass
class SweepPoint:
    model: str  # "counting" or "neural"
    strength: float  # add-k smoothing or l2 weight
    train_nll: float
    val_nll: float


Examples = dict[str, tuple[Tensor, Tensor, Tensor | None]]  # split -> (X, Y, weights or None)


def sweep_counting(
    vocab_size: int, context_size: int, examples: Examples, grid=SMOOTHING_GRID
) -> list[SweepPoint]:
    """The counting model fitted on train under every add-k in `grid`."""
    fitted = CountingBaseline(vocab_size, context_size, 0.0).fit(*examples["train"])
    points = []
    for k in grid:
        model = fitted.with_smoothing(k)
        train, val = model.nll(*examples["train"]), model.nll(*examples["val"])
        points.append(SweepPoint("counting", k, train, val))
    return points


def sweep_neural(
    vocab_size: int, context_size: int, examples: Examples, grid=L2_GRID
) -> list[SweepPoint]:
    """The neural model trained to its optimum on train under every l2 in `grid`."""
    tables = {name: count_table(*xyw[:2], vocab_size, xyw[2]) for name, xyw in examples.items()}
    points = []
    for l2 in grid:
        model = fit_optimum(vocab_size, context_size, l2, tables["train"])
        train, val = (mean_nll(model, tables[s]) for s in ("train", "val"))
        points.append(SweepPoint("neural", l2, train, val))
    return points


def best_on_val(points: list[SweepPoint]) -> SweepPoint:
    return min(points, key=lambda point: point.val_nll)


def sweep_figure(points: list[SweepPoint], title: str):
    """Train and val NLL against regularisation strength (log axis), one panel per model."""
    from matplotlib.figure import Figure  # matplotlib only when a figure is drawn

    kinds = sorted({p.model for p in points})
    fig = Figure(figsize=(5.5 * len(kinds), 4), layout="constrained")
    for ax, kind in zip(fig.subplots(1, len(kinds), squeeze=False)[0], kinds, strict=True):
        shown = [p for p in points if p.model == kind]
        strengths = [p.strength for p in shown]
        ax.plot(strengths, [p.train_nll for p in shown], "o-", label="train")
        ax.plot(strengths, [p.val_nll for p in shown], "o-", label="val")
        best = best_on_val(shown)
        label = f"best on val: {best.strength:g}"
        ax.axvline(best.strength, color="gray", linestyle=":", label=label)
        # symlog: a log axis on which a strength of 0 (no regularisation) still has a place
        positive = [p.strength for p in shown if p.strength > 0]
        ax.set_xscale("symlog", linthresh=min(positive, default=1e-4))
        # strengths are never negative; one labelled tick per decade of the grid, none crowded
        ax.set_xlim(left=0)
        ticks = [0.0, *sorted({10.0 ** round(math.log10(v)) for v in positive})[::2]]
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel("add-k smoothing k" if kind == "counting" else "l2 weight")
        ax.set_ylabel("NLL (nats)")
        ax.set_title(f"{kind} model")
        ax.legend()
    fig.suptitle(title)
    return fig


def test_nll(point: SweepPoint, vocab_size: int, context_size: int, splits: Examples) -> float:
    """The one look at the test split: the chosen model, refitted on train."""
    if point.model == "counting":
        fitted = CountingBaseline(vocab_size, context_size, point.strength).fit(*splits["train"])
        return fitted.nll(*splits["test"])
    train, test = (count_table(*splits[s][:2], vocab_size, splits[s][2]) for s in ("train", "test"))
    return mean_nll(fit_optimum(vocab_size, context_size, point.strength, train), test)


def sweep(
    data: NamesData,
    models: Literal["both", "counting", "neural"] = "both",
    smoothing_grid: tuple[float, ...] = SMOOTHING_GRID,
    l2_grid: tuple[float, ...] = L2_GRID,
    plot: str | None = None,
    default_root_dir: str = ".",
) -> list:
    """Prints every point, the best of each model with its one test NLL, and where the plot is.

    Args:
        models: which models to sweep: the counting model's add-k smoothing, the neural
            model's l2 weight (each fitted to its optimum), or both.
        smoothing_grid: add-k values for the counting model.
        l2_grid: l2 weights for the neural model.
        plot: where to write the PNG; default: sweep.png in a new run folder under
            --trainer.default_root_dir/lightning_logs, which TensorBoard shows too.
        default_root_dir: the folder whose lightning_logs holds the sweep's run folder.
    """
    for name, grid in (("smoothing_grid", smoothing_grid), ("l2_grid", l2_grid)):
        if not grid or not all(0 <= value < math.inf for value in grid):
            raise CommandError(f"--{name} must list finite values of 0 or more, got {list(grid)}")
    if plot:  # before the sweep: a --plot that would replace the data or a device fails first
        check_writable_target(Path(plot), CommandError, [data.path], PNG)
    c, v = data.context_size, data.vocab_size
    splits = {split: data.examples(split) for split in ("train", "val", "test")}
    started = time.perf_counter()
    points = []
    if models in ("both", "counting"):
        points += sweep_counting(v, c, splits, smoothing_grid)
    if models in ("both", "neural"):
        points += sweep_neural(v, c, splits, l2_grid)
    print(f"{'model':<9} {'strength':>8} {'train_nll':>9} {'val_nll':>9}")
    for p in points:
        print(f"{p.model:<9} {p.strength:>8g} {p.train_nll:>9.5f} {p.val_nll:>9.5f}")
    for kind in dict.fromkeys(p.model for p in points):
        best = best_on_val([p for p in points if p.model == kind])
        test = test_nll(best, v, c, splits)
        print(
            f"best {kind}: strength {best.strength:g}, val_nll {best.val_nll:.5f}, "
            f"test_nll {test:.5f}"
        )
    # the figure in TensorBoard, in a new run folder, and as a PNG at --plot or beside it
    from torch.utils.tensorboard import SummaryWriter

    fig = sweep_figure(points, f"regularisation sweep, context_size {c}")
    written = save_png(fig, plot, inputs=[data.path]) if plot else None  # before the run folder
    folder = new_run_folder(Path(default_root_dir, "lightning_logs"), "sweep")
    with SummaryWriter(str(folder)) as writer:
        writer.add_figure("sweep", fig, 0, close=False)
    print(f"plot: {written or save_png(fig, folder / 'sweep.png')}")
    print(f"swept {len(points)} models in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return points


def save_png(fig, path: str | Path, dpi: int = 110, inputs: Iterable = ()) -> Path:
    """The figure as a PNG at `path`, written whole or not at all, never over one of `inputs`."""
    write = lambda file: fig.savefig(file, format="png", dpi=dpi)  # noqa: E731
    return write_atomically(path, write, inputs=[p for p in inputs if p], kind=PNG)
