"""Mistakes a user can fix: the command line prints them as one line, without a traceback."""


class UserError(ValueError):
    """Bad input (a file, an option, a checkpoint) that the message names; never our own bug."""


class DataError(UserError):
    """Bad data or data options; the message names the file, line or option."""


class CheckpointError(UserError):
    """A checkpoint or run folder the command cannot use; the message names the file."""


class CommandError(UserError):
    """A command-line option out of range or in conflict with another; the message names it."""


class SettingError(UserError):
    """A setting out of range, raised by the class that owns it as "<setting> <problem>"; the
    command line names the option (`--model.l2 must be ...`) where the user typed it."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"{setting} {problem}")
        self.setting, self.problem = setting, problem
