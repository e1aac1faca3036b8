"""What every neural n-gram model has (its sizes and characters) and computes from its own logits:
the loss, its parts and log-probabilities (training, the DDP objective, sweeps and the tests)."""

from dataclasses import dataclass, replace
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from makemore_pl.core.devices import sum_dtype
from makemore_pl.core.errors import DataError
from makemore_pl.core.settings import Settings, optional, setting, whole

# no trained table comes near: softmax saturates long before, and the L2 term pulls weights to 0
MAX_WEIGHT = 1e6
VOCAB_SIZE_HELP = "V, tokens including the boundary (None: the data's)."
CONTEXT_SIZE_HELP = "characters of context, c (None: the data's)."
CHARS_HELP = (
    "the data's characters in index order, kept so a checkpoint can generate without the data "
    "file (None: the data's)."
)


def chars_setting() -> Any:  # a field of each model's settings class (see NgramConfig)
    return setting(None, CHARS_HELP, chars_problem, kept=True)


def chars_problem(chars: object) -> str | None:
    valid = isinstance(chars, list) and all(isinstance(ch, str) and len(ch) == 1 for ch in chars)
    if chars is None or (valid and len(set(chars)) == len(chars)):
        return None
    return f"must be distinct single characters, got {chars!r}"


@dataclass(frozen=True)
class NgramConfig(Settings):
    """The sizes every model's settings begin with. Each model declares its own `chars`, so that
    it keeps its place among the settings (a base class's fields come first)."""

    vocab_size: int | None = setting(None, VOCAB_SIZE_HELP, optional(whole(1)), kept=True)
    context_size: int | None = setting(None, CONTEXT_SIZE_HELP, optional(whole(1)), kept=True)

    def check(self) -> None:
        chars, v = self.chars, self.vocab_size
        if chars is not None and v is not None and len(chars) + 1 != v:
            raise DataError(f"chars has {len(chars)} characters but vocab_size is {v}")


class NgramModel(nn.Module):
    """(B, c) contexts -> (B, V) logits (`forward`), built from its config; adds `penalty()`."""

    config_class: ClassVar[type[NgramConfig]]

    def __init__(self, config: NgramConfig) -> None:
        super().__init__()
        self.config = config

    @property
    def vocab_size(self) -> int:
        return self.config.vocab_size

    @property
    def context_size(self) -> int:
        return self.config.context_size

    def nll_rows(self, x: Tensor, y: Tensor) -> Tensor:
        """(B, c) contexts, (B,) next ids -> (B,) each example's NLL, float32 or better."""
        return F.cross_entropy(at_least_float32(self(x)), y, reduction="none")

    def nll_sum(self, x: Tensor, y: Tensor, counts: Tensor) -> tuple[Tensor, Tensor]:
        """(sum of counts[i] * cross-entropy of row i, sum of counts), in float64 where the device
        has it: a float32 sum would round differently however the rows are split over devices."""
        per_row = self.nll_rows(x, y)
        return (per_row.to(sum_dtype(per_row.device)) * counts).sum(), counts.sum()

    def penalty(self) -> Tensor:
        raise NotImplementedError

    def objective(
        self, x: Tensor, y: Tensor, counts: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """(mean cross-entropy + penalty, mean cross-entropy); row i counts counts[i] times."""
        if counts is None:
            counts = torch.ones(len(y), device=y.device)
        nll_sum, total = self.nll_sum(x, y, counts)
        nll = nll_sum / total.clamp_min(1)  # an empty shard gives 0
        return nll + self.penalty(), nll

    @torch.no_grad()
    def log_probs(self, x: Tensor) -> Tensor:
        """(B, c) contexts -> (B, V) log-probabilities, float32 or better."""
        return torch.log_softmax(at_least_float32(self(x)), dim=-1)

    def prepare_for(self, state: dict[str, Tensor]) -> None:
        """The sizes and precision a saved state holds, so that it loads as it was saved."""
        tensors = [t for t in state.values() if isinstance(t, Tensor)]
        dtypes = {t.dtype for t in tensors if t.is_floating_point()}
        if len(dtypes) == 1:
            self.to(dtypes.pop())

    def weights_problem(self) -> str | None:
        """Why loaded weights cannot be a trained model's (NaN, absurd sizes), or None."""
        for name, weights in self.named_parameters():
            if not weights.is_floating_point():
                return f"its weights {name} are {weights.dtype}, not floats"
            if not torch.isfinite(weights).all():
                return (
                    f"its weights {name} hold NaN or infinite values (the run that wrote it "
                    "diverged); use an earlier checkpoint, or train again with a smaller --model.lr"
                )
            largest = weights.abs().max().item() if weights.numel() else 0.0
            if largest > MAX_WEIGHT:
                return (
                    f"its weights {name} reach {largest:.3g}, far beyond any trained model's (at "
                    f"most {MAX_WEIGHT:g}): the file is corrupted or the run diverged; use an "
                    "earlier checkpoint"
                )
        return None


def is_sized(config: NgramConfig) -> bool:
    """Whether a model's config gives the sizes of its weights (else the data will)."""
    return config.vocab_size is not None and config.context_size is not None


def with_data_settings(config: Settings, data: dict[str, Any], model: str) -> Settings:
    """`config` with the data's sizes, characters and encoding where it has None; a DataError
    naming each one it was given that the data contradicts."""
    names = [name for name in data if name in config.names()]
    shown = lambda value: "".join(value) if isinstance(value, list) else value  # noqa: E731
    wrong = [
        f"{name} {shown(getattr(config, name))!r} where the data has {shown(data[name])!r}"
        for name in names
        if getattr(config, name) not in (None, data[name])
    ]
    if wrong:
        raise DataError(f"{model} was given {'; '.join(wrong)}: leave it out to take the data's")
    return replace(config, **{name: data[name] for name in names if getattr(config, name) is None})


def mean_nll(model: NgramModel, table: tuple[Tensor, Tensor, Tensor]) -> float:
    """The count-weighted mean NLL in nats of a count table (contexts, next ids, counts)."""
    with torch.no_grad():
        nll_sum, total = model.nll_sum(*table)
    return float(nll_sum / total)


def at_least_float32(t: Tensor) -> Tensor:
    """Losses and NLLs are computed in float32 or better, also under 16-bit mixed precision."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t
