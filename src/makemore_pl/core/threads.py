"""How many threads torch works with, decided in one place."""

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

THREADS_ENV = "OMP_NUM_THREADS"  # the user's choice, which torch and Lightning honour too
TORCH_DEFAULT = torch.get_num_threads()  # read on import, before this package sets any
# torch's grain size: an op on fewer cells never runs on more than one thread, so a second
# thread only waits (on a busy machine, for a core: each tiny op then takes milliseconds)
SMALL_STEP_CELLS = 2**15


def step_threads(cells: int) -> int:
    """Intra-op threads for steps whose largest tensor holds `cells`: one for small steps unless
    the user chose a count (OMP_NUM_THREADS, torch.set_num_threads)."""
    current = torch.get_num_threads()
    chosen = THREADS_ENV in os.environ or current != TORCH_DEFAULT
    return current if chosen or cells >= SMALL_STEP_CELLS else 1


def threads_line(before: int, cells: int | None) -> str | None:
    """The run header's line on the threads torch now has, when they differ from its default;
    `before`: the count before `step_threads` was applied for steps of `cells`."""
    threads = torch.get_num_threads()
    if threads == TORCH_DEFAULT:
        return None
    head = f"threads: {threads}, not torch's default {TORCH_DEFAULT}"
    if threads == before:
        return f"{head} (chosen before this run)"
    return f"{head}: a step's tensors hold {cells:,} numbers at most ({THREADS_ENV} to choose)"


@contextmanager
def one_thread() -> Iterator[None]:
    """Torch on one thread inside: on chunks this size a second thread costs more than it gains
    on a shared machine (measured: 5.4 s vs 11.9 s counting, 47 s vs 7 min for c = 5 suffix)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
