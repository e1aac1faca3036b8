"""`makemore` / `python -m makemore_pl`: the entry point; plain commands skip the training stack."""

import contextlib
import errno
import os
import re
import sys
import textwrap
import traceback

from makemore_pl.cli.commands import COMMANDS, TRAINING
from makemore_pl.cli.interrupts import MESSAGE, STATUS, Interrupted, end_at_once, sigint_handled_by

ABOUT = (
    "Character-level n-gram language models (makemore): give it a file with one name per line "
    "and it learns to generate more names like them. Two models sit side by side: the counting "
    "model (n-gram counts with add-k or Kneser-Ney smoothing) and the neural one (a weight "
    "table W trained with cross-entropy plus an L2 term by the Lightning Trainer)."
)


def overview(prog: str) -> str:
    """The top-level help, wrapped to 80 columns."""
    width = max(len(name) for name in COMMANDS)
    rows = []
    for name, text in COMMANDS.items():
        head = f"  {name:<{width}}  "
        rows.append(textwrap.fill(text, 79, initial_indent=head, subsequent_indent=" " * len(head)))
    hint = f"`{prog} COMMAND --help` lists a command's options (`{prog} --version`: the version)."
    hint += f" Start with `{prog} fit`."
    lines = [f"usage: {prog} COMMAND [options]", "", textwrap.fill(ABOUT, 79), "", "commands:"]
    return "\n".join([*lines, *rows, "", textwrap.fill(hint, 79)])


def main(args: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if args is None else args)
    try:  # before torch is imported: in a deleted folder its MKL fails to load with a fatal error
        os.getcwd()
    except FileNotFoundError:
        gone = "the current folder no longer exists (it was deleted or moved)"
        sys.exit(error_line(f"{gone}; cd to a folder that exists and run the command again"))
    try:
        with sigint_handled_by(end_at_once):  # until the command starts, Ctrl-C ends it at once
            run(args)
        flush_output()
    except SystemExit as done:  # --help, a usage error: what they printed must reach the reader
        flush_output()
        raise done from None
    except (KeyboardInterrupt, Interrupted):  # Ctrl-C outside training
        silence_output()
        print(MESSAGE, file=sys.stderr)
        sys.exit(STATUS)
    except OSError as err:  # a read or write that failed: the output closed, full or broken
        silence_output()  # a broken pipe, `... | head`: the reader has all it wanted
        sys.exit(1 if isinstance(err, BrokenPipeError) else error_line(os_failure(err)))
    except RecursionError:
        sys.exit(error_line("the input nests deeper than makemore_pl can read"))


def run(args: list[str]) -> None:
    # how the user called us: `python -m makemore_pl` or the console script's name
    called = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    prog = "python -m makemore_pl" if called in ("__main__.py", "-m", "") else called
    if sys.stdout is None:  # started with `>&-`: what it prints would be lost
        sys.exit(error_line("the standard output is closed; redirect it to a file or /dev/null"))
    if not args or args[0] in ("-h", "--help"):
        print(overview(prog))
        return
    if args[0] == "--version":
        from importlib.metadata import PackageNotFoundError, version

        try:
            print(f"makemore_pl {version('makemore_pl')}")
        except PackageNotFoundError:  # run from a source tree that was never installed
            print("makemore_pl (not installed)")
        return
    from makemore_pl.cli.config_files import ConfigRefused, check_arguments, install_bounded_loader
    from makemore_pl.core.errors import UserError

    try:
        install_bounded_loader()
        args = [args[0], *non_finite_spelled(args[1:])]
        check_arguments(args[1:])
        if args[0] not in COMMANDS:
            names = ", ".join(COMMANDS)
            sys.exit(f"{prog}: error: unknown command {shown(args[0], 200)!r}; choose from {names}")
        if args[0] not in TRAINING:
            from makemore_pl.cli.plain.command import run_command

            run_command(prog, args[0], args[1:])
            return
        from makemore_pl.cli.training import run_training

        status = run_training(prog, args)
        if status:  # 130 / 143: stopped by a signal, its checkpoint saved
            flush_output()
            sys.exit(status)
    except (UserError, ConfigRefused) as err:  # says what to fix; no traceback
        sys.exit(error_line(str(err)))
    except Exception as err:
        refusal = dependency_refusal(err)
        if refusal is None:  # our own bug: the traceback is for us
            raise
        sys.exit(error_line(refusal))


# where Lightning refuses what it was given: its own words are the user's to act on
LIGHTNING = ("/lightning/", "/lightning_fabric/", "/pytorch_lightning/")


def dependency_refusal(err: Exception) -> str | None:
    """One line for what a dependency refuses: memory it cannot allocate, and the options
    Lightning refuses as it builds or starts the run (a strategy or accelerator this machine
    lacks, devices of the wrong form, an interval past the data); None for anything else."""
    reason = " ".join(str(err).split()) or type(err).__name__
    memory = "can't allocate memory" in reason or "out of memory" in reason.lower()
    if isinstance(err, MemoryError) or memory:
        return (
            f"out of memory ({reason[:300]}); use a smaller --data.batch_size or "
            "--data.context_size, or a machine with more memory"
        )
    frames = traceback.extract_tb(err.__traceback__)
    raised_by_lightning = bool(frames) and any(part in frames[-1].filename for part in LIGHTNING)
    refused = isinstance(err, ValueError | TypeError | ImportError | KeyError)
    if raised_by_lightning and refused or type(err).__name__ == "MisconfigurationException":
        return f"{reason} (Lightning refused the --trainer options)"
    return None


# non-finite numbers in YAML's spelling: jsonargparse reads `nan` as text and argparse takes
# `-inf` for an option, so the option's own range check would never see them
NON_FINITE = {"nan": ".nan", "+nan": ".nan", "-nan": ".nan", "inf": ".inf", "+inf": ".inf"}
NON_FINITE |= {"-inf": "-.inf", "infinity": ".inf", "-infinity": "-.inf"}


def non_finite_spelled(args: list[str]) -> list[str]:
    """`--model.lr nan` -> `--model.lr=.nan`, `--temperature -inf` -> `--temperature=-.inf`,
    `--l2_grid '[inf, 1]'` -> `--l2_grid=[.inf, 1]`."""
    out: list[str] = []
    for arg in args:
        option, _, value = arg.partition("=")
        before = out[-1] if out else ""
        takes_value = before.startswith("--") and "=" not in before and takes_number(before)
        if arg.startswith("--") and takes_number(option) and spelled(value) != value:
            out.append(f"{option}={spelled(value)}")
        elif takes_value and spelled(arg) != arg:
            out[-1] = f"{before}={spelled(arg)}"
        else:
            out.append(arg)
    return out


NON_FINITE_IN_LIST = re.compile(r"(?<![\w.])[+-]?(?:nan|inf(?:inity)?)(?!\w)", re.IGNORECASE)


def spelled(value: str) -> str:
    """A number, or a list of them, with its non-finite ones in YAML's spelling."""
    if value.lower() in NON_FINITE:
        return NON_FINITE[value.lower()]
    if value.startswith("[") and value.endswith("]"):
        return NON_FINITE_IN_LIST.sub(lambda m: NON_FINITE[m.group().lower()], value)
    return value


def takes_number(option: str) -> bool:
    """Not an option of text (a file named `nan` stays a file)."""
    name = option.rsplit(".", 1)[-1].lstrip("-")
    return not name.endswith(("path", "output", "plot", "prefix", "name", "dir", "config"))


def error_line(message: str) -> str:
    """The one line an error prints: printable, and bounded in length."""
    return f"makemore_pl: error: {shown(message)}"


def shown(text: str, limit: int = 2000) -> str:
    from makemore_pl.core.text import printable, shortened

    return shortened(printable(text), limit)


def os_failure(err: OSError) -> str:
    """A failed read or write in the user's terms: which file, if it is known, and why."""
    reason = err.strerror or str(err)
    if err.filename is not None:
        return f"{err.filename}: {reason}"
    if err.errno in (errno.ENOSPC, errno.EBADF, errno.EIO, errno.EPIPE):
        return f"cannot write the output ({reason})"
    return reason


def flush_output() -> None:
    """Flushes stdout here, not at exit, where a failure is 'Exception ignored' and status 120."""
    if sys.stdout is not None:
        try:
            sys.stdout.flush()
        except OSError as err:
            silence_output()
            if not isinstance(err, BrokenPipeError):
                sys.exit(error_line(os_failure(err)))


def silence_output() -> None:
    """Points stdout at /dev/null, so that the exit's own flush has nothing to fail on."""
    with contextlib.suppress(OSError, AttributeError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
