"""`fit --help` with the default model's own options, and parsers named as the user called us."""

import importlib
import re

from lightning.pytorch.cli import LightningArgumentParser

from makemore_pl.cli.plain.command import named_parser
from makemore_pl.cli.resume import LINKED  # set from the data
from makemore_pl.models.registry import DEFAULT_MODEL


def asks_help(args: list[str]) -> bool:
    asked = any(arg in ("-h", "--help") for arg in args)
    return asked and not any(arg.startswith("--model") for arg in args)


def default_model_help(prog: str) -> str:
    """The options of the default model, which `--help` of a subclass-mode CLI leaves out."""
    kind = DEFAULT_MODEL
    model_class = getattr(importlib.import_module(kind.lit_module), kind.name)
    another = "another model's: --model NAME --model.help NAME"
    description = f"the default model's options ({kind.name}; {another})"
    parser = named_parser(LightningArgumentParser, prog)(description=description)
    parser.add_class_arguments(model_class, "model", skip=set(LINKED), fail_untyped=False)
    text = parser.format_help()  # without a second usage line, nor a second -h
    return re.sub(r"\noptions:\n  -h, --help .*\n", "", text[text.index("\n\n") :])
