"""Whether a device has float64 (MPS has none: exact sums are then carried on the host), and
which device an accelerator name runs on. A test can declare device types without float64 in
MAKEMORE_NO_FLOAT64 (comma-separated, e.g. `cpu`)."""

import os

import torch
from torch import Tensor

from makemore_pl.core.errors import CommandError

NO_FLOAT64_ENV = "MAKEMORE_NO_FLOAT64"
NO_FLOAT64 = frozenset({"mps"})  # device types whose backends have no float64


def has_float64(device: torch.device | str) -> bool:
    kind = device.type if isinstance(device, torch.device) else torch.device(device).type
    declared = os.environ.get(NO_FLOAT64_ENV, "")  # read each time: tests set it; asked every step
    return kind not in NO_FLOAT64 and kind not in map(str.strip, declared.split(","))


def sum_dtype(device: torch.device | str) -> torch.dtype:
    return torch.float64 if has_float64(device) else torch.float32


def float64_of(t: Tensor) -> Tensor:
    """`t` in float64: on its own device where that has float64, else copied to the host."""
    return t.double() if has_float64(t.device) else t.cpu().double()


# what each of Lightning's accelerator names runs on, in the order Lightning tries them
ACCELERATORS = {"cuda": ("cuda",), "mps": ("mps",), "gpu": ("mps", "cuda")}
DESCRIBED = {"cuda": "CUDA GPU", "mps": "Apple MPS device"}


def available(device_type: str) -> bool:
    if device_type == "cuda":
        return torch.cuda.is_available()
    return device_type == "mps" and torch.backends.mps.is_available()


def device_of(option: str, accelerator: str) -> torch.device:
    """The device Lightning picks here for an accelerator name ("tpu" and others: the CPU)."""
    wanted = ACCELERATORS["gpu"] if accelerator == "auto" else ACCELERATORS.get(accelerator, ())
    found = next((kind for kind in wanted if available(kind)), None)
    if found is None and accelerator in ACCELERATORS:
        looked = " or ".join(DESCRIBED[kind] for kind in wanted)
        build = "" if torch.version.cuda or accelerator == "mps" else ", built without CUDA"
        raise CommandError(
            f"{option} {accelerator}: found no {looked} (torch {torch.__version__}{build}); "
            f"run on the CPU with {option} cpu"
        )
    return torch.device(found or "cpu")
