"""Trainer and data options checked before any run folder is made."""

import math
import os
from typing import Any

from lightning.pytorch.utilities import rank_zero_info

from makemore_pl.core.data import NamesData
from makemore_pl.core.devices import device_of, has_float64
from makemore_pl.core.errors import CommandError

# Trainer options that count something: Lightning divides by some (ZeroDivisionError) and
# silently trains nothing with others
POSITIVE = ("accumulate_grad_batches", "check_val_every_n_epoch", "log_every_n_steps")
FIT_POSITIVE = ("max_epochs", "max_steps", "limit_train_batches")
NO_LIMIT = -1  # max_epochs and max_steps: Lightning's "no limit"


def check_options(command: str, config: Any) -> None:
    """The device, the nodes, the strategy, counts and precision of a command's parsed config."""
    trainer = config.trainer
    check_device(trainer)
    nodes = trainer.get("num_nodes")  # a launcher of several nodes tells each process its node
    launched = any(name in os.environ for name in ("NODE_RANK", "GROUP_RANK", "SLURM_NNODES"))
    if isinstance(nodes, int) and nodes > 1 and not launched:
        raise CommandError(
            f"--trainer.num_nodes {nodes}: this process was not started by a launcher of "
            "several nodes (no NODE_RANK, GROUP_RANK or SLURM_NNODES in its environment), so it "
            "would wait for the other nodes forever; start it on every node with your "
            "cluster's launcher (torchrun, srun), or train on this machine with num_nodes 1"
        )
    clip = trainer.get("gradient_clip_val")
    if isinstance(clip, float) and not math.isfinite(clip):
        raise CommandError(f"--trainer.gradient_clip_val must be a finite number, got {clip}")
    strategy = trainer.get("strategy")
    if isinstance(strategy, str) and "spawn" in strategy:
        raise CommandError(
            f"--trainer.strategy {strategy}: not supported (a spawned process cannot be handed "
            "the run's open lock and data); use --trainer.strategy ddp"
        )
    for name in POSITIVE + (FIT_POSITIVE if command == "fit" else ()):
        value = trainer.get(name)
        if value is None or isinstance(value, bool) or value == NO_LIMIT and "max_" in name:
            continue
        if value <= 0:
            allowed = " (or -1, no limit)" if name.startswith("max_") else ""
            raise CommandError(f"--trainer.{name} must be above 0{allowed}, got {value}")
    # Adam cannot train float16 weights: its eps (1e-8) is 0 in float16
    init_args = config.model.get("init_args") if hasattr(config.model, "get") else None
    optimizer = init_args.get("optimizer") if init_args is not None else None
    if command == "fit" and str(trainer.get("precision")) == "16-true" and optimizer == "adam":
        raise CommandError(
            "--trainer.precision 16-true: Adam cannot train float16 weights (its eps, 1e-8, is 0 "
            "in float16, and the first step divides by it); use --trainer.precision 16-mixed "
            "(float32 weights) or --model.optimizer sgd"
        )


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


def check_splits(command: str, data: NamesData) -> None:
    """A split the command uses must hold names (predict of its own file reads none)."""
    config = data.config
    used = {"fit": ["train"], "validate": ["val"], "test": ["test"]}.get(command, [])
    if command == "predict" and not config.predict_path:
        used = ["test"]
    if command == "fit" and config.val_fraction > 0:
        used.append("val")
    if not used:
        return
    num_words = len(set(data.words)) if config.dedupe else data.scan.num_names
    sizes, kind = config.split_sizes(num_words), "distinct " if config.dedupe else ""
    for split in used:
        if sizes[split] == 0:
            raise CommandError(
                f"data file {str(data.path)!r}: its {num_words} {kind}names leave the {split} "
                f"split empty (val_fraction {config.val_fraction}, test_fraction "
                f"{config.test_fraction}); use more names or other fractions"
            )


def check_seed(seed: int | bool) -> None:
    """Lightning seeds numpy too, which takes 32-bit seeds only."""
    if not isinstance(seed, bool) and not 0 <= seed < 2**32:
        raise CommandError(f"--seed_everything must be from 0 to {2**32 - 1}, got {seed}")
