"""The models this package trains, one entry each: every layer reads a model's facts here.

A new model is a plain module in `makemore_pl.models` (its math: logits, NLL sum, penalty, what
a saved one must hold), a LightningModule in `makemore_pl.lit` (its optimizer and hooks) and
one entry in MODELS. Checkpoints, `sample`, the training command, run names and TensorBoard
all find it from here; nothing else names it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from makemore_pl.core.devices import has_float64
from makemore_pl.models.dense import DENSE_SETTINGS, DenseTable, dense_checkpoint_problem
from makemore_pl.models.ngram import NgramModel
from makemore_pl.models.suffix import SuffixModel
from makemore_pl.models.suffixes import SUFFIX_SETTINGS, suffix_checkpoint_problem

ORDER_NAMES = {1: "bigram", 2: "trigram"}


@dataclass(frozen=True)
class ModelKind:
    """One trainable model: its LightningModule's name and module, its plain module, the
    settings a saved one holds (with their defaults), and how its saved form is checked."""

    name: str  # the LightningModule's class name, as configs and checkpoints give it
    lit_module: str  # imported by the training layer only
    plain: type[NgramModel]
    settings: dict[str, Any]
    checkpoint_problem: Callable[[dict, dict], str | None]  # (settings, state_dict) -> why not
    run_name: Callable[[dict], str]  # settings -> the default run name
    legacy_modules: tuple[str, ...] = ()  # where earlier versions kept the class

    @property
    def class_path(self) -> str:
        return f"{self.lit_module}.{self.name}"

    @property
    def class_paths(self) -> set[str]:
        """Every class path a config or checkpoint may name this model by."""
        modules = (self.lit_module, "makemore_pl", *self.legacy_modules)
        return {f"{module}.{self.name}" for module in modules}

    def load(self, settings: dict, state: dict, device: torch.device | str = "cpu") -> NgramModel:
        """The plain model of checked saved settings and tensors, as it was saved, on `device`
        (float64 weights become float32 on a device without float64, MPS)."""
        takes = inspect.signature(self.plain).parameters
        model = self.plain(**{k: v for k, v in settings.items() if k in takes})
        if hasattr(model, "resize_to"):
            model.resize_to(state)
        model.load_state_dict(state)
        if not has_float64(device):
            model.to(torch.float32)  # on the host first: float64 cannot even be moved there
        return model.to(device)


def order_name(context_size: int) -> str:
    return ORDER_NAMES.get(context_size, f"{context_size + 1}gram")


def dense_run_name(settings: dict) -> str:
    """E.g. 'trigram-adam', 'bigram-onehot-sgd'."""
    extra = ["onehot"] if settings.get("encoding") == "onehot" else []
    return "-".join([order_name(settings.get("context_size", 1)), *extra, settings["optimizer"]])


def suffix_run_name(settings: dict) -> str:
    """E.g. 'suffix-6gram'."""
    return f"suffix-{order_name(settings.get('context_size', 1))}"


MODELS = {
    kind.name: kind
    for kind in (
        ModelKind(
            "BigramLitModule",
            "makemore_pl.lit.dense",
            DenseTable,
            DENSE_SETTINGS,
            dense_checkpoint_problem,
            dense_run_name,
            legacy_modules=("makemore_pl.model",),
        ),
        ModelKind(
            "SuffixLitModule",
            "makemore_pl.lit.suffix",
            SuffixModel,
            SUFFIX_SETTINGS,
            suffix_checkpoint_problem,
            suffix_run_name,
            legacy_modules=("makemore_pl.suffix_model",),
        ),
    )
}
DEFAULT_MODEL = MODELS["BigramLitModule"]


def kind_of_class_path(class_path: str) -> ModelKind | None:
    """The model a class path names (today's, a short one or an earlier version's), or None."""
    name = class_path.rsplit(".", 1)[-1]
    kind = MODELS.get(name)
    return kind if kind is not None and class_path in (name, *kind.class_paths) else None
