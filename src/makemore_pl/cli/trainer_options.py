"""Trainer and data options checked before any run folder is made: the device, counts that
Lightning expects positive, precision, empty splits, the seed."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.utilities import rank_zero_info

from makemore_pl.core.data import NamesData
from makemore_pl.core.devices import device_of, has_float64
from makemore_pl.core.errors import CommandError


def check_device(trainer: Any) -> None:
    """A missing GPU fails in one line; 64-true on a device without float64 (MPS) trains in
    float32, said in one line (the NLL sums stay exact: they are carried on the host)."""
    if not isinstance(trainer.accelerator, str):  # an Accelerator object: Lightning's to check
        return
    device = device_of("--trainer.accelerator", trainer.accelerator)
    if str(trainer.precision) in ("64", "64-true") and not has_float64(device):
        trainer.precision = "32-true"
        rank_zero_info(
            f"{device.type} has no float64: training in float32 (--trainer.precision 32-true), "
            "its NLLs summed exactly on the host; for float64 weights, --trainer.accelerator cpu"
        )


# Trainer options that count something: Lightning divides by some (ZeroDivisionError) and
# silently trains nothing with others
POSITIVE = ("accumulate_grad_batches", "check_val_every_n_epoch", "log_every_n_steps")
FIT_POSITIVE = ("max_epochs", "max_steps", "limit_train_batches")
NO_LIMIT = -1  # max_epochs and max_steps: Lightning's "no limit"


def check_trainer_options(command: str, trainer: Any) -> None:
    """Counts Lightning expects positive, checked before any run folder is made."""
    strategy = trainer.get("strategy")
    if isinstance(strategy, str) and "spawn" in strategy:
        raise CommandError(
            f"--trainer.strategy {strategy}: not supported (a spawned process cannot be handed "
            "the run's open lock and data); use --trainer.strategy ddp"
        )
    names = POSITIVE + (FIT_POSITIVE if command == "fit" else ())
    for name in names:
        value = trainer.get(name)
        if value is None or isinstance(value, bool) or value == NO_LIMIT and "max_" in name:
            continue
        if value <= 0:
            allowed = " (or -1, no limit)" if name.startswith("max_") else ""
            raise CommandError(f"--trainer.{name} must be above 0{allowed}, got {value}")


def check_precision(command: str, trainer: Any, model: Any) -> None:
    """float16 weights cannot train with Adam: its eps (1e-8) is 0 in float16, so the first
    step divides by zero whatever the learning rate."""
    init_args = model.get("init_args") if hasattr(model, "get") else None
    optimizer = init_args.get("optimizer") if init_args is not None else None
    if command == "fit" and str(trainer.get("precision")) == "16-true" and optimizer == "adam":
        raise CommandError(
            "--trainer.precision 16-true: Adam cannot train float16 weights (its eps, 1e-8, is 0 "
            "in float16, and the first step divides by it); use --trainer.precision 16-mixed "
            "(float32 weights) or --model.optimizer sgd"
        )


def check_splits(command: str, data: NamesData) -> None:
    """A split the command uses must hold names: fit trains on train (and checks val unless it
    is asked not to), test and validate read their own; predict has its own file to score."""
    config = data.config
    used = {"fit": ["train"], "validate": ["val"], "test": ["test"]}.get(command, [])
    if command == "predict" and not config.predict_path:
        used = ["test"]
    if command == "fit" and config.val_fraction > 0:
        used.append("val")
    if not used:  # predict of its own file reads no data file
        return
    num_words = len(set(data.words)) if config.dedupe else data.scan.num_names
    sizes = config.split_sizes(num_words)
    for split in used:
        if sizes[split] == 0:
            raise CommandError(
                f"data file {str(data.path)!r}: its {num_words} names leave the {split} split "
                f"empty (val_fraction {config.val_fraction}, test_fraction "
                f"{config.test_fraction}); use more names or other fractions"
            )


def check_seed(seed: int | bool) -> None:
    """Lightning seeds numpy too, which takes 32-bit seeds only."""
    if not isinstance(seed, bool) and not 0 <= seed < 2**32:
        raise CommandError(f"--seed_everything must be from 0 to {2**32 - 1}, got {seed}")
