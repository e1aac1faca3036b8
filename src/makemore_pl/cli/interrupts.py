"""Ctrl-C (SIGINT) at any moment: one line, status 130, nothing half-written left behind.

While the modules load, the process ends at once: raised there, the interrupt can leave torch or
numpy half-imported (a C extension turns it into an ImportError that a library then swallows)
and surface later as an unrelated error. Once a command starts, Ctrl-C raises: a
KeyboardInterrupt in a plain command, Interrupted in a training command (StopOnSignal takes it
over while training runs). Where SIGINT is ignored (a background job) it stays ignored.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

MESSAGE = "makemore_pl: interrupted"
STATUS = 130  # 128 + SIGINT, as the shell reports a process Ctrl-C stopped


class Interrupted(BaseException):
    """Ctrl-C in a training command outside training. Not a KeyboardInterrupt: Lightning catches
    that one inside fit and test and exits with status 1 after a message of its own."""


def end_at_once(signum: int, frame) -> None:
    os.write(2, f"{MESSAGE}\n".encode())
    os._exit(STATUS)


def handled() -> bool:
    """Whether this process handles SIGINT itself: on the main thread, and not ignoring it."""
    main_thread = threading.current_thread() is threading.main_thread()
    return main_thread and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN


@contextmanager
def starting_up() -> Iterator[None]:
    """The whole command: Ctrl-C ends the process at once until the command starts; SIGINT's
    handler is restored after."""
    if not handled():
        yield
        return
    previous = signal.signal(signal.SIGINT, end_at_once)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def plain_command_started() -> None:
    """From here on, Ctrl-C raises KeyboardInterrupt (the plain commands write atomically)."""
    if signal.getsignal(signal.SIGINT) is end_at_once:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@contextmanager
def interrupts_raised() -> Iterator[None]:
    """A training command: Ctrl-C raises Interrupted, so that it can remove a run folder left
    without a checkpoint; the handler before is restored after."""
    if not handled():
        yield
        return

    def interrupt(signum: int, frame) -> None:
        raise Interrupted

    previous = signal.signal(signal.SIGINT, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
