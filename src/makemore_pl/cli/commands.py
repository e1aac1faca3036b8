"""The one table of commands: `--help`, the dispatcher, the Trainer's command help and the docs
all read it. Importing it imports nothing else, so `--help` stays instant."""

from __future__ import annotations

from dataclasses import dataclass

TRAINING = "makemore_pl.cli.training"  # fit, validate, test, predict: LightningCLI's commands


@dataclass(frozen=True)
class Command:
    module: str  # where it runs: the training module, or the plain function of the same name
    help: str

    @property
    def training(self) -> bool:
        return self.module == TRAINING


COMMANDS = {
    "fit": Command(TRAINING, "Train the neural model; resume a run with --ckpt_path last."),
    "validate": Command(TRAINING, "Compute the val NLL of a checkpoint on its own data split."),
    "test": Command(
        TRAINING,
        "Compute the test NLL of a checkpoint beside the counting model of the same order.",
    ),
    "predict": Command(
        TRAINING, "Score names with a checkpoint and write one row per name to a TSV file."
    ),
    "sample": Command(
        "makemore_pl.cli.plain.sample",
        "Generate names from a checkpoint or from the counting model.",
    ),
    "baseline": Command(
        "makemore_pl.cli.plain.baseline",
        "Fit the counting model on the train split and print its NLL on every split.",
    ),
    "sweep": Command(
        "makemore_pl.cli.plain.sweep",
        "Sweep regularisation on val, plot it and test the best of each model once.",
    ),
    "suffix_sweep": Command(
        "makemore_pl.cli.plain.suffix_sweep",
        "Choose the every-suffix model's L2 (and L1) strengths on val, then test it once.",
    ),
}
