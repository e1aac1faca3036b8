"""Class paths checked against an allow-list before jsonargparse imports anything: importing
`--model payload_mod.Anything` would run the module's code before the class is refused."""

import os
import re
from typing import Any

from makemore_pl.core.errors import CommandError
from makemore_pl.models.registry import MODELS

# the options (and config keys) whose values name a class to import
CLASS_OPTIONS = {"model", "callbacks", "logger", "plugins", "strategy", "class_path", "profiler"}
CLASS_OPTIONS |= {"accelerator", "optimizer", "lr_scheduler"}
# Lightning's own families of classes; makemore_pl's modules are allowed whole
ALLOWED_PACKAGES = ("makemore_pl",) + tuple(
    f"{top}.{family}"
    for top in ("lightning.pytorch", "pytorch_lightning")
    for family in ("callbacks", "loggers", "plugins", "strategies", "accelerators", "profilers")
)
ALLOWED_CLASSES = {path for kind in MODELS.values() for path in kind.class_paths}
DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")


def allowed(class_path: str) -> bool:
    """A class of this package or of Lightning's families; a bare name is one already imported."""
    if "." not in class_path or class_path in ALLOWED_CLASSES:
        return True
    return any(class_path.startswith(package + ".") for package in ALLOWED_PACKAGES)


def check_class_path(value: str, where: str) -> None:
    if DOTTED.fullmatch(value) and not allowed(value) and not is_file_name(value):
        shown = value if len(value) <= 100 else value[:100] + "…"
        raise CommandError(
            f"{where}: class {shown!r} is not one of makemore_pl's models or callbacks, nor "
            "Lightning's callbacks, loggers or plugins; refused without importing it"
        )


def is_file_name(value: str) -> bool:
    """`--model model.yaml` names a config file, read as such, not a class."""
    return value.lower().endswith((".yaml", ".yml", ".json")) or os.path.exists(value)


def check_class_paths(value: Any, where: str, key: str | None = None) -> int:
    """Every class a loaded config names (`model: X`, `callbacks: [X]`, `class_path: X`); how
    many it names."""
    if isinstance(value, dict):
        return sum(check_class_paths(inner, where, str(name)) for name, inner in value.items())
    if isinstance(value, list):
        return sum(check_class_paths(inner, where, key) for inner in value)
    if isinstance(value, str) and key is not None and option_name(key) in CLASS_OPTIONS:
        check_class_path(value, where)
        return 1
    return 0


def option_name(option: str) -> str:
    """`--trainer.callbacks+` -> `callbacks`."""
    return option.lstrip("-").rsplit(".", 1)[-1].rstrip("+")
