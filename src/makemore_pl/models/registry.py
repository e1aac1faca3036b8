"""The models this package trains, one entry each: checkpoints, `sample`, the training command,
run names and TensorBoard read a model's facts here. A new model is a config and a plain module
here, a LightningModule in `makemore_pl.lit` that holds it, and one entry in MODELS."""

from collections.abc import Callable
from dataclasses import dataclass

from makemore_pl.core.settings import Settings
from makemore_pl.models.dense import DenseTable
from makemore_pl.models.ngram import NgramModel
from makemore_pl.models.suffix_model import SuffixModel

ORDER_NAMES = {1: "bigram", 2: "trigram"}


@dataclass(frozen=True)
class ModelKind:
    """One trainable model: its LightningModule, its plain module and its default run name."""

    name: str  # the LightningModule's class name, as configs and checkpoints give it
    lit_module: str  # imported by the training layer only
    plain: type[NgramModel]
    run_name: Callable[[Settings], str]  # its config -> the default run name
    legacy_modules: tuple[str, ...] = ()  # where earlier versions kept the class

    @property
    def config(self) -> type[Settings]:
        return self.plain.config_class

    @property
    def class_path(self) -> str:
        return f"{self.lit_module}.{self.name}"

    @property
    def class_paths(self) -> set[str]:
        """Every class path a config or checkpoint may name this model by."""
        modules = (self.lit_module, "makemore_pl", *self.legacy_modules)
        return {f"{module}.{self.name}" for module in modules}


def order_name(context_size: int) -> str:
    return ORDER_NAMES.get(context_size, f"{context_size + 1}gram")


def dense_run_name(config) -> str:
    """E.g. 'trigram-adam', 'bigram-onehot-sgd'."""
    extra = ["onehot"] if config.encoding == "onehot" else []
    return "-".join([order_name(config.context_size), *extra, config.optimizer])


def suffix_run_name(config) -> str:
    """E.g. 'suffix-6gram'."""
    return f"suffix-{order_name(config.context_size)}"


DENSE = ModelKind(
    "BigramLitModule", "makemore_pl.lit.dense", DenseTable, dense_run_name, ("makemore_pl.model",)
)
SUFFIX = ModelKind(
    "SuffixLitModule",
    "makemore_pl.lit.suffix",
    SuffixModel,
    suffix_run_name,
    ("makemore_pl.suffix_model",),
)
MODELS = {kind.name: kind for kind in (DENSE, SUFFIX)}
DEFAULT_MODEL = DENSE


def kind_of_class_path(class_path: str) -> ModelKind | None:
    """The model a class path names (today's, a short one or an earlier version's), or None."""
    name = class_path.rsplit(".", 1)[-1]
    kind = MODELS.get(name)
    return kind if kind is not None and class_path in (name, *kind.class_paths) else None


def kind_of_state(state: dict) -> ModelKind:
    """The model whose weights a state dict holds (saved from Python, without a class path)."""
    keys = {str(key).removeprefix("model.") for key in state}
    return SUFFIX if "keys" in keys else DENSE
