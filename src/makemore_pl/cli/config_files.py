"""Every YAML the package parses is untrusted: its size, nesting and expanded size are bounded."""

import contextlib
import os
import stat
from collections.abc import Callable
from typing import Any

import yaml

from makemore_pl.cli.class_paths import (
    CLASS_OPTIONS,
    check_class_path,
    check_class_paths,
    is_file_name,
    option_name,
)
from makemore_pl.core.errors import CommandError, UserError
from makemore_pl.core.text import human_bytes, printable, shortened

# a config holds a few dozen values in a few KB; nested aliases can make a few hundred bytes
# expand to billions of nodes (a "billion laughs" file), which no loader survives
MAX_NODES = 100_000
MAX_BYTES = 1_000_000
MAX_DEPTH = 64
MAX_CLASSES = 64  # a run uses a model, a few callbacks and loggers; jsonargparse takes seconds each
# the C parser when PyYAML has it: counting the events of a 1 MB text then takes a blink
Parser = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ConfigTooLarge(CommandError):
    """YAML text beyond the loader's bounds; raised before it is loaded."""


class ConfigRefused(BaseException):
    """A refusal of the loader jsonargparse calls, carrying its UserError: jsonargparse reprints
    any Exception of a loader as a usage error of several lines; a BaseException passes."""

    def __init__(self, error: UserError) -> None:
        super().__init__(str(error))
        self.error = error


def check_yaml(text: str, where: str = "a YAML value") -> None:
    """Refuses YAML over MAX_BYTES, MAX_DEPTH or MAX_NODES; what is not YAML is the loader's."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_BYTES:
        raise ConfigTooLarge(
            f"{where}: {human_bytes(size)} of YAML, more than the {human_bytes(MAX_BYTES)} a "
            "config can hold"
        )
    try:
        nodes, depth = expanded_nodes(text)
    except yaml.YAMLError:
        return
    if depth > MAX_DEPTH:
        raise ConfigTooLarge(
            f"{where}: YAML nested more than {MAX_DEPTH} levels deep (a makemore_pl config "
            "nests a few)"
        )
    if nodes > MAX_NODES:
        raise ConfigTooLarge(
            f"{where}: its YAML aliases expand to more than {MAX_NODES:,} values, more than a "
            "config can hold; write the values out instead of aliasing them"
        )


def safe_load(text: str, where: str, load: Callable[[str], Any] = yaml.safe_load) -> Any:
    """`load`, bounded; the classes it names are checked."""
    check_yaml(text, where)
    loaded = load(text)
    if check_class_paths(loaded, where) > MAX_CLASSES:
        raise ConfigTooLarge(
            f"{where}: names more than {MAX_CLASSES} classes to build, more than a run uses (a "
            "model, a few callbacks and loggers)"
        )
    return loaded


def read_config(path: str, where: str, hint: str = "; a checkpoint goes to --ckpt_path") -> str:
    """A config file's text: a regular file (a FIFO would block, /dev/zero never end), at most
    MAX_BYTES, UTF-8 (a checkpoint named as a config is binary)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise CommandError(
                f"{where}: not a regular file (a pipe, device or socket); save the options to a "
                "file first"
            )
        with open(path, "rb") as file:
            data = file.read(MAX_BYTES + 1)
    except OSError as err:
        raise CommandError(f"{where}: cannot read it ({err.strerror})") from None
    if len(data) > MAX_BYTES:
        raise ConfigTooLarge(f"{where}: more than the {human_bytes(MAX_BYTES)} a config can hold")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise CommandError(f"{where}: not YAML text (its bytes are not UTF-8{hint})") from None


def install_bounded_loader() -> None:
    """Makes jsonargparse's YAML loader, which reads every value and file, the bounded one."""
    from jsonargparse import get_loader, set_loader

    original = get_loader("yaml")
    if getattr(original, "bounded", False):
        return
    try:  # the config files jsonargparse is reading, outermost first, as the user named them
        from jsonargparse._util import config_load_stack
    except ImportError:  # another jsonargparse: the message names no file
        config_load_stack = None

    def load_bounded(text: str, path: str | None = None) -> Any:
        reading = [shown for _, shown in config_load_stack.get()] if config_load_stack else []
        where = " → ".join(reading) or str(path or "a YAML value")
        try:
            return safe_load(text, where, original)
        except UserError as err:
            raise ConfigRefused(err) from None

    load_bounded.bounded = True
    set_loader("yaml", load_bounded, exceptions=(yaml.YAMLError,))


CONFIG_OPTIONS = ("--config", "-c")
SECTIONS = ("model", "data", "trainer")
YAML_SUFFIXES = (".yaml", ".yml", ".json")


def check_arguments(args: list[str]) -> None:
    """Each command-line value before jsonargparse sees it, so that a refusal names it (a
    number's option such as `--model.lr` is parsed as YAML where no loader hook reaches)."""
    for i, arg in enumerate(args):
        option, value = arg.split("=", 1) if arg.startswith("--") and "=" in arg else (None, arg)
        before = args[i - 1] if i > 0 else ""
        if option is None and before.startswith("-") and "=" not in before:
            option = before
        named = option or "a command-line value"
        if option is not None and option_name(option) in CLASS_OPTIONS:
            check_class_path(value, option)
        if option in CONFIG_OPTIONS:
            check_config_value(value, option)
        elif value.lower().endswith(YAML_SUFFIXES):
            check_yaml_file(value, named)
        if any(ch in value for ch in "&*[{\n") or len(value) > MAX_BYTES:
            check_yaml(value, named)
        if option is not None and not is_file_name(value):  # inline YAML or JSON
            with contextlib.suppress(yaml.YAMLError):
                # `--trainer.callbacks '[X]'`, `--trainer 'logger: X'` name classes too
                check_class_paths(safe_load(value, named), named, option_name(option))


def check_config_value(value: str, option: str) -> None:
    """`--config` takes a file, YAML text of options or `-` (stdin): jsonargparse would call
    anything else a file that does not exist. Its sections (`model:`, `data:`, `trainer:`) hold
    options: a null one would reach LightningCLI as a missing section."""
    loaded = None
    try:
        os.stat(value)
    except (OSError, ValueError) as err:  # a missing file, a name too long, a NUL byte
        reason = err.strerror if isinstance(err, OSError) else str(err)
    else:
        reason = None
        if os.path.isdir(value):
            raise CommandError(f"{option} {value}: cannot read it (Is a directory)")
        text = read_config(value, f"{option} {value}")
        check_yaml(text, f"{option} {value}")
        with contextlib.suppress(yaml.YAMLError, UserError):  # reported as the file is read
            loaded = safe_load(text, option)
    if reason is not None:
        with contextlib.suppress(yaml.YAMLError):
            loaded = safe_load(value, option)
        shown = shortened(printable(value), 80)
        if value.strip() != "-" and not isinstance(loaded, dict):
            if value.lower().endswith(YAML_SUFFIXES) or os.sep in value:  # meant as a file
                raise CommandError(f"{option} {shown}: cannot read it ({reason})")
            raise CommandError(
                f"{option} {shown}: neither a config file ({reason}) nor YAML text of options; "
                "give a file's path, or text such as 'trainer: {max_epochs: 5}'"
            )
    empty = [key for key in SECTIONS if isinstance(loaded, dict) and loaded.get(key, 0) is None]
    if empty:
        raise CommandError(
            f"{option} {shortened(printable(value), 80)}: its {empty[0]}: section is empty "
            "(null); give it options, or remove the line"
        )


def check_yaml_file(value: str, option: str) -> None:
    """A value that names a file: a regular one we can read, its text bounded."""
    try:
        os.stat(value)
    except (OSError, ValueError):  # inline YAML, a name too long: jsonargparse takes it as text
        return
    if not os.path.isdir(value):
        check_yaml(read_config(value, f"{option} {value}"), f"{option} {value}")


def expanded_nodes(text: str) -> tuple[int, int]:
    """(nodes once every alias is expanded, depth), counted from the parser's events without
    expanding anything; counting stops past the limits."""
    anchors: dict[str, int] = {}
    open_nodes: list[tuple[str | None, int]] = []  # (anchor, size so far) of open collections
    total = 0
    for event in yaml.parse(text, Loader=Parser):
        if isinstance(event, yaml.AliasEvent):
            if any(event.anchor == anchor for anchor, _ in open_nodes):  # holds itself: endless
                return MAX_NODES + 1, len(open_nodes)
            size = anchors.get(event.anchor, 1)
        elif isinstance(event, yaml.ScalarEvent):
            size = 1
            if event.anchor:
                anchors[event.anchor] = 1
        elif isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            open_nodes.append((event.anchor, 1))
            if len(open_nodes) > MAX_DEPTH:
                return total, len(open_nodes)
            continue
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            anchor, size = open_nodes.pop()
            if anchor:
                anchors[anchor] = size
        else:
            continue
        if open_nodes:
            anchor, so_far = open_nodes[-1]
            open_nodes[-1] = (anchor, so_far + size)
        else:
            total += size
        largest = max([total, *(s for _, s in open_nodes)])
        if largest > MAX_NODES:
            return largest, len(open_nodes)
    return total, 0
