"""Ctrl-C (SIGINT) at any moment: one line, status 130, nothing half-written left behind. While
modules load it ends the process at once (raised inside an import, it can leave torch
half-imported); once a command starts, it raises."""

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

MESSAGE = "makemore_pl: interrupted"
STATUS = 130  # 128 + SIGINT, as the shell reports a process Ctrl-C stopped


class Interrupted(BaseException):
    """Ctrl-C in a training command outside training. Not a KeyboardInterrupt: Lightning catches
    that one inside fit and test and exits with status 1 after a message of its own."""


def end_at_once(signum: int, frame) -> None:
    os.write(2, f"{MESSAGE}\n".encode())
    os._exit(STATUS)


def raise_interrupted(signum: int, frame) -> None:
    raise Interrupted


@contextmanager
def sigint_handled_by(handler: Callable) -> Iterator[None]:
    """SIGINT goes to `handler` in the block (unless ignored, or off the main thread)."""
    main_thread = threading.current_thread() is threading.main_thread()
    if not main_thread or signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        yield
        return
    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def plain_command_started() -> None:
    """From here on, Ctrl-C raises KeyboardInterrupt (the plain commands write atomically)."""
    if signal.getsignal(signal.SIGINT) is end_at_once:
        signal.signal(signal.SIGINT, signal.default_int_handler)
