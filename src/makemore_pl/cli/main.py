"""`makemore` / `python -m makemore_pl`: one entry point for every command.

The training commands (fit, validate, test, predict) go to LightningCLI; the commands that train
nothing (sample, baseline, sweep, suffix_sweep) are plain functions with only the options they
honour, so they never import the training stack.
"""

from __future__ import annotations

import ast
import os
import sys
from pathlib import Path

ABOUT = (
    "Character-level n-gram language models (makemore): give it a file with one name per line "
    "and it learns to generate more names like them. Two models sit side by side: the counting "
    "model (n-gram counts with add-k or Kneser-Ney smoothing) and the neural one (a weight "
    "table W trained with cross-entropy plus an L2 term by the Lightning Trainer)."
)
PACKAGE = Path(__file__).resolve().parents[1]
# command -> (the file, the function or method) whose docstring documents it: read as text, so
# that `--help` imports neither torch nor Lightning
TRAINING_COMMANDS = {
    name: ("lit/trainer.py", f"MakemoreTrainer.{name}")
    for name in ("fit", "validate", "test", "predict")
}
PLAIN_COMMANDS = {
    name: (f"cli/{name}.py", name) for name in ("sample", "baseline", "sweep", "suffix_sweep")
}


def summary(file: str, qualified_name: str) -> str:
    """The first line of the docstring of `qualified_name` (function or Class.method) in file."""
    nodes = ast.parse((PACKAGE / file).read_text(encoding="utf-8")).body
    for name in qualified_name.split("."):
        node = next(n for n in nodes if getattr(n, "name", None) == name)
        nodes = node.body
    return (ast.get_docstring(node) or "").split("\n")[0]


def program_name() -> str:
    """How the user called us: `python -m makemore_pl` or the console script's name."""
    called = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return "python -m makemore_pl" if called in ("__main__.py", "-m", "") else called


def overview(prog: str) -> str:
    commands = {**TRAINING_COMMANDS, **PLAIN_COMMANDS}
    width = max(len(name) for name in commands)
    rows = [f"  {name:<{width}}  {summary(*where)}" for name, where in commands.items()]
    return "\n".join(
        [
            f"usage: {prog} COMMAND [options]",
            "",
            ABOUT,
            "",
            "commands:",
            *rows,
            "",
            f"`{prog} COMMAND --help` lists a command's options. Start with `{prog} fit`.",
        ]
    )


def main(args: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if args is None else args)
    prog = program_name()
    if not args or args[0] in ("-h", "--help"):
        print(overview(prog))
        return
    from makemore_pl.core.errors import UserError
    from makemore_pl.core.text import printable

    try:
        from makemore_pl.cli.config_files import check_arguments, install_bounded_loader

        install_bounded_loader()
        check_arguments(args[1:])
        if args[0] in PLAIN_COMMANDS:
            from makemore_pl.cli.plain import run_command

            run_command(prog, args[0], args[1:])
        elif args[0] in TRAINING_COMMANDS:
            from makemore_pl.cli.training import run_training

            status = run_training(prog, args)
            if status:  # 130 / 143: stopped by a signal, its checkpoint saved
                sys.exit(status)
        else:
            names = ", ".join([*TRAINING_COMMANDS, *PLAIN_COMMANDS])
            sys.exit(f"{prog}: error: unknown command {printable(args[0])!r}; choose from {names}")
    except UserError as err:  # says what to fix; no traceback
        sys.exit(f"makemore_pl: error: {printable(str(err))}")
    except BrokenPipeError:  # `... | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
