"""How many threads torch works with, decided in one place."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def one_thread() -> Iterator[None]:
    """Torch on one thread inside. Counting works on a chunk (about a million elements) at a
    time and L-BFGS on a few hundred thousand weights: a second thread gains little there and,
    on a shared machine, costs several times the time (threads waiting on each other): 5.4 s
    instead of 11.9 s to count 50x names.txt, 47 s instead of 7 min for the c = 5 suffix fit."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
