"""The neural n-gram models' shared steps, and the dense one: one weight table W, trained with
cross-entropy plus an L2 term."""

from __future__ import annotations

import inspect
import math
import reprlib
from typing import Any, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from torch import Tensor, nn
from torchmetrics import MeanMetric

from makemore_pl.batches import Batch
from makemore_pl.data import DataError, Vocabulary, joint_context, one_hot_rows
from makemore_pl.errors import CommandError
from makemore_pl.sampling import sample

DEFAULT_LR = {"sgd": 50.0, "adam": 0.5, "lbfgs": 1.0}
# A fixed cap, not a share of this machine's memory, so that a model (or a checkpoint) that
# builds on one machine builds on every other. 2**27 float32 cells are 537 MB for W; training
# holds W, its gradient and Adam's two moments, about 2.1 GB. That admits names.txt up to
# context_size 4 (57 MB) and a 3,921-character bigram (61 MB), and refuses context_size 5
# (1.5 GB), where the counting model is the better tool anyway.
MAX_WEIGHT_CELLS = 2**27
BYTES_PER_CELL = 4  # float32


def human_bytes(n: float) -> str:
    """1.5e9 -> '1.5 GB' (decimal units, as disks and `free -h --si` count)."""
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"):
        if n < 999.5:
            return f"{n:.0f} {unit}" if unit == "bytes" or n >= 9.95 else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n * 1e24:.1e} bytes"


def table_size_problem(vocab_size: int, context_size: int) -> str | None:
    """Why a W of V**c x V cells cannot be built, before anything is allocated; None if it can."""
    # in logarithms: V**c of a hostile c (10**9) would take minutes to compute as an integer
    log_cells = (context_size + 1) * math.log(max(vocab_size, 1))
    if log_cells <= math.log(MAX_WEIGHT_CELLS):
        return None
    log10_bytes = log_cells / math.log(10) + math.log10(BYTES_PER_CELL)
    size = human_bytes(10**log10_bytes) if log10_bytes < 27 else f"10^{log10_bytes:.0f} bytes"
    limit = human_bytes(MAX_WEIGHT_CELLS * BYTES_PER_CELL)
    return (
        f"context_size {context_size} with vocab_size {vocab_size} needs a {size} weight table "
        f"(the limit is {limit}); use the counting model (`baseline`, `sample --counting true`) "
        "with --smoothing kneser-ney, which stores only the n-grams seen"
    )


def at_least_float32(t: Tensor) -> Tensor:
    """Losses and NLLs are computed in float32 or better, also under 16-bit mixed precision."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


class NgramLitModule(LightningModule):
    """What every neural n-gram model shares: exact example-weighted NLLs, one step for every
    stage, the DDP objective, `log_probs` and `sample`.

    A subclass gives `forward` ((B, c) contexts -> (B, V) logits), `penalty` and
    `configure_optimizers`, and calls `_add_metrics` in its `__init__`.
    """

    def _add_metrics(self) -> None:
        # float64 running sums: exact example-weighted means over an epoch, synced across devices
        self.nll = nn.ModuleDict(
            {
                f"{stage}_nll": MeanMetric().set_dtype(torch.float64)
                for stage in ("train", "val", "test")
            }
        )
        self._counted_step = -1

    @property
    def vocab(self) -> Vocabulary | None:
        chars = self.hparams.chars
        return None if chars is None else Vocabulary(chars)

    def objective(
        self, x: Tensor, y: Tensor, counts: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """(loss, nll) on these examples: the mean cross-entropy, and that plus the L2 term.

        With `counts`, row i stands for counts[i] identical examples: the mean is weighted.
        """
        nll = self.data_nll(x, y, counts)
        return nll + self.penalty(), nll

    def data_nll(self, x: Tensor, y: Tensor, counts: Tensor | None = None) -> Tensor:
        if counts is None:
            return F.cross_entropy(at_least_float32(self(x)), y)
        nll_sum, total = self._nll_sum(x, y, counts)
        return nll_sum / total.clamp_min(1)  # an empty shard gives 0

    def _nll_sum(self, x: Tensor, y: Tensor, counts: Tensor) -> tuple[Tensor, Tensor]:
        """(sum of counts[i] * cross-entropy of row i, sum of counts)."""
        per_row = F.cross_entropy(at_least_float32(self(x)), y, reduction="none")
        return (per_row * counts).sum(), counts.sum()

    def _shared_step(self, batch: Batch, stage: str) -> Tensor:
        x, y, counts = batch
        nll_sum, total = self._nll_sum(x, y, counts)
        nll = nll_sum / total.clamp_min(1)
        metric = self.nll[f"{stage}_nll"]
        if metric.dtype != torch.float64:  # moving a metric (.to(device)) resets it to float32,
            metric.set_dtype(torch.float64)  # which would round each update before the sums
        if stage != "train" or self._first_evaluation_of_step():
            metric.update(nll.detach().double(), weight=total)
        epochwise = {"on_step": False, "on_epoch": True, "batch_size": len(y)}
        self.log(f"{stage}_nll", metric, prog_bar=stage == "val", **epochwise)
        if stage == "val":  # TensorBoard's hparams view ranks runs by hp_metric
            self.log("hp_metric", metric, **epochwise)
        if stage == "train" and self.trainer.world_size > 1:
            return self._global_objective(nll_sum, total)
        return nll + self.penalty()

    def _global_objective(self, nll_sum: Tensor, total: Tensor) -> Tensor:
        """This process's share of the global batch's objective.

        DDP averages gradients over the R processes, so the local NLL sum is scaled by
        R / (global example count), and process 0 alone carries R times the L2 term: their
        average is then exactly the one-device gradient, however unevenly the rows are split
        (bit for bit when R is a power of two and each context's rows are on one process).
        The value is the global objective, so that L-BFGS line searches agree across processes.
        """
        strategy, world = self.trainer.strategy, self.trainer.world_size
        global_total = strategy.reduce(total.detach().clone(), reduce_op="sum")
        penalty = self.penalty()
        share = nll_sum * (world / global_total)
        share = share + penalty * world if self.trainer.global_rank == 0 else share + 0 * penalty
        global_nll = strategy.reduce(nll_sum.detach().clone(), reduce_op="sum") / global_total
        return share + (global_nll + penalty - share).detach()

    def _first_evaluation_of_step(self) -> bool:
        """L-BFGS evaluates the loss several times per step; a step's examples count once."""
        first = self._counted_step != self.global_step
        self._counted_step = self.global_step
        return first

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        loss = self._shared_step(batch, "train")
        self.log("train_loss", loss, on_step=True, prog_bar=True, batch_size=len(batch[1]))
        return loss

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._shared_step(batch, "val")

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._shared_step(batch, "test")

    @torch.no_grad()
    def predict_step(self, batch: Batch, batch_idx: int) -> Tensor:
        """(B,) float64 log-probability of each example's next character."""
        x, y, _ = batch
        return torch.log_softmax(self(x).double(), dim=-1).gather(1, y[:, None])[:, 0]

    @torch.no_grad()
    def log_probs(self, x: Tensor) -> Tensor:
        """(B, c) contexts -> (B, V) log-probabilities."""
        return torch.log_softmax(self(x).float(), dim=-1)

    def sample(self, num_samples: int, seed: int = 0, **kwargs) -> list[list[int]]:
        """Character ids of generated words; see `makemore_pl.sampling.sample`."""
        return sample(
            self.log_probs,
            self.hparams.context_size,
            num_samples,
            seed,
            device=self.device,
            **kwargs,
        )


class BigramLitModule(NgramLitModule):
    """logits = W[context] (index) or one_hot(context) @ W (one-hot): the same numbers.

    With `context_size` c, W has one row per joint context, V**c rows of V logits.
    """

    def __init__(
        self,
        vocab_size: int = 27,
        context_size: int = 1,
        encoding: Literal["index", "onehot"] = "index",
        l2: float = 0.001,
        optimizer: Literal["sgd", "adam", "lbfgs"] = "adam",
        lr: float | None = None,
        chars: list[str] | None = None,
    ) -> None:
        """
        Args:
            vocab_size: V, tokens including the boundary (set from the data).
            context_size: characters of context, c (set from the data).
            encoding: how a context selects its row: "index" looks it up, "onehot" multiplies
                one_hot(context) @ W as in the lecture (set from the data).
            l2: weight of the (W**2).mean() penalty; plays the role of count smoothing (0.001 is
                best on val for the bigram, 0.01 for the trigram).
            optimizer: "sgd" (the lecture's), "adam" or "lbfgs" (one L-BFGS iteration per step,
                with a strong-Wolfe line search).
            lr: learning rate; None takes the optimizer's default (sgd 50, adam 0.5, lbfgs 1);
                0 leaves W as it is (to measure a model's train_nll).
            chars: the data's characters in index order, kept so a checkpoint can generate
                without the data file (set from the data).
        """
        super().__init__()
        check_settings(vocab_size, context_size, l2, lr)
        if chars is not None and len(chars) + 1 != vocab_size:
            raise DataError(f"chars has {len(chars)} characters but vocab_size is {vocab_size}")
        self.save_hyperparameters()
        self.W = nn.Parameter(torch.zeros(vocab_size**context_size, vocab_size))
        self._add_metrics()

    @classmethod
    def checkpoint_problem(cls, hparams: dict, state_dict: dict) -> str | None:
        """What makes these checkpoint contents unusable for this class, as the rest of a line
        after "--ckpt_path PATH: "; None if they build a model. checkpoints.py has already
        checked that every tensor is backed by real bytes of the file."""
        defaults = {
            name: p.default
            for name, p in inspect.signature(cls.__init__).parameters.items()
            if p.default is not inspect.Parameter.empty
        }
        settings = {**defaults, **hparams}
        v, c, weights = settings["vocab_size"], settings["context_size"], state_dict.get("W")
        extra = sorted(map(str, set(state_dict) - {"W"}))
        if extra:
            return f"not a makemore_pl model checkpoint (unknown weights: {', '.join(extra)})"
        if not (is_int(v) and is_int(c) and v >= 1 and c >= 1):
            return (
                f"not a makemore_pl model checkpoint (vocab_size {v!r} and context_size {c!r}; "
                "both must be whole numbers of 1 or more)"
            )
        shape = tuple(weights.shape) if isinstance(weights, Tensor) else None
        # a W whose bytes are all in the file cannot be of a hostile size: V**c is then small
        if shape is None or len(shape) != 2 or shape[1] != v or math.log(v) * c > 64 * math.log(2):
            return weights_misfit(shape, v, c)
        if shape[0] != v**c:
            return weights_misfit(shape, v, c)
        return weights_problem(weights) or chars_problem(settings["chars"], v)

    def forward(self, x: Tensor) -> Tensor:
        """(B, c) context ids, or (B, V**c) one-hot rows -> (B, V) logits."""
        # a one-hot product only selects rows of W; under 16-bit autocast it would round W to
        # 3 digits first, so it runs in W's own precision and NLLs stay float32 or better
        with torch.autocast(x.device.type, enabled=False):
            if x.is_floating_point():
                return x.to(self.W.dtype) @ self.W
            rows = joint_context(x, self.hparams.vocab_size)
            if self.hparams.encoding == "onehot":
                return one_hot_rows(rows, len(self.W), self.W.dtype) @ self.W
            # F.embedding is W[rows] with a deterministic backward (W[rows] accumulates its
            # gradient in a thread-dependent order: identical runs would drift apart by ~1e-4)
            return F.embedding(rows, self.W)

    def penalty(self) -> Tensor:
        return self.hparams.l2 * at_least_float32(self.W).pow(2).mean()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        name, params = self.hparams.optimizer, self.parameters()
        lr = self.hparams.lr if self.hparams.lr is not None else DEFAULT_LR[name]
        if name == "sgd":
            return torch.optim.SGD(params, lr=lr)
        if name == "adam":
            return torch.optim.Adam(params, lr=lr)
        return torch.optim.LBFGS(params, lr=lr, max_iter=1, line_search_fn="strong_wolfe")


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_settings(vocab_size: int, context_size: int, l2: float, lr: float | None) -> None:
    """Settings that would allocate too much, or train to nothing, fail here in one line."""
    if vocab_size < 1 or context_size < 1:
        raise CommandError(
            f"vocab_size and context_size must be 1 or more, got {vocab_size} and {context_size}"
        )
    if not (math.isfinite(l2) and l2 >= 0):
        raise CommandError(f"--model.l2 must be 0 or more, got {l2}")
    if lr is not None and not (math.isfinite(lr) and lr >= 0):  # 0 freezes W, to measure it
        raise CommandError(f"--model.lr must be 0 or more, got {lr}")
    problem = table_size_problem(vocab_size, context_size)
    if problem is not None:
        raise CommandError(problem)


def weights_misfit(shape: tuple | None, v: Any, c: Any) -> str:
    return (
        f"not a makemore_pl model checkpoint (its weights W, of shape {shape}, do not fit "
        f"vocab_size {v!r} and context_size {c!r})"
    )


def weights_problem(weights: Tensor) -> str | None:
    if not weights.is_floating_point():
        return f"not a makemore_pl model checkpoint (its weights W are {weights.dtype}, not floats)"
    if not torch.isfinite(weights).all():
        return (
            "its weights W hold NaN or infinite values (the run that wrote it diverged); use an "
            "earlier checkpoint, or train again with a smaller --model.lr"
        )
    return None


def chars_problem(chars: Any, vocab_size: int) -> str | None:
    """The saved vocabulary: None (take it from the data) or vocab_size - 1 distinct characters."""
    if chars is None:
        return None
    valid = isinstance(chars, list) and all(isinstance(ch, str) and len(ch) == 1 for ch in chars)
    if valid and len(set(chars)) == len(chars) == vocab_size - 1:
        return None
    return (
        f"not a makemore_pl model checkpoint (its characters {reprlib.repr(chars)} are not "
        f"vocab_size - 1 = {vocab_size - 1} distinct characters)"
    )
